"""lmtune tokenize / detokenize vs Hugging Face tokenizers and transformers, on the whole test corpus.

For each real tokenizer (deepseek_v3, qwen3, llama3, llama2, gemma3) and generated WordPiece / BPE tokenizers,
one lmtune process encodes every corpus text (JSONL), with and without special tokens:
  * `--raw` (tokenizer.json only) must equal `tokenizers.Tokenizer.from_file(...).encode(...)` ids,
  * the default (tokenizer.json + tokenizer_config.json rules) must equal `AutoTokenizer.from_pretrained(dir)(text)`.
Decoding (plain and streaming, with/without skip_special_tokens) must equal HF decode. Byte-exact on every text.

LMTUNE_BIN selects the binary (default <repo>/build/lmtune). Skips when the fetched data is missing (`make data`).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("LMTUNE_BIN", str(REPO / "build" / "lmtune"))
sys.path.insert(0, str(REPO / "tests" / "tokenizer"))

import corpus  # noqa: E402

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()


@pytest.fixture(scope="module")
def texts():
    try:
        corpus.require_data()
        return corpus.load_corpus()
    except corpus.DataMissing as e:
        pytest.skip(str(e))


def lmtune(args, lines):
    if not Path(BIN).is_file():
        pytest.skip(f"{BIN} not built")
    inp = "".join(json.dumps(x) + "\n" for x in lines).encode()
    p = subprocess.run([BIN] + args, input=inp, capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    out = p.stdout.decode().split("\n")  # not splitlines(): U+2028 etc. may appear inside JSON strings
    assert out[-1] == ""
    return [json.loads(x) for x in out[:-1]]


def first_diff(a, b):
    return next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))


def assert_same(name, texts, got, ref):
    assert len(got) == len(ref)
    bad = [i for i in range(len(ref)) if got[i] != ref[i]]
    msg = []
    for i in bad[:5]:
        k = first_diff(got[i], ref[i])
        msg.append(f"  text {i} {texts[i][:80]!r}: at {k} got {got[i][max(0, k - 2):k + 4]} "
                   f"ref {ref[i][max(0, k - 2):k + 4]}")
    assert not bad, f"{name}: {len(bad)}/{len(ref)} texts differ\n" + "\n".join(msg)


def check_tokenizer(path, texts, hf_raw, hf_tf):
    """path: folder; hf_raw: tokenizers.Tokenizer; hf_tf: transformers tokenizer (or None)."""
    ids = None
    for special in (False, True):
        sp = ["--add-special-tokens"] if special else []
        ref = [e.ids for e in hf_raw.encode_batch(texts, add_special_tokens=special)]
        got = lmtune(["tokenize", "--tokenizer", str(path), "--jsonl", "--raw"] + sp, texts)
        assert_same(f"{path.name} raw special={special} vs tokenizers", texts, got, ref)
        ids = ref
        if hf_tf is not None:
            ref_tf = hf_tf(texts, add_special_tokens=special)["input_ids"]
            got = lmtune(["tokenize", "--tokenizer", str(path), "--jsonl"] + sp, texts)
            assert_same(f"{path.name} special={special} vs transformers", texts, got, ref_tf)
            ids = ref_tf
    # Decoding: the ids of every text (with special tokens) plus short reversed id runs (broken byte sequences).
    ids = ids + [list(reversed(x[:7])) for x in ids[:300]]
    for skip in (False, True):
        sk = ["--skip-special-tokens"] if skip else []
        ref = hf_raw.decode_batch(ids, skip_special_tokens=skip)
        # raw: plain decode (and streaming when there is no transformers reference)
        for stream in ([], ["--stream"]) if hf_tf is None else ([],):
            got = lmtune(["detokenize", "--tokenizer", str(path), "--jsonl", "--raw"] + sk + stream, ids)
            assert_same(f"{path.name} raw decode skip={skip} {stream}", ids, got, ref)
        if hf_tf is not None:
            ref = hf_tf.batch_decode(ids, skip_special_tokens=skip)
            for stream in ([], ["--stream"]):
                got = lmtune(["detokenize", "--tokenizer", str(path), "--jsonl"] + sk + stream, ids)
                assert_same(f"{path.name} decode skip={skip} {stream}", ids, got, ref)


@pytest.mark.parametrize("name", corpus.TOKENIZER_NAMES)
def test_real_tokenizer(name, texts):
    try:
        d = corpus.tokenizer_dir(name)
    except corpus.DataMissing as e:
        pytest.skip(str(e))
    hf_raw = tokenizers.Tokenizer.from_file(str(d / "tokenizer.json"))
    hf_tf = transformers.AutoTokenizer.from_pretrained(str(d))
    check_tokenizer(d, texts, hf_raw, hf_tf)


def _train_wordpiece(texts, tmp, bert_class):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=30))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts[:3000], trainers.WordPieceTrainer(vocab_size=4000, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece(prefix="##")
    tmp.mkdir(parents=True, exist_ok=True)
    tok.save(str(tmp / "tokenizer.json"))
    cfg = {"tokenizer_class": "BertTokenizer" if bert_class else "PreTrainedTokenizerFast",
           "do_lower_case": True, "clean_up_tokenization_spaces": True, "unk_token": "[UNK]", "sep_token": "[SEP]",
           "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
    (tmp / "tokenizer_config.json").write_text(json.dumps(cfg))
    return tok


@pytest.mark.parametrize("bert_class", [True, False])
def test_wordpiece(texts, tmp_path, bert_class):
    d = tmp_path / "wordpiece"
    hf_raw = _train_wordpiece(texts, d, bert_class)
    hf_tf = transformers.AutoTokenizer.from_pretrained(str(d))
    check_tokenizer(d, texts, hf_raw, hf_tf)


def test_other_components(texts, tmp_path):
    """A BPE tokenizer exercising normalizers / pre-tokenizers the real models do not use (vs HF tokenizers)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase(),
        normalizers.Replace(Regex(r"\d{4,}"), "<num>"), normalizers.Strip(left=True, right=False), normalizers.NFC()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="contiguous"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Split(Regex(r"[aeiou]+"), behavior="merged_with_next", invert=False)])
    tok.train_from_iterator(texts[:3000], trainers.BpeTrainer(
        vocab_size=3000, special_tokens=["<unk>", "<s>", "</s>"], continuing_subword_prefix="##",
        end_of_word_suffix="</w>"))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 1))
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tok.add_tokens([tokenizers.AddedToken("hello world", single_word=True, normalized=True),
                    tokenizers.AddedToken("[X]", lstrip=True, rstrip=True)])
    d = tmp_path / "other"
    d.mkdir()
    tok.save(str(d / "tokenizer.json"))
    check_tokenizer(d, texts, tok, None)

    # Metaspace (split, prepend_scheme first) + Whitespace + NFKC, with a Metaspace decoder.
    tok2 = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok2.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Prepend("x"), normalizers.Lowercase()])
    tok2.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", behavior="merged_with_previous"),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)])
    tok2.train_from_iterator(texts[:3000], trainers.BpeTrainer(vocab_size=2000, special_tokens=["<unk>", "<s>"]))
    tok2.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tok2.add_special_tokens(["<s>"])
    d2 = tmp_path / "meta"
    d2.mkdir()
    tok2.save(str(d2 / "tokenizer.json"))
    check_tokenizer(d2, texts, tok2, None)
