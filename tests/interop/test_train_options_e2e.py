"""`lmtune train` options checked against the reference behaviour they copy:
- eval_strategy / save_strategy "epoch": evaluations and checkpoints at each epoch end (transformers'
  DefaultFlowCallback.on_epoch_end), including a final partial epoch cut by max_steps;
- freeze tuning by module names (LLaMA-Factory's freeze_trainable_modules / freeze_extra_modules): exactly the
  parameters LLaMA-Factory's rule selects change, every other weight is bitwise unchanged;
- plain-text pre-training data as .txt files (one record per line) and directories (one document per file).

Run:  .venv/bin/python -m pytest tests/interop/test_train_options_e2e.py  (CLI from $LMTUNE_BIN)
"""
import json
import math
import os
import re
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.skipif(not LMTUNE_BIN.is_file(), reason="lmtune binary not built")


def write_rows(path, n, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        ln = int(torch.randint(5, 12, (1,), generator=g))
        rows.append({"input_ids": torch.randint(3, vocab, (ln,), generator=g).tolist()})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def train(*args, check=True):
    p = subprocess.run([str(LMTUNE_BIN), "train", *[str(a) for a in args]], capture_output=True, text=True,
                       timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def vocab_of(d):
    return json.loads((d / "config.json").read_text())["vocab_size"]


@pytest.mark.parametrize("max_steps", [-1, 7])
def test_epoch_strategies(tmp_path, max_steps):
    model = FIXTURES / "llama_mha_tied_f32"
    data = tmp_path / "d.jsonl"
    write_rows(data, 20, vocab_of(model), 1)
    out = tmp_path / "out"
    train("--model_name_or_path", model, "--dataset", data, "--val_size", 4, "--output_dir", out,
          "--per_device_train_batch_size", 4, "--num_train_epochs", 3, "--max_steps", max_steps,
          "--eval_strategy", "epoch", "--save_strategy", "epoch", "--logging_steps", 1, "--learning_rate", 1e-3,
          "--load_best_model_at_end", "true")
    # 16 training examples / batch 4 = 4 steps per epoch; epoch ends at 4, 8, 12 (max_steps 7: 4 and 7)
    ends = [4, 8, 12] if max_steps < 0 else [4, 7]
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [e["step"] for e in state["log_history"] if "eval_loss" in e]
    assert evals == ends
    ckpts = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert ckpts == ends
    best = min((e for e in state["log_history"] if "eval_loss" in e), key=lambda e: e["eval_loss"])
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best['step']}")
    assert state["eval_steps"] is not None
    html = (out / "report.html").read_text()  # lmtune train ends with the report of the run
    assert html.count("<svg") >= 2 and "validation loss" in html


def test_epoch_strategy_mismatch_is_an_error(tmp_path):
    model = FIXTURES / "llama_mha_tied_f32"
    data = tmp_path / "d.jsonl"
    write_rows(data, 8, vocab_of(model), 2)
    p = train("--model_name_or_path", model, "--dataset", data, "--val_size", 2, "--output_dir", tmp_path / "o",
              "--eval_strategy", "epoch", "--save_strategy", "steps", "--load_best_model_at_end", "true",
              check=False)
    assert p.returncode != 0 and "save_strategy and eval_strategy to match" in p.stderr
    p = train("--model_name_or_path", model, "--dataset", data, "--output_dir", tmp_path / "o",
              "--eval_strategy", "weekly", check=False)
    assert p.returncode != 0 and "choose steps, epoch or no" in p.stderr
    assert not (tmp_path / "o").exists()


def llamafactory_freeze_selection(model_dir, layers, modules, extra):
    """The parameter names LLaMA-Factory's _setup_freeze_tuning leaves trainable (its rule, restated)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    names = [n for n, _ in model.named_parameters()]
    L = model.config.num_hidden_layers
    ids = range(max(0, L - layers), L) if layers > 0 else range(min(-layers, L))
    pats = []
    for m in modules:
        for i in ids:
            pats.append(".{:d}.{}".format(i, m if m != "all" else ""))
    pats += extra
    return {n for n in names if any(p in n for p in pats)}


FREEZE = [(1, ["all"], []), (2, ["mlp"], []), (-1, ["self_attn", "post_attention_layernorm"], ["embed_tokens"]),
          (1, ["mlp"], ["norm"])]


@pytest.mark.parametrize("layers,modules,extra", FREEZE, ids=["last1-all", "last2-mlp", "first1-attn+embed",
                                                              "last1-mlp+norm"])
def test_freeze_by_module_names(tmp_path, layers, modules, extra):
    model = FIXTURES / "llama3_rope_bias"
    data = tmp_path / "d.jsonl"
    write_rows(data, 8, vocab_of(model), 3)
    out = tmp_path / "out"
    args = ["--model_name_or_path", model, "--dataset", data, "--output_dir", out, "--finetuning_type", "freeze",
            "--freeze_trainable_layers", layers, "--freeze_trainable_modules", ",".join(modules),
            "--per_device_train_batch_size", 4, "--max_steps", 2, "--learning_rate", 1e-2, "--save_steps", 0]
    if extra:
        args += ["--freeze_extra_modules", ",".join(extra)]
    train(*args)
    before, after = load_file(str(model / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k].float(), after[k].float())}
    want = llamafactory_freeze_selection(model, layers, modules, extra)
    assert changed == want


def test_freeze_module_name_errors(tmp_path):
    model = FIXTURES / "llama_mha_tied_f32"
    data = tmp_path / "d.jsonl"
    write_rows(data, 4, vocab_of(model), 4)
    p = train("--model_name_or_path", model, "--dataset", data, "--output_dir", tmp_path / "o",
              "--finetuning_type", "freeze", "--freeze_trainable_modules", "attention", check=False)
    assert p.returncode != 0 and '"attention" is not a module of the decoder layers' in p.stderr
    p = train("--model_name_or_path", model, "--dataset", data, "--output_dir", tmp_path / "o",
              "--finetuning_type", "freeze", "--freeze_extra_modules", "head", check=False)
    assert p.returncode != 0 and '"head" is not a module outside the decoder layers' in p.stderr


def make_text_model(tmp_path):
    """A tiny random Llama with a byte-level BPE tokenizer trained by lmtune on the text below."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 20 + "pack my box with five dozen jugs\n" * 20)
    d = tmp_path / "m"
    subprocess.run([str(LMTUNE_BIN), "tokenizer", "train", "--vocab-size", "300", "--special-tokens", "<|endoftext|>",
                    "--out", str(d), str(corpus)], check=True, capture_output=True)
    cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=2, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(cfg).save_pretrained(d)
    return d


def test_plain_text_files_and_directories(tmp_path):
    m = make_text_model(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    texts = ["the lazy dog jumps\nover the fox", "pack my box", "five dozen jugs of the quick fox"]
    for i, t in enumerate(texts):
        (docs / f"{i:02d}.txt").write_text(t)
    (docs / "notes.md").write_text("not a .txt file: ignored")
    lines = tmp_path / "lines.txt"
    lines.write_text("the quick brown fox\n\npack my box with five\n")
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(m / "tokenizer.json"))

    def expect(strings):
        return [tok.encode(s, add_special_tokens=False) + [0] for s in strings]

    # per-example losses through --max_steps 0 are not observable; use the pre-training logs instead:
    # with batch 1, no shuffling and lr 0, each step's loss is transformers' loss on one document
    model = transformers.LlamaForCausalLM.from_pretrained(m, dtype=torch.float32)
    for ds, strings in [(docs, texts), (lines, ["the quick brown fox", "pack my box with five"]),
                        (f"{lines},{docs}", ["the quick brown fox", "pack my box with five"] + texts)]:
        out = tmp_path / ("o" + str(abs(hash(str(ds))) % 10 ** 6))
        train("--stage", "pt", "--model_name_or_path", m, "--finetuning_type", "full", "--dataset", ds,
              "--output_dir", out, "--per_device_train_batch_size", 1, "--disable_shuffling", "true",
              "--learning_rate", 0, "--num_train_epochs", 1, "--logging_steps", 1, "--save_steps", 0,
              "--packing", "false")
        hist = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
        want = []
        for ids in expect(strings):
            x = torch.tensor([ids])
            with torch.no_grad():
                want.append(float(model(input_ids=x, labels=x).loss))
        assert len(hist) == len(want)
        for h, w in zip(hist, want):
            assert math.isclose(h["loss"], w, rel_tol=1e-4), (ds, h["loss"], w)


def test_plain_text_errors(tmp_path):
    m = make_text_model(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    p = train("--stage", "pt", "--model_name_or_path", m, "--finetuning_type", "full", "--dataset", empty,
              "--output_dir", tmp_path / "o", check=False)
    assert p.returncode != 0 and "no *.txt documents" in p.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.txt").write_bytes(b"caf\xe9 au lait")
    p = train("--stage", "pt", "--model_name_or_path", m, "--finetuning_type", "full", "--dataset", bad,
              "--output_dir", tmp_path / "o", check=False)
    assert p.returncode != 0 and re.search(r"a\.txt: invalid UTF-8 byte 0xe9", p.stderr), p.stderr
    assert not (tmp_path / "o").exists()
