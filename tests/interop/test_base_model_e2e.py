"""The bundled base model models/lmtune-tiny (pre-trained by lmtune, `make base-model`) is a valid Hugging Face
folder: transformers loads it and its logits, greedy continuation, tokenizer ids and chat-template text equal
lmtune's; it fits the 12 MB budget.

Run:  .venv/bin/python -m pytest tests/interop/test_base_model_e2e.py  (CLI from $LMTUNE_BIN)
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "lmtune-tiny"
LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.skipif(not LMTUNE_BIN.is_file(), reason="lmtune binary not built")

TEXTS = ["Call me Ishmael. Some years ago, never mind how long precisely, I went to sea.",
         "Fellow-Citizens of the Senate and House of Representatives: the state of the Union is strong.",
         "Subject: cheap meds!!! Click http://example.com/buy now 100% free $$$"]


def run(*cmd, stdin=None):
    p = subprocess.run([str(c) for c in cmd], input=stdin, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_size_and_files():
    files = {p.name: p.stat().st_size for p in MODEL.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"} <= set(files)
    assert sum(files.values()) <= 12 * 1024 * 1024, files
    cfg = json.loads((MODEL / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    card = (MODEL / "README.md").read_text()
    assert "@PPL@" not in card and "perplexity" in card


@pytest.fixture(scope="module")
def hf():
    tok = transformers.AutoTokenizer.from_pretrained(MODEL)
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    return tok, model


def test_tokenizer_ids_equal(hf):
    tok, _ = hf
    out = run(LMTUNE_BIN, "tokenize", "--tokenizer", MODEL, "--jsonl", "--add-special-tokens",
              stdin="".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    got = [json.loads(line) for line in out.splitlines()]
    got = [g["ids"] if isinstance(g, dict) else g for g in got]
    assert got == [tok.encode(t) for t in TEXTS]


def test_logits_and_greedy_equal(hf, tmp_path):
    tok, model = hf
    for t in TEXTS:
        ids = tok.encode(t)
        out = tmp_path / "l.npy"
        run(LMTUNE_BIN, "logits", "--model", MODEL, "--ids", ",".join(map(str, ids)), "--out", out)
        with torch.no_grad():
            want = model(torch.tensor([ids])).logits[0].numpy()
        got = np.load(out)
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    ids = tok.encode(TEXTS[0])
    with torch.no_grad():
        g = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=0)[0, len(ids):]
    got = run(LMTUNE_BIN, "generate", "--model", MODEL, "--ids", ",".join(map(str, ids)), "--max-new-tokens", 12)
    assert [int(x) for x in got.replace(",", " ").split()] == g.tolist()


def test_chat_template_equal(hf, tmp_path):
    tok, _ = hf
    conv = [{"role": "system", "content": "You sort mail."},
            {"role": "user", "content": "Is this e-mail spam or ham?\n\nSubject: hello"},
            {"role": "assistant", "content": "ham"}]
    want = tok.apply_chat_template(conv, tokenize=False)
    f = tmp_path / "c.json"
    f.write_text(json.dumps(conv))
    got = run(LMTUNE_BIN, "chat-template", "--tokenizer", MODEL, "--messages", f)
    assert got == want or got.rstrip("\n") == want
    assert want.endswith("### Response:\nham<|endoftext|>")
