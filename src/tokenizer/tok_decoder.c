// Decoders (tokenizers' decoders/*): ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece,
// BPEDecoder, Sequence. Each maps a list of token strings to a new list (decode_chain).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

int tk_parse_pattern(tk_regex *re, const cJSON *j, const char *path, lt_err *err);
int tk_parse_prepend_scheme(const cJSON *j, const char *path, int *out, lt_err *err);
int tk_parse_replacement(const cJSON *j, const char *path, uint32_t *cp, lt_err *err);

static int oom(lt_err *err) { return lt_errf(err, "tokenizer: out of memory while decoding"); }

int tk_dec_parse(tk_dec *d, const cJSON *j, const char *path, lt_err *err) {
  memset(d, 0, sizeof *d);
  if (!j) return 0;
  if (!cJSON_IsObject(j)) return tk_jerr(err, path, "decoder must be an object or null");
  const char *type;
  if (tk_jstr(j, "type", path, 1, &type, err)) return -1;
  char q[512];
  if (!strcmp(type, "Sequence")) {
    d->type = TK_D_SEQ;
    const cJSON *arr = tk_jget(j, "decoders");
    snprintf(q, sizeof q, "%s.decoders", path);
    if (!arr || !cJSON_IsArray(arr)) return tk_jerr(err, q, "expected an array");
    int cnt = cJSON_GetArraySize(arr);
    d->sub = calloc((size_t)(cnt ? cnt : 1), sizeof *d->sub);
    if (!d->sub) return oom(err);
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
      snprintf(q, sizeof q, "%s.decoders[%d]", path, i);
      d->nsub = i + 1;
      if (tk_dec_parse(&d->sub[i], c, q, err)) return -1;
    }
  } else if (!strcmp(type, "ByteLevel")) {
    d->type = TK_D_BYTELEVEL;
  } else if (!strcmp(type, "Metaspace")) {
    d->type = TK_D_METASPACE;
    if (tk_parse_replacement(j, path, &d->replacement, err) ||
        tk_parse_prepend_scheme(j, path, &d->prepend_scheme, err))
      return -1;
  } else if (!strcmp(type, "ByteFallback")) {
    d->type = TK_D_BYTEFALLBACK;
  } else if (!strcmp(type, "Fuse")) {
    d->type = TK_D_FUSE;
  } else if (!strcmp(type, "Strip")) {
    d->type = TK_D_STRIP;
    const char *c;
    if (tk_jstr(j, "content", path, 1, &c, err) || tk_jint(j, "start", path, 0, 1L << 30, 0, &d->start, err) ||
        tk_jint(j, "stop", path, 0, 1L << 30, 0, &d->stop, err))
      return -1;
    size_t n = strlen(c), bad;
    if (!n || !tk_utf8_valid(c, n, &bad) || (size_t)tk_utf8_len((unsigned char)c[0]) != n)
      return tk_jerr(err, path, "Strip content must be a single character");
    tk_utf8_dec((const unsigned char *)c, &d->strip_content);
  } else if (!strcmp(type, "Replace")) {
    d->type = TK_D_REPLACE;
    const char *c;
    if (tk_parse_pattern(&d->re, j, path, err) || tk_jstr(j, "content", path, 1, &c, err)) return -1;
    if (!(d->content = strdup(c))) return oom(err);
    d->content_len = strlen(c);
  } else if (!strcmp(type, "WordPiece") || !strcmp(type, "BPEDecoder")) {
    int wp = type[0] == 'W';
    d->type = wp ? TK_D_WORDPIECE : TK_D_BPE;
    const char *pre;
    if (tk_jstr(j, wp ? "prefix" : "suffix", path, 0, &pre, err)) return -1;
    if (!pre) pre = wp ? "##" : "</w>";
    if (!(d->prefix = strdup(pre))) return oom(err);
    d->prefix_len = strlen(pre);
    if (wp && tk_jbool(j, "cleanup", path, 1, &d->cleanup, err)) return -1;
  } else {
    return tk_jerr(err, path,
                   "unsupported decoder type \"%s\" (supported: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, "
                   "Replace, WordPiece, BPEDecoder, Sequence)",
                   type);
  }
  return 0;
}

void tk_dec_free(tk_dec *d) {
  for (int i = 0; i < d->nsub; i++) tk_dec_free(&d->sub[i]);
  free(d->sub);
  tk_regex_free(&d->re);
  free(d->content);
  free(d->prefix);
  memset(d, 0, sizeof *d);
}

int tk_dec_has_cleanup(const tk_dec *d) {
  if (d->type == TK_D_WORDPIECE && d->cleanup) return 1;
  if (d->type == TK_D_REPLACE || d->type == TK_D_BPE) return 1;
  for (int i = 0; i < d->nsub; i++)
    if (tk_dec_has_cleanup(&d->sub[i])) return 1;
  return 0;
}

uint32_t tk_dec_strip_right(const tk_dec *d) {
  if (d->type == TK_D_STRIP && d->stop > 0) return d->strip_content;
  for (int i = 0; i < d->nsub; i++) {
    uint32_t c = tk_dec_strip_right(&d->sub[i]);
    if (c) return c;
  }
  return 0;
}

// WordPiece cleanup (decoders/wordpiece.rs), applied to one string in place into out.
static int replace_all(tk_buf *out, const char *s, size_t n, const char *from, const char *to) {
  size_t fl = strlen(from), tl = strlen(to);
  out->len = 0;
  if (tk_buf_reserve(out, n)) return -1;
  size_t i = 0;
  while (i < n) {
    const char *p = fl ? memmem(s + i, n - i, from, fl) : NULL;
    if (!p) break;
    size_t k = (size_t)(p - s);
    if (tk_buf_put(out, s + i, k - i) || tk_buf_put(out, to, tl)) return -1;
    i = k + fl;
  }
  if (tk_buf_put(out, s + i, n - i)) return -1;
  return 0;
}

int tk_cleanup_apply(tk_buf *s, int wordpiece);
// transformers' clean_up_tokenization (wordpiece = 0) or the WordPiece decoder's cleanup (wordpiece = 1).
int tk_cleanup_apply(tk_buf *s, int wordpiece) {
  static const char *const rules[][2] = {{" .", "."},   {" ?", "?"},     {" !", "!"},       {" ,", ","},
                                         {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},     {" do not", " don't"},
                                         {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  tk_buf t = {0};
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
    if (!wordpiece && r == 7) continue;  // transformers has no " do not" rule
    if (!s->len || !memmem(s->p, s->len, rules[r][0], strlen(rules[r][0]))) continue;
    if (replace_all(&t, s->p, s->len, rules[r][0], rules[r][1])) {
      tk_buf_free(&t);
      return -1;
    }
    tk_buf x = *s;
    *s = t;
    t = x;
  }
  tk_buf_free(&t);
  return 0;
}

static int chain_one(const tk_dec *d, tk_scratch *sc, const tk_toks *in, tk_toks *out, lt_err *err) {
  switch (d->type) {
    case TK_D_NONE:
    case TK_D_SEQ:
      for (size_t i = 0; i < in->n; i++)
        if (tk_toks_push(out, in->a.p + in->off[i], in->len[i])) return oom(err);
      return 0;
    case TK_D_FUSE:
      return tk_toks_push(out, in->a.p ? in->a.p : "", in->a.len) ? oom(err) : 0;  // tokens are contiguous
    case TK_D_BYTELEVEL: {
      tk_buf bytes = {0}, res = {0};
      for (size_t i = 0; i < in->n; i++) {
        const unsigned char *s = (const unsigned char *)in->a.p + in->off[i];
        size_t n = in->len[i], start = bytes.len;
        int ok = 1;
        for (size_t k = 0; k < n && ok;) {
          uint32_t c;
          k += (size_t)tk_utf8_dec(s + k, &c);
          int b = tk_bytelevel_char_byte(c);
          if (b < 0) ok = 0;
          else {
            unsigned char ub = (unsigned char)b;
            if (tk_buf_put(&bytes, &ub, 1)) goto bl_oom;
          }
        }
        if (!ok) {
          bytes.len = start;
          if (tk_buf_put(&bytes, s, n)) goto bl_oom;
        }
      }
      if (tk_utf8_lossy(&res, (const unsigned char *)(bytes.p ? bytes.p : ""), bytes.len) ||
          tk_toks_push(out, res.p ? res.p : "", res.len))
        goto bl_oom;
      tk_buf_free(&bytes);
      tk_buf_free(&res);
      return 0;
    bl_oom:
      tk_buf_free(&bytes);
      tk_buf_free(&res);
      return oom(err);
    }
    case TK_D_METASPACE: {
      tk_buf *t = &sc->t1;
      for (size_t i = 0; i < in->n; i++) {
        t->len = 0;
        const unsigned char *s = (const unsigned char *)in->a.p + in->off[i];
        for (size_t k = 0; k < in->len[i];) {
          uint32_t c;
          int l = tk_utf8_dec(s + k, &c);
          if (c == d->replacement) {
            if (!(i == 0 && d->prepend_scheme != TK_PREPEND_NEVER) && tk_buf_put(t, " ", 1)) return oom(err);
          } else if (tk_buf_put(t, s + k, (size_t)l)) {
            return oom(err);
          }
          k += (size_t)l;
        }
        if (tk_toks_push(out, t->p ? t->p : "", t->len)) return oom(err);
      }
      return 0;
    }
    case TK_D_BYTEFALLBACK: {
      tk_buf *pend = &sc->t1;
      pend->len = 0;
      for (size_t i = 0; i <= in->n; i++) {
        const char *s = i < in->n ? in->a.p + in->off[i] : NULL;
        size_t n = i < in->n ? in->len[i] : 0;
        int byte = -1;
        if (s && n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') {
          int v = 0, ok = 1;
          for (int k = 3; k < 5; k++) {
            char c = s[k];
            int h = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                   : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
            if (h < 0) ok = 0;
            v = v * 16 + h;
          }
          if (ok) byte = v;
        }
        if (byte >= 0) {
          unsigned char b = (unsigned char)byte;
          if (tk_buf_put(pend, &b, 1)) return oom(err);
          continue;
        }
        if (pend->len) {
          size_t bad;
          if (tk_utf8_valid(pend->p, pend->len, &bad)) {
            if (tk_toks_push(out, pend->p, pend->len)) return oom(err);
          } else {
            for (size_t k = 0; k < pend->len; k++)
              if (tk_toks_push(out, "\xEF\xBF\xBD", 3)) return oom(err);
          }
          pend->len = 0;
        }
        if (s && tk_toks_push(out, s, n)) return oom(err);
      }
      return 0;
    }
    case TK_D_STRIP:
      for (size_t i = 0; i < in->n; i++) {
        const char *s = in->a.p + in->off[i];
        size_t n = in->len[i];
        // char boundaries
        size_t a = 0, b = n;
        for (long k = 0; k < d->start && a < n; k++) {
          uint32_t c;
          int l = tk_utf8_dec((const unsigned char *)s + a, &c);
          if (c != d->strip_content) break;
          a += (size_t)l;
        }
        for (long k = 0; k < d->stop && b > a; k++) {
          size_t p = b - 1;
          while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
          uint32_t c;
          tk_utf8_dec((const unsigned char *)s + p, &c);
          if (c != d->strip_content) break;
          b = p;
        }
        if (tk_toks_push(out, s + a, b > a ? b - a : 0)) return oom(err);
      }
      return 0;
    case TK_D_REPLACE: {
      tk_buf *t = &sc->t1;
      for (size_t i = 0; i < in->n; i++) {
        const char *s = in->a.p + in->off[i];
        t->len = 0;
        if (tk_find_all(&d->re, sc->md, s, in->len[i], &sc->r1, err)) return -1;
        for (size_t k = 0; k < sc->r1.n; k++) {
          const tk_range *r = &sc->r1.r[k];
          if (r->match ? tk_buf_put(t, d->content, d->content_len) : tk_buf_put(t, s + r->off, r->len))
            return oom(err);
        }
        if (tk_toks_push(out, t->p ? t->p : "", t->len)) return oom(err);
      }
      return 0;
    }
    case TK_D_WORDPIECE: {
      tk_buf t = {0};
      for (size_t i = 0; i < in->n; i++) {
        const char *s = in->a.p + in->off[i];
        size_t n = in->len[i];
        t.len = 0;
        if (i != 0) {
          if (n >= d->prefix_len && !memcmp(s, d->prefix, d->prefix_len)) {
            s += d->prefix_len;
            n -= d->prefix_len;
          } else if (tk_buf_put(&t, " ", 1)) {
            goto wp_oom;
          }
        }
        if (tk_buf_put(&t, s, n)) goto wp_oom;
        if (d->cleanup && tk_cleanup_apply(&t, 1)) goto wp_oom;
        if (tk_toks_push(out, t.p ? t.p : "", t.len)) goto wp_oom;
      }
      tk_buf_free(&t);
      return 0;
    wp_oom:
      tk_buf_free(&t);
      return oom(err);
    }
    case TK_D_BPE: {
      tk_buf t = {0};
      for (size_t i = 0; i < in->n; i++) {
        if (replace_all(&t, in->a.p + in->off[i], in->len[i], d->prefix, i + 1 == in->n ? "" : " ") ||
            tk_toks_push(out, t.p ? t.p : "", t.len)) {
          tk_buf_free(&t);
          return oom(err);
        }
      }
      tk_buf_free(&t);
      return 0;
    }
  }
  return lt_errf(err, "tokenizer: bad decoder");
}

int tk_dec_chain(const tk_dec *d, tk_scratch *sc, tk_toks *t, lt_err *err) {
  if (d->type == TK_D_NONE) return 0;
  if (d->type == TK_D_SEQ) {
    for (int i = 0; i < d->nsub; i++)
      if (tk_dec_chain(&d->sub[i], sc, t, err)) return -1;
    return 0;
  }
  tk_toks out = {0};
  if (chain_one(d, sc, t, &out, err)) {
    tk_toks_free(&out);
    return -1;
  }
  tk_toks_free(t);
  *t = out;
  return 0;
}
