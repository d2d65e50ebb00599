#!/usr/bin/env python3
"""Helpers for bench/bench_sft.sh: a full SFT run, lmtune vs HF Trainer + PEFT.

Subcommands:
  data OUT.jsonl --n N --vocab V [--min-len 128 --max-len 512 --prompt-frac 0.3 --seed 1234]
      Writes N pre-tokenized SFT examples {"input_ids", "labels"}: lengths uniform in [min, max], ids uniform in
      [0, V) from random.Random(seed), labels -100 on the first round(prompt_frac * len) ("prompt") tokens.
  measure LOG -- CMD...
      Runs CMD (stdout+stderr to LOG), then prints one JSON line {wall_s, peak_rss_mb, exit} from wait4's rusage
      (ru_maxrss of that process: the same measure for lmtune and Python).
  hf --model DIR --data FILE --out DIR --dtype f32|bf16 --batch B --steps S --threads N
      HF Trainer + PEFT on the same data and settings as the lmtune run (LoRA r=16 alpha=32 dropout 0 on the
      7 projections, AdamW lr 1e-4 linear decay, weight_decay 0, max_grad_norm 1, batches in file order, right
      padding to the longest of the batch). bf16: TrainingArguments(bf16=True) (accelerate's CPU autocast);
      the dtype a frozen projection actually computes in is recorded as "autocast_dtype". Prints one JSON line.
  lmtune-result OUT_DIR --dtype D --data FILE --batch B
      Prints one JSON line from a finished `lmtune train` output dir (train_results.json, trainer_state.json).
  merge NAME RUN.json MEASURE.json
      Prints RUN.json's last JSON line with the measure fields and "run": NAME added.
  report RESULTS.jsonl OUT.json KEY=VALUE...
      Prints the side-by-side table and writes OUT.json.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time


def cmd_data(a):
    import random
    rng = random.Random(a.seed)
    rows = []
    for _ in range(a.n):
        ln = rng.randint(a.min_len, a.max_len)
        ids = [rng.randrange(a.vocab) for _ in range(ln)]
        p = round(a.prompt_frac * ln)
        rows.append({"input_ids": ids, "labels": [-100] * p + ids[p:]})
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    os.replace(tmp, a.out)
    n_tok = sum(len(r["input_ids"]) for r in rows)
    print(f"sft_ref data: wrote {a.out} ({a.n} examples, {n_tok} tokens)", file=sys.stderr)
    return 0


def cmd_measure(a):
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    with open(a.log, "w") as log:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({"wall_s": round(wall, 3), "peak_rss_mb": round(ru.ru_maxrss / 1024.0, 1), "exit": code}))
    return 0


def cmd_hf(a):
    import warnings
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(a.threads)
    rows = [json.loads(l) for l in open(a.data) if l.strip()]
    rows = rows[: a.steps * a.batch]
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    pad = cfg.get("pad_token_id")
    pad = pad if isinstance(pad, int) and 0 <= pad < cfg["vocab_size"] else 0

    def collate(batch):
        T = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), T), pad, dtype=torch.long)
        lab = torch.full((len(batch), T), -100, dtype=torch.long)
        att = torch.zeros((len(batch), T), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            lab[i, :n] = torch.tensor(b["labels"])
            att[i, :n] = 1
        return {"input_ids": ids, "labels": lab, "attention_mask": att}

    class SeqTrainer(transformers.Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

    torch.manual_seed(a.seed)
    t_load = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32,
                                                              attn_implementation="sdpa")
    model.config.use_cache = False
    lcfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, lcfg)
    load_s = time.perf_counter() - t_load

    seen = {}
    base_q = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer

    def hook(_m, _inp, out):
        seen.setdefault("dtype", str(out.dtype).replace("torch.", ""))
    h = base_q.register_forward_hook(hook)

    targs = transformers.TrainingArguments(
        output_dir=a.out, per_device_train_batch_size=a.batch, gradient_accumulation_steps=1, learning_rate=1e-4,
        max_steps=a.steps, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, adam_beta1=0.9,
        adam_beta2=0.999, adam_epsilon=1e-8, max_grad_norm=1.0, optim="adamw_torch", logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, bf16=a.dtype == "bf16", remove_unused_columns=False,
        dataloader_drop_last=False, dataloader_num_workers=0, seed=a.seed, disable_tqdm=True)
    trainer = SeqTrainer(model=model, args=targs, train_dataset=rows, data_collator=collate)
    res = trainer.train()
    h.remove()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    rt = res.metrics["train_runtime"]
    tokens = sum(len(r["input_ids"]) for r in rows)
    padded = sum(max(len(r["input_ids"]) for r in rows[i:i + a.batch]) * len(rows[i:i + a.batch])
                 for i in range(0, len(rows), a.batch))
    print(json.dumps({
        "impl": "hf", "dtype": a.dtype, "steps": trainer.state.global_step, "train_runtime": rt,
        "tokens": tokens, "padded_tokens": padded, "tokens_per_s": round(tokens / rt, 3), "load_s": round(load_s, 3),
        "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None, "losses": losses,
        "train_loss": res.metrics.get("train_loss"), "autocast_dtype": seen.get("dtype"),
        "self_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": __import__("peft").__version__,
    }))
    return 0


def cmd_lmtune_result(a):
    tr = json.load(open(os.path.join(a.out_dir, "train_results.json")))
    st = json.load(open(os.path.join(a.out_dir, "trainer_state.json")))
    losses = [e["loss"] for e in st["log_history"] if "loss" in e]
    steps = st["global_step"]
    rows = [json.loads(l) for l in open(a.data) if l.strip()][: steps * a.batch]
    tokens = st.get("num_input_tokens_seen") or sum(len(r["input_ids"]) for r in rows)
    rt = tr["train_runtime"]
    print(json.dumps({
        "impl": "lmtune", "dtype": a.dtype, "steps": steps, "train_runtime": rt, "tokens": int(tokens),
        "tokens_per_s": round(tokens / rt, 3), "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None, "losses": losses, "train_loss": tr.get("train_loss"),
    }))
    return 0


def _json_lines(path, key):
    out = []
    for l in open(path, errors="replace"):
        if l.startswith("{"):
            try:
                d = json.loads(l)
            except ValueError:
                continue
            if key in d:
                out.append(l)
    return out


def cmd_merge(a):
    lines = _json_lines(a.run_json, "impl") if os.path.exists(a.run_json) else []
    meas = [json.loads(l) for l in _json_lines(a.measure_json, "wall_s")]
    if not meas:
        print(json.dumps({"run": a.name, "error": "no measurement", "exit": -1}))
        return 1
    m = meas[-1]
    if m["exit"] != 0 or not lines:
        tail = ""
        if a.log and os.path.exists(a.log):
            tail = " ".join(l.strip() for l in open(a.log, errors="replace").read().splitlines()[-3:])
        print(json.dumps({"run": a.name, "error": tail or "no result", "exit": m["exit"]}))
        return 1
    d = json.loads(lines[-1])
    d.update(m)
    d["run"] = a.name
    print(json.dumps(d))
    return 0


def cmd_report(a):
    import platform
    kv = dict(x.split("=", 1) for x in a.kv)
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    ok = [r for r in rows if "error" not in r]
    lm = [r for r in ok if r["impl"] == "lmtune"]
    hf = [r for r in ok if r["impl"] == "hf"]
    print()
    print(f"SFT run: shape={kv.get('shape')} examples={kv.get('examples')} ({kv.get('tokens')} tokens, lengths "
          f"{kv.get('min_len')}-{kv.get('max_len')}) batch={kv.get('batch')} steps={kv.get('steps')} "
          f"threads={kv.get('threads')}")
    hdr = (f"{'impl':<7} {'dtype':<5} {'train s':>8} {'tok/s':>8} {'wall s':>8} {'tok/s wall':>10} "
           f"{'peak RSS MB':>12} {'loss first':>11} {'loss last':>10}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        if "error" in r:
            print(f"{r['run']:<13} FAILED (exit {r.get('exit')}): {r['error']}")
            continue
        print(f"{r['impl']:<7} {r['dtype']:<5} {r['train_runtime']:>8.1f} {r['tokens_per_s']:>8.1f} "
              f"{r['wall_s']:>8.1f} {r['tokens'] / r['wall_s']:>10.1f} {r['peak_rss_mb']:>12.0f} "
              f"{r['loss_first']:>11.5f} {r['loss_last']:>10.5f}")
    summary, notes = {}, []
    if lm and hf:
        best = max(hf, key=lambda r: r["tokens_per_s"])
        best_wall = max(hf, key=lambda r: r["tokens"] / r["wall_s"])
        lean = min(hf, key=lambda r: r["peak_rss_mb"])
        summary = {"hf_best_dtype": best["dtype"], "hf_lowest_rss_dtype": lean["dtype"]}
        print()
        for l in lm:
            sp = round(l["tokens_per_s"] / best["tokens_per_s"], 3)
            spw = round((l["tokens"] / l["wall_s"]) / (best_wall["tokens"] / best_wall["wall_s"]), 3)
            rr = round(l["peak_rss_mb"] / lean["peak_rss_mb"], 3)
            summary[f"lmtune_{l['dtype']}_speedup_vs_hf_best"] = sp
            summary[f"lmtune_{l['dtype']}_wall_speedup_vs_hf_best"] = spw
            summary[f"lmtune_{l['dtype']}_rss_ratio_vs_hf_lowest"] = rr
            print(f"lmtune {l['dtype']:<4} / HF-best tok/s ({best['dtype']}): {sp:.2f}x (wall-clock: {spw:.2f}x)   "
                  f"peak RSS / HF-lowest ({lean['dtype']}): {rr:.2f}x")
        for dt in ("f32", "bf16"):
            x = [r for r in lm if r["dtype"] == dt]
            y = [r for r in hf if r["dtype"] == dt]
            if x and y:
                d = abs(x[0]["loss_first"] - y[0]["loss_first"])
                summary[f"loss_first_absdiff_{dt}"] = round(d, 6)
                tol = (1e-3 if dt == "f32" else 2e-2) * max(1.0, abs(y[0]["loss_first"]))
                if d > tol:
                    notes.append(f"{dt}: lmtune first loss {x[0]['loss_first']:.6f} vs HF {y[0]['loss_first']:.6f}")
    for r in ok:
        if r.get("tokens") != ok[0].get("tokens"):
            notes.append(f"{r['run']}: {r.get('tokens')} tokens trained, {ok[0].get('tokens')} in {ok[0]['run']}")
        if r["impl"] == "hf" and r["dtype"] == "bf16" and r.get("autocast_dtype") != "bfloat16":
            notes.append(f"hf bf16: the projections computed in {r.get('autocast_dtype')}, not bfloat16")
    for r in rows:
        if "error" in r:
            notes.append(f"{r['run']} failed: {r['error']}")
    for n in notes:
        print("WARNING:", n)

    def rev():
        try:
            return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True).stdout.strip()
        except OSError:
            return ""
    doc = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": rev(), "host": platform.node(),
           "cpus": os.cpu_count(), "config": kv, "results": rows, "summary": summary, "warnings": notes}
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, a.out)
    print(f"\nwrote {a.out}")
    return 1 if any("error" in r for r in rows) else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd_name", required=True)
    p = sub.add_parser("data")
    p.add_argument("out")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--min-len", type=int, default=128)
    p.add_argument("--max-len", type=int, default=512)
    p.add_argument("--prompt-frac", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=1234)
    p.set_defaults(fn=cmd_data)
    p = sub.add_parser("measure")
    p.add_argument("log")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_measure)
    p = sub.add_parser("hf")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(fn=cmd_hf)
    p = sub.add_parser("lmtune-result")
    p.add_argument("out_dir")
    p.add_argument("--dtype", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.set_defaults(fn=cmd_lmtune_result)
    p = sub.add_parser("merge")
    p.add_argument("name")
    p.add_argument("run_json")
    p.add_argument("measure_json")
    p.add_argument("--log")
    p.set_defaults(fn=cmd_merge)
    p = sub.add_parser("report")
    p.add_argument("results")
    p.add_argument("out")
    p.add_argument("kv", nargs="*")
    p.set_defaults(fn=cmd_report)
    a = ap.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
