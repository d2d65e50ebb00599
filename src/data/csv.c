// RFC 4180 CSV reader (see csv.h). One pass over the text: fields are unquoted into one buffer that is never longer
// than the input (quotes and separators are dropped, each field gains one NUL), so no field can overrun it.
#include "data/csv.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "eval/text.h"

typedef struct {
  size_t *off;   // field start offsets in buf
  int *col, *fline;
  int n, cap;
} field_list;

typedef struct {
  int *first, *n, *line;
  int count, cap;
} row_list;

static int grow(void **p, int *cap, int need, size_t elem, int extra_arrays, void **a2, void **a3, lt_err *err) {
  if (need <= *cap) return 0;
  if (*cap > INT_MAX / 2) return lt_errf(err, "too many CSV fields");
  int nc = *cap ? *cap * 2 : 64;
  void *n1 = realloc(*p, elem * (size_t)nc);
  if (!n1) return lt_errf(err, "out of memory reading CSV");
  *p = n1;
  if (extra_arrays >= 1) {
    void *n2 = realloc(*a2, sizeof(int) * (size_t)nc);
    if (!n2) return lt_errf(err, "out of memory reading CSV");
    *a2 = n2;
  }
  if (extra_arrays >= 2) {
    void *n3 = realloc(*a3, sizeof(int) * (size_t)nc);
    if (!n3) return lt_errf(err, "out of memory reading CSV");
    *a3 = n3;
  }
  *cap = nc;
  return 0;
}

// 1-based line and column (bytes) of offset `at`.
static void line_col(const char *t, size_t at, int *line, int *col) {
  int l = 1;
  size_t start = 0;
  for (size_t i = 0; i < at; i++) {
    if (t[i] == '\n' || (t[i] == '\r' && (i + 1 >= at || t[i + 1] != '\n'))) {
      if (l < INT_MAX) l++;
      start = i + 1;
    }
  }
  *line = l;
  size_t c = at - start + 1;
  *col = c > INT_MAX ? INT_MAX : (int)c;
}

void lt_csv_free(lt_csv *c) {
  if (!c) return;
  free(c->rows);
  free(c->buf);
  free(c->fields);
  free(c->cols);
  free(c->flines);
  memset(c, 0, sizeof *c);
}

int lt_csv_parse(const char *text, size_t len, const char *source, lt_csv *out, lt_err *err) {
  memset(out, 0, sizeof *out);
  snprintf(out->source, sizeof out->source, "%s", source ? source : "<memory>");
  const char *src = out->source;
  size_t p = 0;
  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) p = 3;  // byte-order mark
  const size_t bom = p;
  // the whole text first: no NUL bytes, valid UTF-8
  for (size_t i = p; i < len;) {
    int line, col;
    if (text[i] == 0) {
      line_col(text + bom, i - bom, &line, &col);
      return lt_errf(err, "%s:%d:%d: NUL byte in a CSV file", src, line, col);
    }
    uint32_t cp;
    size_t k = lt_utf8_next((const unsigned char *)text + i, len - i, &cp);
    if (!k) {
      line_col(text + bom, i - bom, &line, &col);
      return lt_errf(err, "%s:%d:%d: byte 0x%02x is not valid UTF-8; re-encode the file as UTF-8", src, line, col,
                     (unsigned char)text[i]);
    }
    i += k;
  }
  if (len > (size_t)INT_MAX) return lt_errf(err, "%s: CSV file of %zu bytes is too large", src, len);
  size_t cap = len + 1, bo = 0;
  char *buf = malloc(cap);
  field_list F = {0};
  row_list R = {0};
  int line = 1, rc = -1;
  size_t line_start = p;  // columns count from after a byte-order mark
  if (!buf) {
    lt_errf(err, "%s: out of memory for %zu bytes", src, len);
    goto done;
  }
  while (p < len) {
    if (text[p] == '\n' || text[p] == '\r') {  // blank line
      p += text[p] == '\r' && p + 1 < len && text[p + 1] == '\n' ? 2 : 1;
      line++;
      line_start = p;
      continue;
    }
    int first = F.n, row_line = line;
    for (;;) {  // one field per iteration
      int col = (int)(p - line_start + 1), fl = line;
      size_t start = bo;
      if (p < len && text[p] == '"') {
        int qline = line, qcol = col;
        p++;
        for (;;) {
          if (p >= len) {
            lt_errf(err, "%s:%d:%d: the quoted field that starts here has no closing quote", src, qline, qcol);
            goto done;
          }
          char c = text[p];
          if (c == '"') {
            if (p + 1 < len && text[p + 1] == '"') {
              buf[bo++] = '"';
              p += 2;
              continue;
            }
            p++;
            break;
          }
          buf[bo++] = c;
          p++;
          if (c == '\n' || (c == '\r' && (p >= len || text[p] != '\n'))) {
            line++;
            line_start = p;
          }
        }
        if (p < len && text[p] != ',' && text[p] != '\n' && text[p] != '\r') {
          lt_errf(err, "%s:%d:%d: unexpected character after the closing quote of the field that starts at line %d, "
                  "column %d (a quote inside a quoted field must be doubled: \"\")", src, line,
                  (int)(p - line_start + 1), qline, qcol);
          goto done;
        }
      } else {
        while (p < len && text[p] != ',' && text[p] != '\n' && text[p] != '\r') buf[bo++] = text[p++];
      }
      if (bo >= cap) {  // cannot happen: every field consumed at least as many bytes as it wrote
        lt_errf(err, "%s:%d: internal error: CSV buffer overrun", src, line);
        goto done;
      }
      buf[bo++] = 0;
      if (grow((void **)&F.off, &F.cap, F.n + 1, sizeof(size_t), 2, (void **)&F.col, (void **)&F.fline, err)) {
        lt_err_prefix(err, "%s", src);
        goto done;
      }
      F.off[F.n] = start;
      F.col[F.n] = col;
      F.fline[F.n] = fl;
      F.n++;
      if (p < len && text[p] == ',') {
        p++;
        continue;
      }
      if (p < len) {  // end of line
        p += text[p] == '\r' && p + 1 < len && text[p + 1] == '\n' ? 2 : 1;
        line++;
        line_start = p;
      }
      break;
    }
    if (grow((void **)&R.first, &R.cap, R.count + 1, sizeof(int), 2, (void **)&R.n, (void **)&R.line, err)) {
      lt_err_prefix(err, "%s", src);
      goto done;
    }
    R.first[R.count] = first;
    R.n[R.count] = F.n - first;
    R.line[R.count] = row_line;
    R.count++;
  }
  out->buf = buf;
  out->fields = malloc(sizeof(char *) * (size_t)(F.n ? F.n : 1));
  out->rows = malloc(sizeof(lt_csv_row) * (size_t)(R.count ? R.count : 1));
  if (!out->fields || !out->rows) {
    out->buf = NULL;
    free(out->fields);
    free(out->rows);
    out->fields = NULL;
    out->rows = NULL;
    lt_errf(err, "%s: out of memory", src);
    goto done;
  }
  buf = NULL;
  for (int i = 0; i < F.n; i++) out->fields[i] = out->buf + F.off[i];
  out->cols = F.col;
  out->flines = F.fline;
  F.col = F.fline = NULL;
  for (int r = 0; r < R.count; r++)
    out->rows[r] = (lt_csv_row){R.n[r], R.line[r], out->fields + R.first[r], out->cols + R.first[r],
                                out->flines + R.first[r]};
  out->n_rows = R.count;
  rc = 0;
done:
  free(buf);
  free(F.off);
  free(F.col);
  free(F.fline);
  free(R.first);
  free(R.n);
  free(R.line);
  if (rc) {
    char keep[sizeof out->source];
    memcpy(keep, out->source, sizeof keep);
    lt_csv_free(out);
    memcpy(out->source, keep, sizeof keep);
  }
  return rc;
}

int lt_csv_read(const char *path, lt_csv *out, lt_err *err) {
  memset(out, 0, sizeof *out);
  char *text;
  size_t len;
  if (lt_read_file(path, &text, &len, err)) return -1;
  int rc = lt_csv_parse(text, len, path, out, err);
  free(text);
  return rc;
}
