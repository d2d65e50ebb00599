#!/usr/bin/env bash
# A full LoRA SFT run: `lmtune train` vs HF Trainer + PEFT on the same pre-tokenized data, side by side in one run.
# Usage: bash bench/bench_sft.sh            (Qwen2.5-0.5B shape; about 25 minutes on 2 cores)
#        SHAPE=tiny bash bench/bench_sft.sh (smoke test, seconds)
# Env: SHAPE (qwen05b|tiny, default qwen05b), STEPS (16), BATCH (4), THREADS (2), MIN_LEN (128), MAX_LEN (512),
#      BUILD (build dir, default build), LMTUNE_CACHE (model/data cache root, default ~/.cache/lmtune).
# Runs: lmtune bf16 true, lmtune bf16 false, HF f32, HF bf16 (TrainingArguments bf16=True: CPU autocast).
# Results: a table on stdout and bench/out/sft-<date>.json (per-run logs in bench/out/sft-<date>/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

SHAPE=${SHAPE:-qwen05b}
STEPS=${STEPS:-16}
BATCH=${BATCH:-4}
THREADS=${THREADS:-2}
MIN_LEN=${MIN_LEN:-128}
MAX_LEN=${MAX_LEN:-512}
BUILD=${BUILD:-build}
cache=${LMTUNE_CACHE:-$HOME/.cache/lmtune}
model=$cache/bench-models/$SHAPE
py=$root/.venv/bin/python
ref=bench/sft_ref.py

if [ ! -x "$py" ]; then
  echo "bench_sft.sh: $py is missing: run \`make venv\`" >&2
  exit 1
fi
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j"$THREADS" --target lmtune >/dev/null
bin=$BUILD/lmtune

mkdir -p "$(dirname "$model")"
"$py" bench/make_model.py "$model" --shape "$SHAPE"
vocab=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["vocab_size"])' "$model/config.json")

# The data: STEPS*BATCH examples, so one epoch = STEPS optimizer steps (gradient accumulation 1).
n=$((STEPS * BATCH))
data_dir=$cache/bench-data
mkdir -p "$data_dir"
data=$data_dir/sft-v$vocab-n$n-l$MIN_LEN-$MAX_LEN-s1234.jsonl
[ -f "$data" ] || "$py" "$ref" data "$data" --n "$n" --vocab "$vocab" --min-len "$MIN_LEN" --max-len "$MAX_LEN" \
  --prompt-frac 0.3 --seed 1234
tokens=$("$py" -c 'import json,sys; print(sum(len(json.loads(l)["input_ids"]) for l in open(sys.argv[1])))' "$data")

stamp=$(date +%Y-%m-%dT%H-%M-%S)
out=bench/out
logs=$out/sft-$stamp
mkdir -p "$logs"
results=$logs/results.jsonl
: >"$results"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lmtune-bench-sft.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
status=0
# each side with its best OpenMP wait policy: lmtune the default, HF/PyTorch PASSIVE
export OMP_NUM_THREADS=$THREADS
unset OMP_WAIT_POLICY

# run NAME IMPL DTYPE CMD...: runs CMD under the measuring wrapper (wall time, peak RSS via wait4), appends the
# merged JSON (or a failure record) to $results.
run() {
  local name=$1 impl=$2 dtype=$3
  shift 3
  local load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "== $name (load average before: $load)" >&2
  "$py" "$ref" measure "$logs/$name.log" -- "$@" >"$logs/$name.measure.json"
  local res=$logs/$name.log
  if [ "$impl" = lmtune ]; then
    res=$logs/$name.result.json
    "$py" "$ref" lmtune-result "$tmp/$name" --dtype "$dtype" --data "$data" --batch "$BATCH" >"$res" 2>/dev/null || true
  fi
  local line
  line=$("$py" "$ref" merge "$name" "$res" "$logs/$name.measure.json" --log "$logs/$name.log") || status=1
  "$py" -c 'import json,sys; d=json.loads(sys.argv[1]); d["loadavg_before"]=sys.argv[2]; print(json.dumps(d))' \
    "$line" "$load" >>"$results"
  "$py" -c 'import json,sys; d=json.loads(sys.argv[1]); print("   ", {k: d.get(k) for k in
    ("train_runtime","tokens_per_s","wall_s","peak_rss_mb","loss_first","loss_last","error")})' "$line" >&2
}

lm_args=(--model_name_or_path "$model" --dataset "$data" --finetuning_type lora --lora_rank 16 --lora_alpha 32
  --lora_dropout 0 --lora_target all --learning_rate 1e-4 --lr_scheduler_type linear --warmup_steps 0
  --weight_decay 0 --max_grad_norm 1.0 --optim adamw_torch --per_device_train_batch_size "$BATCH"
  --gradient_accumulation_steps 1 --num_train_epochs 1 --max_steps "$STEPS" --logging_steps 1 --save_steps 0
  --disable_shuffling true --cutoff_len 4096 --threads "$THREADS" --report_to none --plot_loss false --plan false)
run lmtune_bf16 lmtune bf16 "$bin" train "${lm_args[@]}" --bf16 true --output_dir "$tmp/lmtune_bf16"
run lmtune_f32 lmtune f32 "$bin" train "${lm_args[@]}" --bf16 false --output_dir "$tmp/lmtune_f32"
hf_args=(--model "$model" --data "$data" --batch "$BATCH" --steps "$STEPS" --threads "$THREADS")
run hf_f32 hf f32 env OMP_WAIT_POLICY=PASSIVE "$py" "$ref" hf "${hf_args[@]}" --dtype f32 --out "$tmp/hf_f32"
run hf_bf16 hf bf16 env OMP_WAIT_POLICY=PASSIVE "$py" "$ref" hf "${hf_args[@]}" --dtype bf16 --out "$tmp/hf_bf16"

"$py" "$ref" report "$results" "$out/sft-$stamp.json" shape="$SHAPE" model="$model" data="$data" \
  examples="$n" tokens="$tokens" min_len="$MIN_LEN" max_len="$MAX_LEN" batch="$BATCH" steps="$STEPS" \
  threads="$THREADS" omp_wait_policy="lmtune default, hf PASSIVE" lora="r16 alpha32 dropout0 q,k,v,o,gate,up,down" \
  optim="adamw lr1e-4 linear wd0 clip1.0" || status=1
exit $status
