// lmtune report at the C level: escaping (markup, invalid UTF-8, control characters, truncation), number and tick
// formatting, line charts (one point, constant, all-NaN, huge values, 100,000 points), heat maps, training_loss.svg,
// and lt_report_write on crafted run directories: error paths, warnings for bad files, NaN tokens, escaping.
#include <cjson/cJSON.h>
#include <ctype.h>
#include <sys/stat.h>

#include "core/core.h"
#include "report/report.h"
#include "report/svgchart.h"
#include "test.h"
#include "train/trainer.h"

#define TMP LT_TMPDIR "/report"

static void write_text(const char *dir, const char *name, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  if (!f) {
    CHECK_MSG(0, "cannot write %s", p);
    return;
  }
  fputs(text, f);
  fclose(f);
}

static char *slurp(const char *dir, const char *name) {
  char p[1024], *d = NULL;
  size_t n;
  lt_err e;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (lt_read_file(p, &d, &n, &e)) return NULL;
  return d;
}

static void fresh_dir(const char *dir) {
  lt_err e;
  lt_remove_tree(dir, &e);
  CHECK(lt_mkdirs(dir, &e) == 0);
}

static int count(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = s ? strstr(s, needle) : NULL; p; p = strstr(p + 1, needle)) n++;
  return n;
}

// Any "nan"/"inf" (any case) inside an attribute value.
static int bad_number_attr(const char *s) {
  for (const char *p = s; (p = strchr(p, '"')) != NULL;) {
    const char *q = strchr(p + 1, '"');
    if (!q) break;
    for (const char *c = p + 1; c + 3 <= q; c++)
      if ((tolower(c[0]) == 'n' && tolower(c[1]) == 'a' && tolower(c[2]) == 'n') ||
          (tolower(c[0]) == 'i' && tolower(c[1]) == 'n' && tolower(c[2]) == 'f'))
        return 1;
    p = q + 1;
  }
  return 0;
}

// lt_sbuf_escape(s, max_chars) == want
static int escapes_to(const char *s, size_t max_chars, const char *want) {
  lt_sbuf b = {0};
  lt_sbuf_escape(&b, s, max_chars);
  int same = !b.oom && strcmp(b.p ? b.p : "", want) == 0;
  if (!same) fprintf(stderr, "escape(\"%s\") = \"%s\"\n", s ? s : "(null)", b.p ? b.p : "");
  lt_sbuf_free(&b);
  return same;
}

static void test_escape(void) {
  CHECK(escapes_to("a<b>&\"'", 0, "a&lt;b&gt;&amp;&quot;&#39;"));
  CHECK(escapes_to("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\ttab\nnl", 0,
                   "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\ttab\nnl"));
  CHECK(escapes_to("\xff x \xc3", 0, "\xef\xbf\xbd x \xef\xbf\xbd"));                      // invalid, truncated
  CHECK(escapes_to("\x01\x7f", 0, "\xef\xbf\xbd\xef\xbf\xbd"));                           // C0, DEL
  CHECK(escapes_to("\xc2\x85|\xef\xb7\x90|\xef\xbf\xbe", 0,                                // C1, non-characters
                   "\xef\xbf\xbd|\xef\xbf\xbd|\xef\xbf\xbd"));
  CHECK(escapes_to("\xed\xa0\x80", 0, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));            // a surrogate
  CHECK(escapes_to("\xc0\xaf", 0, "\xef\xbf\xbd\xef\xbf\xbd"));                           // overlong '/'
  CHECK(escapes_to("\xf4\x90\x80\x80", 0, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));  // > U+10FFFF
  CHECK(escapes_to("abcdef", 3, "abc\xe2\x80\xa6"));
  CHECK(escapes_to("\xc3\xa9\xc3\xa9\xc3\xa9", 2, "\xc3\xa9\xc3\xa9\xe2\x80\xa6"));
  CHECK(escapes_to("abc", 3, "abc"));
  CHECK(escapes_to(NULL, 0, ""));
}

static void test_fmt(void) {
  static const struct { double v; const char *want; } cases[] = {
      {0.9133333333, "0.9133"}, {600, "600"}, {12345.6, "12346"}, {2.5e-05, "2.5e-05"}, {-0.125, "-0.125"},
      {0, "0"}, {-0.0, "0"}, {1e20, "1e+20"}, {540.84012, "540.8"}, {NAN, "NaN"}, {INFINITY, "inf"},
      {-INFINITY, "-inf"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char t[64];
    lt_svg_fmt_num(t, sizeof t, cases[i].v, 4);
    CHECK_MSG(strcmp(t, cases[i].want) == 0, "%.17g -> %s (want %s)", cases[i].v, t, cases[i].want);
  }
}

static char *chart(const double *x, const double *y, int n, int style, const char *name) {
  lt_svg_series s = {name, x, y, n, "#1f77b4", style};
  lt_svg_chart c = {"t", "step", "v", 0, 0, 1, &s, 1};
  lt_sbuf b = {0};
  lt_svg_line_chart(&b, &c, 1);
  CHECK(!b.oom);
  return b.p;
}

// The points of the first polyline (count; ys[] gets up to cap y pixels).
static int poly_points(const char *svg, double *ys, int cap) {
  const char *p = strstr(svg, "<polyline");
  if (!p) return 0;
  p = strstr(p, "points=\"");
  if (!p) return 0;
  p += 8;
  int n = 0;
  while (*p && *p != '"') {
    double x, y;
    int used;
    if (sscanf(p, "%lf,%lf%n", &x, &y, &used) != 2) break;
    if (n < cap) ys[n] = y;
    n++;
    p += used;
    while (*p == ' ') p++;
  }
  return n;
}

static void test_line_chart(void) {
  double x1[] = {5}, y1[] = {2};
  char *s = chart(x1, y1, 1, LT_SVG_LINE, "one");
  static const char head[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"";
  CHECK(s && strncmp(s, head, sizeof head - 1) == 0);
  CHECK(s && !strstr(s, "<polyline") && count(s, "<circle") == 1 && !bad_number_attr(s));
  CHECK(s && strstr(s, ">5<"));  // the step tick under the single point
  free(s);

  double x[100], y[100];
  for (int i = 0; i < 100; i++) x[i] = i + 1, y[i] = 0.5;
  s = chart(x, y, 100, LT_SVG_LINE, "flat");
  double ys[128];
  CHECK(s && poly_points(s, ys, 128) == 100);
  int same = 1;
  for (int i = 1; i < 100; i++) same &= ys[i] == ys[0];
  CHECK(same);
  CHECK(s && strstr(s, ">0.50<") && strstr(s, ">0.48<") && !bad_number_attr(s));
  free(s);

  for (int i = 0; i < 10; i++) x[i] = i + 1, y[i] = i / 9.0;
  s = chart(x, y, 10, LT_SVG_LINE, "a<b");
  CHECK(s && strstr(s, ">0.2<") && strstr(s, ">1.0<") && strstr(s, ">10<") && strstr(s, ">1<"));
  CHECK(s && strstr(s, "aria-label=\"a&lt;b\"") && strstr(s, ">a&lt;b</text>") && !strstr(s, "a<b"));
  CHECK(s && poly_points(s, ys, 128) == 10 && ys[0] > ys[9]);  // larger values higher up
  free(s);

  for (int i = 0; i < 5; i++) x[i] = i + 1, y[i] = NAN;
  s = chart(x, y, 5, LT_SVG_LINE | LT_SVG_MARKERS, "none");
  CHECK(s && strstr(s, "no finite values") && !strstr(s, "<polyline"));
  CHECK(s && count(s, "<circle") == 1 && !bad_number_attr(s));  // the legend marker only
  free(s);

  double xe[] = {1, 2, 3, 4, 5, 6}, ye[] = {1e308, -1e308, INFINITY, NAN, 1, -INFINITY};
  s = chart(xe, ye, 6, LT_SVG_LINE | LT_SVG_MARKERS, "huge");
  CHECK(s && poly_points(s, ys, 128) == 3 && count(s, "<circle") == 4 && !bad_number_attr(s));
  free(s);

  int n = 100000;
  double *bx = malloc(sizeof(double) * (size_t)n), *by = malloc(sizeof(double) * (size_t)n);
  double *bys = malloc(sizeof(double) * 4096);
  if (!bx || !by || !bys) {
    CHECK(0);
    return;
  }
  for (int i = 0; i < n; i++) bx[i] = i + 1, by[i] = 0.5 + 0.5 * sin(i * 0.001);
  by[54321] = 100;  // a spike between the pixel columns must survive the decimation
  by[777] = NAN;
  s = chart(bx, by, n, LT_SVG_LINE, "long");
  int m = s ? poly_points(s, bys, 4096) : 0;
  CHECK_MSG(m > 500 && m <= 2 * 560 + 2, "%d points", m);
  double top = 1e9;
  for (int i = 0; i < m && i < 4096; i++) top = fmin(top, bys[i]);
  CHECK_MSG(top < 80, "the spike is drawn at y %g", top);
  CHECK(s && !bad_number_attr(s));
  free(s);
  free(bx), free(by), free(bys);
}

static void test_heatmap(void) {
  const char *labels[] = {"ham", "sp<am"};
  double v[] = {3, 1, NAN, 5};
  lt_svg_heatmap h = {"cm & co", "predicted", "gold", 2, labels, v};
  lt_sbuf b = {0};
  lt_svg_heatmap_draw(&b, &h, 0);
  CHECK(!b.oom && b.p && strncmp(b.p, "<svg ", 5) == 0);
  CHECK(count(b.p, "class=\"cell\"") == 4 && count(b.p, "fill=\"#bbbbbb\"") == 1);
  CHECK(strstr(b.p, ">3</text>") && strstr(b.p, ">1</text>") && strstr(b.p, ">5</text>"));
  CHECK(strstr(b.p, "fill=\"#08306b\"") && strstr(b.p, "sp&lt;am") && !strstr(b.p, "sp<am"));
  CHECK(strstr(b.p, "cm &amp; co") && strstr(b.p, "ham \xe2\x86\x92 sp&lt;am: 1</title>"));
  lt_sbuf_free(&b);
}

static void test_plot_loss(void) {
  const char *dir = TMP "/plot";
  fresh_dir(dir);
  cJSON *hist = cJSON_Parse("[{\"loss\": 2.0, \"step\": 1}, {\"loss\": 1.5, \"step\": 2},"
                            " {\"loss\": null, \"step\": 3},"
                            " {\"eval_loss\": 1.7, \"step\": 3}, {\"loss\": 1.0, \"step\": 4}, {\"train_loss\": 1}]");
  lt_err err;
  CHECK(lt_plot_loss_svg(hist, TMP "/plot/training_loss.svg", "t<1>", &err) == 0);
  char *s = slurp(dir, "training_loss.svg");
  double ys[16];
  CHECK(s && strncmp(s, "<?xml", 5) == 0 && strstr(s, ">t&lt;1&gt;</text>") && poly_points(s, ys, 16) == 3);
  CHECK(s && strstr(s, "aria-label=\"validation loss\"") && ys[0] < ys[2]);
  free(s);
  CHECK(lt_plot_loss_svg(hist, TMP "/plot/no/such/dir/x.svg", NULL, &err) == -1);
  CHECK_MSG(strstr(err.msg, "no/such/dir/x.svg") != NULL, "%s", err.msg);
  cJSON_Delete(hist);
}

static void test_errors(void) {
  lt_err err;
  CHECK(lt_report_write(TMP "/does-not-exist", NULL, &err) == -1);
  CHECK_MSG(strstr(err.msg, "does-not-exist: cannot open") != NULL, "%s", err.msg);
  const char *dir = TMP "/err";
  fresh_dir(dir);
  write_text(dir, "file", "x");
  CHECK(lt_report_write(TMP "/err/file", NULL, &err) == -1 && strstr(err.msg, "not a directory"));
  CHECK(lt_report_write(dir, NULL, &err) == -1);
  CHECK_MSG(strstr(err.msg, "nothing to report") && strstr(err.msg, "trainer_state.json"), "%s", err.msg);
  write_text(dir, "trainer_state.json", "{\"global_step\": 3,\n \"log_history\": [}\n");
  CHECK(lt_report_write(dir, NULL, &err) == -1);
  CHECK_MSG(strstr(err.msg, "trainer_state.json: not valid JSON (line 2)") != NULL, "%s", err.msg);
  char *html = slurp(dir, "report.html");
  CHECK(html == NULL);  // nothing written on failure
  free(html);
  write_text(dir, "trainer_state.json", "{\"global_step\": 1, \"log_history\": [{\"loss\": 1, \"step\": 1}]}");
  CHECK(lt_report_write(dir, TMP "/err/no/such/dir/r.html", &err) == -1);
  CHECK_MSG(strstr(err.msg, "r.html") != NULL, "%s", err.msg);
}

static void test_report(void) {
  const char *dir = TMP "/run";
  fresh_dir(dir);
  // Python-style NaN / Infinity tokens, a null loss, a string where a number belongs
  write_text(dir, "trainer_state.json",
             "{\"global_step\": 6, \"max_steps\": 6, \"epoch\": 2.0, \"num_train_epochs\": 2,\n"
             " \"num_input_tokens_seen\": 1200, \"best_model_checkpoint\": \"out/<best>\", \"log_history\": [\n"
             "  {\"loss\": 2.5, \"learning_rate\": 1e-3, \"step\": 1},\n"
             "  {\"loss\": NaN, \"learning_rate\": 8e-4, \"step\": 2},\n"
             "  {\"loss\": 2.0, \"learning_rate\": 6e-4, \"step\": 3}, {\"eval_loss\": 2.1, \"step\": 3},\n"
             "  {\"loss\": Infinity, \"learning_rate\": \"x\", \"step\": 4}, {\"loss\": null, \"step\": 5},\n"
             "  {\"loss\": 1.5, \"learning_rate\": -Infinity, \"step\": 6}, {\"eval_loss\": 1.9, \"step\": 6},\n"
             "  {\"train_runtime\": 3725.5, \"train_loss\": 2.0, \"step\": 6}, 7, {\"loss\": 9, \"step\": \"7\"}]}\n");
  write_text(dir, "training_args.yaml",
             "model_name_or_path: \"m&<model>\"\nfinetuning_type: lora\nlora_rank: 8\nlora_alpha: 16\n"
             "lora_target: \"q_proj,v_proj\"\ndataset: \"d.jsonl\"\nlearning_rate: 0.001\nwarmup_steps: 2\n");
  write_text(dir, "eval_results_b.json",
             "{\"task\": \"<script>x</script>\", \"dataset\": \"a&b\", \"runs\": [\n"
             " {\"name\": \"base\", \"adapter\": null, \"metrics\": {\"accuracy\": 0.5, \"confusion_matrix\":\n"
             "   {\"labels\": [\"x\", \"y\"], \"matrix\": [[1, 2], [3, 4]]}}},\n"
             " {\"name\": \"tuned\", \"adapter\": \"o\", \"metrics\": {\"accuracy\": 0.75, \"confusion_matrix\":\n"
             "   {\"labels\": [\"x\", \"y\"], \"matrix\": [[1, 2]]}}}, 5]}\n");
  write_text(dir, "eval_results_a.json", "{\"runs\": 3}");
  lt_report_info info;
  lt_err err;
  int rc = lt_report_write_info(dir, NULL, &info, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  CHECK(strcmp(info.html, TMP "/run/report.html") == 0);
  CHECK_MSG(info.n_warnings == 3, "%s", info.warnings);
  CHECK(strstr(info.warnings, "eval_results_a.json: \"runs\" is not an array; skipped\n"));
  CHECK(strstr(info.warnings, "eval_results_b.json: runs[1].metrics.confusion_matrix: \"matrix\" has 1 rows for 2 "
                              "labels; no heat map\n"));
  CHECK(strstr(info.warnings, "eval_results_b.json: runs[2]: not an object with a \"metrics\" object; skipped\n"));
  CHECK(info.n_figures == 3 && strcmp(info.figures[0], "loss.svg") == 0 && strcmp(info.figures[1], "lr.svg") == 0 &&
        strcmp(info.figures[2], "confusion_matrix.svg") == 0);
  char *html = slurp(dir, "report.html"), *loss = slurp(dir, "loss.svg"), *lr = slurp(dir, "lr.svg");
  CHECK(html && loss && lr);
  if (!html || !loss || !lr) return;
  CHECK(strncmp(html, "<!DOCTYPE html>\n<html lang=\"en\">", 31) == 0 && strstr(html, "</html>\n"));
  CHECK(!strstr(html, "<script") && strstr(html, "&lt;script&gt;x&lt;/script&gt;"));
  CHECK(strstr(html, "<td>m&amp;&lt;model&gt;</td>") && strstr(html, "<td>out/&lt;best&gt;</td>"));
  CHECK(strstr(html, "r = 8, alpha = 16, dropout = 0, targets: q_proj,v_proj"));
  CHECK(strstr(html, "0.001, linear schedule, 2 warmup steps, AdamW"));
  CHECK(strstr(html, "<td>1 h 02 min</td>") && strstr(html, "<td>6 of 6</td>") && strstr(html, "<td>2.00 of 2</td>"));
  CHECK(strstr(html, "<td>1.5000</td>") && strstr(html, "<td>1.9000 (step 6)</td>"));  // last train, best eval
  CHECK(strstr(html, "0.3221 (input tokens seen / runtime)"));                         // 1200 / 3725.5
  CHECK(strstr(html, "<td class=\"num\">0.5</td><td class=\"num\">0.75</td><td class=\"num delta\">+0.25</td>"));
  CHECK(strstr(html, "Warnings") && strstr(html, "runs[1].metrics.confusion_matrix"));
  CHECK(!bad_number_attr(html) && !bad_number_attr(loss) && !bad_number_attr(lr));
  CHECK(count(html, "<svg ") == 3 && count(html, "<?xml") == 0);
  double ys[16];
  CHECK(poly_points(loss, ys, 16) == 3 && ys[0] < ys[1] && ys[1] < ys[2]);   // 2.5, 2.0, 1.5 (NaN/inf/null out)
  CHECK(count(loss, "<circle") == 1 + 2);                                   // legend + two eval points
  CHECK(poly_points(lr, ys, 16) == 3);
  // the same page's SVG as the file (minus the XML declaration)
  const char *body = strchr(loss, '\n') + 1;
  CHECK(strstr(html, body) != NULL);
  free(html), free(loss), free(lr);

  // --out elsewhere; metrics.jsonl when trainer_state.json has no log_history
  write_text(dir, "trainer_state.json", "{\"global_step\": 2}");
  write_text(dir, "metrics.jsonl", "{\"loss\": 1, \"step\": 1}\n\n[1]\n{\"loss\": 0.5, \"step\": 2}\n");
  rc = lt_report_write_info(dir, TMP "/other.html", &info, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  CHECK(strcmp(info.html, TMP "/other.html") == 0);
  CHECK(strstr(info.warnings, "trainer_state.json: \"log_history\" is missing or not an array"));
  CHECK(strstr(info.warnings, "metrics.jsonl: 1 line is not a JSON object (first: line 3); skipped"));
  loss = slurp(dir, "loss.svg");
  CHECK(loss && poly_points(loss, ys, 16) == 2);
  free(loss);
  // a training_args.yaml lmtune cannot read: a warning, the rest still shown
  write_text(dir, "training_args.yaml", "lora_rnk: 8\n");
  rc = lt_report_write_info(dir, NULL, &info, &err);
  CHECK_MSG(rc == 0 && strstr(info.warnings, "training_args.yaml: ") && strstr(info.warnings, "lora_rank"), "%s",
            rc ? err.msg : info.warnings);
}

int main(void) {
  lt_err err;
  CHECK(lt_mkdirs(TMP, &err) == 0);
  test_escape();
  test_fmt();
  test_line_chart();
  test_heatmap();
  test_plot_loss();
  test_errors();
  test_report();
  TEST_MAIN_END();
}
