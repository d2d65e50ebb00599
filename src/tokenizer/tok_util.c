// Tokenizer utilities: byte buffers, UTF-8, Unicode character classes, hash maps, regex matching (PCRE2),
// split behaviors, JSON field readers, piece and token lists.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

// ---------------------------------------------------------------- byte buffer
int tk_buf_reserve(tk_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return 0;
  size_t nc = b->cap ? b->cap : 64;
  while (nc < b->len + extra + 1) nc *= 2;
  char *p = realloc(b->p, nc);
  if (!p) return -1;
  b->p = p;
  b->cap = nc;
  return 0;
}

int tk_buf_put(tk_buf *b, const void *s, size_t n) {
  if (tk_buf_reserve(b, n)) return -1;
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
  return 0;
}

int tk_utf8_enc(uint32_t cp, char out[4]) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

int tk_buf_put_cp(tk_buf *b, uint32_t cp) {
  char u[4];
  int n = tk_utf8_enc(cp, u);
  return tk_buf_put(b, u, (size_t)n);
}

void tk_buf_free(tk_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

// ---------------------------------------------------------------- UTF-8
// Length of the valid sequence starting at s (1..4), or 0 if invalid; `max` bytes available.
static int utf8_seq(const unsigned char *s, size_t max) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  int n;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if ((size_t)n > max) {
    // Still report the maximal subpart for lossy conversion via a negative count.
    size_t k = 1;
    if (k < max && s[k] >= lo && s[k] <= hi) {
      k++;
      while (k < max && s[k] >= 0x80 && s[k] <= 0xBF) k++;
    }
    return -(int)k;
  }
  if (s[1] < lo || s[1] > hi) return -1;
  for (int i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return -i;
  return n;
}

int tk_utf8_valid(const char *s, size_t len, size_t *bad_off) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    int k = utf8_seq(u + i, len - i);
    if (k <= 0) {
      *bad_off = i;
      return 0;
    }
    i += (size_t)k;
  }
  *bad_off = len;
  return 1;
}

int tk_utf8_lossy(tk_buf *out, const unsigned char *s, size_t len) {
  size_t i = 0, run = 0;
  while (i < len) {
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    int k = utf8_seq(s + i, len - i);
    if (k > 0) {
      i += (size_t)k;
      continue;
    }
    if (tk_buf_put(out, s + run, i - run) || tk_buf_put(out, "\xEF\xBF\xBD", 3)) return -1;
    i += (size_t)(k == 0 ? 1 : -k);
    run = i;
  }
  return tk_buf_put(out, s + run, len - run);
}

// ---------------------------------------------------------------- character classes
int tk_is_whitespace(uint32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 9 && c <= 13);
  if (c < 0x85) return 0;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

int tk_is_punct(uint32_t c) {
  if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

int tk_is_numeric(uint32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

int tk_is_word(uint32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (c == 0x200C || c == 0x200D) return 1;
  // Other_Alphabetic symbols (circled / squared Latin letters).
  if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
      (c >= 0x1F170 && c <= 0x1F189))
    return 1;
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_ME) || k == UTF8PROC_CATEGORY_ND ||
         k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_PC;
}

// ---------------------------------------------------------------- string map
int tk_smap_init(tk_smap *m, uint32_t expect, lt_err *err) {
  memset(m, 0, sizeof *m);
  uint32_t cap = 16;
  while (cap < expect * 2u + 16u) cap *= 2;
  m->slot = calloc(cap, sizeof *m->slot);
  m->cap = expect + 16;
  m->koff = malloc(m->cap * sizeof *m->koff);
  m->klen = malloc(m->cap * sizeof *m->klen);
  m->val = malloc(m->cap * sizeof *m->val);
  if (!m->slot || !m->koff || !m->klen || !m->val) {
    tk_smap_free(m);
    return lt_errf(err, "tokenizer: out of memory for a map of %u entries", expect);
  }
  m->mask = cap - 1;
  return 0;
}

void tk_smap_free(tk_smap *m) {
  free(m->slot);
  free(m->koff);
  free(m->klen);
  free(m->val);
  tk_buf_free(&m->pool);
  memset(m, 0, sizeof *m);
}

int64_t tk_smap_find(const tk_smap *m, const char *k, size_t len) {
  if (!m->slot) return -1;
  uint64_t h = tk_hash(k, len);
  for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
    uint32_t s = m->slot[i];
    if (!s) return -1;
    uint32_t e = s - 1;
    if (m->klen[e] == len && memcmp(m->pool.p + m->koff[e], k, len) == 0) return e;
  }
}

static int smap_grow(tk_smap *m) {
  uint32_t ncap = (m->mask + 1) * 2;
  uint32_t *ns = calloc(ncap, sizeof *ns);
  if (!ns) return -1;
  for (uint32_t e = 0; e < m->n; e++) {
    uint64_t h = tk_hash(m->pool.p + m->koff[e], m->klen[e]);
    uint32_t i = (uint32_t)h & (ncap - 1);
    while (ns[i]) i = (i + 1) & (ncap - 1);
    ns[i] = e + 1;
  }
  free(m->slot);
  m->slot = ns;
  m->mask = ncap - 1;
  return 0;
}

int64_t tk_smap_put(tk_smap *m, const char *k, size_t len, int32_t val) {
  int64_t f = tk_smap_find(m, k, len);
  if (f >= 0) {
    m->val[f] = val;
    return f;
  }
  if (len > UINT32_MAX) return -1;
  if ((uint64_t)(m->n + 1) * 2 > (uint64_t)m->mask + 1 && smap_grow(m)) return -1;
  if (m->n == m->cap) {
    uint32_t nc = m->cap * 2;
    uint32_t *a = realloc(m->koff, nc * sizeof *a);
    if (!a) return -1;
    m->koff = a;
    uint32_t *b = realloc(m->klen, nc * sizeof *b);
    if (!b) return -1;
    m->klen = b;
    int32_t *c = realloc(m->val, nc * sizeof *c);
    if (!c) return -1;
    m->val = c;
    m->cap = nc;
  }
  if (m->pool.len + len + 1 > UINT32_MAX) return -1;
  uint32_t off = (uint32_t)m->pool.len;
  if (tk_buf_put(&m->pool, k, len) || tk_buf_put(&m->pool, "", 1)) return -1;  // NUL-terminated keys
  uint32_t e = m->n++;
  m->koff[e] = off;
  m->klen[e] = (uint32_t)len;
  m->val[e] = val;
  uint64_t h = tk_hash(k, len);
  uint32_t i = (uint32_t)h & m->mask;
  while (m->slot[i]) i = (i + 1) & m->mask;
  m->slot[i] = e + 1;
  return e;
}

// ---------------------------------------------------------------- pair map
int tk_pmap_init(tk_pmap *m, size_t expect, lt_err *err) {
  uint64_t cap = 16;
  while (cap < expect * 2 + 16) cap *= 2;
  m->e = malloc(cap * sizeof *m->e);
  if (!m->e) return lt_errf(err, "tokenizer: out of memory for %zu merges", expect);
  for (uint64_t i = 0; i < cap; i++) m->e[i].key = UINT64_MAX;
  m->mask = cap - 1;
  m->n = 0;
  return 0;
}

void tk_pmap_free(tk_pmap *m) {
  free(m->e);
  m->e = NULL;
}

void tk_pmap_put(tk_pmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  for (uint64_t i = (h ^ (h >> 29)) & m->mask;; i = (i + 1) & m->mask) {
    if (m->e[i].key == key || m->e[i].key == UINT64_MAX) {
      if (m->e[i].key == UINT64_MAX) m->n++;
      m->e[i].key = key;
      m->e[i].rank = rank;
      m->e[i].id = id;
      return;
    }
  }
}

// ---------------------------------------------------------------- regex
// Oniguruma's \s (White_Space) differs from PCRE2's UCP \s (which adds U+180E via \h); rewrite \s and \S into
// explicit classes so both engines agree.
static const char WS_CLASS[] =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}";

static int translate_regex(const char *pat, size_t len, tk_buf *out) {
  int in_class = 0;
  for (size_t i = 0; i < len; i++) {
    char c = pat[i];
    if (c == '\\' && i + 1 < len) {
      char d = pat[i + 1];
      if (d == 's' || d == 'S') {
        int neg = d == 'S';
        if (in_class && !neg) {
          if (tk_buf_put(out, WS_CLASS, strlen(WS_CLASS))) return -1;
        } else if (!in_class) {
          if (tk_buf_put(out, neg ? "[^" : "[", neg ? 2 : 1) || tk_buf_put(out, WS_CLASS, strlen(WS_CLASS)) ||
              tk_buf_put(out, "]", 1))
            return -1;
        } else {
          // \S inside a class: keep PCRE2's meaning (rare).
          if (tk_buf_put(out, pat + i, 2)) return -1;
        }
        i++;
        continue;
      }
      if (tk_buf_put(out, pat + i, 2)) return -1;
      i++;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = 1;
      if (tk_buf_put(out, &c, 1)) return -1;
      // A leading ']' or '^]' is literal.
      if (i + 1 < len && pat[i + 1] == '^') {
        if (tk_buf_put(out, "^", 1)) return -1;
        i++;
      }
      if (i + 1 < len && pat[i + 1] == ']') {
        if (tk_buf_put(out, "]", 1)) return -1;
        i++;
      }
      continue;
    }
    if (in_class && c == '[' && i + 1 < len && pat[i + 1] == ':') {
      // POSIX class [:alpha:]: copy through to its closing ":]".
      const char *e = NULL;
      for (size_t k = i + 2; k + 1 < len; k++)
        if (pat[k] == ':' && pat[k + 1] == ']') {
          e = pat + k;
          break;
        }
      if (e) {
        if (tk_buf_put(out, pat + i, (size_t)(e - (pat + i)) + 2)) return -1;
        i = (size_t)(e - pat) + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = 0;
    if (tk_buf_put(out, &c, 1)) return -1;
  }
  return 0;
}

int tk_regex_init(tk_regex *r, const char *pat, size_t len, int literal, const char *where, lt_err *err) {
  memset(r, 0, sizeof *r);
  if (literal) {
    r->lit = malloc(len + 1);
    if (!r->lit) return lt_errf(err, "tokenizer: out of memory");
    memcpy(r->lit, pat, len);
    r->lit[len] = 0;
    r->lit_len = len;
    return 0;
  }
  tk_buf t = {0};
  if (translate_regex(pat, len, &t) || tk_buf_put(&t, "", 0)) {
    tk_buf_free(&t);
    return lt_errf(err, "tokenizer: out of memory");
  }
  int ec;
  PCRE2_SIZE eo;
  r->code = pcre2_compile((PCRE2_SPTR)t.p, t.len, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
  tk_buf_free(&t);
  if (!r->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(ec, msg, sizeof msg);
    return tk_jerr(err, where, "regex \"%.200s\" does not compile: %s", pat, (const char *)msg);
  }
  pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is unavailable
  return 0;
}

void tk_regex_free(tk_regex *r) {
  if (r->code) pcre2_code_free(r->code);
  free(r->lit);
  memset(r, 0, sizeof *r);
}

int tk_regex_search(const tk_regex *r, pcre2_match_data *md, const char *s, size_t len, size_t from, size_t *ms,
                    size_t *me, lt_err *err) {
  if (!r->code) {
    if (r->lit_len == 0 || from >= len) return 0;
    const char *p = memmem(s + from, len - from, r->lit, r->lit_len);
    if (!p) return 0;
    *ms = (size_t)(p - s);
    *me = *ms + r->lit_len;
    return 1;
  }
  int rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, md, NULL);
  if (rc == PCRE2_ERROR_NOMATCH) return 0;
  if (rc < 0 && rc != 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return lt_errf(err, "tokenizer: regex match failed: %s", (const char *)msg);
  }
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
  *ms = ov[0];
  *me = ov[1];
  return 1;
}

int tk_ranges_push(tk_ranges *v, size_t off, size_t len, int match) {
  if (v->n == v->cap) {
    size_t nc = v->cap ? v->cap * 2 : 64;
    tk_range *r = realloc(v->r, nc * sizeof *r);
    if (!r) return -1;
    v->r = r;
    v->cap = nc;
  }
  v->r[v->n++] = (tk_range){off, len, match};
  return 0;
}

int tk_find_all(const tk_regex *r, pcre2_match_data *md, const char *s, size_t len, tk_ranges *out, lt_err *err) {
  out->n = 0;
  if (len == 0) return tk_ranges_push(out, 0, 0, 0) ? lt_errf(err, "tokenizer: out of memory") : 0;
  if (!r->code && r->lit_len == 0) return tk_ranges_push(out, 0, len, 0) ? lt_errf(err, "tokenizer: out of memory") : 0;
  size_t prev = 0, pos = 0;
  int64_t last_match_end = -1;
  while (pos <= len) {
    size_t ms, me;
    int rc = tk_regex_search(r, md, s, len, pos, &ms, &me, err);
    if (rc < 0) return -1;
    if (rc == 0) break;
    if (ms == me && (int64_t)me == last_match_end) {
      // Oniguruma's iterator: no empty match right after the previous match; step one character.
      if (pos >= len) break;
      pos += (size_t)tk_utf8_len((unsigned char)s[pos]);
      continue;
    }
    if (prev != ms && tk_ranges_push(out, prev, ms - prev, 0)) return lt_errf(err, "tokenizer: out of memory");
    if (tk_ranges_push(out, ms, me - ms, 1)) return lt_errf(err, "tokenizer: out of memory");
    prev = me;
    last_match_end = (int64_t)me;
    if (me == ms) {
      if (me >= len) break;
      pos = me + (size_t)tk_utf8_len((unsigned char)s[me]);
    } else {
      pos = me;
    }
  }
  if (prev != len && tk_ranges_push(out, prev, len - prev, 0)) return lt_errf(err, "tokenizer: out of memory");
  return 0;
}

int tk_find_pred(int (*pred)(uint32_t), const char *s, size_t len, tk_ranges *out) {
  out->n = 0;
  if (len == 0) return tk_ranges_push(out, 0, 0, 0);
  size_t last = 0, i = 0;
  while (i < len) {
    uint32_t c;
    int k = tk_utf8_dec((const unsigned char *)s + i, &c);
    if (pred(c)) {
      if (last < i && tk_ranges_push(out, last, i - last, 0)) return -1;
      if (tk_ranges_push(out, i, (size_t)k, 1)) return -1;
      last = i + (size_t)k;
    }
    i += (size_t)k;
  }
  if (len > last && tk_ranges_push(out, last, len - last, 0)) return -1;
  return 0;
}

void tk_ranges_invert(tk_ranges *v) {
  for (size_t i = 0; i < v->n; i++) v->r[i].match = !v->r[i].match;
}

int tk_split_behavior(const tk_ranges *in, int behavior, tk_ranges *out) {
  out->n = 0;
  int prev_match = 0;
  switch (behavior) {
    case TK_SPLIT_ISOLATED:
      for (size_t i = 0; i < in->n; i++)
        if (tk_ranges_push(out, in->r[i].off, in->r[i].len, 0)) return -1;
      return 0;
    case TK_SPLIT_REMOVED:
      for (size_t i = 0; i < in->n; i++)
        if (!in->r[i].match && tk_ranges_push(out, in->r[i].off, in->r[i].len, 0)) return -1;
      return 0;
    case TK_SPLIT_CONTIGUOUS:
      for (size_t i = 0; i < in->n; i++) {
        const tk_range *r = &in->r[i];
        if (r->match == prev_match && out->n) {
          tk_range *l = &out->r[out->n - 1];
          l->len = r->off + r->len - l->off;
        } else if (tk_ranges_push(out, r->off, r->len, 0)) {
          return -1;
        }
        prev_match = r->match;
      }
      return 0;
    case TK_SPLIT_MERGED_PREV:
      for (size_t i = 0; i < in->n; i++) {
        const tk_range *r = &in->r[i];
        if (r->match && !prev_match && out->n) {
          tk_range *l = &out->r[out->n - 1];
          l->len = r->off + r->len - l->off;
        } else if (tk_ranges_push(out, r->off, r->len, 0)) {
          return -1;
        }
        prev_match = r->match;
      }
      return 0;
    case TK_SPLIT_MERGED_NEXT:
      for (size_t k = in->n; k-- > 0;) {
        const tk_range *r = &in->r[k];
        if (r->match && !prev_match && out->n) {
          tk_range *l = &out->r[out->n - 1];
          l->len = l->off + l->len - r->off;
          l->off = r->off;
        } else if (tk_ranges_push(out, r->off, r->len, 0)) {
          return -1;
        }
        prev_match = r->match;
      }
      for (size_t i = 0, j = out->n ? out->n - 1 : 0; i < j; i++, j--) {
        tk_range t = out->r[i];
        out->r[i] = out->r[j];
        out->r[j] = t;
      }
      return 0;
  }
  return -1;
}

// ---------------------------------------------------------------- JSON helpers
int tk_jerr(lt_err *err, const char *path, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lt_errf(err, "tokenizer.json: %s: %s", path, msg);
}

const cJSON *tk_jget(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return (v && !cJSON_IsNull(v)) ? v : NULL;
}

int tk_jstr(const cJSON *o, const char *key, const char *path, int required, const char **out, lt_err *err) {
  const cJSON *v = tk_jget(o, key);
  *out = NULL;
  if (!v) return required ? tk_jerr(err, path, "missing string field \"%s\"", key) : 0;
  if (!cJSON_IsString(v)) return tk_jerr(err, path, "field \"%s\" must be a string", key);
  *out = v->valuestring;
  return 0;
}

int tk_jbool(const cJSON *o, const char *key, const char *path, int dflt, int *out, lt_err *err) {
  const cJSON *v = tk_jget(o, key);
  if (!v) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsBool(v)) return tk_jerr(err, path, "field \"%s\" must be true or false", key);
  *out = cJSON_IsTrue(v);
  return 0;
}

int tk_jint(const cJSON *o, const char *key, const char *path, long lo, long hi, long dflt, long *out, lt_err *err) {
  const cJSON *v = tk_jget(o, key);
  if (!v) {
    *out = dflt;
    return 0;
  }
  double d = cJSON_IsNumber(v) ? v->valuedouble : -1e300;
  if (!cJSON_IsNumber(v) || d != (double)(long)d || d < (double)lo || d > (double)hi)
    return tk_jerr(err, path, "field \"%s\" must be an integer in [%ld, %ld]", key, lo, hi);
  *out = (long)d;
  return 0;
}

// ---------------------------------------------------------------- pieces, token lists
int tk_pieces_push(tk_pieces *v, size_t off, size_t len, int32_t id, int first) {
  if (v->n == v->cap) {
    size_t nc = v->cap ? v->cap * 2 : 64;
    tk_piece *p = realloc(v->p, nc * sizeof *p);
    if (!p) return -1;
    v->p = p;
    v->cap = nc;
  }
  v->p[v->n++] = (tk_piece){off, len, id, first};
  return 0;
}

void tk_pieces_free(tk_pieces *v) {
  tk_buf_free(&v->a);
  free(v->p);
  memset(v, 0, sizeof *v);
}

int tk_toks_push(tk_toks *t, const char *s, size_t len) {
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 64;
    size_t *a = realloc(t->off, nc * sizeof *a);
    if (!a) return -1;
    t->off = a;
    size_t *b = realloc(t->len, nc * sizeof *b);
    if (!b) return -1;
    t->len = b;
    t->cap = nc;
  }
  size_t off = t->a.len;
  if (tk_buf_put(&t->a, s, len)) return -1;
  t->off[t->n] = off;
  t->len[t->n] = len;
  t->n++;
  return 0;
}

void tk_toks_free(tk_toks *t) {
  tk_buf_free(&t->a);
  free(t->off);
  free(t->len);
  memset(t, 0, sizeof *t);
}

int tk_ids_push(int32_t **ids, int *n, int *cap, int32_t id) {
  if (*n == *cap) {
    if (*cap > (1 << 29)) return -1;
    int nc = *cap ? *cap * 2 : 64;
    int32_t *p = realloc(*ids, (size_t)nc * sizeof *p);
    if (!p) return -1;
    *ids = p;
    *cap = nc;
  }
  (*ids)[(*n)++] = id;
  return 0;
}
