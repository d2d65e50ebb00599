"""`lmtune data sft`: conversations rendered by the real chat templates and tokenized exactly as transformers does,
with labels on the assistant segments only.

Reference per conversation (transformers + the fetched real tokenizers): for each assistant turn, the prompt text is
apply_chat_template(messages[:turn], add_generation_prompt=True) and the full text apply_chat_template(
messages[:turn + 1]); the new prompt part is encoded with labels -100, the new response part with labels = ids
(both with add_special_tokens=False, as LLaMA-Factory encodes segments).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tokenizer"))
import corpus  # noqa: E402

LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
transformers.logging.set_verbosity_error()

CONVOS = [
    {"instruction": "Is this spam?", "input": "Win a free iPhone now!!!", "output": "spam", "system": "You sort mail."},
    {"instruction": "Translate to French: good morning", "input": "", "output": "bonjour"},
    {"instruction": "请再讲一个", "input": "", "output": "好的，我们继续。",
     "history": [["你好", "你好！有什么可以帮你？"], ["讲个笑话", "为什么程序员喜欢黑暗？因为光会产生 bug。"]]},
    {"instruction": "Sum", "input": "2 + 3", "output": "5", "history": [["hi", "hello"]]},
]


def to_messages(rec):
    msgs = []
    if rec.get("system"):
        msgs.append({"role": "system", "content": rec["system"]})
    for q, a in rec.get("history", []):
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    user = "\n".join(x for x in (rec["instruction"], rec["input"]) if x)
    msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": rec["output"]}]
    return msgs


def reference(tok, msgs):
    ids, labels, prev = [], [], ""
    first = 1 if msgs[0]["role"] == "system" else 0
    for a in range(first + 1, len(msgs), 2):
        prefix = tok.apply_chat_template(msgs[:a], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(msgs[:a + 1], tokenize=False)
        assert prefix.startswith(prev) and full.startswith(prefix)
        p = tok(prefix[len(prev):], add_special_tokens=False)["input_ids"] if len(prefix) > len(prev) else []
        r = tok(full[len(prefix):], add_special_tokens=False)["input_ids"]
        ids += p + r
        labels += [-100] * len(p) + r
        prev = full
    return ids, labels


SINGLE, MULTI = CONVOS[:2], CONVOS[2:]


def run_sft(tmp_path, d, convos, *extra):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in convos), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    p = subprocess.run([str(LMTUNE_BIN), "data", "sft", "--tokenizer", str(d), "--dataset", str(data), "--out",
                        str(out), *extra], capture_output=True, text=True, timeout=300)
    return p, ([json.loads(line) for line in out.read_text().splitlines()] if p.returncode == 0 else None)


# Multi-turn conversations need a template that renders turn k+1 as an extension of turn k. DeepSeek-V3's does;
# the packaged Llama 3 template always appends an assistant header and Qwen3's drops earlier turns' thinking, so
# lmtune refuses them with a message pointing to --template (the built-ins are prefix-stable).
@pytest.mark.parametrize("name,convos", [("qwen3", SINGLE), ("llama3", SINGLE), ("deepseek_v3", SINGLE + MULTI)])
def test_sft_examples_match_transformers(name, convos, tmp_path):
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")
    try:
        d = corpus.tokenizer_dir(name)
    except Exception as e:  # data not fetched
        pytest.skip(str(e))
    if not (Path(d) / "tokenizer.json").is_file():
        pytest.skip(f"{d} missing: run scripts/fetch-data.sh")
    p, got = run_sft(tmp_path, d, convos)
    assert p.returncode == 0, p.stderr
    tok = transformers.AutoTokenizer.from_pretrained(d)
    assert len(got) == len(convos)
    for rec, g in zip(convos, got):
        ids, labels = reference(tok, to_messages(rec))
        assert g["input_ids"] == ids, f"{name}: ids differ for {rec['instruction']!r}"
        assert g["labels"] == labels, f"{name}: labels differ for {rec['instruction']!r}"
        assert tok.eos_token_id in [x for x in labels if x != -100] or name == "llama3", "EOS not learned"


@pytest.mark.parametrize("name,builtin", [("qwen3", "qwen"), ("llama3", "llama3")])
def test_sft_multiturn_unstable_template(name, builtin, tmp_path):
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")
    try:
        d = corpus.tokenizer_dir(name)
    except Exception as e:
        pytest.skip(str(e))
    p, _ = run_sft(tmp_path, d, MULTI)
    assert p.returncode == 1 and "--template" in p.stderr and "line 1" in p.stderr, p.stderr
    p, got = run_sft(tmp_path, d, MULTI, "--template", builtin)
    assert p.returncode == 0, p.stderr
    tok = transformers.AutoTokenizer.from_pretrained(d)
    for rec, g in zip(MULTI, got):
        learned = tok.decode([x for x in g["labels"] if x != -100])
        for _, answer in rec["history"]:
            assert answer in learned  # every assistant turn is learned, none of the user turns
        assert rec["output"] in learned and rec["instruction"] not in learned


def test_sft_bad_record_names_line(tmp_path):
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")
    try:
        d = corpus.tokenizer_dir("qwen3")
    except Exception as e:
        pytest.skip(str(e))
    data = tmp_path / "bad.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n', encoding="utf-8")
    p = subprocess.run([str(LMTUNE_BIN), "data", "sft", "--tokenizer", str(d), "--dataset", str(data), "--out",
                        str(tmp_path / "o.jsonl")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "line 2" in p.stderr and '"output"' in p.stderr, p.stderr
    assert not (tmp_path / "o.jsonl").exists()
