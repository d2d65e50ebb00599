#!/usr/bin/env python3
"""Workload C report: reads the raw outputs of bench/llamacpp.sh, prints the lmtune vs llama.cpp tables.

Usage: decode_report.py LOG_DIR OUT_JSON POLICY...
LOG_DIR holds lscpu.txt and, for each OpenMP wait policy, wait-POLICY/ with llama.json (llama-bench -p 512 -n 128
-pg 512,128 -o json), llama-d512.json (-p 0 -n 128 -d 512), lmtune.json (one bench_decode line) and
load-before/after.txt. Both sides: the median over the repetitions (llama-bench's samples_ts; its own avg_ts, the
mean, is kept in the JSON too).
"""
import json
import os
import statistics
import sys

ROWS = [("pp512", "prompt 512 tokens"), ("tg128@d512", "decode 128 after the 512 prompt"),
        ("pp512+tg128", "prompt 512 + decode 128, combined"), ("tg128", "decode 128 from an empty context")]


def policy_round(d, policy):
    rd = lambda name: open(os.path.join(d, name)).read()
    ll = json.loads(rd("llama.json")) + json.loads(rd("llama-d512.json"))
    lm = json.loads(rd("lmtune.json").strip().splitlines()[-1])

    def llama(n_prompt, n_gen, n_depth=0):
        r = next(r for r in ll if r["n_prompt"] == n_prompt and r["n_gen"] == n_gen and r.get("n_depth", 0) == n_depth)
        return {"median_ts": statistics.median(r["samples_ts"]), "avg_ts": r["avg_ts"], "stddev_ts": r["stddev_ts"],
                "samples_ts": r["samples_ts"]}

    L = {"pp512": llama(512, 0), "tg128": llama(0, 128), "pp512+tg128": llama(512, 128),
         "tg128@d512": llama(0, 128, 512)}
    M = {"pp512": lm["prompt_tokens_per_s"], "tg128": lm.get("tg0_tokens_per_s"),
         "pp512+tg128": lm["pg_tokens_per_s"], "tg128@d512": lm["decode_tokens_per_s"]}
    r0 = ll[0]
    print(f"\nOMP_WAIT_POLICY={policy}: {lm['threads']} threads, median of {lm['reps']} reps; llama.cpp "
          f"{r0.get('model_type')}, KV cache {r0.get('type_k')}/{r0.get('type_v')}, flash_attn {r0.get('flash_attn')}"
          f" (-1 = auto), n_ubatch {r0.get('n_ubatch')}")
    print(f"{'test':<13}{'what':<36}{'lmtune tok/s':>13}{'llama.cpp tok/s':>17}{'lmtune/llama.cpp':>18}")
    ratio = {}
    for key, what in ROWS:
        m, l = M[key], L[key]["median_ts"]
        ratio[key] = m / l if m else None
        ms, rs = (f"{m:.2f}", f"{ratio[key]:.2f}x") if m else ("-", "-")
        print(f"{key:<13}{what:<36}{ms:>13}{l:>17.2f}{rs:>18}")
    before, after = rd("load-before.txt").strip(), rd("load-after.txt").strip()
    print(f"load average before / after: {before} / {after}; lmtune peak RSS {lm['peak_rss_mb']:.0f} MB")
    other = float(rd("other_cores.txt"))
    print(f"other processes used {other:.2f} cores on average during this round")
    if other > 0.1:
        print("warning: other processes shared the cores, these figures are unreliable (under "
              "OMP_WAIT_POLICY=default the spinning threads of both sides collapse when cores are oversubscribed)")
    return {"wait_policy": policy, "lmtune": lm, "llama.cpp": {"tests": L, "raw": ll},
            "ratio_lmtune_over_llamacpp": ratio, "load_before": before, "load_after": after,
            "other_cores": other}


def main():
    logs, out, policies = sys.argv[1], sys.argv[2], sys.argv[3:]
    lscpu = open(os.path.join(logs, "lscpu.txt")).read().splitlines()
    field = lambda key: next((l.split(":", 1)[1].strip() for l in lscpu if l.startswith(key + ":")), "?")
    flags = field("Flags")
    print("workload C: Qwen2.5-0.5B shape (random weights), bf16 weights, lmtune vs llama.cpp")
    print(f"CPU: {field('Model name')}, {field('CPU(s)')} CPUs; AVX-512 flags: "
          + " ".join(f for f in flags.split() if f.startswith("avx512")))
    rounds = [policy_round(os.path.join(logs, f"wait-{p}"), p) for p in policies]
    json.dump({"workload": "C", "cpu_model": field("Model name"), "cpu_flags": flags, "rounds": rounds},
              open(out, "w"), indent=1)
    print(f"results: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
