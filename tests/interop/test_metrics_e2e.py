"""`lmtune metrics` equals sacrebleu (corpus BLEU), rouge-score (ROUGE-L) and scikit-learn (classification).

The committed fixture's inputs are scored live by the Python packages and by the CLI; then fresh random
perturbations (seeded from $LMTUNE_METRICS_SEED, or a new seed each run, printed on failure) are compared too.

Run:  .venv/bin/python -m pytest tests/interop/test_metrics_e2e.py  (CLI from $LMTUNE_BIN, default build/lmtune)
"""
import json
import math
import os
import random
import subprocess
from pathlib import Path

import pytest

sacrebleu = pytest.importorskip("sacrebleu")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
skm = pytest.importorskip("sklearn.metrics")

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "metrics_ref.json"
LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
SEED = int(os.environ.get("LMTUNE_METRICS_SEED") or random.SystemRandom().randrange(1 << 30))
REL = 1e-12  # observed: bit-identical; the bound leaves room for another libm


@pytest.fixture(scope="module")
def ref():
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def need_bin():
    if not LMTUNE_BIN.is_file():
        pytest.skip("lmtune binary not built")


def write_jsonl(path, rows, key):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({key: r}, ensure_ascii=False) + "\n")
    return path


def run(args, ok=True):
    p = subprocess.run([str(LMTUNE_BIN), "metrics", *map(str, args)], capture_output=True, text=True, timeout=300)
    if ok:
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)
    return p


def close(got, want, what):
    if isinstance(want, int) and not isinstance(want, bool):
        assert got == want, f"{what}: {got} != {want} (seed {SEED})"
        return 0.0
    d = abs(got - want) / (abs(want) if want else 1.0)
    assert d <= REL, f"{what}: {got!r} != {want!r} (rel {d:.3g}, seed {SEED})"
    return d


def cli_bleu(tmp_path, hyps, streams, tok):
    h = write_jsonl(tmp_path / "h.jsonl", hyps, "prediction")
    refs = [list(r) for r in zip(*streams)] if len(streams) > 1 else streams[0]
    r = write_jsonl(tmp_path / "r.jsonl", refs, "reference")
    return run(["--task", "bleu", "--pred", h, "--ref", r, "--tokenize", tok])


def check_bleu(got, hyps, streams, tok):
    b = sacrebleu.corpus_bleu(hyps, streams, tokenize=tok)
    worst = close(got["score"], b.score, "score")
    worst = max(worst, close(got["bp"], b.bp, "bp"))
    close(got["sys_len"], b.sys_len, "sys_len")
    close(got["ref_len"], b.ref_len, "ref_len")
    for k in range(4):
        worst = max(worst, close(got["precisions"][k], b.precisions[k], f"precision {k + 1}"))
        close(got["counts"][k], b.counts[k], f"count {k + 1}")
        close(got["totals"][k], b.totals[k], f"total {k + 1}")
    return b


def rouge_live(preds, streams, stem):
    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)
    per = []
    for i, p in enumerate(preds):
        targets = [s[i] for s in streams if s[i] is not None]
        r = sc.score(targets[0], p) if len(targets) == 1 else sc.score_multi(targets, p)
        per.append([r["rougeL"].precision, r["rougeL"].recall, r["rougeL"].fmeasure])
    return per, [sum(x[j] for x in per) / len(per) for j in range(3)]


def cli_rouge(tmp_path, preds, streams, stem):
    h = write_jsonl(tmp_path / "p.jsonl", preds, "prediction")
    refs = [list(r) for r in zip(*streams)] if len(streams) > 1 else streams[0]
    r = write_jsonl(tmp_path / "t.jsonl", refs, "reference")
    return run(["--task", "rouge", "--pred", h, "--ref", r, "--per-pair"] + (["--stemmer"] if stem else []))


def check_rouge(got, preds, streams, stem):
    per, mean = rouge_live(preds, streams, stem)
    assert len(got["per_pair"]) == len(per)
    for i, (g, w) in enumerate(zip(got["per_pair"], per)):
        for j in range(3):
            close(g[j], w[j], f"pair {i + 1} ({preds[i]!r}) field {j}")
    m = got["rougeL"]
    for j, k in enumerate(("precision", "recall", "fmeasure")):
        close(m[k], mean[j], f"mean {k}")
    return per, mean


def check_classify(got, labels, yt, yp):
    assert got["labels"] == labels
    close(got["accuracy"], float(skm.accuracy_score(yt, yp)), "accuracy")
    p, r, f, s = skm.precision_recall_fscore_support(yt, yp, labels=labels, average=None, zero_division=0)
    for j, lab in enumerate(labels):
        c = got["per_class"][lab]
        close(c["precision"], float(p[j]), f"precision {lab}")
        close(c["recall"], float(r[j]), f"recall {lab}")
        close(c["f1"], float(f[j]), f"f1 {lab}")
        close(c["support"], int(s[j]), f"support {lab}")
    for avg in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(yt, yp, labels=labels, average=avg, zero_division=0)
        close(got[avg]["precision"], float(p), f"{avg} precision")
        close(got[avg]["recall"], float(r), f"{avg} recall")
        close(got[avg]["f1"], float(f), f"{avg} f1")
    cm = skm.confusion_matrix(yt, yp, labels=labels).tolist()
    assert got["confusion_matrix"] == cm


def corpus(ref, name, n_refs):
    c = ref["corpora"][name]
    return c["hyps"], c["refs"][:n_refs]


# ---- the committed fixture, recomputed live ----

def test_fixture_versions(ref):
    import sklearn
    assert ref["versions"]["sacrebleu"] == sacrebleu.__version__
    assert ref["versions"]["scikit-learn"] == sklearn.__version__


def test_corpus_size(ref):
    assert len(ref["corpora"]["en"]["hyps"]) >= 200 and len(ref["corpora"]["zh"]["hyps"]) >= 100


def test_bleu_fixture(ref, tmp_path):
    need_bin()
    for case in ref["bleu"]:
        if "corpus" in case:
            hyps, streams = corpus(ref, case["corpus"], case["n_refs"])
        else:
            hyps, streams = case["hyps"], case["refs"]
        got = cli_bleu(tmp_path, hyps, streams, case["tokenize"])
        b = check_bleu(got, hyps, streams, case["tokenize"])
        assert b.score == case["expect"]["score"], f"{case['name']}: fixture is stale (make_metrics_ref.py)"


def test_rouge_fixture(ref, tmp_path):
    need_bin()
    for case in ref["rouge"]:
        preds, streams = corpus(ref, case["corpus"], case["n_refs"])
        got = cli_rouge(tmp_path, preds, streams, case["use_stemmer"])
        per, mean = check_rouge(got, preds, streams, case["use_stemmer"])
        assert per == case["per_pair"] and mean == case["mean"], f"{case['name']}: fixture is stale"


def test_classify_fixture(ref, tmp_path):
    need_bin()
    for case in ref["classify"]:
        labels, yt, yp = case["labels"], case["y_true"], case["y_pred"]
        t = write_jsonl(tmp_path / "yt.jsonl", yt, "label")
        p = write_jsonl(tmp_path / "yp.jsonl", yp, "label")
        other = any(y not in labels for y in yp)
        got = run(["--task", "classify", "--pred", p, "--ref", t, "--labels", ",".join(labels)]
                  + (["--allow-other"] if other else []))
        check_classify(got, labels, yt, yp)
        assert got["n_other"] == sum(y not in labels for y in yp)


def test_plain_text_files(tmp_path):
    need_bin()
    hyps = ["The cat sat on the mat.", "", "Hello, world -- 3.5 km!"]
    refs = ["The cat is on the mat.", "Nothing here.", "Hello world, 3.5 km."]
    (tmp_path / "h.txt").write_text("\r\n".join(hyps) + "\r\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text("\n".join(refs), encoding="utf-8")
    got = run(["--task", "bleu", "--pred", tmp_path / "h.txt", "--ref", tmp_path / "r.txt"])
    check_bleu(got, hyps, [refs], "13a")
    got = run(["--task", "exact", "--pred", tmp_path / "h.txt", "--ref", tmp_path / "h.txt"])
    assert got["exact_match"] == 1.0


# ---- fresh random perturbations ----

ZH_CHARS = list("的了是在我有他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得，。！？、：；“”《》")
ALPHABET = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 3
            + list(".,;:!?-'\"()[]{}<>/\\@#$%^&*_+=~`|") * 2
            + [" "] * 20 + ["\t", "\n", "-\n", "\u3000", "\xa0", "\u2028", "\x85", "\u2009", "\x1c"]
            + list("的了是在我有他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得")
            + list("，。！？、：；“”‘’《》（）…—") + list("ＡＢＣ１２３") + ["㐀", "兀", "⺀", "☀", "✈", "㈠", "㎏", "｡"]
            + ["&quot;", "&amp;", "&lt;", "&gt;", "<skipped>", "İ", "\u212a", "é", "ß", "ﬁ", "😀", "\u0301", "Ω"])
WORDS = ("the cat sat on mat running runs runner happily generalization operational relational ponies caresses "
         "agreed sky skies dying news state-of-the-art 3.14 1,000 2-3 U.S.A. e.g. don't it's https://x.org/a?b=c "
         "yyyy syzygy hopping tanned fizzed").split()


def rand_text(rng, zh=False):
    n = rng.choice([0, 1, 2, 3, 5, 8, 13, 21, 34])
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.35:
            out.append(rng.choice(WORDS))
        elif zh and r < 0.7:
            out.append("".join(rng.choice(ZH_CHARS) for _ in range(rng.randint(1, 6))))
        else:
            out.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 7))))
        out.append(rng.choice([" ", " ", " ", "", "  ", "\t"]))
    return "".join(out)


def mutate(s, rng):
    t = list(s)
    for _ in range(rng.randint(0, 4)):
        op = rng.random()
        if op < 0.3 and t:
            del t[rng.randrange(len(t))]
        elif op < 0.6:
            t.insert(rng.randrange(len(t) + 1), rng.choice(ALPHABET))
        elif op < 0.8 and len(t) > 1:
            i = rng.randrange(len(t) - 1)
            t[i], t[i + 1] = t[i + 1], t[i]
        elif t:
            i = rng.randrange(len(t))
            t[i] = t[i].upper() if rng.random() < 0.5 else t[i].lower()
    return "".join(t)


@pytest.mark.parametrize("round_", range(3))
def test_random_bleu_rouge(ref, tmp_path, round_):
    need_bin()
    rng = random.Random(SEED * 7 + round_)
    en_h, en_r = ref["corpora"]["en"]["hyps"], ref["corpora"]["en"]["refs"][0]
    zh_h, zh_r = ref["corpora"]["zh"]["hyps"], ref["corpora"]["zh"]["refs"][0]
    for zh in (False, True):
        refs, hyps = [], []
        for _ in range(120):
            if rng.random() < 0.5:
                i = rng.randrange(len(zh_r if zh else en_r))
                r = (zh_r if zh else en_r)[i]
                h = mutate((zh_h if zh else en_h)[i], rng)
            else:
                r = rand_text(rng, zh)
                h = mutate(r, rng) if rng.random() < 0.7 else rand_text(rng, zh)
            refs.append(mutate(r, rng))
            hyps.append(h)
        refs2 = [mutate(r, rng) if rng.random() < 0.8 else None for r in refs]
        for tok in ("zh", "13a") if zh else ("13a", "zh", "none"):
            check_bleu(cli_bleu(tmp_path, hyps, [refs], tok), hyps, [refs], tok)
        check_bleu(cli_bleu(tmp_path, hyps, [refs, refs2], "13a"), hyps, [refs, refs2], "13a")
        for stem in (False, True):
            check_rouge(cli_rouge(tmp_path, hyps, [refs], stem), hyps, [refs], stem)
        check_rouge(cli_rouge(tmp_path, hyps, [refs, refs2], False), hyps, [refs, refs2], False)


@pytest.mark.parametrize("round_", range(3))
def test_random_classify(tmp_path, round_):
    need_bin()
    rng = random.Random(SEED * 11 + round_)
    k = rng.randint(2, 12)
    labels = [f"lab{i}" if rng.random() < 0.7 else f"L-{i}" for i in range(k)]
    rng.shuffle(labels)
    n = rng.randint(1, 400)
    yt = [rng.choice(labels) for _ in range(n)]
    acc = rng.random()
    yp = [t if rng.random() < acc else rng.choice(labels + ["other"]) for t in yt]
    t = write_jsonl(tmp_path / "yt.jsonl", yt, "label")
    p = write_jsonl(tmp_path / "yp.jsonl", yp, "label")
    got = run(["--task", "classify", "--pred", p, "--ref", t, "--labels", ",".join(labels), "--allow-other"])
    check_classify(got, labels, yt, yp)
    # default label set: sorted union of both files (scikit-learn's unique_labels)
    got = run(["--task", "classify", "--pred", p, "--ref", t])
    check_classify(got, sorted(set(yt) | set(yp)), yt, yp)


# ---- bad inputs ----

def test_bad_inputs(tmp_path):
    need_bin()
    a = write_jsonl(tmp_path / "a.jsonl", ["x", "y"], "text")
    b = write_jsonl(tmp_path / "b.jsonl", ["x"], "text")
    (tmp_path / "empty.txt").write_text("")
    lab = write_jsonl(tmp_path / "lab.jsonl", ["spam", "ham"], "label")
    bad = write_jsonl(tmp_path / "bad.jsonl", ["spam", "eggs"], "label")
    cases = [
        (["--task", "bleu", "--pred", a, "--ref", b], "2 predictions"),
        (["--task", "rouge", "--pred", tmp_path / "empty.txt", "--ref", b], "empty file"),
        (["--task", "classify", "--pred", bad, "--ref", lab, "--labels", "spam,ham"], "\"eggs\" is not in the label set"),
        (["--task", "classify", "--pred", lab, "--ref", bad, "--labels", "spam,ham"], "\"eggs\" is not in the label set"),
        (["--task", "bleu", "--pred", a, "--ref", a, "--tokenize", "intl"], "intl"),
        (["--task", "nope", "--pred", a, "--ref", a], "choose bleu"),
        (["--task", "bleu", "--pred", tmp_path / "missing.txt", "--ref", a], "missing.txt"),
    ]
    for args, msg in cases:
        p = run(args, ok=False)
        assert p.returncode in (1, 2), (args, p.stdout)
        assert msg in p.stderr, (args, p.stderr)
