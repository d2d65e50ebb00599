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


def infer_seqlen(source_len, target_len, cutoff_len):
    """LLaMA-Factory's data.processor.processor_utils.infer_seqlen, restated."""
    if target_len * 2 < cutoff_len:
        max_target_len = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target_len = cutoff_len - source_len
    else:
        max_target_len = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target_len = min(max_target_len, target_len)
    max_source_len = max(cutoff_len - new_target_len, 0)
    return min(max_source_len, source_len), new_target_len


def reference(tok, msgs, cutoff_len=0):
    ids, labels, prev = [], [], ""
    first = 1 if msgs[0]["role"] == "system" else 0
    for a in range(first + 1, len(msgs), 2):
        prefix = tok.apply_chat_template(msgs[:a], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(msgs[:a + 1], tokenize=False)
        assert prefix.startswith(prev) and full.startswith(prefix)
        p = tok(prefix[len(prev):], add_special_tokens=False)["input_ids"] if len(prefix) > len(prev) else []
        r = tok(full[len(prefix):], add_special_tokens=False)["input_ids"]
        if cutoff_len:  # LLaMA-Factory's supervised processor: each turn pair cut to what is left
            if len(ids) >= cutoff_len:
                break
            sl, tl = infer_seqlen(len(p), len(r), cutoff_len - len(ids))
            p, r = p[:sl], r[:tl]
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


@pytest.mark.parametrize("cutoff", [6, 12, 20, 33, 60])
def test_sft_cutoff_len_as_llamafactory(cutoff, tmp_path):
    """cutoff_len keeps short responses whole and cuts the prompt (multi-turn: turn by turn), as LLaMA-Factory."""
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")
    try:
        d = corpus.tokenizer_dir("deepseek_v3")
    except Exception as e:  # data not fetched
        pytest.skip(str(e))
    convos = CONVOS + [{"instruction": "Classify: " + "very long e-mail text " * 20, "input": "", "output": "ham"},
                       {"instruction": "Echo", "input": "", "output": "a long answer that goes on " * 6}]
    p, got = run_sft(tmp_path, d, convos, "--cutoff-len", str(cutoff))
    assert p.returncode == 0, p.stderr
    tok = transformers.AutoTokenizer.from_pretrained(d)
    n_cut = 0
    for rec, g in zip(convos, got):
        full, _ = reference(tok, to_messages(rec))
        ids, labels = reference(tok, to_messages(rec), cutoff)
        n_cut += len(full) > len(ids)
        assert g["input_ids"] == ids and g["labels"] == labels, (cutoff, rec["instruction"][:20])
        assert len(ids) <= cutoff
    assert f"{n_cut} truncated" in p.stderr, p.stderr
