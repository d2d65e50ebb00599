// Normalizers (tokenizers' normalizers/*): NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip, StripAccents,
// BertNormalizer, Nmt, Sequence. Unicode via utf8proc.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

static const char *NORM_TYPES =
    "NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip, StripAccents, BertNormalizer, Nmt, Sequence";

// {"String": "..."} or {"Regex": "..."}.
int tk_parse_pattern(tk_regex *re, const cJSON *j, const char *path, lt_err *err);
int tk_parse_pattern(tk_regex *re, const cJSON *j, const char *path, lt_err *err) {
  char p[512];
  snprintf(p, sizeof p, "%s.pattern", path);
  const cJSON *pat = tk_jget(j, "pattern");
  if (!pat || !cJSON_IsObject(pat)) return tk_jerr(err, p, "expected {\"String\": ...} or {\"Regex\": ...}");
  const cJSON *s = tk_jget(pat, "String"), *r = tk_jget(pat, "Regex");
  if (s && cJSON_IsString(s)) return tk_regex_init(re, s->valuestring, strlen(s->valuestring), 1, p, err);
  if (r && cJSON_IsString(r)) return tk_regex_init(re, r->valuestring, strlen(r->valuestring), 0, p, err);
  return tk_jerr(err, p, "expected {\"String\": ...} or {\"Regex\": ...}");
}

int tk_norm_parse(tk_norm *n, const cJSON *j, const char *path, lt_err *err) {
  memset(n, 0, sizeof *n);
  if (!j) {
    n->type = TK_N_NONE;
    return 0;
  }
  if (!cJSON_IsObject(j)) return tk_jerr(err, path, "normalizer must be an object or null");
  const char *type;
  if (tk_jstr(j, "type", path, 1, &type, err)) return -1;
  char p[512];
  if (!strcmp(type, "Sequence")) {
    n->type = TK_N_SEQ;
    const cJSON *arr = tk_jget(j, "normalizers");
    snprintf(p, sizeof p, "%s.normalizers", path);
    if (!arr || !cJSON_IsArray(arr)) return tk_jerr(err, p, "expected an array");
    int cnt = cJSON_GetArraySize(arr);
    n->sub = calloc((size_t)(cnt ? cnt : 1), sizeof *n->sub);
    if (!n->sub) return lt_errf(err, "tokenizer: out of memory");
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
      snprintf(p, sizeof p, "%s.normalizers[%d]", path, i);
      n->nsub = i + 1;
      if (tk_norm_parse(&n->sub[i], c, p, err)) return -1;
    }
    return 0;
  }
  if (!strcmp(type, "NFC")) n->type = TK_N_NFC;
  else if (!strcmp(type, "NFD")) n->type = TK_N_NFD;
  else if (!strcmp(type, "NFKC")) n->type = TK_N_NFKC;
  else if (!strcmp(type, "NFKD")) n->type = TK_N_NFKD;
  else if (!strcmp(type, "Lowercase")) n->type = TK_N_LOWER;
  else if (!strcmp(type, "StripAccents")) n->type = TK_N_STRIP_ACCENTS;
  else if (!strcmp(type, "Nmt")) n->type = TK_N_NMT;
  else if (!strcmp(type, "Replace")) {
    n->type = TK_N_REPLACE;
    const char *content;
    if (tk_parse_pattern(&n->re, j, path, err) || tk_jstr(j, "content", path, 1, &content, err)) return -1;
    n->content = strdup(content);
    if (!n->content) return lt_errf(err, "tokenizer: out of memory");
    n->content_len = strlen(content);
  } else if (!strcmp(type, "Prepend")) {
    n->type = TK_N_PREPEND;
    const char *s;
    if (tk_jstr(j, "prepend", path, 1, &s, err)) return -1;
    n->content = strdup(s);
    if (!n->content) return lt_errf(err, "tokenizer: out of memory");
    n->content_len = strlen(s);
  } else if (!strcmp(type, "Strip")) {
    n->type = TK_N_STRIP;
    if (tk_jbool(j, "strip_left", path, 1, &n->left, err) || tk_jbool(j, "strip_right", path, 1, &n->right, err))
      return -1;
  } else if (!strcmp(type, "BertNormalizer")) {
    n->type = TK_N_BERT;
    if (tk_jbool(j, "clean_text", path, 1, &n->clean_text, err) ||
        tk_jbool(j, "handle_chinese_chars", path, 1, &n->chinese, err) ||
        tk_jbool(j, "lowercase", path, 1, &n->lowercase, err) ||
        tk_jbool(j, "strip_accents", path, -1, &n->strip_accents, err))
      return -1;
  } else {
    return tk_jerr(err, path, "unsupported normalizer type \"%s\" (supported: %s)", type, NORM_TYPES);
  }
  return 0;
}

void tk_norm_free(tk_norm *n) {
  for (int i = 0; i < n->nsub; i++) tk_norm_free(&n->sub[i]);
  free(n->sub);
  tk_regex_free(&n->re);
  free(n->content);
  memset(n, 0, sizeof *n);
}

static int oom(lt_err *err) { return lt_errf(err, "tokenizer: out of memory while normalizing"); }

static int unicode_norm(int type, const char *s, size_t len, tk_buf *out, lt_err *err) {
  utf8proc_option_t opt = UTF8PROC_STABLE;
  switch (type) {
    case TK_N_NFC: opt |= UTF8PROC_COMPOSE; break;
    case TK_N_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case TK_N_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  if (len == 0) return 0;
  // Fast path: ASCII is invariant under every normalization form.
  size_t i = 0;
  while (i < len && (unsigned char)s[i] < 0x80) i++;
  if (i == len) return tk_buf_put(out, s, len) ? oom(err) : 0;
  utf8proc_uint8_t *res = NULL;
  utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &res, opt);
  if (n < 0) return lt_errf(err, "tokenizer: Unicode normalization failed: %s", utf8proc_errmsg(n));
  int rc = tk_buf_put(out, res, (size_t)n) ? oom(err) : 0;
  free(res);
  return rc;
}

static int lower_char(tk_buf *out, uint32_t c) {
  if (c < 0x80) {
    char ch = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return tk_buf_put(out, &ch, 1);
  }
  if (c == 0x130) return tk_buf_put(out, "i\xCC\x87", 3);  // full lowercase mapping of U+0130
  return tk_buf_put_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
}

static int is_chinese(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_other(uint32_t c) {
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CS ||
         k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CN;
}

static int is_mark(uint32_t c, int nonspacing_only) {
  if (c < 0x300) return 0;
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  if (nonspacing_only) return k == UTF8PROC_CATEGORY_MN;
  return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

// One normalizer step from (s, len) into out.
static int norm_step(const tk_norm *n, tk_scratch *sc, const char *s, size_t len, tk_buf *out, lt_err *err) {
  const unsigned char *u = (const unsigned char *)s;
  switch (n->type) {
    case TK_N_NONE:
    case TK_N_SEQ:
      return tk_buf_put(out, s, len) ? oom(err) : 0;
    case TK_N_NFC:
    case TK_N_NFD:
    case TK_N_NFKC:
    case TK_N_NFKD:
      return unicode_norm(n->type, s, len, out, err);
    case TK_N_LOWER:
      for (size_t i = 0; i < len;) {
        uint32_t c;
        i += (size_t)tk_utf8_dec(u + i, &c);
        if (lower_char(out, c)) return oom(err);
      }
      return 0;
    case TK_N_PREPEND:
      if (len && tk_buf_put(out, n->content, n->content_len)) return oom(err);
      return tk_buf_put(out, s, len) ? oom(err) : 0;
    case TK_N_REPLACE: {
      if (tk_find_all(&n->re, sc->md, s, len, &sc->r1, err)) return -1;
      for (size_t i = 0; i < sc->r1.n; i++) {
        const tk_range *r = &sc->r1.r[i];
        if (r->match ? tk_buf_put(out, n->content, n->content_len) : tk_buf_put(out, s + r->off, r->len))
          return oom(err);
      }
      return 0;
    }
    case TK_N_STRIP: {
      size_t a = 0, b = len;
      if (n->left)
        while (a < b) {
          uint32_t c;
          int k = tk_utf8_dec(u + a, &c);
          if (!tk_is_whitespace(c)) break;
          a += (size_t)k;
        }
      if (n->right)
        while (b > a) {
          size_t k = b - 1;
          while (k > a && (u[k] & 0xC0) == 0x80) k--;
          uint32_t c;
          tk_utf8_dec(u + k, &c);
          if (!tk_is_whitespace(c)) break;
          b = k;
        }
      return tk_buf_put(out, s + a, b - a) ? oom(err) : 0;
    }
    case TK_N_STRIP_ACCENTS:
      for (size_t i = 0; i < len;) {
        uint32_t c;
        int k = tk_utf8_dec(u + i, &c);
        if (!is_mark(c, 0) && tk_buf_put(out, s + i, (size_t)k)) return oom(err);
        i += (size_t)k;
      }
      return 0;
    case TK_N_NMT:
      for (size_t i = 0; i < len;) {
        uint32_t c;
        int k = tk_utf8_dec(u + i, &c);
        i += (size_t)k;
        if ((c >= 1 && c <= 8) || c == 0xB || (c >= 0xE && c <= 0x1F) || c == 0x7F || c == 0x8F || c == 0x9F)
          continue;
        if (c == 9 || c == 10 || c == 12 || c == 13 || c == 0x1680 || (c >= 0x200B && c <= 0x200F) ||
            c == 0x2028 || c == 0x2029 || c == 0x2581 || c == 0xFEFF || c == 0xFFFD)
          c = ' ';
        if (tk_buf_put_cp(out, c)) return oom(err);
      }
      return 0;
    case TK_N_BERT: {
      tk_buf a = {0}, b = {0};
      int rc = -1;
      // clean_text + chinese chars in one pass
      for (size_t i = 0; i < len;) {
        uint32_t c;
        int k = tk_utf8_dec(u + i, &c);
        i += (size_t)k;
        if (n->clean_text) {
          if (c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && is_other(c))) continue;
          if (c == '\t' || c == '\n' || c == '\r' || tk_is_whitespace(c)) c = ' ';
        }
        if (n->chinese && is_chinese(c)) {
          if (tk_buf_put(&a, " ", 1) || tk_buf_put_cp(&a, c) || tk_buf_put(&a, " ", 1)) goto bert_oom;
        } else if (tk_buf_put_cp(&a, c)) {
          goto bert_oom;
        }
      }
      int strip = n->strip_accents < 0 ? n->lowercase : n->strip_accents;
      const char *cur = a.p ? a.p : "";
      size_t cur_len = a.len;
      if (strip) {
        if (unicode_norm(TK_N_NFD, cur, cur_len, &b, err)) goto bert_done;
        a.len = 0;
        for (size_t i = 0; i < b.len;) {
          uint32_t c;
          int k = tk_utf8_dec((const unsigned char *)b.p + i, &c);
          if (!is_mark(c, 1) && tk_buf_put(&a, b.p + i, (size_t)k)) goto bert_oom;
          i += (size_t)k;
        }
        cur = a.p ? a.p : "";
        cur_len = a.len;
      }
      if (n->lowercase) {
        for (size_t i = 0; i < cur_len;) {
          uint32_t c;
          i += (size_t)tk_utf8_dec((const unsigned char *)cur + i, &c);
          if (lower_char(out, c)) goto bert_oom;
        }
      } else if (tk_buf_put(out, cur, cur_len)) {
        goto bert_oom;
      }
      rc = 0;
      goto bert_done;
    bert_oom:
      oom(err);
    bert_done:
      tk_buf_free(&a);
      tk_buf_free(&b);
      return rc;
    }
  }
  return lt_errf(err, "tokenizer: bad normalizer");
}

int tk_norm_apply(const tk_norm *n, tk_scratch *sc, const char *s, size_t len, tk_buf *out, lt_err *err) {
  out->len = 0;
  if (n->type != TK_N_SEQ) {
    if (tk_buf_reserve(out, len + 8)) return oom(err);
    out->p[0] = 0;
    return norm_step(n, sc, s, len, out, err);
  }
  // Sequence: ping-pong between two local buffers.
  tk_buf x = {0}, y = {0};
  if (tk_buf_put(&x, s, len)) return oom(err);
  for (int i = 0; i < n->nsub; i++) {
    y.len = 0;
    if (tk_buf_reserve(&y, x.len + 8)) {
      tk_buf_free(&x);
      tk_buf_free(&y);
      return oom(err);
    }
    if (tk_norm_apply(&n->sub[i], sc, x.p, x.len, &y, err)) {
      tk_buf_free(&x);
      tk_buf_free(&y);
      return -1;
    }
    tk_buf t = x;
    x = y;
    y = t;
  }
  int rc = tk_buf_put(out, x.p, x.len) ? oom(err) : 0;
  tk_buf_free(&x);
  tk_buf_free(&y);
  return rc;
}
