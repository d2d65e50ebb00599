// SVG figures: text buffer + escaping, line charts with nice ticks and a legend, confusion-matrix heat maps.
#include "report/svgchart.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// One UTF-8 sequence at p (NUL-terminated): its length, or 0 when invalid (overlong, surrogate, > U+10FFFF,
// truncated). Never reads past the terminating NUL (a NUL is not a continuation byte).
static int utf8_next(const unsigned char *p, uint32_t *cp) {
  unsigned c = p[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  int len;
  uint32_t v, min;
  if ((c & 0xE0) == 0xC0) len = 2, v = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) len = 3, v = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) len = 4, v = c & 0x07, min = 0x10000;
  else return 0;
  for (int i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

void lt_sbuf_escape(lt_sbuf *b, const char *s, size_t max_chars) {
  static const char repl[] = "\xEF\xBF\xBD";  // U+FFFD
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  size_t chars = 0;
  while (*p) {
    if (max_chars && chars == max_chars) {
      lt_sbuf_puts(b, "\xE2\x80\xA6");  // U+2026
      return;
    }
    uint32_t cp = 0;
    int len = utf8_next(p, &cp);
    chars++;
    if (len == 0) {
      lt_sbuf_puts(b, repl);
      p++;
      continue;
    }
    int bad = (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || (cp >= 0x7F && cp <= 0x9F) ||
              (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
    if (bad) lt_sbuf_puts(b, repl);
    else if (cp == '&') lt_sbuf_puts(b, "&amp;");
    else if (cp == '<') lt_sbuf_puts(b, "&lt;");
    else if (cp == '>') lt_sbuf_puts(b, "&gt;");
    else if (cp == '"') lt_sbuf_puts(b, "&quot;");
    else if (cp == '\'') lt_sbuf_puts(b, "&#39;");
    else lt_sbuf_put(b, (const char *)p, (size_t)len);
    p += len;
  }
}

// ---- numbers ----

void lt_svg_fmt_num(char *out, size_t cap, double v, int sig) {
  if (isnan(v)) snprintf(out, cap, "NaN");
  else if (isinf(v)) snprintf(out, cap, v > 0 ? "inf" : "-inf");
  else if (v == 0) snprintf(out, cap, "0");
  else if ((v == floor(v) || fabs(v) >= pow(10, sig)) && fabs(v) < 1e15) snprintf(out, cap, "%.0f", v);
  else snprintf(out, cap, "%.*g", sig, v);
}

// "5.0e-05" -> "5.0e-5", "1.5e+06" -> "1.5e6"
static void tidy_exponent(char *s) {
  char *e = strchr(s, 'e');
  if (!e) return;
  char *w = e + 1, *r = e + 1;
  if (*r == '+') r++;
  else if (*r == '-') *w++ = *r++;
  while (*r == '0' && r[1]) r++;
  memmove(w, r, strlen(r) + 1);
}

// A tick label: as many decimals as the tick step needs; exponent form for very large or small magnitudes.
static void tick_label(char *out, size_t cap, double v, double step) {
  if (fabs(v) < step * 1e-6) v = 0;
  int e = (int)floor(log10(step) + 1e-9);
  if (fmax(fabs(v), step) < 1e6 && step >= 1e-4) {
    snprintf(out, cap, "%.*f", e < 0 ? -e : 0, v);
  } else if (v == 0) {
    snprintf(out, cap, "0");
  } else {
    int digits = (int)floor(log10(fabs(v))) - e;
    snprintf(out, cap, "%.*e", digits < 0 ? 0 : digits > 15 ? 15 : digits, v);
    tidy_exponent(out);
  }
}

// A "nice" step (1, 2 or 5 times a power of ten) giving about `want` intervals over range (> 0).
static double nice_step(double range, int want) {
  double raw = range / want, p = pow(10, floor(log10(raw))), f = raw / p;
  if (!(p > 0) || !isfinite(f)) return range / want;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static double clamp_big(double v) { return v > 1e300 ? 1e300 : v < -1e300 ? -1e300 : v; }

// Widen [lo, hi] when it is empty or degenerate (a constant series, a single point).
static void widen(double *lo, double *hi, int integer) {
  double mid = 0.5 * (*lo + *hi), span = *hi - *lo;
  if (span > 1e-12 * fmax(fabs(*lo), fabs(*hi)) && span > 1e-200) return;
  double pad = integer ? 1 : fabs(mid) > 1e-200 ? 0.1 * fabs(mid) : 1;
  *lo = mid - pad;
  *hi = mid + pad;
}

static double text_width(const char *s, double px_per_char) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
  return (double)n * px_per_char;
}

// ---- line chart ----

typedef struct { double x0, x1, y0, y1, L, T, pw, ph; } frame;

static double px_of(const frame *f, double x) { return f->L + (clamp_big(x) - f->x0) / (f->x1 - f->x0) * f->pw; }
static double py_of(const frame *f, double y) { return f->T + (1 - (clamp_big(y) - f->y0) / (f->y1 - f->y0)) * f->ph; }

// Indices of the points of s to draw (finite, decimated to about LT_SVG_MAX_POINTS). Returns the count, or -1
// when out of memory.
static int pick_points(const lt_svg_series *s, const frame *f, int **out) {
  *out = NULL;
  if (s->n <= 0) return 0;
  int *idx = malloc(sizeof(int) * (size_t)s->n);
  if (!idx) return -1;
  int m = 0;
  for (int i = 0; i < s->n; i++)
    if (isfinite(s->x[i]) && isfinite(s->y[i])) idx[m++] = i;
  if (m > LT_SVG_MAX_POINTS) {  // per pixel column: the lowest and the highest point, in order
    int k = 0, c0 = -1, lo = -1, hi = -1;
    for (int j = 0; j <= m; j++) {
      int i = j < m ? idx[j] : -1, c = j < m ? (int)floor(px_of(f, s->x[i]) - f->L) : -2;
      if (c != c0 && lo >= 0) {
        int a = lo < hi ? lo : hi, b = lo < hi ? hi : lo;
        idx[k++] = a;
        if (b != a) idx[k++] = b;
        lo = hi = -1;
      }
      if (j == m) break;
      c0 = c;
      if (lo < 0 || s->y[i] < s->y[lo]) lo = i;
      if (hi < 0 || s->y[i] > s->y[hi]) hi = i;
    }
    m = k;
    if (m > 2 * LT_SVG_MAX_POINTS) {  // x not in order: an even thinning keeps the size bounded
      int stride = (m + LT_SVG_MAX_POINTS - 1) / LT_SVG_MAX_POINTS, k2 = 0;
      for (int j = 0; j < m; j += stride) idx[k2++] = idx[j];
      m = k2;
    }
  }
  *out = idx;
  return m;
}

void lt_svg_line_chart(lt_sbuf *b, const lt_svg_chart *c, int standalone) {
  double W = c->width > 0 ? c->width : 560, H = c->height > 0 ? c->height : 340;
  frame f = {INFINITY, -INFINITY, INFINITY, -INFINITY, 0, 56, 0, 0};
  int any = 0;
  for (int k = 0; k < c->n_series; k++) {
    const lt_svg_series *s = &c->series[k];
    for (int i = 0; i < s->n; i++) {
      if (!isfinite(s->x[i]) || !isfinite(s->y[i])) continue;
      double x = clamp_big(s->x[i]), y = clamp_big(s->y[i]);
      f.x0 = fmin(f.x0, x), f.x1 = fmax(f.x1, x), f.y0 = fmin(f.y0, y), f.y1 = fmax(f.y1, y);
      any = 1;
    }
  }
  if (!any) f.x0 = 0, f.x1 = 1, f.y0 = 0, f.y1 = 1;
  widen(&f.x0, &f.x1, c->integer_x);
  widen(&f.y0, &f.y1, 0);
  double ypad = 0.05 * (f.y1 - f.y0);
  f.y0 -= ypad, f.y1 += ypad;
  double xs = nice_step(f.x1 - f.x0, 8), ys = nice_step(f.y1 - f.y0, 5);
  if (c->integer_x && xs < 1) xs = 1;
  // y tick labels first: their width sets the left margin
  char ylab[64][48];
  double yt[64];
  int ny = 0;
  double maxw = 0;
  for (double k = ceil(f.y0 / ys); k * ys <= f.y1 && ny < 64; k++) {
    yt[ny] = k * ys;
    tick_label(ylab[ny], sizeof ylab[ny], yt[ny], ys);
    maxw = fmax(maxw, text_width(ylab[ny], 7));
    ny++;
  }
  f.L = 34 + maxw;
  f.pw = W - f.L - 18;
  f.ph = H - f.T - 46;

  if (standalone) lt_sbuf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  lt_sbuf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
                 "font-family=\"sans-serif\" font-size=\"12\" role=\"img\" class=\"chart\">\n<title>", W, H, W, H);
  lt_sbuf_escape(b, c->title ? c->title : "", 0);
  lt_sbuf_puts(b, "</title>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
  lt_sbuf_printf(b, "<text x=\"%g\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">", W / 2);
  lt_sbuf_escape(b, c->title ? c->title : "", 120);
  lt_sbuf_puts(b, "</text>\n<g class=\"grid\" stroke=\"#e3e3e3\">\n");
  for (int i = 0; i < ny; i++)
    lt_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f.L, py_of(&f, yt[i]), f.L + f.pw,
                   py_of(&f, yt[i]));
  double xt[64];
  int nx = 0;
  for (double k = ceil(f.x0 / xs); k * xs <= f.x1 && nx < 64; k++) xt[nx++] = k * xs;
  for (int i = 0; i < nx; i++)
    lt_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px_of(&f, xt[i]), f.T,
                   px_of(&f, xt[i]), f.T + f.ph);
  lt_sbuf_puts(b, "</g>\n<g class=\"ticks\">\n");
  for (int i = 0; i < ny; i++)
    lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", f.L - 6, py_of(&f, yt[i]) + 4,
                   ylab[i]);
  for (int i = 0; i < nx; i++) {
    char t[48];
    tick_label(t, sizeof t, xt[i], xs);
    lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", px_of(&f, xt[i]),
                   f.T + f.ph + 16, t);
  }
  lt_sbuf_puts(b, "</g>\n");
  lt_sbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n",
                 f.L, f.T, f.pw, f.ph);
  lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">", f.L + f.pw / 2, H - 8);
  lt_sbuf_escape(b, c->xlabel ? c->xlabel : "", 80);
  lt_sbuf_printf(b, "</text>\n<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">",
                 f.T + f.ph / 2, f.T + f.ph / 2);
  lt_sbuf_escape(b, c->ylabel ? c->ylabel : "", 60);
  lt_sbuf_puts(b, "</text>\n");
  if (!any)
    lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#777777\">no finite values</text>\n",
                   f.L + f.pw / 2, f.T + f.ph / 2);

  // legend: one row under the title
  double lx = f.L;
  lt_sbuf_puts(b, "<g class=\"legend\">\n");
  for (int k = 0; k < c->n_series; k++) {
    const lt_svg_series *s = &c->series[k];
    if (s->style & LT_SVG_LINE)
      lt_sbuf_printf(b, "<line x1=\"%.1f\" y1=\"38\" x2=\"%.1f\" y2=\"38\" stroke=\"%s\" stroke-width=\"2\"/>", lx,
                     lx + 18, s->color);
    if (s->style & LT_SVG_MARKERS)
      lt_sbuf_printf(b, "<circle cx=\"%.1f\" cy=\"38\" r=\"3.5\" fill=\"%s\"/>", lx + 9, s->color);
    lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"42\">", lx + 24);
    lt_sbuf_escape(b, s->name ? s->name : "", 40);
    lt_sbuf_puts(b, "</text>\n");
    lx += 24 + text_width(s->name ? s->name : "", 7) + 22;
  }
  lt_sbuf_puts(b, "</g>\n");

  for (int k = 0; k < c->n_series; k++) {
    const lt_svg_series *s = &c->series[k];
    int *idx;
    int m = pick_points(s, &f, &idx);
    if (m < 0) {
      b->oom = 1;
      return;
    }
    lt_sbuf_puts(b, "<g class=\"series\" aria-label=\"");
    lt_sbuf_escape(b, s->name ? s->name : "", 0);
    lt_sbuf_puts(b, "\">\n");
    if ((s->style & LT_SVG_LINE) && m > 1) {
      lt_sbuf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" stroke-linejoin=\"round\" "
                     "points=\"", s->color);
      for (int j = 0; j < m; j++)
        lt_sbuf_printf(b, "%s%.1f,%.1f", j ? " " : "", px_of(&f, s->x[idx[j]]), py_of(&f, s->y[idx[j]]));
      lt_sbuf_puts(b, "\"/>\n");
    }
    if ((s->style & LT_SVG_MARKERS) || m == 1)
      for (int j = 0; j < m; j++)
        lt_sbuf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", px_of(&f, s->x[idx[j]]),
                       py_of(&f, s->y[idx[j]]), s->color);
    lt_sbuf_puts(b, "</g>\n");
    free(idx);
  }
  lt_sbuf_puts(b, "</svg>\n");
}

// ---- heat map ----

void lt_svg_heatmap_draw(lt_sbuf *b, const lt_svg_heatmap *h, int standalone) {
  int n = h->n > 0 ? h->n : 0;
  double vmax = 0;
  for (size_t i = 0; i < (size_t)n * (size_t)n; i++)
    if (isfinite(h->values[i])) vmax = fmax(vmax, h->values[i]);
  double cell = fmin(56, fmax(16, 420.0 / (n ? n : 1))), labw = 0;
  for (int i = 0; i < n; i++) labw = fmax(labw, text_width(h->labels[i], 7));
  labw = fmin(labw, 24 * 7);
  int rotate = labw > cell - 4;
  double T = 40, L = 34 + labw, G = n * cell;
  double bottom = 24 + (rotate ? labw * 0.72 + 8 : 0) + 20;
  char maxs[48];
  lt_svg_fmt_num(maxs, sizeof maxs, vmax, 4);
  double W = fmax(L + G + 16 + 14 + 8 + text_width(maxs, 7) + 12, 260), H = T + G + bottom;
  if (standalone) lt_sbuf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  lt_sbuf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f "
                 "%.0f\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\" class=\"heatmap\">\n<title>",
                 W, H, W, H);
  lt_sbuf_escape(b, h->title ? h->title : "", 0);
  lt_sbuf_puts(b, "</title>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
  lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">", W / 2);
  lt_sbuf_escape(b, h->title ? h->title : "", 80);
  lt_sbuf_puts(b, "</text>\n");
  double fs = cell >= 30 ? 12 : 9;
  for (int r = 0; r < n; r++)
    for (int c = 0; c < n; c++) {
      double v = h->values[(size_t)r * (size_t)n + (size_t)c];
      double t = isfinite(v) && vmax > 0 ? fmin(1, fmax(0, v / vmax)) : 0;
      int R = (int)lround(247 + (8 - 247) * t), Gc = (int)lround(251 + (48 - 251) * t),
          B = (int)lround(255 + (107 - 255) * t);
      char fill[16], num[48];
      if (isfinite(v)) snprintf(fill, sizeof fill, "#%02x%02x%02x", R, Gc, B);
      else snprintf(fill, sizeof fill, "#bbbbbb");
      lt_svg_fmt_num(num, sizeof num, v, 4);
      double x = L + c * cell, y = T + r * cell;
      lt_sbuf_printf(b, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                     "stroke=\"#ffffff\"><title>", x, y, cell, cell, fill);
      lt_sbuf_escape(b, h->labels[r], 60);
      lt_sbuf_puts(b, " \xE2\x86\x92 ");  // U+2192
      lt_sbuf_escape(b, h->labels[c], 60);
      lt_sbuf_printf(b, ": %s</title></rect>\n", isfinite(v) ? num : "missing");
      if (isfinite(v) && cell >= 18)
        lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"%g\" fill=\"%s\">%s</text>\n",
                       x + cell / 2, y + cell / 2 + fs / 3, fs, t > 0.5 ? "#ffffff" : "#000000", num);
    }
  for (int i = 0; i < n; i++) {  // row labels (gold) left, column labels (predicted) below
    lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", L - 6, T + i * cell + cell / 2 + 4);
    lt_sbuf_escape(b, h->labels[i], 24);
    lt_sbuf_puts(b, "</text>\n");
    double cx = L + i * cell + cell / 2, cy = T + G + 16;
    if (rotate)
      lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" transform=\"rotate(-45 %.1f %.1f)\">", cx,
                     cy - 4, cx, cy - 4);
    else
      lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", cx, cy);
    lt_sbuf_escape(b, h->labels[i], 24);
    lt_sbuf_puts(b, "</text>\n");
  }
  lt_sbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n",
                 L, T, G, G);
  lt_sbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", L + G / 2, H - 8);
  lt_sbuf_escape(b, h->xlabel ? h->xlabel : "", 40);
  lt_sbuf_printf(b, "</text>\n<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">",
                 T + G / 2, T + G / 2);
  lt_sbuf_escape(b, h->ylabel ? h->ylabel : "", 40);
  lt_sbuf_puts(b, "</text>\n");
  // colour scale: five bands from 0 (bottom) to the largest value (top)
  double bx = L + G + 16, bh = fmax(G, 40);
  for (int k = 0; k < 5; k++) {
    double t = (4 - k) / 4.0;
    lt_sbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"#%02x%02x%02x\"/>\n", bx,
                   T + k * bh / 5, bh / 5, (int)lround(247 - 239 * t), (int)lround(251 - 203 * t),
                   (int)lround(255 - 148 * t));
  }
  lt_sbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n"
                 "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n<text x=\"%.1f\" y=\"%.1f\">0</text>\n",
                 bx, T, bh, bx + 20, T + 10, maxs, bx + 20, T + bh);
  lt_sbuf_puts(b, "</svg>\n");
}
