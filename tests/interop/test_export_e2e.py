"""`lmtune export` (LoRA merged into the base) loads in transformers and computes what PEFT's model computes.

Run:  .venv/bin/python -m pytest tests/interop/test_export_e2e.py  (CLI from $LMTUNE_BIN, default build/lmtune)
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
NAMES = [fx["name"] for fx in json.loads((FIXTURES / "index.json").read_text())["fixtures"]]
transformers.logging.set_verbosity_error()


@pytest.mark.parametrize("name", NAMES)
def test_merged_export_matches_peft(name, tmp_path):
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")
    src = FIXTURES / name
    out = tmp_path / "merged"
    p = subprocess.run([str(LMTUNE_BIN), "export", "--model", str(src), "--adapter", str(src / "adapter"), "--out",
                        str(out), "--dtype", "f32"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    ids = torch.tensor([[1, 7, 3, 11, 5, 9, 4, 2]])
    base = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    ref = peft.PeftModel.from_pretrained(base, src / "adapter").eval()
    merged = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32,
                                                               attn_implementation="eager").eval()
    with torch.no_grad():
        want = ref(ids).logits
        got = merged(ids).logits
    err = (got - want).abs().max().item()
    assert err <= 1e-4, f"{name}: merged export differs from PEFT by {err}"
    assert (out / "config.json").is_file()
