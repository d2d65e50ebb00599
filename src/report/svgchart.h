// SVG figures for training reports: a growable text buffer with XML/HTML escaping, line charts (axes with nice
// tick labels, legend, non-finite points skipped, min/max decimation for long series) and heat maps (confusion
// matrices). Plain SVG 1.1, no scripts, no external resources, no element ids (several charts share one page).
#ifndef LT_SVGCHART_H
#define LT_SVGCHART_H
#include <stddef.h>

#include "core/core.h"  // lt_sbuf
// s as text or attribute content for HTML and XML: & < > " ' escaped; invalid UTF-8, control characters (other
// than tab/newline/CR) and non-characters become U+FFFD, so the output is valid UTF-8 that XML 1.0 accepts.
// max_chars > 0 cuts after that many code points and appends an ellipsis.
void lt_sbuf_escape(lt_sbuf *b, const char *s, size_t max_chars);

// A series to draw: points (x[i], y[i]); points with a non-finite coordinate are skipped.
enum { LT_SVG_LINE = 1, LT_SVG_MARKERS = 2 };
typedef struct lt_svg_series {
  const char *name;      // legend text
  const double *x, *y;
  int n;
  const char *color;     // CSS colour, e.g. "#1f77b4" (a literal from the caller, not escaped)
  int style;             // LT_SVG_LINE and/or LT_SVG_MARKERS; a single finite point always gets a marker
} lt_svg_series;

typedef struct lt_svg_chart {
  const char *title, *xlabel, *ylabel;
  int width, height;     // 0: 560 x 340 (two side by side on a report page)
  int integer_x;         // x ticks on integers only (optimizer steps)
  const lt_svg_series *series;
  int n_series;
} lt_svg_chart;

// Longest polyline drawn per series: longer series keep, per pixel column, the points with the smallest and the
// largest y (in their order), so the envelope of the curve is exact.
#define LT_SVG_MAX_POINTS 2000

// Appends one <svg> element (with the XML declaration first when standalone). Every coordinate written is finite.
void lt_svg_line_chart(lt_sbuf *b, const lt_svg_chart *c, int standalone);

// n x n matrix (row-major, rows = gold, columns = predicted) as coloured cells with their values; non-finite
// cells are drawn grey and empty.
typedef struct lt_svg_heatmap {
  const char *title, *xlabel, *ylabel;
  int n;
  const char *const *labels;
  const double *values;
} lt_svg_heatmap;
void lt_svg_heatmap_draw(lt_sbuf *b, const lt_svg_heatmap *h, int standalone);

// A number for a table cell or tick label: integers as integers, others with `sig` significant digits, very large
// or small magnitudes in exponent form ("2.5e-05"). NaN/inf as "NaN"/"inf"/"-inf".
void lt_svg_fmt_num(char *out, size_t cap, double v, int sig);

#endif
