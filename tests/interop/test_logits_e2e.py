"""End-to-end interop: the lmtune CLI against transformers (+ PEFT) on the tiny fixtures.

Run:  .venv/bin/python -m pytest tests/interop/test_logits_e2e.py
The CLI is taken from $LMTUNE_BIN (default: <repo>/build/lmtune); tests skip when it is absent.
Fixtures come from tests/fixtures/make_fixtures.py (see tests/fixtures/README.md).
"""
import functools
import json
import os
import re
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
INDEX = FIXTURES / "index.json"
LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
TOL = 1e-4  # max abs logit error; bf16-stored fixtures are upcast exactly, so the same tolerance applies
TIMEOUT = 300
GEN_NEW = 10

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

if not INDEX.is_file():
    pytest.skip(f"{INDEX} missing: run .venv/bin/python tests/fixtures/make_fixtures.py", allow_module_level=True)
with open(INDEX) as f:
    FIXTURE_LIST = json.load(f)["fixtures"]
NAMES = [fx["name"] for fx in FIXTURE_LIST]
ARCH = {fx["name"]: fx["arch"] for fx in FIXTURE_LIST}


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def lmtune():
    if not (LMTUNE_BIN.is_file() and os.access(LMTUNE_BIN, os.X_OK)):
        pytest.skip(f"lmtune binary not found at {LMTUNE_BIN} (build it, or set LMTUNE_BIN)")
    return str(LMTUNE_BIN)


def run(cmd):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=TIMEOUT, env=env)


def describe(p):
    return f"command: {' '.join(p.args)}\nexit code: {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def ids_arg(ids):
    return ",".join(str(int(i)) for i in ids)


@functools.lru_cache(maxsize=None)
def ref_tensors(name):
    return load_file(str(FIXTURES / name / "ref.safetensors"))


@functools.lru_cache(maxsize=None)
def hf_model(name, adapter):
    """The reference model in float32 (transformers 5 would otherwise keep bf16 weights in bf16)."""
    d = FIXTURES / name
    m = transformers.AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32, attn_implementation="eager")
    if adapter:
        m = peft.PeftModel.from_pretrained(m, str(d / "adapter"))
    m.eval()
    return m


def hf_logits(name, adapter, ids):
    with torch.no_grad():
        out = hf_model(name, adapter)(input_ids=torch.tensor([list(ids)], dtype=torch.int64))
    return out.logits[0].float().numpy()


def row_ids(name, row):
    """Row 0 is full; row 1 is right-padded, so only its unpadded prefix is used."""
    r = ref_tensors(name)
    n = int(r["attention_mask"][row].sum())
    return [int(t) for t in r["input_ids"][row, :n]]


def parse_ids_line(stdout):
    """The new token ids: the last stdout line that holds only integers separated by spaces/commas."""
    pat = re.compile(r"^\s*\[?\s*\d+(?:\s*[,\s]\s*\d+)*\s*,?\s*\]?\s*$")
    lines = [ln for ln in stdout.splitlines() if pat.match(ln)]
    assert lines, f"no line of token ids in stdout:\n{stdout}"
    return [int(t) for t in re.findall(r"\d+", lines[-1])]


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row", [0, 1])
@pytest.mark.parametrize("adapter", [False, True], ids=["base", "lora"])
@pytest.mark.parametrize("name", NAMES)
def test_logits_match_transformers(lmtune, tmp_path, name, adapter, row):
    d = FIXTURES / name
    ids = row_ids(name, row)
    out = tmp_path / "logits.npy"
    cmd = [lmtune, "logits", "--model", d]
    if adapter:
        cmd += ["--adapter", d / "adapter"]
    cmd += ["--ids", ids_arg(ids), "--out", out]
    p = run(cmd)
    assert p.returncode == 0, describe(p)
    assert out.is_file(), f"{out} was not written\n" + describe(p)
    got = np.load(out)

    want = hf_logits(name, adapter, ids)
    # The stored references (computed on the padded batch) must agree with the in-process model;
    # a mismatch means the fixtures are stale for the installed transformers/peft.
    stored = ref_tensors(name)["lora_logits" if adapter else "logits"][row, : len(ids)].numpy()
    assert np.abs(stored - want).max() <= 1e-5, "fixtures are stale: rerun tests/fixtures/make_fixtures.py"

    assert got.dtype == np.float32, got.dtype
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.isfinite(got).all()
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    t, v = np.unravel_index(int(err.argmax()), err.shape)
    assert err.max() <= TOL, (
        f"{name} ({'lora' if adapter else 'base'}, row {row}): max abs error {err.max():.3g} > {TOL} "
        f"at position {t}, token {v} (lmtune {got[t, v]:.6f}, transformers {want[t, v]:.6f}); "
        f"per-position max error {np.round(err.max(-1), 6).tolist()}")


@pytest.mark.parametrize("name", NAMES)
def test_generate_greedy_matches_transformers(lmtune, name):
    d = FIXTURES / name
    r = ref_tensors(name)
    prompt = [int(t) for t in r["gen_prompt"]]

    m = hf_model(name, False)
    eos = m.generation_config.eos_token_id
    pad = eos[0] if isinstance(eos, list) else eos
    x = torch.tensor([prompt], dtype=torch.int64)
    with torch.no_grad():
        seq = m.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=GEN_NEW,
                         pad_token_id=pad)
    want = [int(t) for t in seq[0, len(prompt):]]
    assert want == [int(t) for t in r["gen_greedy"]], "fixtures are stale: rerun tests/fixtures/make_fixtures.py"

    p = run([lmtune, "generate", "--model", d, "--ids", ids_arg(prompt), "--max-new-tokens", str(GEN_NEW)])
    assert p.returncode == 0, describe(p)
    got = parse_ids_line(p.stdout)
    assert got == want, f"{name}: lmtune generated {got}, transformers {want}\n" + describe(p)


@pytest.mark.parametrize("name", NAMES)
def test_info(lmtune, name):
    p = run([lmtune, "info", "--model", FIXTURES / name])
    assert p.returncode == 0, describe(p)
    assert ARCH[name] in p.stdout, f"architecture {ARCH[name]} not in the output\n" + describe(p)


def test_missing_model_fails_cleanly(lmtune, tmp_path):
    missing = "/nonexistent/lmtune-no-such-model"
    out = tmp_path / "x.npy"
    p = run([lmtune, "logits", "--model", missing, "--ids", "1,2,3", "--out", out])
    assert p.returncode > 0, "expected a nonzero exit status (negative = killed by a signal)\n" + describe(p)
    assert missing in p.stderr, "stderr should name the missing path\n" + describe(p)
    for crash in ("Traceback", "Segmentation fault", "core dumped", "AddressSanitizer", "runtime error:", "Aborted"):
        assert crash not in p.stderr, describe(p)
    assert not out.exists(), "no output should be written on failure"
