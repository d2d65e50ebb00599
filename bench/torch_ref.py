#!/usr/bin/env python3
"""PyTorch reference for the LoRA training benchmark (the side lmtune must beat).

transformers Qwen2/Llama model (f32 weights, sdpa attention) + PEFT LoRA r=16, alpha=32, dropout 0 on
q,k,v,o,gate,up,down; torch.optim.AdamW(lr 1e-4, betas 0.9/0.999, eps 1e-8, weight_decay 0.0) on the LoRA
parameters. One fixed random batch (B x T ids, labels = ids) trained for warmup + steps optimizer steps.
--dtype bf16 runs the forward under torch.autocast("cpu", dtype=torch.bfloat16) (loss computed by the model).

The token ids come from the same splitmix64 stream as bench_train.c, so both sides see the identical batch and
their first losses (LoRA B = 0, so the base model's loss) can be compared.

Prints one JSON object on stdout.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

MASK64 = (1 << 64) - 1


def splitmix64_ids(seed, n, vocab):
    """Same generator as bench_train.c: x += golden; z = mix(x); id = z % vocab."""
    x = seed & MASK64
    out = []
    for _ in range(n):
        x = (x + 0x9E3779B97F4A7C15) & MASK64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z = z ^ (z >> 31)
        out.append(z % vocab)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--mode", choices=["lora", "full"], default="lora")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    if a.steps < 1 or a.warmup < 0 or a.seq < 2 or a.batch < 1:
        ap.error("need --steps >= 1, --warmup >= 0, --seq >= 2, --batch >= 1")

    import warnings
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="sdpa")
    model.config.use_cache = False
    lcfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    if a.mode == "lora":
        model = get_peft_model(model, lcfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    vocab = model.config.vocab_size
    ids = torch.tensor(splitmix64_ids(a.seed, a.batch * a.seq, vocab), dtype=torch.long).view(a.batch, a.seq)
    labels = ids.clone()

    def step():
        opt.zero_grad(set_to_none=True)
        if a.dtype == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(input_ids=ids, labels=labels)
        else:
            out = model(input_ids=ids, labels=labels)
        loss = out.loss
        loss.backward()
        opt.step()
        return float(loss.detach())

    losses, times = [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t0
        if loss != loss:
            print(f"torch_ref: loss is NaN at step {i}", file=sys.stderr)
            return 1
        losses.append(loss)
        if i >= a.warmup:
            times.append(dt)
        print(f"torch_ref[{a.dtype}]: step {i} loss {loss:.5f} {dt:.3f}s{' (warm-up)' if i < a.warmup else ''}",
              file=sys.stderr)

    med = statistics.median(times)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print(json.dumps({
        "impl": "torch", "mode": a.mode, "dtype": a.dtype, "batch": a.batch, "seq": a.seq, "steps": a.steps, "warmup": a.warmup,
        "threads": a.threads, "tokens_per_s": round(a.batch * a.seq / med, 3), "step_s_median": round(med, 4),
        "step_s_min": round(min(times), 4),
        "peak_rss_mb": round(rss_mb, 1), "loss_first": round(losses[0], 6), "loss_last": round(losses[-1], 6),
        "torch": torch.__version__, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
