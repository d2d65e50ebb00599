"""End-to-end: `lmtune tokenizer train` against HF tokenizers' BpeTrainer on real corpora.

Run:  .venv/bin/python -m pytest tests/interop/test_bpe_train_e2e.py
Needs `make data` (scripts/fetch-data.sh) for the corpora; the CLI is $LMTUNE_BIN (default <repo>/build/lmtune).

(a) Same settings, same corpus files: HF's trainer (ByteLevel(add_prefix_space=False, use_regex=True),
    initial_alphabet=ByteLevel.alphabet()) and ours must write a byte-identical tokenizer.json (so vocab and merges
    are equal), and tokenizer_config.json must equal what transformers' save_pretrained writes for it. Held-out
    texts (SOTU, CJK, emoji, adversarial, ...) must encode to the same ids through HF with either file.
(b) HF encoding with OUR tokenizer.json equals `lmtune tokenize --raw --jsonl` with it (skipped while that verb
    cannot load the file).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tokenizer"))
import corpus  # noqa: E402

LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
SPECIALS = ["<|endoftext|>", "<pad>"]
TIMEOUT = 300

if not LMTUNE_BIN.is_file():
    pytest.skip(f"{LMTUNE_BIN} missing: build first (make build)", allow_module_level=True)
try:
    corpus.require_data()
except corpus.DataMissing as e:
    pytest.skip(str(e), allow_module_level=True)


def _write(path: Path, texts) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(texts))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bpe_corpora")
    cats = corpus.load_corpus_by_category()
    return {
        # Moby Dick as stored (one paragraph per line, blank line between paragraphs), chapter files in order
        "moby": _write(d / "moby.txt", [t for _, t in corpus.moby_dick_chapters()]),
        # every corpus category, one text after another (texts may hold their own newlines, \r\n, odd spaces)
        "mixed": _write(d / "mixed.txt", corpus.load_corpus()),
        # 10.8 MB of State of the Union addresses, one per line
        "sotu": _write(d / "sotu.txt", [r["text"] for r in corpus.sotu_addresses()]),
        "_cats": cats,
    }


@pytest.fixture(scope="module")
def held_out(files):
    cats = files["_cats"]
    texts = []
    for k in ("sotu_sentences", "cjk", "emoji", "scripts", "code", "whitespace", "digits", "normalization",
              "punctuation", "special_tokens", "adversarial", "long_words", "mixed", "spam", "empty"):
        texts += cats[k]
    return texts


def hf_train(corpus_file: Path, vocab: int, min_freq: int, out: Path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tr = trainers.BpeTrainer(vocab_size=vocab, min_frequency=min_freq, special_tokens=SPECIALS,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    t0 = time.perf_counter()
    tok.train([str(corpus_file)], tr)
    dt = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    return tok, dt


def our_train(corpus_file: Path, vocab: int, min_freq: int, out: Path):
    t0 = time.perf_counter()
    r = subprocess.run([str(LMTUNE_BIN), "tokenizer", "train", "--vocab-size", str(vocab), "--min-frequency",
                        str(min_freq), "--special-tokens", ",".join(SPECIALS), "--out", str(out), str(corpus_file)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    dt = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    return dt


def _first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i, x, y
    return min(len(a), len(b)), None, None


CASES = [("moby", 1000, 2), ("moby", 4000, 2), ("moby", 300, 0), ("mixed", 3000, 2), ("sotu", 8000, 2)]


@pytest.mark.parametrize("name,vocab,min_freq", CASES, ids=[f"{n}-v{v}-mf{m}" for n, v, m in CASES])
def test_matches_hf_trainer(files, held_out, tmp_path, name, vocab, min_freq):
    ours_dir, hf_dir = tmp_path / "ours", tmp_path / "hf"
    t_ours = our_train(files[name], vocab, min_freq, ours_dir)
    hf_tok, t_hf = hf_train(files[name], vocab, min_freq, hf_dir)
    print(f"\n{name} vocab {vocab} min_freq {min_freq}: lmtune {t_ours:.2f}s, HF {t_hf:.2f}s")

    ours_json = json.loads((ours_dir / "tokenizer.json").read_text(encoding="utf-8"))
    hf_json = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    ov, hv = ours_json["model"]["vocab"], hf_json["model"]["vocab"]
    assert len(ov) == len(hv), (len(ov), len(hv))
    assert ov == hv, "vocab differs"
    om, hm = ours_json["model"]["merges"], hf_json["model"]["merges"]
    assert om == hm, f"merges differ (lengths {len(om)} vs {len(hm)}; first difference {_first_diff(om, hm)})"
    assert ours_json == hf_json
    # byte-identical, as Tokenizer.save() writes it
    assert (ours_dir / "tokenizer.json").read_bytes() == (hf_dir / "tokenizer.json").read_bytes()

    ours_tok = Tokenizer.from_file(str(ours_dir / "tokenizer.json"))
    assert ours_tok.get_vocab_size() == hf_tok.get_vocab_size()
    for text in held_out:
        a, b = ours_tok.encode(text).ids, hf_tok.encode(text).ids
        assert a == b, f"encode differs on {text[:80]!r}"
        assert ours_tok.decode(a, skip_special_tokens=False) == text


def test_tokenizer_config_matches_transformers(files, tmp_path):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "ours"
    our_train(files["moby"], 600, 2, out)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"),
                                                eos_token="<|endoftext|>", pad_token="<pad>")
    fast.save_pretrained(str(tmp_path / "tf"))
    assert (out / "tokenizer_config.json").read_text(encoding="utf-8") == \
        (tmp_path / "tf" / "tokenizer_config.json").read_text(encoding="utf-8")
    auto = transformers.AutoTokenizer.from_pretrained(str(out))
    assert auto.eos_token == "<|endoftext|>" and auto.pad_token_id == 1
    assert auto("Call me Ishmael.")["input_ids"] == Tokenizer.from_file(str(out / "tokenizer.json")).encode(
        "Call me Ishmael.").ids


def test_lmtune_tokenize_agrees_with_hf(files, held_out, tmp_path):
    out = tmp_path / "ours"
    our_train(files["moby"], 4000, 2, out)
    hf = Tokenizer.from_file(str(out / "tokenizer.json"))
    lines = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in held_out)
    r = subprocess.run([str(LMTUNE_BIN), "tokenize", "--tokenizer", str(out / "tokenizer.json"), "--raw", "--jsonl"],
                       input=lines.encode("utf-8"), capture_output=True, timeout=TIMEOUT)
    if r.returncode != 0:
        pytest.skip(f"lmtune tokenize cannot run yet: {r.stderr.decode('utf-8', 'replace')[:300]}")
    got = [json.loads(x) for x in r.stdout.decode("utf-8").splitlines()]
    assert len(got) == len(held_out)
    bad = [(t[:60], g[:12], hf.encode(t).ids[:12]) for t, g in zip(held_out, got) if g != hf.encode(t).ids]
    assert not bad, f"{len(bad)} of {len(held_out)} texts differ, e.g. {bad[:3]}"


def test_speed_several_mb(files, tmp_path):
    # 10.8 MB corpus, 8,000 tokens: seconds, not minutes (measured ~0.6 s on 1 core)
    t = our_train(files["sotu"], 8000, 2, tmp_path / "ours")
    assert t < 30, f"training took {t:.1f}s"


def test_cli_errors(files, tmp_path):
    def run(*args):
        return subprocess.run([str(LMTUNE_BIN), "tokenizer", *args], capture_output=True, text=True, timeout=60)

    r = run("train", "--vocab-size", "1000", "--out", str(tmp_path / "o"), str(tmp_path / "missing.txt"))
    assert r.returncode == 1 and "missing.txt" in r.stderr
    r = run("train", "--vocab-size", "257", "--special-tokens", "<a>,<b>", "--out", str(tmp_path / "o"),
            str(files["moby"]))
    assert r.returncode == 2 and "smaller than the 256" in r.stderr
    r = run("train", "--out", str(tmp_path / "o"), str(files["moby"]))
    assert r.returncode == 2 and "--vocab-size" in r.stderr
    r = run("train", "--vocab-size", "1000", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "no corpus files" in r.stderr
    r = run("train", "--vocab-size", "1000", "--special-tokens", "<a>,,<b>", "--out", str(tmp_path / "o"),
            str(files["moby"]))
    assert r.returncode == 2
    r = run("frobnicate")
    assert r.returncode == 2
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    r = run("train", "--vocab-size", "1000", "--out", str(tmp_path / "o"), str(bad))
    assert r.returncode == 1 and "bad.txt" in r.stderr and "line 2" in r.stderr
    assert not (tmp_path / "o" / "tokenizer.json").exists()
    r = run("train", "--help")
    assert r.returncode == 0 and "usage" in r.stdout
