#!/usr/bin/env python3
"""Write a random-weight Qwen2 model folder (config.json + bf16 safetensors) for the training benchmark.

Usage: make_model.py OUT_DIR [--shape qwen05b|tiny|smol25m] [--seed N]
(smol25m: a ~25M-parameter Llama shaped like the SmolLM family: 49152-token vocabulary, tied, GQA 3:1.)
Skips the work if OUT_DIR/config.json already exists. Weights: normal(0, 0.02), fixed seed.
"""
import argparse
import os
import sys

SHAPES = {
    # Qwen2.5-0.5B geometry.
    "qwen05b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                    intermediate_size=4864, vocab_size=151936),
    # Small enough to run a full train step in well under a second.
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=352, vocab_size=2048),
    # Workload B of the performance issue: full fine-tuning of a ~25M-parameter SmolLM-style Llama.
    "smol25m": dict(hidden_size=384, num_hidden_layers=4, num_attention_heads=6, num_key_value_heads=2,
                    intermediate_size=1024, vocab_size=49152),
}
LLAMA = {"smol25m"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="qwen05b")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()

    if os.path.exists(os.path.join(a.out_dir, "config.json")):
        print(f"make_model: {a.out_dir} exists, skipping", file=sys.stderr)
        return 0

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    llama = a.shape in LLAMA
    extra = {} if llama else {"use_sliding_window": False}
    cfg = (LlamaConfig if llama else Qwen2Config)(
        **SHAPES[a.shape],
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        rope_theta=1e4 if llama else 1e6,
        max_position_embeddings=4096,
        hidden_act="silu",
        attention_dropout=0.0,
        **extra,
        initializer_range=0.02,
        bos_token_id=None,
        eos_token_id=SHAPES[a.shape]["vocab_size"] - 1,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(a.seed)
    with torch.no_grad():
        model = (LlamaForCausalLM if llama else Qwen2ForCausalLM)(cfg)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
                p.fill_(1.0)           # RMSNorm weights as in a real checkpoint
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.02)   # Qwen2 q/k/v biases
            else:
                p.normal_(0.0, 0.02)
        model = model.to(torch.bfloat16)
    tmp = a.out_dir.rstrip("/") + ".tmp"
    model.save_pretrained(tmp, safe_serialization=True)
    # Publish atomically so an interrupted run never leaves a half-written folder that looks complete.
    if os.path.exists(a.out_dir):
        os.rmdir(a.out_dir)  # only an empty leftover can be here (config.json was checked above)
    os.replace(tmp, a.out_dir)
    n = sum(p.numel() for p in model.parameters())
    print(f"make_model: wrote {a.out_dir} ({a.shape}, {n / 1e6:.1f}M params, bf16)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
