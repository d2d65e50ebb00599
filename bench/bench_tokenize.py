"""Tokenizer benchmark: encode throughput (MB/s, single thread) of lmtune vs HF tokenizers (Rust) on the test corpus,
side by side per tokenizer, plus tokenizer.json load times (the 33 MB Gemma 3 file is the interesting one).

    .venv/bin/python bench/bench_tokenize.py [names...]      (after `make` and `make data`)

Env: BUILD (default build), REPEAT (best of N passes, default 3).
lmtune side: build/bench_tokenize (library calls, in process; add_special_tokens off; tokenizer.json only, as HF).
HF side: tokenizers.Tokenizer.from_file + encode_batch with RAYON_NUM_THREADS=1 (one thread), add_special_tokens off.
Both encode the same texts (tests/tokenizer/corpus.py) and the ids are checked to be equal.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"  # before importing tokenizers
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tokenizer"))
import corpus  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

BUILD = Path(os.environ.get("BUILD", ROOT / "build"))
REPEAT = int(os.environ.get("REPEAT", "3"))


def main():
    names = sys.argv[1:] or list(corpus.TOKENIZER_NAMES)
    texts = corpus.load_corpus()
    helper = BUILD / "bench_tokenize"
    if not helper.is_file():
        sys.exit(f"{helper} missing: build first (cmake --build {BUILD})")
    with tempfile.TemporaryDirectory() as tmp:
        binf = Path(tmp) / "texts.bin"
        with open(binf, "wb") as f:
            for t in texts:
                b = t.encode()
                f.write(struct.pack("<I", len(b)))
                f.write(b)
        nbytes = sum(len(t.encode()) for t in texts)
        print(f"corpus: {len(texts)} texts, {nbytes / 1e6:.2f} MB; single thread, best of {REPEAT}")
        hdr = f"{'tokenizer':12s} {'lmtune MB/s':>12s} {'HF MB/s':>9s} {'ratio':>6s} {'lmtune load':>12s} {'HF load':>8s}"
        print(hdr)
        rows = []
        for n in names:
            d = corpus.tokenizer_dir(n)
            p = subprocess.run([str(helper), str(d), str(binf), str(REPEAT), "raw"], capture_output=True, text=True)
            if p.returncode:
                sys.exit(p.stderr)
            lm = json.loads(p.stdout)
            t0 = time.perf_counter()
            tk = Tokenizer.from_file(str(d / "tokenizer.json"))
            hf_load = time.perf_counter() - t0
            best = 1e30
            for _ in range(REPEAT):
                t0 = time.perf_counter()
                enc = tk.encode_batch(texts, add_special_tokens=False)
                best = min(best, time.perf_counter() - t0)
            hf_tokens = sum(len(e.ids) for e in enc)
            if hf_tokens != lm["tokens"]:
                print(f"  WARNING: {n}: token counts differ (lmtune {lm['tokens']}, HF {hf_tokens})")
            hf_mbs = nbytes / best / 1e6
            row = {"tokenizer": n, "lmtune_mb_s": lm["mb_s"], "hf_mb_s": round(hf_mbs, 3),
                   "ratio": round(lm["mb_s"] / hf_mbs, 3), "lmtune_load_s": lm["load_s"], "hf_load_s": round(hf_load, 4),
                   "tokens": lm["tokens"]}
            rows.append(row)
            print(f"{n:12s} {lm['mb_s']:12.2f} {hf_mbs:9.2f} {row['ratio']:5.2f}x {lm['load_s']:11.3f}s {hf_load:7.3f}s")
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / f"tokenize-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
