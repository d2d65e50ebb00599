"""LoRA with whole modules trained beside the adapter (LLaMA-Factory's `additional_target`, PEFT's
`modules_to_save`): PEFT loads lmtune's adapter (key names, tied embeddings with `ensure_weight_tying`) and computes
what `lmtune logits --adapter` computes; the merged export loads in transformers with the same logits; unsupported
modules_to_save are refused with a message.

Run:  .venv/bin/python -m pytest tests/interop/test_modules_to_save_e2e.py  (CLI from $LMTUNE_BIN)
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
from safetensors.torch import load_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.skipif(not LMTUNE_BIN.is_file(), reason="lmtune binary not built")
IDS = [1, 7, 3, 11, 5, 9, 4, 2]


def run(*args):
    p = subprocess.run([str(LMTUNE_BIN), *[str(a) for a in args]], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p


def train(tmp_path, model, targets):
    vocab = json.loads((model / "config.json").read_text())["vocab_size"]
    g = torch.Generator().manual_seed(5)
    rows = [{"input_ids": torch.randint(3, vocab, (10,), generator=g).tolist()} for _ in range(8)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    run("train", "--model_name_or_path", model, "--dataset", data, "--output_dir", out, "--lora_rank", 4,
        "--lora_target", "q_proj,v_proj", "--additional_target", targets, "--per_device_train_batch_size", 4,
        "--max_steps", 3, "--learning_rate", 5e-2, "--save_steps", 0)
    return out


def hf_logits(model):
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0].float().numpy()


def lmtune_logits(tmp_path, model, adapter=None):
    npy = tmp_path / "l.npy"
    args = ["logits", "--model", model, "--ids", ",".join(map(str, IDS)), "--out", npy]
    if adapter:
        args += ["--adapter", adapter]
    run(*args)
    return np.load(npy)


CASES = [("llama_mha_tied_f32", "embed_tokens", "model.embed_tokens.weight"),
         ("llama_gqa2_bf16_sharded", "embed_tokens,lm_head", "lm_head.weight")]


@pytest.mark.parametrize("name,targets,key", CASES, ids=["tied", "untied"])
def test_peft_loads_modules_to_save(tmp_path, name, targets, key):
    model = FIXTURES / name
    out = train(tmp_path, model, targets)
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert sorted(cfg["modules_to_save"]) == sorted(targets.split(","))
    tied = json.loads((model / "config.json").read_text()).get("tie_word_embeddings", True)
    assert cfg.get("ensure_weight_tying", False) == tied
    sd = load_file(str(out / "adapter_model.safetensors"))
    assert "base_model.model." + key in sd and "base_model.model.model.embed_tokens.weight" in sd
    base = transformers.AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    before = base.get_input_embeddings().weight.detach().clone()
    assert not torch.allclose(sd["base_model.model.model.embed_tokens.weight"], before)  # it did train
    pm = peft.PeftModel.from_pretrained(base, out).eval()
    want = hf_logits(pm)
    got = lmtune_logits(tmp_path, model, out)
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    assert np.abs(lmtune_logits(tmp_path, model) - want).max() > 1e-3  # the adapter changes the output
    merged = tmp_path / "merged"
    run("export", "--model", model, "--adapter", out, "--out", merged, "--dtype", "f32")
    mm = transformers.AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    assert np.abs(hf_logits(mm) - want).max() <= 1e-4 * max(1.0, np.abs(want).max())


def test_unsupported_modules_to_save(tmp_path):
    model = FIXTURES / "llama_mha_tied_f32"
    out = train(tmp_path, model, "embed_tokens")
    cfg = json.loads((out / "adapter_config.json").read_text())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_model.safetensors").write_bytes((out / "adapter_model.safetensors").read_bytes())
    for mts, tie, msg in [(["norm"], True, "only embed_tokens and lm_head"),
                          (["embed_tokens"], False, "ensure_weight_tying")]:
        cfg2 = dict(cfg, modules_to_save=mts, ensure_weight_tying=tie)
        (bad / "adapter_config.json").write_text(json.dumps(cfg2))
        p = subprocess.run([str(LMTUNE_BIN), "logits", "--model", str(model), "--adapter", str(bad), "--ids", "1,2",
                            "--out", str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and msg in p.stderr, p.stderr
    p = subprocess.run([str(LMTUNE_BIN), "train", "--model_name_or_path", str(model), "--dataset",
                        str(tmp_path / "d.jsonl"), "--output_dir", str(tmp_path / "o2"), "--additional_target",
                        "mlp"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "choose embed_tokens or lm_head" in p.stderr
