"""Pre-training from scratch: `lmtune train --stage pt --finetuning_type full` on a folder with only config.json and
tokenizer files initialises a new model as transformers does, trains it (the loss falls) and saves a folder that
transformers loads with the same logits. The init statistics match a transformers-initialised model of the config.

Run:  .venv/bin/python -m pytest tests/interop/test_pt_scratch_e2e.py  (CLI from $LMTUNE_BIN, default build/lmtune;
needs the cached tokenizers and texts of `make data`)
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
sys.path.insert(0, str(ROOT / "tests" / "tokenizer"))
import corpus  # noqa: E402

transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.skipif(not LMTUNE_BIN.is_file(), reason="lmtune binary not built")


def run(args, timeout=600, check=True):
    p = subprocess.run([str(LMTUNE_BIN), *[str(a) for a in args]], capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder with a tiny LlamaConfig (written by transformers) and the Llama 2 tokenizer, no weights; and a
    {"text": ...} JSONL of Moby-Dick paragraphs (public domain)."""
    try:
        tok_dir = corpus.tokenizer_dir("llama2")
        chapters = corpus.moby_dick_chapters()
    except corpus.DataMissing as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("pt_scratch")
    d = root / "model"
    d.mkdir()
    for f in tok_dir.iterdir():
        if f.is_file() and not f.name.startswith("."):
            shutil.copy(f, d / f.name)
    tok = transformers.AutoTokenizer.from_pretrained(d)
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                   tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                   initializer_range=0.02)
    cfg.save_pretrained(d)
    assert not list(d.glob("*.safetensors"))
    paras = [p.strip() for _, text in chapters[3:12] for p in text.split("\n\n") if len(p.strip()) > 40]
    data = root / "moby.jsonl"
    data.write_text("".join(json.dumps({"text": p}) + "\n" for p in paras[:200]))
    return d, data, cfg


def train(d, data, out, *extra, check=True):
    return run(["train", "--stage", "pt", "--finetuning_type", "full", "--model_name_or_path", d, "--dataset", data,
                "--output_dir", out, "--cutoff_len", 64, "--logging_steps", 1, "--save_steps", 0,
                "--report_to", "none", *extra], check=check)


def test_pretrain_from_config(scratch, tmp_path):
    d, data, _ = scratch
    out = tmp_path / "out"
    p = train(d, data, out, "--max_steps", 20, "--learning_rate", 1e-3)
    assert "initialising a new model from config.json (seed 42)" in p.stdout + p.stderr
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 20
    assert losses[0] > 9.5  # about log(32000) = 10.37 for a new model
    # 20 steps at 1e-3 (linear decay) learn the unigram statistics: about 0.65 nats down
    assert np.mean(losses[-5:]) < losses[0] - 0.4, losses
    assert np.mean(losses[-5:]) < np.mean(losses[5:10]) < np.mean(losses[:5]), losses

    model, info = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32,
                                                                    attn_implementation="eager",
                                                                    output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    model.eval()
    tok = transformers.AutoTokenizer.from_pretrained(out)
    ids = tok("Call me Ishmael. Some years ago, never mind how long precisely.")["input_ids"]
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()
    npy = tmp_path / "logits.npy"
    run(["logits", "--model", out, "--ids", ",".join(map(str, ids)), "--out", npy])
    got = np.load(npy)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4


def test_init_matches_transformers_statistics(scratch, tmp_path):
    d, data, cfg = scratch
    out = tmp_path / "init"
    # learning rate 0: the saved weights are the initial ones
    train(d, data, out, "--max_steps", 1, "--learning_rate", 0)
    ours = load_file(str(out / "model.safetensors"))
    torch.manual_seed(0)
    ref = transformers.AutoModelForCausalLM.from_config(cfg).state_dict()
    assert set(ours) == set(ref)
    for k, w in ours.items():
        r = ref[k].float()
        assert w.dtype == torch.float32 and w.shape == r.shape, k
        if w.ndim == 1:  # RMSNorm weights
            assert torch.equal(w, torch.ones_like(w)) and torch.equal(r, torch.ones_like(r)), k
            continue
        assert abs(w.mean().item()) < 5 * 0.02 / w.numel() ** 0.5, k
        assert abs(w.std().item() - r.std().item()) <= 0.1 * r.std().item(), (k, w.std().item(), r.std().item())
    emb = ours["model.embed_tokens.weight"]  # the pad_token_id row is zero, as nn.Embedding(padding_idx)
    assert torch.equal(emb[0], torch.zeros_like(emb[0])) and torch.equal(ref["model.embed_tokens.weight"][0], emb[0])
    assert emb[1].abs().min() > 0
    # the same seed gives the same model
    again = tmp_path / "again"
    train(d, data, again, "--max_steps", 1, "--learning_rate", 0)
    assert (out / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()


def test_scratch_needs_full_pretraining(scratch, tmp_path):
    d, data, _ = scratch
    p = run(["train", "--stage", "pt", "--finetuning_type", "lora", "--model_name_or_path", d, "--dataset", data,
             "--output_dir", tmp_path / "lora", "--max_steps", 1], check=False)
    assert p.returncode != 0 and "finetuning_type: full" in p.stderr, p.stderr
    p = run(["train", "--stage", "sft", "--finetuning_type", "full", "--model_name_or_path", d, "--dataset", data,
             "--output_dir", tmp_path / "sft", "--max_steps", 1], check=False)
    assert p.returncode != 0 and "safetensors" in p.stderr, p.stderr
