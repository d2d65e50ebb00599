#!/usr/bin/env bash
# `lmtune plan` against the measured run: predicted vs measured tokens/s and peak RSS for workload A (Qwen2.5-0.5B
# shape, LoRA r=16 on all seven projections, bf16, batch 1 x 512) and workload B (25M SmolLM-style model, full
# fine-tuning, f32 and bf16, batch 1 x 512). The measured run is bench_train (median step, peak RSS); the train-*
# cases run `lmtune train` itself on random pre-tokenized rows (median logged tokens/s after the first step, peak RSS
# by /usr/bin/time) and so include what the trainer adds (gradient clipping, logging).
# Env: THREADS (2), STEPS (3), BUILD (build), SEQ (512), LMTUNE_CACHE.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
THREADS=${THREADS:-2}
STEPS=${STEPS:-3}
SEQ=${SEQ:-512}
BUILD=${BUILD:-build}
cache=${LMTUNE_CACHE:-$HOME/.cache/lmtune}
py=$root/.venv/bin/python
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$THREADS" --target lmtune bench_train >/dev/null
export OMP_NUM_THREADS=$THREADS
unset OMP_WAIT_POLICY
for shape in qwen05b smol25m; do "$py" bench/make_model.py "$cache/bench-models/$shape" --shape "$shape"; done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# case NAME SHAPE MODE DTYPE
case_run() {
  local name=$1 shape=$2 mode=$3 dtype=$4 model=$cache/bench-models/$2 ft lora=()
  if [ "$mode" = lora ]; then ft=lora; lora=(--lora_rank 16 --lora_alpha 32 --lora_target all); else ft=full; fi
  local bf=false; [ "$dtype" = bf16 ] && bf=true
  "$BUILD/lmtune" plan --model_name_or_path "$model" --finetuning_type "$ft" "${lora[@]}" --bf16 "$bf" \
    --per_device_train_batch_size 1 --seq "$SEQ" --weight_decay 0 --threads "$THREADS" --json >"$out/$name.plan"
  "$BUILD/bench_train" --model "$model" --mode "$mode" --dtype "$dtype" --seq "$SEQ" --batch 1 --steps "$STEPS" \
    --warmup 1 >"$out/$name.run" 2>/dev/null
  echo "$name" >>"$out/cases"
}
# train_run NAME SHAPE MODE DTYPE: the same through lmtune train
"$py" - "$out/rows.jsonl" "$SEQ" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(16):
        ids = [random.randrange(1, 49000) for _ in range(int(sys.argv[2]))]
        f.write(json.dumps({"input_ids": ids, "labels": ids}) + "\n")
PY
train_run() {
  local name=$1 shape=$2 mode=$3 dtype=$4 model=$cache/bench-models/$2 ft lora=()
  if [ "$mode" = lora ]; then ft=lora; lora=(--lora_rank 16 --lora_alpha 32 --lora_target all); else ft=full; fi
  local bf=false; [ "$dtype" = bf16 ] && bf=true
  local args=(--model_name_or_path "$model" --finetuning_type "$ft" "${lora[@]}" --bf16 "$bf"
              --per_device_train_batch_size 1 --weight_decay 0 --threads "$THREADS")
  "$BUILD/lmtune" plan "${args[@]}" --seq "$SEQ" --max_steps $((STEPS + 1)) --json >"$out/$name.plan"
  rm -rf "$out/$name.dir"
  /usr/bin/time -f "%M" -o "$out/$name.rss" "$BUILD/lmtune" train "${args[@]}" --dataset "$out/rows.jsonl" \
    --cutoff_len "$SEQ" --max_steps $((STEPS + 1)) --logging_steps 1 --save_strategy no --report_to none \
    --plan false --output_dir "$out/$name.dir" >/dev/null 2>&1
  "$py" - "$out/$name.dir/metrics.jsonl" "$out/$name.rss" >"$out/$name.run" <<'PY'
import json, statistics, sys
tps = [json.loads(l).get("tokens_per_second") for l in open(sys.argv[1])]
tps = [t for t in tps if t is not None][1:]  # the first step warms up
rss = int(open(sys.argv[2]).read().split()[-1])
print(json.dumps({"tokens_per_s": statistics.median(tps), "peak_rss_mb": rss / 1024}))
PY
  echo "$name" >>"$out/cases"
}
case_run "A-lora-bf16" qwen05b lora bf16
case_run "B-full-f32" smol25m full f32
case_run "B-full-bf16" smol25m full bf16
train_run "train-A-bf16" qwen05b lora bf16
train_run "train-B-f32" smol25m full f32

"$py" - "$out" <<'PY'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
print(f"{'case':<14}{'plan tok/s':>11}{'run tok/s':>11}{'ratio':>8}{'plan MB':>10}{'run MB':>9}{'ratio':>8}{'plan s':>8}")
worst = 0.0
for name in (d / "cases").read_text().split():
    p = json.loads((d / f"{name}.plan").read_text())
    r = json.loads((d / f"{name}.run").read_text())
    pm = p["peak_bytes"] / 2**20
    rt, rm = p["tokens_per_s"] / r["tokens_per_s"], pm / r["peak_rss_mb"]
    worst = max(worst, abs(rt - 1), abs(rm - 1))
    print(f"{name:<14}{p['tokens_per_s']:>11.1f}{r['tokens_per_s']:>11.1f}{rt:>8.2f}{pm:>10.0f}{r['peak_rss_mb']:>9.0f}"
          f"{rm:>8.2f}{p['measure_s']:>8.1f}")
print(f"worst deviation {worst * 100:.1f}% (target: within 20%)")
PY
