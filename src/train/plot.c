// training_loss.svg: the logged training loss over optimizer steps (and eval_loss points), as LLaMA-Factory's
// plot_loss draws training_loss.png. Plain SVG 1.1, no external resources.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "train/trainer.h"

typedef struct { double *x, *y; int n, cap; } series;

static int push(series *s, double x, double y) {
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    double *nx = realloc(s->x, sizeof(double) * (size_t)cap);
    if (!nx) return -1;
    s->x = nx;
    double *ny = realloc(s->y, sizeof(double) * (size_t)cap);
    if (!ny) return -1;
    s->y = ny;
    s->cap = cap;
  }
  s->x[s->n] = x;
  s->y[s->n++] = y;
  return 0;
}

// A "nice" tick step for a range.
static double tick_step(double range, int want) {
  double raw = range / want, p = pow(10, floor(log10(raw))), f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

int lt_plot_loss_svg(const cJSON *log_history, const char *path, const char *title, lt_err *err) {
  series tr = {0}, ev = {0};
  const cJSON *e;
  int oom = 0;
  cJSON_ArrayForEach(e, log_history) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "step");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(e, "loss");
    const cJSON *el = cJSON_GetObjectItemCaseSensitive(e, "eval_loss");
    if (!cJSON_IsNumber(st)) continue;
    if (cJSON_IsNumber(l) && isfinite(l->valuedouble)) oom |= push(&tr, st->valuedouble, l->valuedouble);
    if (cJSON_IsNumber(el) && isfinite(el->valuedouble)) oom |= push(&ev, st->valuedouble, el->valuedouble);
  }
  int rc = -1;
  lt_atomic_file af;
  if (oom) {
    lt_errf(err, "%s: out of memory", path);
    goto done;
  }
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  series *all[2] = {&tr, &ev};
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < all[k]->n; i++) {
      x0 = fmin(x0, all[k]->x[i]), x1 = fmax(x1, all[k]->x[i]);
      y0 = fmin(y0, all[k]->y[i]), y1 = fmax(y1, all[k]->y[i]);
    }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 - x0 < 1) x1 = x0 + 1;
  if (y1 - y0 < 1e-9) y0 -= 0.5, y1 += 0.5;
  double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  const double W = 800, H = 500, L = 70, R = 20, T = 40, B = 50, pw = W - L - R, ph = H - T - B;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * pw)
#define PY(y) (T + (1 - ((y) - y0) / (y1 - y0)) * ph)
  if (lt_atomic_open(&af, path, err)) goto done;
  FILE *f = af.fp;
  fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
          "height=\"%g\" viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
  fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  fprintf(f, "<text x=\"%g\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">", W / 2);
  for (const char *p = title ? title : "training loss"; *p; p++) {  // escape XML
    if (*p == '<') fputs("&lt;", f);
    else if (*p == '>') fputs("&gt;", f);
    else if (*p == '&') fputs("&amp;", f);
    else fputc(*p, f);
  }
  fprintf(f, "</text>\n");
  double xs = tick_step(x1 - x0, 8), ys = tick_step(y1 - y0, 6);
  for (double t = ceil(x0 / xs) * xs; t <= x1 + 1e-9; t += xs)
    fprintf(f, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%g\" "
            "text-anchor=\"middle\">%g</text>\n", PX(t), T, PX(t), T + ph, PX(t), T + ph + 16, t);
  for (double t = ceil(y0 / ys) * ys; t <= y1 + 1e-12; t += ys)
    fprintf(f, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%g\" y=\"%.1f\" "
            "text-anchor=\"end\">%.4g</text>\n", L, PY(t), L + pw, PY(t), L - 6, PY(t) + 4, t);
  fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n", L, T, pw, ph);
  fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">step</text>\n", L + pw / 2, H - 10);
  fprintf(f, "<text x=\"16\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 16 %g)\">loss</text>\n",
          T + ph / 2, T + ph / 2);
  if (tr.n) {
    fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
    for (int i = 0; i < tr.n; i++) fprintf(f, "%.1f,%.1f ", PX(tr.x[i]), PY(tr.y[i]));
    fprintf(f, "\"/>\n");
  }
  for (int i = 0; i < ev.n; i++)
    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#ff7f0e\"/>\n", PX(ev.x[i]), PY(ev.y[i]));
  fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"%g\" "
          "y=\"%g\">train loss</text>\n", L + pw - 150, T + 14, L + pw - 130, T + 14, L + pw - 125, T + 18);
  if (ev.n)
    fprintf(f, "<circle cx=\"%g\" cy=\"%g\" r=\"3.5\" fill=\"#ff7f0e\"/><text x=\"%g\" y=\"%g\">eval loss</text>\n",
            L + pw - 140, T + 32, L + pw - 125, T + 36);
  fprintf(f, "</svg>\n");
#undef PX
#undef PY
  rc = lt_atomic_commit(&af, err);
done:
  free(tr.x), free(tr.y), free(ev.x), free(ev.y);
  return rc;
}
