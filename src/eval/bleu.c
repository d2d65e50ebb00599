// Corpus BLEU exactly as sacrebleu 2.6.0 computes it (metrics/bleu.py, tokenizers/tokenizer_13a.py,
// tokenizer_re.py, tokenizer_zh.py): the same string operations, the same regexes (PCRE2 in UTF mode, code point
// semantics as Python's re on str), the same integer statistics and the same floating-point expressions.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#include "core/core.h"
#include "eval/metrics.h"
#include "eval/text.h"

// tokenizer_re.TokenizerRegexp, in order. Python's r'\1' is PCRE2's $1.
static const struct { const char *pat, *rep; } RE13A[] = {
    {"([\\{-\\~\\[-\\` -\\&\\(-\\+\\:-\\@\\/])", " $1 "},  // language-dependent symbols
    {"([^0-9])([\\.,])", "$1 $2 "},                      // period and comma unless preceded by a digit
    {"([\\.,])([^0-9])", " $1 $2"},                      // period and comma unless followed by a digit
    {"([0-9])(-)", "$1 $2 "},                            // dash when preceded by a digit
};
#define N_RE (sizeof RE13A / sizeof RE13A[0])

struct lt_bleu_tokenizer {
  lt_bleu_tok kind;
  pcre2_code *re[N_RE];
  pcre2_match_data *md;
};

int lt_bleu_tok_parse(const char *name, lt_bleu_tok *out, lt_err *err) {
  if (!name || !strcmp(name, "13a")) *out = LT_BLEU_TOK_13A;
  else if (!strcmp(name, "zh")) *out = LT_BLEU_TOK_ZH;
  else if (!strcmp(name, "none")) *out = LT_BLEU_TOK_NONE;
  else return lt_errf(err, "unknown BLEU tokenizer \"%s\" (expected 13a, zh or none)", name);
  return 0;
}

const char *lt_bleu_tok_name(lt_bleu_tok t) {
  return t == LT_BLEU_TOK_ZH ? "zh" : t == LT_BLEU_TOK_NONE ? "none" : "13a";
}

void lt_bleu_tokenizer_free(lt_bleu_tokenizer *t) {
  if (!t) return;
  for (size_t i = 0; i < N_RE; i++) pcre2_code_free(t->re[i]);
  pcre2_match_data_free(t->md);
  free(t);
}

int lt_bleu_tokenizer_new(lt_bleu_tokenizer **out, lt_bleu_tok kind, lt_err *err) {
  *out = NULL;
  if (kind != LT_BLEU_TOK_13A && kind != LT_BLEU_TOK_ZH && kind != LT_BLEU_TOK_NONE)
    return lt_errf(err, "bad BLEU tokenizer kind %d", (int)kind);
  lt_bleu_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return lt_errf(err, "out of memory (BLEU tokenizer)");
  t->kind = kind;
  for (size_t i = 0; i < N_RE; i++) {
    int ec;
    PCRE2_SIZE off;
    t->re[i] = pcre2_compile((PCRE2_SPTR)RE13A[i].pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &off, NULL);
    if (!t->re[i]) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(ec, msg, sizeof msg);
      lt_bleu_tokenizer_free(t);
      return lt_errf(err, "BLEU tokenizer regex %zu: %s at offset %zu", i, (const char *)msg, (size_t)off);
    }
  }
  t->md = pcre2_match_data_create(4, NULL);
  if (!t->md) {
    lt_bleu_tokenizer_free(t);
    return lt_errf(err, "out of memory (PCRE2 match data)");
  }
  *out = t;
  return 0;
}

// ---- growable byte buffer ----

typedef struct { char *p; size_t len, cap; } buf;

static int buf_reserve(buf *b, size_t extra, lt_err *err) {
  if (b->len + extra + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return lt_errf(err, "out of memory (%zu bytes of text)", cap);
  b->p = p;
  b->cap = cap;
  return 0;
}

static int buf_put(buf *b, const char *s, size_t n, lt_err *err) {
  if (buf_reserve(b, n, err)) return -1;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
  return 0;
}

// Python's line.replace(old, new): one left-to-right pass over non-overlapping occurrences (ASCII patterns, so
// byte matching is code point matching in UTF-8).
static int replace_all(buf *b, const char *old, const char *rep, buf *tmp, lt_err *err) {
  size_t ol = strlen(old), rl = strlen(rep);
  if (!b->len || !memmem(b->p, b->len, old, ol)) return 0;
  tmp->len = 0;
  size_t i = 0;
  while (i < b->len) {
    const char *hit = memmem(b->p + i, b->len - i, old, ol);
    size_t stop = hit ? (size_t)(hit - b->p) : b->len;
    if (buf_put(tmp, b->p + i, stop - i, err)) return -1;
    if (!hit) break;
    if (buf_put(tmp, rep, rl, err)) return -1;
    i = stop + ol;
  }
  if (buf_reserve(tmp, 0, err)) return -1;
  tmp->p[tmp->len] = 0;
  buf x = *b;
  *b = *tmp;
  *tmp = x;
  return 0;
}

// Byte length of s[0..len) without Python-whitespace code points at the end (str.rstrip()).
static size_t py_rstrip_len(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, keep = 0;
  while (i < len) {
    uint32_t cp = 0;
    size_t k = lt_utf8_next(u + i, len - i, &cp);
    if (!k) k = 1;  // callers validated the text
    i += k;
    if (!lt_py_isspace(cp)) keep = i;
  }
  return keep;
}

// Byte offset of the first non-whitespace code point (str.lstrip()).
static size_t py_lstrip_off(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    uint32_t cp = 0;
    size_t k = lt_utf8_next(u + i, len - i, &cp);
    if (!k || !lt_py_isspace(cp)) break;
    i += k;
  }
  return i;
}

// ' '.join(s.split()) into out (appended).
static int py_split_join(const char *s, size_t len, buf *out, lt_err *err) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, start = 0;
  int in_tok = 0, first = 1;
  while (i <= len) {
    uint32_t cp = ' ';
    size_t k = 1;
    if (i < len) {
      k = lt_utf8_next(u + i, len - i, &cp);
      if (!k) k = 1;
    }
    int sp = lt_py_isspace(cp);
    if (!sp && !in_tok) { in_tok = 1; start = i; }
    else if (sp && in_tok) {
      in_tok = 0;
      if (!first && buf_put(out, " ", 1, err)) return -1;
      if (buf_put(out, s + start, i - start, err)) return -1;
      first = 0;
    }
    i += k;
  }
  if (buf_reserve(out, 0, err)) return -1;
  out->p[out->len] = 0;
  return 0;
}

// tokenizer_zh._is_chinese_char, as its string comparisons really behave: u'\u20000' is the two-character string
// '\u2000' '0', so that "range" covers U+2001..U+2A6D, and '\u2f800'..'\u2fa1d' U+2F81..U+2FA1 (inside the
// radicals range). Computed by enumerating every code point through sacrebleu's function.
static int zh_char(uint32_t c) {
  static const uint32_t R[][2] = {
      {0x2001, 0x2a6d}, {0x2e80, 0x2fdf}, {0x2ff0, 0x303f}, {0x3100, 0x312f}, {0x31a0, 0x31ef},
      {0x3200, 0x4db5}, {0x4e00, 0x9fbb}, {0xf900, 0xfa2d}, {0xfa30, 0xfa6a}, {0xfa70, 0xfad9},
      {0xfe10, 0xfe1f}, {0xfe30, 0xfe4f}, {0xff00, 0xffef}};
  for (size_t i = 0; i < sizeof R / sizeof R[0]; i++)
    if (c >= R[i][0] && c <= R[i][1]) return 1;
  return 0;
}

static int regex_sub(lt_bleu_tokenizer *t, size_t i, buf *b, buf *tmp, lt_err *err) {
  tmp->len = 0;
  if (buf_reserve(tmp, 2 * b->len + 64, err)) return -1;
  for (int attempt = 0; attempt < 2; attempt++) {
    PCRE2_SIZE outlen = tmp->cap;
    int rc = pcre2_substitute(t->re[i], (PCRE2_SPTR)b->p, b->len, 0,
                              PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK, t->md,
                              NULL, (PCRE2_SPTR)RE13A[i].rep, PCRE2_ZERO_TERMINATED, (PCRE2_UCHAR *)tmp->p, &outlen);
    if (rc >= 0) {
      tmp->len = outlen;
      buf x = *b;
      *b = *tmp;
      *tmp = x;
      return 0;
    }
    if (rc != PCRE2_ERROR_NOMEMORY || attempt) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      return lt_errf(err, "BLEU tokenizer regex %zu: %s", i, (const char *)msg);
    }
    if (buf_reserve(tmp, outlen + 1, err)) return -1;  // outlen now holds the length needed
  }
  return lt_errf(err, "BLEU tokenizer regex %zu: output does not fit", i);
}

int lt_bleu_tokenize(lt_bleu_tokenizer *t, const char *line, char **out, lt_err *err) {
  *out = NULL;
  if (!line) return lt_errf(err, "BLEU: NULL text");
  size_t len = strlen(line);
  size_t bad = lt_utf8_check(line, len);
  if (bad) return lt_errf(err, "invalid UTF-8 at byte %zu", bad - 1);
  len = py_rstrip_len(line, len);  // BLEU._preprocess_segment: sent.rstrip()
  buf b = {0}, tmp = {0}, res = {0};
  int rc = -1;
  if (t->kind == LT_BLEU_TOK_NONE) {
    if (py_split_join(line, len, &res, err)) goto done;
    rc = 0;
    goto done;
  }
  if (t->kind == LT_BLEU_TOK_13A) {
    // Tokenizer13a: the language-independent part, then the regexes on f' {line} '.
    if (buf_put(&b, line, len, err)) goto done;
    if (replace_all(&b, "<skipped>", "", &tmp, err) || replace_all(&b, "-\n", "", &tmp, err) ||
        replace_all(&b, "\n", " ", &tmp, err))
      goto done;
    if (b.len && memchr(b.p, '&', b.len)) {
      if (replace_all(&b, "&quot;", "\"", &tmp, err) || replace_all(&b, "&amp;", "&", &tmp, err) ||
          replace_all(&b, "&lt;", "<", &tmp, err) || replace_all(&b, "&gt;", ">", &tmp, err))
        goto done;
    }
    tmp.len = 0;
    if (buf_put(&tmp, " ", 1, err) || buf_put(&tmp, b.p ? b.p : "", b.len, err) || buf_put(&tmp, " ", 1, err))
      goto done;
    buf x = b;
    b = tmp;
    tmp = x;
  } else {
    // TokenizerZh: line.strip(), then ' c ' around every Chinese character.
    size_t off = py_lstrip_off(line, len);
    const unsigned char *u = (const unsigned char *)line;
    if (buf_reserve(&b, 0, err)) goto done;
    for (size_t i = off; i < len;) {
      uint32_t cp = 0;
      size_t k = lt_utf8_next(u + i, len - i, &cp);
      if (!k) k = 1;
      if (zh_char(cp)) {
        if (buf_put(&b, " ", 1, err) || buf_put(&b, line + i, k, err) || buf_put(&b, " ", 1, err)) goto done;
      } else if (buf_put(&b, line + i, k, err)) {
        goto done;
      }
      i += k;
    }
  }
  for (size_t i = 0; i < N_RE; i++)
    if (b.len && regex_sub(t, i, &b, &tmp, err)) goto done;
  if (py_split_join(b.p ? b.p : "", b.len, &res, err)) goto done;
  rc = 0;
done:
  free(b.p);
  free(tmp.p);
  if (rc) {
    free(res.p);
    return -1;
  }
  if (!res.p) {
    res.p = malloc(1);
    if (!res.p) return lt_errf(err, "out of memory");
    res.p[0] = 0;
  }
  *out = res.p;
  return 0;
}

// ---- n-gram statistics ----

typedef struct { const char *s; uint32_t len; } span;

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

// Split a tokenized line (single spaces, no leading/trailing space) into spans.
static int spans_of(const char *s, span **out, int *n, lt_err *err) {
  size_t len = strlen(s), cnt = len ? 1 : 0;
  for (size_t i = 0; i < len; i++) cnt += s[i] == ' ';
  span *v = malloc((cnt ? cnt : 1) * sizeof *v);
  if (!v) return lt_errf(err, "out of memory (%zu tokens)", cnt);
  size_t k = 0, start = 0;
  for (size_t i = 0; i <= len && len; i++)
    if (i == len || s[i] == ' ') {
      v[k].s = s + start;
      v[k].len = (uint32_t)(i - start);
      k++;
      start = i + 1;
    }
  *out = v;
  *n = (int)k;
  return 0;
}

typedef struct {
  uint32_t ids[LT_BLEU_ORDER];
  int32_t n;          // 0 = empty slot
  int64_t hyp, best, cur;
} ngram_ent;

typedef struct {
  // token interning
  span *tok;
  int32_t *tok_slot;  // id + 1 per slot, 0 empty
  size_t tok_cap;     // power of two
  int32_t n_tok;
  // n-gram table
  ngram_ent *ng;
  size_t ng_cap;
} seg_tables;

static int32_t intern(seg_tables *T, span sp) {
  size_t mask = T->tok_cap - 1, h = (size_t)hash_bytes(sp.s, sp.len) & mask;
  for (;;) {
    int32_t v = T->tok_slot[h];
    if (!v) {
      T->tok[T->n_tok] = sp;
      T->tok_slot[h] = ++T->n_tok;
      return T->n_tok - 1;
    }
    span o = T->tok[v - 1];
    if (o.len == sp.len && !memcmp(o.s, sp.s, sp.len)) return v - 1;
    h = (h + 1) & mask;
  }
}

static ngram_ent *ng_find(seg_tables *T, const uint32_t *ids, int n) {
  uint64_t h = (uint64_t)n;
  for (int i = 0; i < n; i++) h = mix(h * 31 + ids[i] + 1);
  size_t mask = T->ng_cap - 1, p = (size_t)h & mask;
  for (;;) {
    ngram_ent *e = &T->ng[p];
    if (!e->n) {
      e->n = n;
      memcpy(e->ids, ids, (size_t)n * sizeof *ids);
      return e;
    }
    if (e->n == n && !memcmp(e->ids, ids, (size_t)n * sizeof *ids)) return e;
    p = (p + 1) & mask;
  }
}

static size_t pow2_at_least(size_t n) {
  size_t c = 16;
  while (c < n) c *= 2;
  return c;
}

int lt_bleu_add_segment(lt_bleu_tokenizer *t, const char *hyp, const char *const *refs, int n_refs,
                        lt_bleu_stats *acc, lt_err *err) {
  if (!hyp) return lt_errf(err, "BLEU: missing hypothesis");
  if (n_refs < 1) return lt_errf(err, "BLEU: no reference");
  int present = 0;
  for (int r = 0; r < n_refs; r++) present += refs[r] != NULL;
  if (!present) return lt_errf(err, "BLEU: every reference of the segment is missing");

  int rc = -1;
  char **tokd = calloc((size_t)n_refs + 1, sizeof *tokd);
  span **sp = calloc((size_t)n_refs + 1, sizeof *sp);
  int *ns = calloc((size_t)n_refs + 1, sizeof *ns);
  int32_t **ids = calloc((size_t)n_refs + 1, sizeof *ids);
  seg_tables T = {0};
  if (!tokd || !sp || !ns || !ids) {
    lt_errf(err, "out of memory");
    goto done;
  }
  // index 0 = hypothesis, 1..n_refs = references
  size_t total_tok = 0;
  for (int r = 0; r <= n_refs; r++) {
    const char *s = r ? refs[r - 1] : hyp;
    if (!s) continue;
    if (lt_bleu_tokenize(t, s, &tokd[r], err)) {
      lt_err_prefix(err, "BLEU %s", r ? "reference" : "hypothesis");
      goto done;
    }
    if (spans_of(tokd[r], &sp[r], &ns[r], err)) goto done;
    total_tok += (size_t)ns[r];
  }
  T.tok_cap = pow2_at_least(2 * total_tok + 1);
  T.tok = malloc((total_tok ? total_tok : 1) * sizeof *T.tok);
  T.tok_slot = calloc(T.tok_cap, sizeof *T.tok_slot);
  T.ng_cap = pow2_at_least(2 * LT_BLEU_ORDER * total_tok + 1);
  T.ng = calloc(T.ng_cap, sizeof *T.ng);
  if (!T.tok || !T.tok_slot || !T.ng) {
    lt_errf(err, "out of memory (n-gram tables for %zu tokens)", total_tok);
    goto done;
  }
  for (int r = 0; r <= n_refs; r++) {
    if (!tokd[r]) continue;
    ids[r] = malloc(((size_t)ns[r] + 1) * sizeof **ids);
    if (!ids[r]) {
      lt_errf(err, "out of memory");
      goto done;
    }
    for (int i = 0; i < ns[r]; i++) ids[r][i] = intern(&T, sp[r][i]);
  }
  // References: counts clipped to the maximum over references; lengths for the closest-length rule.
  int64_t closest_diff = -1, closest_len = -1, hyp_len = ns[0];
  for (int r = 1; r <= n_refs; r++) {
    if (!tokd[r]) continue;
    int L = ns[r];
    for (int n = 1; n <= LT_BLEU_ORDER; n++)
      for (int i = 0; i + n <= L; i++) ng_find(&T, (const uint32_t *)ids[r] + i, n)->cur++;
    for (size_t p = 0; p < T.ng_cap; p++)
      if (T.ng[p].n) {
        if (T.ng[p].cur > T.ng[p].best) T.ng[p].best = T.ng[p].cur;
        T.ng[p].cur = 0;
      }
    int64_t diff = llabs(hyp_len - (int64_t)L);
    if (closest_diff == -1 || diff < closest_diff) {
      closest_diff = diff;
      closest_len = L;
    } else if (diff == closest_diff && L < closest_len) {
      closest_len = L;
    }
  }
  for (int n = 1; n <= LT_BLEU_ORDER; n++)
    for (int i = 0; i + n <= ns[0]; i++) ng_find(&T, (const uint32_t *)ids[0] + i, n)->hyp++;
  acc->sys_len += hyp_len;
  acc->ref_len += closest_len;
  for (size_t p = 0; p < T.ng_cap; p++) {
    const ngram_ent *e = &T.ng[p];
    if (!e->n || !e->hyp) continue;
    acc->total[e->n - 1] += e->hyp;
    acc->correct[e->n - 1] += e->hyp < e->best ? e->hyp : e->best;
  }
  rc = 0;
done:
  if (tokd)
    for (int r = 0; r <= n_refs; r++) free(tokd[r]);
  if (sp)
    for (int r = 0; r <= n_refs; r++) free(sp[r]);
  if (ids)
    for (int r = 0; r <= n_refs; r++) free(ids[r]);
  free(tokd);
  free(sp);
  free(ns);
  free(ids);
  free(T.tok);
  free(T.tok_slot);
  free(T.ng);
  return rc;
}

// sacrebleu.utils.my_log
static double my_log(double x) { return x == 0.0 ? -9999999999.0 : log(x); }

void lt_bleu_compute(const lt_bleu_stats *s, lt_bleu_result *out) {
  memset(out, 0, sizeof *out);
  out->sys_len = s->sys_len;
  out->ref_len = s->ref_len;
  for (int n = 0; n < LT_BLEU_ORDER; n++) {
    out->counts[n] = s->correct[n];
    out->totals[n] = s->total[n];
  }
  double bp = 1.0;
  if (s->sys_len < s->ref_len) bp = s->sys_len > 0 ? exp(1.0 - (double)s->ref_len / (double)s->sys_len) : 0.0;
  out->bp = bp;
  int any = 0;
  for (int n = 0; n < LT_BLEU_ORDER; n++) any |= s->correct[n] != 0;
  if (!any) return;  // score 0, precisions 0 (sacrebleu #141 early stop)
  double smooth_mteval = 1.0;
  for (int n = 0; n < LT_BLEU_ORDER; n++) {
    if (s->total[n] == 0) break;
    if (s->correct[n] == 0) {
      smooth_mteval *= 2;
      out->precisions[n] = 100. / (smooth_mteval * (double)s->total[n]);
    } else {
      out->precisions[n] = 100. * (double)s->correct[n] / (double)s->total[n];
    }
  }
  double sum = 0.0;
  for (int n = 0; n < LT_BLEU_ORDER; n++) sum += my_log(out->precisions[n]);
  out->score = bp * exp(sum / LT_BLEU_ORDER);
}

int lt_bleu_corpus(const char *const *hyps, const char *const *const *refs, int n_refs, size_t n, lt_bleu_tok tok,
                   lt_bleu_result *out, lt_err *err) {
  memset(out, 0, sizeof *out);
  if (n == 0) return lt_errf(err, "BLEU: no segments");
  if (n_refs < 1) return lt_errf(err, "BLEU: no reference stream");
  lt_bleu_tokenizer *t;
  if (lt_bleu_tokenizer_new(&t, tok, err)) return -1;
  const char **seg_refs = malloc((size_t)n_refs * sizeof *seg_refs);
  if (!seg_refs) {
    lt_bleu_tokenizer_free(t);
    return lt_errf(err, "out of memory");
  }
  lt_bleu_stats st = {0};
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    for (int r = 0; r < n_refs; r++) seg_refs[r] = refs[r][i];
    if (lt_bleu_add_segment(t, hyps[i], seg_refs, n_refs, &st, err)) {
      lt_err_prefix(err, "segment %zu", i + 1);
      rc = -1;
    }
  }
  free(seg_refs);
  lt_bleu_tokenizer_free(t);
  if (rc) return -1;
  lt_bleu_compute(&st, out);
  return 0;
}
