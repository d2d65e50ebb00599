"""`lmtune report` end to end: a real `lmtune train` run (with validation) plus eval_results files, rendered by headless
Chromium. Asserts the standalone SVGs plot the logged values (pixel positions affine in step and value), the DOM
Chromium builds has the expected charts (polyline point counts), tables (metric values as formatted) and heat maps
(cell values), the screenshot shows the chart colours, the page logs no console message (a detector checked on pages
with a deliberate console.error and a bad SVG attribute), fetches nothing (no http(s) URL but the SVG namespace) and
escapes strings from files; edge cases (NaN/Infinity tokens, thousands of points, constant series, a single point)
and the error paths.

Run:  .venv/bin/python -m pytest tests/interop/test_report_e2e.py   (CLI from $LMTUNE_BIN, default build/lmtune)
Chromium: skipped when absent unless $CI is set (then it is required).
"""
import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
LMTUNE_BIN = Path(os.environ.get("LMTUNE_BIN") or (ROOT / "build" / "lmtune"))
SVG_NS = "http://www.w3.org/2000/svg"
NS = {"s": SVG_NS}
MAX_POINTS = 2000  # LT_SVG_MAX_POINTS in src/report/svgchart.h

pytestmark = pytest.mark.skipif(not LMTUNE_BIN.is_file(), reason="lmtune binary not built")


# ---------------------------------------------------------------------------------------------------------- helpers

def lmtune(*args, check=True):
    p = subprocess.run([str(LMTUNE_BIN), *[str(a) for a in args]], capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def fmt_num(v, sig=4):
    """lt_svg_fmt_num: integers as integers, |v| >= 10^sig rounded to an integer, else %.{sig}g."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "NaN"
    if v == 0:
        return "0"
    if (v == math.floor(v) or abs(v) >= 10 ** sig) and abs(v) < 1e15:
        return "%.0f" % v
    return "%.*g" % (sig, v)


def chromium_bin():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is required in CI (scripts/setup.sh installs it)")
    pytest.skip("chromium not installed (scripts/setup.sh installs it); required when CI is set")


CONSOLE_RE = re.compile(r"^\[[^\]]*:CONSOLE[^\]]*\] (.*)$", re.M)


def chromium(page, tmp_path, *args):
    """Run headless Chromium on a file; returns (stdout bytes, console messages)."""
    profile = tmp_path / f"chromium-profile-{random.getrandbits(32):08x}"
    cmd = [chromium_bin(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={profile}", *args, Path(page).resolve().as_uri()]
    p = subprocess.run(cmd, capture_output=True, timeout=180)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    return p.stdout, CONSOLE_RE.findall(p.stderr.decode(errors="replace"))


def dump_dom(page, tmp_path):
    out, console = chromium(page, tmp_path, "--dump-dom")
    return out.decode(), console


def screenshot(page, tmp_path, width=1280, height=4000):
    png = tmp_path / "shot.png"
    _, console = chromium(page, tmp_path, f"--window-size={width},{height}", f"--screenshot={png}")
    return read_png(png.read_bytes()), console


def read_png(data):
    """8-bit RGB/RGBA non-interlaced PNG -> (width, height, list of rows of (r, g, b) tuples)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            ch = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride, rows, prev = w * ch, [], bytearray(w * ch)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], prev[i - ch] if i >= ch else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * ch:x * ch + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def count_near(rows, rgb, tol=40):
    r0, g0, b0 = rgb
    return sum(1 for row in rows for (r, g, b) in row if abs(r - r0) + abs(g - g0) + abs(b - b0) <= tol)


class Checker(HTMLParser):
    """Well-formedness of the HTML5 we write: one doctype, balanced non-void elements, unique ids, the tags seen."""
    VOID = {"meta", "br", "hr", "img", "link", "input", "wbr", "col", "area", "base", "source", "track", "embed"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.ids, self.tags, self.doctypes, self.errors, self.urls = [], set(), [], 0, [], []

    def handle_decl(self, decl):
        self.doctypes += decl.lower() == "doctype html"

    def _attrs(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k == "id":
                if v in self.ids:
                    self.errors.append(f"duplicate id {v}")
                self.ids.add(v)
            if k in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
                self.urls.append((tag, k, v))

    def handle_starttag(self, tag, attrs):
        self._attrs(tag, attrs)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._attrs(tag, attrs)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def check_html(text):
    c = Checker()
    c.feed(text)
    c.close()
    assert c.doctypes == 1 and text.startswith("<!DOCTYPE html>")
    assert not c.errors and not c.stack, (c.errors, c.stack)
    assert c.tags[:2] == ["html", "head"] and "title" in c.tags and "meta" in c.tags
    assert re.search(r'<html lang="en">', text) and '<meta charset="utf-8">' in text
    assert not c.urls, c.urls  # nothing fetched: no src/href at all
    for tag in ("script", "link", "img", "iframe", "object", "embed", "foreignobject"):
        assert tag not in c.tags, tag
    urls = re.findall(r"https?://[^\s\"'<>)]*", text)
    assert set(urls) <= {SVG_NS}, set(urls)
    assert "@import" not in text and "url(" not in text
    return c


def polyline_points(el):
    pts = el.get("points").split()
    return [tuple(float(v) for v in p.split(",")) for p in pts]


def assert_affine(pixels, values, tol=0.11):
    """pixel = a * value + b for every point (within the 0.1 px rounding of the SVG)."""
    assert len(pixels) == len(values) >= 2
    v0, v1 = min(values), max(values)
    i0, i1 = values.index(v0), values.index(v1)
    if v1 == v0:
        assert max(pixels) - min(pixels) <= tol
        return
    a = (pixels[i1] - pixels[i0]) / (v1 - v0)
    for p, v in zip(pixels, values):
        assert abs(pixels[i0] + a * (v - v0) - p) <= tol + abs(a) * 1e-9, (p, v)


def svg_series(svg_root):
    """{legend name: (polyline points or [], circle centres)} of a chart."""
    out = {}
    for g in svg_root.iter(f"{{{SVG_NS}}}g"):
        if g.get("class") != "series":
            continue
        poly = g.find("s:polyline", NS)
        circles = [(float(c.get("cx")), float(c.get("cy"))) for c in g.findall("s:circle", NS)]
        out[g.get("aria-label")] = (polyline_points(poly) if poly is not None else [], circles)
    return out


def make_examples(n, vocab, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ids = [rng.randint(3, vocab - 1) for _ in range(rng.randint(4, 12))]
        rows.append({"input_ids": ids, "labels": [-100, -100] + ids[2:]})
    return rows


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=1))


NASTY = '<script>alert("x")</script> & \'q\''

CLASSIFY = {
    "task": "classify", "dataset": "data/mail & <spam>.json", "model": "tests/fixtures/models/llama_mha_tied_f32",
    "n_examples": 600, "seconds": 12.3,
    "runs": [
        {"name": "base", "adapter": None, "metrics": {
            "accuracy": 0.6133333333333333, "macro_f1": 0.5214285714285715, "micro_f1": 0.6133333333333333,
            "macro_precision": 0.5811965811965812, "macro_recall": 0.55,
            "per_class": {"ham": {"precision": 0.64, "recall": 0.85, "f1": 0.7302, "support": 400},
                          "spam": {"precision": 0.5217, "recall": 0.25, "f1": 0.3380, "support": 200}},
            "confusion_matrix": {"labels": ["ham", "spam"], "matrix": [[340, 60], [150, 50]]}}},
        {"name": "adapter", "adapter": "out/run & <1>", "metrics": {
            "accuracy": 0.955, "macro_f1": 0.9491525423728814, "micro_f1": 0.955,
            "macro_precision": 0.9527687296416938, "macro_recall": 0.9475,
            "per_class": {"ham": {"precision": 0.9607, "recall": 0.98, "f1": 0.9703, "support": 400},
                          "spam": {"precision": 0.9572, "recall": 0.915, "f1": 0.9356, "support": 200}},
            "confusion_matrix": {"labels": ["ham", "spam"], "matrix": [[392, 8], [17, 183]]}}},
    ]}

MCQ = {"task": "mcq", "dataset": "mmlu", "model": "m", "n_examples": 30, "seconds": 1.5,
       "runs": [{"name": NASTY, "adapter": None, "metrics": {
           "accuracy": 0.4, "macro_accuracy": 0.375,
           "per_subject": {"astronomy": {"accuracy": 0.5, "n": 20}, "virology": {"accuracy": 0.25, "n": 10}}}}]}


# ---------------------------------------------------------------------------------------------------------- tests

def test_console_detector_catches_errors(tmp_path):
    """The console check used below sees console.error, uncaught exceptions and bad SVG attributes."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>t</title></head><body>'
                    '<script>console.error("deliberate-x1")</script><script>noSuchFunction()</script>'
                    '<svg xmlns="http://www.w3.org/2000/svg"><polyline points="1,nan 2,3"/></svg></body></html>')
    _, console = dump_dom(page, tmp_path)
    text = "\n".join(console)
    assert "deliberate-x1" in text and "noSuchFunction" in text and "polyline" in text, console
    good = tmp_path / "good.html"
    good.write_text('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>t</title></head><body>'
                    '<svg xmlns="http://www.w3.org/2000/svg"><polyline points="1,2 2,3"/></svg></body></html>')
    _, console = dump_dom(good, tmp_path)
    assert console == []


def test_report_of_a_real_run(tmp_path):
    src = FIXTURES / "llama_mha_tied_f32"
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in make_examples(24, 96, seed=4)))
    run = tmp_path / "run"
    lmtune("train", "--model_name_or_path", src, "--dataset", data, "--output_dir", run, "--lora_rank", 4,
           "--lora_target", "q_proj,v_proj", "--per_device_train_batch_size", 2, "--max_steps", 12,
           "--logging_steps", 1, "--val_size", 4, "--eval_steps", 4, "--save_steps", 0, "--learning_rate", 3e-3)
    write_json(run / "eval_results.json", CLASSIFY)  # as `lmtune eval --out RUN_DIR` leaves it
    write_json(run / "eval_results_mmlu.json", MCQ)
    hist = json.loads((run / "trainer_state.json").read_text())["log_history"]
    train = [(e["step"], e["loss"]) for e in hist if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in hist if "eval_loss" in e]
    lrs = [(e["step"], e["learning_rate"]) for e in hist if "learning_rate" in e]
    tput = [(e["step"], e["tokens_per_second"]) for e in hist if "tokens_per_second" in e]
    assert len(train) == 12 and len(evals) == 3 and len(lrs) == 12
    results = json.loads((run / "all_results.json").read_text())

    p = lmtune("report", run)
    figures = ["loss.svg", "lr.svg"] + (["throughput.svg"] if tput else []) + \
        ["confusion_matrix_1_base.svg", "confusion_matrix_2_adapter.svg"]
    assert p.stdout.split() == [str(run / "report.html")] + [f"{run}/{f}" for f in figures]
    assert p.stderr == ""

    # standalone SVG files: XML, and the points are the logged values
    loss = ET.parse(run / "loss.svg").getroot()
    assert (run / "loss.svg").read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert loss.tag == f"{{{SVG_NS}}}svg"
    series = svg_series(loss)
    tr_pts, _ = series["train loss"]
    ev_pts, ev_circles = series["validation loss"]
    assert len(tr_pts) == 12 and len(ev_pts) == 3 and len(ev_circles) == 3
    assert_affine([x for x, _ in tr_pts + ev_pts], [s for s, _ in train + evals])
    assert_affine([y for _, y in tr_pts + ev_pts], [v for _, v in train + evals])
    assert tr_pts[0][1] != tr_pts[-1][1]
    lr_pts, _ = svg_series(ET.parse(run / "lr.svg").getroot())["learning rate"]
    assert_affine([y for _, y in lr_pts], [v for _, v in lrs])
    texts = [t.text for t in loss.iter(f"{{{SVG_NS}}}text")]
    assert "step" in texts and "loss" in texts and "train loss" in texts and "validation loss" in texts
    assert sum(1 for t in texts if t and re.fullmatch(r"-?\d+(\.\d+)?", t)) >= 6  # tick labels
    cm = ET.parse(run / "confusion_matrix_2_adapter.svg").getroot()
    cells = [t.text for t in cm.iter(f"{{{SVG_NS}}}text")]
    for v in (392, 8, 17, 183):
        assert str(v) in cells

    html = (run / "report.html").read_text()
    check_html(html)
    # summary values from training_args.yaml / trainer_state.json / all_results.json
    assert f"<td>{src}</td>" in html
    assert "r = 4, alpha = 8 (2r, the default), dropout = 0, targets: q_proj,v_proj" in html
    assert f"{train[-1][1]:.4f}" in html and f"{results['train_loss']:.4f}" in html
    best = min(evals, key=lambda e: e[1])
    assert f"{best[1]:.4f} (step {best[0]})" in html
    assert "12 of 12" in html and f"<td>{data}</td>" in html
    # escaping of strings from files
    assert "data/mail &amp; &lt;spam&gt;.json" in html and "out/run &amp; &lt;1&gt;" in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;" in html
    assert "<script" not in html

    # what Chromium renders
    dom, console = dump_dom(run / "report.html", tmp_path)
    assert console == [], console
    svgs = re.findall(r"<svg\b.*?</svg>", dom, re.S)
    assert len(svgs) == len(figures)
    charts = [ET.fromstring(s) for s in svgs]
    assert [c.get("class") for c in charts] == ["chart"] * (len(figures) - 2) + ["heatmap"] * 2
    dom_series = svg_series(charts[0])
    assert len(dom_series["train loss"][0]) == 12 and len(dom_series["validation loss"][0]) == 3
    assert len(svg_series(charts[1])["learning rate"][0]) == 12
    if tput:
        assert len(svg_series(charts[2])["tokens/s"][0]) == len(tput)
    for chart, run_metrics in zip(charts[-2:], CLASSIFY["runs"]):
        rects = [r for r in chart.iter(f"{{{SVG_NS}}}rect") if r.get("class") == "cell"]
        assert len(rects) == 4
        vals = [t.text for t in chart.iter(f"{{{SVG_NS}}}text")]
        for row in run_metrics["metrics"]["confusion_matrix"]["matrix"]:
            for v in row:
                assert str(v) in vals
    # metric tables: runs side by side and the difference
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", dom, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)]
        rows.setdefault(cells[0], []).append(cells[1:])
    base, tuned = CLASSIFY["runs"][0]["metrics"], CLASSIFY["runs"][1]["metrics"]
    for k in ("accuracy", "macro_f1", "micro_f1", "macro_precision", "macro_recall"):
        delta = fmt_num(tuned[k] - base[k])
        assert [fmt_num(base[k]), fmt_num(tuned[k]), ("+" if tuned[k] > base[k] else "") + delta] in rows[k], rows[k]
    for cls in ("ham", "spam"):
        fields = ("precision", "recall", "f1", "support")
        want = [fmt_num(m["per_class"][cls][f]) for m in (base, tuned) for f in fields]
        assert want in rows[cls], rows[cls]
    assert ["0.4"] in rows["accuracy"] and ["0.375"] in rows["macro_accuracy"]
    assert ["0.5", "20"] in rows["astronomy"] and ["0.25", "10"] in rows["virology"]
    assert ["600"] in rows["examples"] and ["12.30 s"] in rows["time"]

    # the screenshot: the charts are drawn (their colours cover many pixels)
    (w, h, px), console = screenshot(run / "report.html", tmp_path)
    assert console == []
    assert count_near(px, (0x1f, 0x77, 0xb4)) > 400, "train loss line"
    assert count_near(px, (0xff, 0x7f, 0x0e)) > 150, "validation loss line and markers"
    assert count_near(px, (0x2c, 0xa0, 0x2c)) > 400, "learning-rate line"
    assert count_near(px, (0x08, 0x30, 0x6b), tol=12) > 2000, "the largest confusion-matrix cells"
    assert len({c for row in px for c in row}) > 200


def synthetic_history(n):
    """A long run: n logged steps with NaN/inf losses, constant lr, throughput, one eval point."""
    rng = random.Random(7)
    hist = []
    for s in range(1, n + 1):
        loss = 3.0 * math.exp(-s / 900) + 0.3 * rng.random()
        if s % 997 == 0:
            loss = float("nan")
        if s == 1234:
            loss = float("inf")
        hist.append({"loss": loss, "grad_norm": 1.0, "learning_rate": 2e-4, "epoch": s / n,
                     "tokens_per_second": 1000 + 50 * math.sin(s / 100), "step": s})
    hist.append({"eval_loss": 1.25, "eval_perplexity": math.exp(1.25), "epoch": 1.0, "step": n})
    return hist


def test_edge_cases_render(tmp_path):
    n = 5000
    run = tmp_path / "long"
    run.mkdir()
    hist = synthetic_history(n)
    # Python's json writes NaN / Infinity tokens (as transformers' trainer_state.json may hold them)
    (run / "trainer_state.json").write_text(json.dumps({"global_step": n, "max_steps": n, "epoch": 1.0,
                                                        "log_history": hist}))
    assert "NaN" in (run / "trainer_state.json").read_text()
    p = lmtune("report", run)
    assert p.stderr == ""
    html = (run / "report.html").read_text()
    check_html(html)
    assert not re.search(r'="[^"]*(nan|inf)[^"]*"', html, re.I)
    loss = svg_series(ET.parse(run / "loss.svg").getroot())
    tr_pts, tr_circles = loss["train loss"]
    finite = [(e["step"], e["loss"]) for e in hist if "loss" in e and math.isfinite(e["loss"])]
    assert len(finite) == n - 6
    assert 100 < len(tr_pts) <= 2 * 560 and not tr_circles  # min/max per pixel column
    ys = [y for _, y in tr_pts]
    vals = [v for _, v in finite]
    # the extremes survive the decimation: the highest and lowest loss are the top and bottom pixels
    hi = next(e for e in finite if e[1] == max(vals))
    lo = next(e for e in finite if e[1] == min(vals))
    assert_affine([min(ys), max(ys)], [max(vals), min(vals)])
    xs = [x for x, _ in tr_pts]
    assert xs == sorted(xs)
    assert any(abs(x - xs[0] - (hi[0] - 1) / (n - 1) * (xs[-1] - xs[0])) < 0.6 for x in xs)
    assert any(abs(x - xs[0] - (lo[0] - 1) / (n - 1) * (xs[-1] - xs[0])) < 0.6 for x in xs)
    ev_pts, ev_circles = loss["validation loss"]
    assert ev_pts == [] and len(ev_circles) == 1  # one point: a marker
    lr_pts, _ = svg_series(ET.parse(run / "lr.svg").getroot())["learning rate"]
    assert len({y for _, y in lr_pts}) == 1  # constant series: one flat line
    lr_ticks = [t.text for t in ET.parse(run / "lr.svg").getroot().iter(f"{{{SVG_NS}}}text")]
    assert "2e-4" in " ".join(lr_ticks) or "0.0002" in lr_ticks, lr_ticks
    assert (run / "throughput.svg").exists()
    assert "Tokens/s" in html and "mean of 5000 logged values" in html

    dom, console = dump_dom(run / "report.html", tmp_path)
    assert console == [], console
    assert len(re.findall(r"<svg\b", dom)) == 3
    (w, h, px), console = screenshot(run / "report.html", tmp_path, height=1400)
    assert console == []
    assert count_near(px, (0x1f, 0x77, 0xb4)) > 1000 and count_near(px, (0x94, 0x67, 0xbd)) > 400


def test_partial_run_dirs(tmp_path):
    # only eval results: an evaluation report without training sections
    ev = tmp_path / "eval_only"
    ev.mkdir()
    write_json(ev / "eval_results.json", {"task": "ppl", "dataset": "d.jsonl", "model": "m", "n_examples": 3,
                                          "seconds": 0.5, "runs": [{"name": "base", "adapter": None, "metrics": {
                                              "loss": 2.5, "perplexity": 12.182493960703473, "n_tokens": 1234}}]})
    p = lmtune("report", ev, "--out", tmp_path / "ev.html")
    html = (tmp_path / "ev.html").read_text()
    check_html(html)
    assert "Evaluation report" in html and 'id="summary"' not in html and "<svg" not in html
    assert ">12.18<" in html and ">1234<" in html and ">m<" in html
    assert not (ev / "report.html").exists() and p.stdout.split() == [str(tmp_path / "ev.html")]
    # only metrics.jsonl (a run interrupted before its first checkpoint), one line broken
    ml = tmp_path / "jsonl_only"
    ml.mkdir()
    lines = [json.dumps({"loss": 2.0 - 0.1 * s, "learning_rate": 1e-3, "epoch": s / 4, "step": s}) for s in (1, 2, 3)]
    (ml / "metrics.jsonl").write_text(lines[0] + "\n{broken\n" + lines[1] + "\n" + lines[2] + "\n")
    p = lmtune("report", ml)
    assert "metrics.jsonl: 1 line is not a JSON object (first: line 2)" in p.stderr
    html = (ml / "report.html").read_text()
    check_html(html)
    assert "metrics.jsonl: 1 line is not a JSON object" in html
    pts, _ = svg_series(ET.parse(ml / "loss.svg").getroot())["train loss"]
    assert len(pts) == 3
    # a corrupt trainer_state.json falls back to metrics.jsonl and says so
    (ml / "trainer_state.json").write_text('{"global_step": 3,\n "log_history": [\n{"loss": }]}')
    p = lmtune("report", ml)
    assert "trainer_state.json: not valid JSON (line 3); skipped" in p.stderr
    # a malformed confusion matrix: a warning naming the field, the tables still there
    bad = json.loads(json.dumps(CLASSIFY))
    bad["runs"][1]["metrics"]["confusion_matrix"]["matrix"][1] = [1, "x"]
    write_json(ev / "eval_results.json", bad)
    p = lmtune("report", ev)
    assert "eval_results.json: runs[1].metrics.confusion_matrix: matrix[1][1] is not a number; no heat map" in p.stderr
    assert p.stdout.split()[1:] == [f"{ev}/confusion_matrix.svg"]


def test_errors(tmp_path):
    p = lmtune("report", tmp_path / "missing", check=False)
    assert p.returncode == 1 and "missing: cannot open: No such file or directory" in p.stderr
    f = tmp_path / "file"
    f.write_text("x")
    p = lmtune("report", f, check=False)
    assert p.returncode == 1 and "not a directory" in p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    p = lmtune("report", empty, check=False)
    assert p.returncode == 1 and "nothing to report" in p.stderr and "lmtune train" in p.stderr
    assert not (empty / "report.html").exists()
    (empty / "all_results.json").write_text("[1, 2")
    p = lmtune("report", empty, check=False)
    assert p.returncode == 1 and "all_results.json: not valid JSON (line 1)" in p.stderr
    for args in ([], ["--bogus", empty], [empty, empty]):
        p = lmtune("report", *args, check=False)
        assert p.returncode == 2, args
    p = lmtune("report", "--help")
    assert "usage: lmtune report RUN_DIR" in p.stdout
