// Metrics helpers: numpy's summation order, exact match, perplexity, and the text-file reader of `lmtune metrics`.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "core/core.h"
#include "eval/metrics.h"
#include "eval/text.h"

// numpy/_core/src/umath/loops_utils.h.src pairwise_sum for float64, after the reduction's identity 0.0.
static double pairwise(const double *a, size_t n) {
  if (n < 8) {
    double res = -0.0;
    for (size_t i = 0; i < n; i++) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; j++) r[j] = a[j];
    size_t i;
    for (i = 8; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; j++) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise(a, n2) + pairwise(a + n2, n - n2);
}

double lt_np_sum(const double *a, size_t n) { return 0.0 + pairwise(a, n); }

int lt_exact_match(const char *const *preds, const char *const *refs, size_t n, double *out, lt_err *err) {
  *out = 0;
  if (n == 0) return lt_errf(err, "exact match: no pairs");
  size_t hit = 0;
  for (size_t i = 0; i < n; i++) {
    if (!preds[i] || !refs[i]) return lt_errf(err, "exact match: pair %zu is missing a text", i + 1);
    hit += strcmp(preds[i], refs[i]) == 0;
  }
  *out = (double)hit / (double)n;
  return 0;
}

int lt_perplexity(double nll_sum, int64_t n_tokens, double *ppl, double *mean_nll, lt_err *err) {
  if (n_tokens < 1) return lt_errf(err, "perplexity: no scored tokens");
  if (!isfinite(nll_sum) || nll_sum < 0) return lt_errf(err, "perplexity: NLL sum %g is not a finite value >= 0", nll_sum);
  double m = nll_sum / (double)n_tokens;
  if (mean_nll) *mean_nll = m;
  *ppl = exp(m);
  return 0;
}

// ---- text files ----

void lt_texts_free(lt_texts *t) {
  if (!t) return;
  if (t->s)
    for (size_t i = 0; i < t->n * (size_t)t->n_alt; i++) free(t->s[i]);
  free(t->s);
  memset(t, 0, sizeof *t);
}

typedef struct { char **alt; int n; } rec;
typedef struct { rec *v; size_t n, cap; } recs;

static void recs_free(recs *r) {
  for (size_t i = 0; i < r->n; i++) {
    for (int a = 0; a < r->v[i].n; a++) free(r->v[i].alt[a]);
    free(r->v[i].alt);
  }
  free(r->v);
}

static int recs_push(recs *r, rec x, lt_err *err) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 256;
    rec *v = realloc(r->v, cap * sizeof *v);
    if (!v) return lt_errf(err, "out of memory (%zu lines)", cap);
    r->v = v;
    r->cap = cap;
  }
  r->v[r->n++] = x;
  return 0;
}

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

static const char *const DEFAULT_FIELDS[] = {"prediction", "pred", "output", "response", "reference",
                                             "ref", "target", "answer", "label", "text"};

// One JSON value (string, integral number, array of those / null) -> alternatives.
static int value_to_rec(const cJSON *v, rec *out, const char *where, lt_err *err) {
  out->alt = NULL;
  out->n = 0;
  const cJSON *items[1] = {v};
  int n = 1;
  int is_arr = cJSON_IsArray(v);
  if (is_arr) n = cJSON_GetArraySize(v);
  if (is_arr && n == 0) return lt_errf(err, "%s: empty array", where);
  out->alt = calloc((size_t)n, sizeof *out->alt);
  if (!out->alt) return lt_errf(err, "out of memory");
  out->n = n;
  const cJSON *it = is_arr ? v->child : items[0];
  for (int a = 0; a < n; a++, it = is_arr ? it->next : NULL) {
    if (cJSON_IsString(it)) {
      const char *s = cJSON_GetStringValue(it);
      size_t bad = lt_utf8_check(s, strlen(s));
      if (bad) return lt_errf(err, "%s: invalid UTF-8 in a string", where);
      out->alt[a] = dup_n(s, strlen(s));
    } else if (cJSON_IsNumber(it)) {
      double d = cJSON_GetNumberValue(it);
      if (!(d == floor(d)) || fabs(d) > 9e15) return lt_errf(err, "%s: number %g is not an integer label", where, d);
      char tmp[32];
      snprintf(tmp, sizeof tmp, "%lld", (long long)d);
      out->alt[a] = dup_n(tmp, strlen(tmp));
    } else if (is_arr && cJSON_IsNull(it)) {
      continue;  // a missing reference
    } else {
      return lt_errf(err, "%s: expected a string%s", where, is_arr ? " (or null) in the array" : " or an array of strings");
    }
    if (!out->alt[a]) return lt_errf(err, "out of memory");
  }
  return 0;
}

static int record_of(const cJSON *v, const char *field, rec *out, const char *where, lt_err *err) {
  out->alt = NULL;
  out->n = 0;
  if (cJSON_IsObject(v)) {
    const cJSON *f = NULL;
    if (field) {
      f = cJSON_GetObjectItemCaseSensitive(v, field);
      if (!f) return lt_errf(err, "%s: no \"%s\" field", where, field);
    } else {
      for (size_t i = 0; i < sizeof DEFAULT_FIELDS / sizeof DEFAULT_FIELDS[0] && !f; i++)
        f = cJSON_GetObjectItemCaseSensitive(v, DEFAULT_FIELDS[i]);
      if (!f)
        return lt_errf(err, "%s: none of the fields prediction, pred, output, response, reference, ref, target, "
                            "answer, label, text (name the field explicitly)", where);
    }
    return value_to_rec(f, out, where, err);
  }
  if (field && !cJSON_IsObject(v)) return lt_errf(err, "%s: field \"%s\" needs JSON objects", where, field);
  return value_to_rec(v, out, where, err);
}

static void rec_drop(rec *r) {
  for (int a = 0; a < r->n; a++) free(r->alt[a]);
  free(r->alt);
  r->alt = NULL;
  r->n = 0;
}

static int ends_with_ci(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcasecmp(s + a - b, suf);
}

int lt_texts_read(const char *path, const char *field, lt_texts *out, lt_err *err) {
  memset(out, 0, sizeof *out);
  char *data = NULL;
  size_t len = 0;
  if (lt_read_file(path, &data, &len, err)) return -1;
  if (len == 0) {
    free(data);
    return lt_errf(err, "%s: empty file", path);
  }
  if (memchr(data, 0, len)) {
    free(data);
    return lt_errf(err, "%s: contains a NUL byte (not a text file)", path);
  }
  int json = ends_with_ci(path, ".jsonl") || ends_with_ci(path, ".json");
  recs R = {0};
  char where[4200];
  int rc = -1;
  cJSON *whole = NULL;
  if (json && ends_with_ci(path, ".json")) {
    whole = cJSON_ParseWithLength(data, len);
    if (whole && !cJSON_IsArray(whole)) {
      cJSON_Delete(whole);
      whole = NULL;
    }
  }
  if (whole) {  // a .json file holding one array of records
    int i = 0;
    for (const cJSON *it = whole->child; it; it = it->next, i++) {
      snprintf(where, sizeof where, "%s: record %d", path, i + 1);
      rec r;
      if (record_of(it, field, &r, where, err)) {
        rec_drop(&r);
        goto done;
      }
      if (recs_push(&R, r, err)) {
        rec_drop(&r);
        goto done;
      }
    }
  } else {
    size_t i = 0, line = 0;
    while (i < len) {
      line++;
      const char *nl = memchr(data + i, '\n', len - i);
      size_t e = nl ? (size_t)(nl - data) : len, l = e - i;
      const char *s = data + i;
      i = nl ? e + 1 : len;
      if (l && s[l - 1] == '\r') l--;
      snprintf(where, sizeof where, "%s:%zu", path, line);
      size_t bad = lt_utf8_check(s, l);
      if (bad) {
        lt_errf(err, "%s: invalid UTF-8 at byte %zu of the line", where, bad - 1);
        goto done;
      }
      rec r = {0};
      if (json) {
        size_t k = 0;
        while (k < l && (s[k] == ' ' || s[k] == '\t')) k++;
        if (k == l) continue;  // blank lines between records
        cJSON *v = cJSON_ParseWithLength(s, l);
        if (!v) {
          lt_errf(err, "%s: not valid JSON", where);
          goto done;
        }
        int bad_rec = record_of(v, field, &r, where, err);
        cJSON_Delete(v);
        if (bad_rec) {
          rec_drop(&r);
          goto done;
        }
      } else {
        r.alt = malloc(sizeof *r.alt);
        if (!r.alt || !(r.alt[0] = dup_n(s, l))) {
          free(r.alt);
          lt_errf(err, "out of memory");
          goto done;
        }
        r.n = 1;
      }
      if (recs_push(&R, r, err)) {
        rec_drop(&r);
        goto done;
      }
    }
  }
  if (R.n == 0) {
    lt_errf(err, "%s: no records", path);
    goto done;
  }
  int n_alt = 1;
  for (size_t i = 0; i < R.n; i++) n_alt = LT_MAX(n_alt, R.v[i].n);
  out->s = calloc(R.n * (size_t)n_alt, sizeof *out->s);
  if (!out->s) {
    lt_errf(err, "out of memory");
    goto done;
  }
  out->n = R.n;
  out->n_alt = n_alt;
  for (size_t i = 0; i < R.n; i++)
    for (int a = 0; a < R.v[i].n; a++) {
      out->s[i * (size_t)n_alt + (size_t)a] = R.v[i].alt[a];
      R.v[i].alt[a] = NULL;
    }
  rc = 0;
done:
  cJSON_Delete(whole);
  recs_free(&R);
  free(data);
  return rc;
}
