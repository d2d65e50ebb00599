#!/usr/bin/env bash
# Thread scaling on workload A: the LoRA training step (bench_train, bf16 compute) with 1 and with 2 threads,
# alternated ROUNDS times so a load change on the shared host hits both; prints each round's tokens/s and the
# ratio 2 threads / 1 thread (median steps, and fastest steps).
# Usage: bash bench/threads.sh     Env: SHAPE (qwen05b), SEQ (512), STEPS (3), WARMUP (1), ROUNDS (2), DTYPE (bf16),
#                                       BUILD (build), LMTUNE_CACHE
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SHAPE=${SHAPE:-qwen05b}
SEQ=${SEQ:-512}
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-2}
DTYPE=${DTYPE:-bf16}
BUILD=${BUILD:-build}
model=${LMTUNE_CACHE:-$HOME/.cache/lmtune}/bench-models/$SHAPE
py=$root/.venv/bin/python
if [ ! -f "$BUILD/CMakeCache.txt" ]; then cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null; fi
cmake --build "$BUILD" -j2 --target bench_train >/dev/null
"$py" bench/make_model.py "$model" --shape "$SHAPE" >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
unset OMP_WAIT_POLICY
for round in $(seq "$ROUNDS"); do
  for t in 1 2; do
    OMP_NUM_THREADS=$t "$BUILD/bench_train" --model "$model" --seq "$SEQ" --steps "$STEPS" --warmup "$WARMUP" \
      --dtype "$DTYPE" 2>/dev/null | grep '^{' | sed "s/^{/{\"round\": $round, /" >>"$out"
  done
done
"$py" - "$out" "$SHAPE" "$SEQ" "$DTYPE" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"thread scaling, shape={sys.argv[2]} seq={sys.argv[3]} dtype={sys.argv[4]} (LoRA step, bench_train)")
print(f"{'round':>5} {'1 thread tok/s':>15} {'2 threads tok/s':>16} {'ratio (median)':>15} {'ratio (fastest)':>16}")
for r in sorted({x['round'] for x in rows}):
    one = next(x for x in rows if x['round'] == r and x['threads'] == 1)
    two = next(x for x in rows if x['round'] == r and x['threads'] == 2)
    print(f"{r:>5} {one['tokens_per_s']:>15.2f} {two['tokens_per_s']:>16.2f} "
          f"{two['tokens_per_s'] / one['tokens_per_s']:>14.2f}x {one['step_s_min'] / two['step_s_min']:>15.2f}x")
PY
