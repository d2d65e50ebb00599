#!/usr/bin/env python3
"""Workload C report: reads the raw outputs of bench/llamacpp.sh, prints the lmtune vs llama.cpp tables.

Usage: decode_report.py LOG_DIR OUT_JSON ROUNDS POLICY...
LOG_DIR holds lscpu.txt and, for each OpenMP wait policy and round K (1..ROUNDS), wait-POLICY/round-K/ with
llama.json (llama-bench -p 512 -n 128 -pg 512,128 -o json), llama-d512.json (-p 0 -n 128 -d 512), lmtune.json (one
bench_decode line), load-before/after.txt and other_cores.txt. Within a round both sides give the median over the
repetitions (llama-bench's samples_ts; its own avg_ts, the mean, is kept in the JSON too); with several rounds each
side and test keeps its best round (the sides ran in turn, so both met the host's phases) and every round's
ratios are listed.
"""
import json
import os
import statistics
import sys

ROWS = [("pp512", "prompt 512 tokens"), ("tg128@d512", "decode 128 after the 512 prompt"),
        ("pp512+tg128", "prompt 512 + decode 128, combined"), ("tg128", "decode 128 from an empty context")]


def read_round(d):
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
    return {"lmtune": lm, "lmtune_tests": M, "llama.cpp": {"tests": L, "raw": ll},
            "load_before": rd("load-before.txt").strip(), "load_after": rd("load-after.txt").strip(),
            "other_cores": float(rd("other_cores.txt"))}


def policy_round(d, policy, n_rounds):
    rounds = [read_round(os.path.join(d, f"round-{k}")) for k in range(1, n_rounds + 1)]
    lm, ll = rounds[0]["lmtune"], rounds[0]["llama.cpp"]["raw"]
    best = lambda vals: max((v for v in vals if v), default=None)
    M = {key: best(r["lmtune_tests"][key] for r in rounds) for key, _ in ROWS}
    L = {key: best(r["llama.cpp"]["tests"][key]["median_ts"] for r in rounds) for key, _ in ROWS}
    r0 = ll[0]
    how = f"median of {lm['reps']} reps" + (f", best of {n_rounds} rounds per side" if n_rounds > 1 else "")
    print(f"\nOMP_WAIT_POLICY={policy}: {lm['threads']} threads, {how}; llama.cpp "
          f"{r0.get('model_type')}, KV cache {r0.get('type_k')}/{r0.get('type_v')}, flash_attn {r0.get('flash_attn')}"
          f" (-1 = auto), n_ubatch {r0.get('n_ubatch')}")
    print(f"{'test':<13}{'what':<36}{'lmtune tok/s':>13}{'llama.cpp tok/s':>17}{'lmtune/llama.cpp':>18}")
    ratio = {}
    for key, what in ROWS:
        m, l = M[key], L[key]
        ratio[key] = m / l if m else None
        ms, rs = (f"{m:.2f}", f"{ratio[key]:.2f}x") if m else ("-", "-")
        print(f"{key:<13}{what:<36}{ms:>13}{l:>17.2f}{rs:>18}")
    if n_rounds > 1:
        for key, _ in ROWS:
            per = [(r["lmtune_tests"][key], r["llama.cpp"]["tests"][key]["median_ts"]) for r in rounds]
            print(f"  {key} by round (lmtune / llama.cpp tok/s): "
                  + "; ".join(f"{m:.2f} / {l:.2f}" if m else f"- / {l:.2f}" for m, l in per))
    for k, r in enumerate(rounds, 1):
        tag = f"round {k}: " if n_rounds > 1 else ""
        print(f"{tag}load average before / after: {r['load_before']} / {r['load_after']}; lmtune peak RSS "
              f"{r['lmtune']['peak_rss_mb']:.0f} MB; other processes used {r['other_cores']:.2f} cores on average")
        if r["other_cores"] > 0.1:
            print("warning: other processes shared the cores, these figures are unreliable (under "
                  "OMP_WAIT_POLICY=default the spinning threads of both sides collapse when cores are oversubscribed)")
    return {"wait_policy": policy, "lmtune": lm, "lmtune_best": M, "llama.cpp_best": L,
            "ratio_lmtune_over_llamacpp": ratio, "rounds": rounds}


def main():
    logs, out, n_rounds, policies = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    lscpu = open(os.path.join(logs, "lscpu.txt")).read().splitlines()
    field = lambda key: next((l.split(":", 1)[1].strip() for l in lscpu if l.startswith(key + ":")), "?")
    flags = field("Flags")
    print("workload C: Qwen2.5-0.5B shape (random weights), bf16 weights, lmtune vs llama.cpp")
    print(f"CPU: {field('Model name')}, {field('CPU(s)')} CPUs; AVX-512 flags: "
          + " ".join(f for f in flags.split() if f.startswith("avx512")))
    rounds = [policy_round(os.path.join(logs, f"wait-{p}"), p, n_rounds) for p in policies]
    json.dump({"workload": "C", "cpu_model": field("Model name"), "cpu_flags": flags, "rounds": rounds},
              open(out, "w"), indent=1)
    print(f"results: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
