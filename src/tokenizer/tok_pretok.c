// Pre-tokenizers (tokenizers' pre_tokenizers/*): ByteLevel, Split, Digits, Metaspace, Punctuation, Whitespace,
// WhitespaceSplit, BertPreTokenizer, Sequence. Pieces never end up empty (as PreTokenizedString::split).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static const char *PRE_TYPES =
    "ByteLevel, Split, Digits, Metaspace, Punctuation, Whitespace, WhitespaceSplit, BertPreTokenizer, Sequence";

const char tk_bytelevel_gpt2_re[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

int tk_parse_pattern(tk_regex *re, const cJSON *j, const char *path, lt_err *err);

static int parse_behavior(const cJSON *j, const char *path, int dflt, int *out, lt_err *err) {
  const char *b;
  if (tk_jstr(j, "behavior", path, 0, &b, err)) return -1;
  if (!b) {
    *out = dflt;
    return 0;
  }
  if (!strcmp(b, "Removed")) *out = TK_SPLIT_REMOVED;
  else if (!strcmp(b, "Isolated")) *out = TK_SPLIT_ISOLATED;
  else if (!strcmp(b, "MergedWithPrevious")) *out = TK_SPLIT_MERGED_PREV;
  else if (!strcmp(b, "MergedWithNext")) *out = TK_SPLIT_MERGED_NEXT;
  else if (!strcmp(b, "Contiguous")) *out = TK_SPLIT_CONTIGUOUS;
  else
    return tk_jerr(err, path,
                   "unknown split behavior \"%s\" (supported: Removed, Isolated, MergedWithPrevious, "
                   "MergedWithNext, Contiguous)",
                   b);
  return 0;
}

int tk_parse_prepend_scheme(const cJSON *j, const char *path, int *out, lt_err *err);
int tk_parse_prepend_scheme(const cJSON *j, const char *path, int *out, lt_err *err) {
  const char *s;
  if (tk_jstr(j, "prepend_scheme", path, 0, &s, err)) return -1;
  if (!s) {
    // Old serializations: add_prefix_space true -> always, false -> never.
    int aps;
    if (tk_jbool(j, "add_prefix_space", path, 1, &aps, err)) return -1;
    *out = aps ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER;
    return 0;
  }
  if (!strcmp(s, "always")) *out = TK_PREPEND_ALWAYS;
  else if (!strcmp(s, "first")) *out = TK_PREPEND_FIRST;
  else if (!strcmp(s, "never")) *out = TK_PREPEND_NEVER;
  else return tk_jerr(err, path, "unknown prepend_scheme \"%s\" (supported: always, first, never)", s);
  return 0;
}

int tk_parse_replacement(const cJSON *j, const char *path, uint32_t *cp, lt_err *err);
int tk_parse_replacement(const cJSON *j, const char *path, uint32_t *cp, lt_err *err) {
  const char *r;
  if (tk_jstr(j, "replacement", path, 0, &r, err)) return -1;
  if (!r) r = "\xE2\x96\x81";
  size_t bad, n = strlen(r);
  if (n == 0 || !tk_utf8_valid(r, n, &bad) || (size_t)tk_utf8_len((unsigned char)r[0]) != n)
    return tk_jerr(err, path, "replacement must be a single character");
  tk_utf8_dec((const unsigned char *)r, cp);
  return 0;
}

int tk_pretok_parse(tk_pretok *p, const cJSON *j, const char *path, lt_err *err) {
  memset(p, 0, sizeof *p);
  if (!j) {
    p->type = TK_P_NONE;
    return 0;
  }
  if (!cJSON_IsObject(j)) return tk_jerr(err, path, "pre_tokenizer must be an object or null");
  const char *type;
  if (tk_jstr(j, "type", path, 1, &type, err)) return -1;
  char q[512];
  if (!strcmp(type, "Sequence")) {
    p->type = TK_P_SEQ;
    const cJSON *arr = tk_jget(j, "pretokenizers");
    snprintf(q, sizeof q, "%s.pretokenizers", path);
    if (!arr || !cJSON_IsArray(arr)) return tk_jerr(err, q, "expected an array");
    int cnt = cJSON_GetArraySize(arr);
    p->sub = calloc((size_t)(cnt ? cnt : 1), sizeof *p->sub);
    if (!p->sub) return lt_errf(err, "tokenizer: out of memory");
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
      snprintf(q, sizeof q, "%s.pretokenizers[%d]", path, i);
      p->nsub = i + 1;
      if (tk_pretok_parse(&p->sub[i], c, q, err)) return -1;
    }
  } else if (!strcmp(type, "ByteLevel")) {
    p->type = TK_P_BYTELEVEL;
    tk_bytelevel_tables(p->enc, p->enc_len);
    if (tk_jbool(j, "add_prefix_space", path, 1, &p->add_prefix_space, err) ||
        tk_jbool(j, "use_regex", path, 1, &p->use_regex, err))
      return -1;
    if (p->use_regex &&
        tk_regex_init(&p->re, tk_bytelevel_gpt2_re, strlen(tk_bytelevel_gpt2_re), 0, path, err))
      return -1;
  } else if (!strcmp(type, "Split")) {
    p->type = TK_P_SPLIT;
    if (tk_parse_pattern(&p->re, j, path, err) || parse_behavior(j, path, TK_SPLIT_REMOVED, &p->behavior, err) ||
        tk_jbool(j, "invert", path, 0, &p->invert, err))
      return -1;
  } else if (!strcmp(type, "Digits")) {
    p->type = TK_P_DIGITS;
    if (tk_jbool(j, "individual_digits", path, 0, &p->individual_digits, err)) return -1;
  } else if (!strcmp(type, "Metaspace")) {
    p->type = TK_P_METASPACE;
    if (tk_parse_replacement(j, path, &p->replacement, err) ||
        tk_parse_prepend_scheme(j, path, &p->prepend_scheme, err) || tk_jbool(j, "split", path, 1, &p->split, err))
      return -1;
    p->rep_len = tk_utf8_enc(p->replacement, p->rep);
  } else if (!strcmp(type, "Punctuation")) {
    p->type = TK_P_PUNCT;
    if (parse_behavior(j, path, TK_SPLIT_ISOLATED, &p->behavior, err)) return -1;
  } else if (!strcmp(type, "Whitespace")) {
    p->type = TK_P_WHITESPACE;
  } else if (!strcmp(type, "WhitespaceSplit")) {
    p->type = TK_P_WSSPLIT;
  } else if (!strcmp(type, "BertPreTokenizer")) {
    p->type = TK_P_BERT;
  } else {
    return tk_jerr(err, path, "unsupported pre_tokenizer type \"%s\" (supported: %s)", type, PRE_TYPES);
  }
  return 0;
}

void tk_pretok_free(tk_pretok *p) {
  for (int i = 0; i < p->nsub; i++) tk_pretok_free(&p->sub[i]);
  free(p->sub);
  tk_regex_free(&p->re);
  memset(p, 0, sizeof *p);
}

// ---------------------------------------------------------------- byte-level alphabet
void tk_bytelevel_tables(char enc[256][3], uint8_t enc_len[256]) {
  int n = 0;
  for (int b = 0; b < 256; b++) {
    uint32_t cp;
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cp = (uint32_t)b;
    else cp = 256u + (uint32_t)n++;
    char u[4];
    int k = tk_utf8_enc(cp, u);
    memcpy(enc[b], u, (size_t)k);
    enc_len[b] = (uint8_t)k;
  }
}

int tk_bytelevel_char_byte(uint32_t cp) {
  if ((cp >= '!' && cp <= '~') || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
  if (cp < 256 || cp >= 256 + 68) return -1;
  // The n-th byte not in the printable ranges.
  int n = (int)(cp - 256), k = 0;
  for (int b = 0; b < 256; b++) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) continue;
    if (k++ == n) return b;
  }
  return -1;
}

// ---------------------------------------------------------------- apply
static int oom(lt_err *err) { return lt_errf(err, "tokenizer: out of memory while pre-tokenizing"); }

// Emit ranges (relative to base offset `base` in the arena) as pieces.
// `first` of a piece = how many of its leading bytes are aligned to offset 0 of the original input (0: none).
// A sub-piece starting at byte k keeps first - k of them.
#define ZSUB(first, k) ((size_t)(k) < (size_t)(first) ? (int)((size_t)(first) - (size_t)(k)) : 0)

static int emit_ranges(tk_pieces *out, const tk_ranges *r, size_t base, int first) {
  for (size_t i = 0; i < r->n; i++) {
    if (r->r[i].len == 0) continue;
    if (tk_pieces_push(out, base + r->r[i].off, r->r[i].len, -1, ZSUB(first, r->r[i].off))) return -1;
  }
  return 0;
}

static int is_space_char(uint32_t c) { return tk_is_whitespace(c); }

// Append `len` bytes of text mapped through the byte-level alphabet to the arena.
static int bytelevel_map(const tk_pretok *p, tk_buf *a, const char *s, size_t len) {
  const char(*enc)[3] = p->enc;
  const uint8_t *el = p->enc_len;
  if (tk_buf_reserve(a, len * 2)) return -1;
  char *w = a->p + a->len;
  for (size_t i = 0; i < len; i++) {
    unsigned char b = (unsigned char)s[i];
    memcpy(w, enc[b], el[b]);
    w += el[b];
  }
  a->len = (size_t)(w - a->p);
  a->p[a->len] = 0;
  return 0;
}

// ByteLevel: t = (prefix space) + piece; a sub-range at offset k of t, mapped: bytes aligned to 0 are the prefix
// space and the first `first` bytes of the piece, each mapped to its alphabet char.
static int bytelevel_zero(const tk_pretok *p, const char *t, int first, int prefixed, size_t k) {
  if (!first) return 0;
  size_t z = (size_t)first + (prefixed ? 1 : 0);
  if (k >= z) return 0;
  int n = 0;
  for (size_t i = k; i < z; i++) n += p->enc_len[(unsigned char)t[i]];
  return n;
}

static int apply_one(const tk_pretok *p, tk_scratch *sc, tk_pieces *in, const tk_piece *pc, tk_pieces *out,
                     lt_err *err) {
  const char *s = in->a.p + pc->off;
  size_t len = pc->len;
  switch (p->type) {
    case TK_P_NONE:
    case TK_P_SEQ:
      return tk_pieces_push(out, pc->off, pc->len, -1, pc->first) ? oom(err) : 0;
    case TK_P_SPLIT:
      if (tk_find_all(&p->re, sc->md, s, len, &sc->r1, err)) return -1;
      if (p->invert) tk_ranges_invert(&sc->r1);
      if (tk_split_behavior(&sc->r1, p->behavior, &sc->r2)) return oom(err);
      return emit_ranges(out, &sc->r2, pc->off, pc->first) ? oom(err) : 0;
    case TK_P_DIGITS:
    case TK_P_PUNCT:
    case TK_P_WSSPLIT: {
      int (*pred)(uint32_t) = p->type == TK_P_DIGITS ? tk_is_numeric : p->type == TK_P_PUNCT ? tk_is_punct : is_space_char;
      int beh = p->type == TK_P_DIGITS ? (p->individual_digits ? TK_SPLIT_ISOLATED : TK_SPLIT_CONTIGUOUS)
                : p->type == TK_P_PUNCT ? p->behavior
                                        : TK_SPLIT_REMOVED;
      if (tk_find_pred(pred, s, len, &sc->r1) || tk_split_behavior(&sc->r1, beh, &sc->r2)) return oom(err);
      return emit_ranges(out, &sc->r2, pc->off, pc->first) ? oom(err) : 0;
    }
    case TK_P_BERT: {
      if (tk_find_pred(is_space_char, s, len, &sc->r1) || tk_split_behavior(&sc->r1, TK_SPLIT_REMOVED, &sc->r2))
        return oom(err);
      tk_ranges words = sc->r2;  // keep a copy: r1/r2 are reused below
      tk_ranges w = {0};
      for (size_t i = 0; i < words.n; i++)
        if (tk_ranges_push(&w, words.r[i].off, words.r[i].len, 0)) {
          free(w.r);
          return oom(err);
        }
      for (size_t i = 0; i < w.n; i++) {
        if (!w.r[i].len) continue;
        if (tk_find_pred(tk_is_punct, s + w.r[i].off, w.r[i].len, &sc->r1) ||
            tk_split_behavior(&sc->r1, TK_SPLIT_ISOLATED, &sc->r2) ||
            emit_ranges(out, &sc->r2, pc->off + w.r[i].off, ZSUB(pc->first, w.r[i].off))) {
          free(w.r);
          return oom(err);
        }
      }
      free(w.r);
      return 0;
    }
    case TK_P_WHITESPACE: {
      // \w+|[^\w\s]+ kept, whitespace removed.
      size_t i = 0;
      while (i < len) {
        uint32_t c;
        int k = tk_utf8_dec((const unsigned char *)s + i, &c);
        int cls = tk_is_whitespace(c) ? 0 : tk_is_word(c) ? 1 : 2;
        if (cls == 0) {
          i += (size_t)k;
          continue;
        }
        size_t j = i + (size_t)k;
        while (j < len) {
          uint32_t d;
          int kk = tk_utf8_dec((const unsigned char *)s + j, &d);
          int c2 = tk_is_whitespace(d) ? 0 : tk_is_word(d) ? 1 : 2;
          if (c2 != cls) break;
          j += (size_t)kk;
        }
        if (tk_pieces_push(out, pc->off + i, j - i, -1, ZSUB(pc->first, i))) return oom(err);
        i = j;
      }
      return 0;
    }
    case TK_P_BYTELEVEL: {
      tk_buf *t = &sc->t1;
      t->len = 0;
      if (p->add_prefix_space && (len == 0 || s[0] != ' ') && tk_buf_put(t, " ", 1)) return oom(err);
      if (tk_buf_put(t, s, len)) return oom(err);
      if (p->use_regex) {
        if (tk_find_all(&p->re, sc->md, t->p, t->len, &sc->r1, err)) return -1;
      } else {
        sc->r1.n = 0;
        if (tk_ranges_push(&sc->r1, 0, t->len, 0)) return oom(err);
      }
      for (size_t i = 0; i < sc->r1.n; i++) {
        const tk_range *r = &sc->r1.r[i];
        if (!r->len) continue;
        size_t start = in->a.len;
        if (bytelevel_map(p, &in->a, t->p + r->off, r->len)) return oom(err);
        if (tk_pieces_push(out, start, in->a.len - start, -1, bytelevel_zero(p, t->p, pc->first, (p->add_prefix_space && (len == 0 || s[0] != ' ')), r->off))) return oom(err);
      }
      return 0;
    }
    case TK_P_METASPACE: {
      tk_buf *t = &sc->t1;
      t->len = 0;
      if (tk_buf_reserve(t, len + 4)) return oom(err);
      for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ' ? tk_buf_put(t, p->rep, (size_t)p->rep_len) : tk_buf_put(t, s + i, 1)) return oom(err);
      }
      int starts = t->len >= (size_t)p->rep_len && memcmp(t->p, p->rep, (size_t)p->rep_len) == 0;
      int prepend = (p->prepend_scheme == TK_PREPEND_ALWAYS && !starts) ||
                    (p->prepend_scheme == TK_PREPEND_FIRST && !starts && pc->first);
      int zero = 0;
      if (pc->first) {
        zero = prepend ? p->rep_len : 0;
        for (size_t i = 0; i < (size_t)pc->first && i < len; i++) zero += s[i] == ' ' ? p->rep_len : 1;
      }
      size_t start = in->a.len;
      if (prepend && tk_buf_put(&in->a, p->rep, (size_t)p->rep_len)) return oom(err);
      if (tk_buf_put(&in->a, t->p, t->len)) return oom(err);
      size_t n = in->a.len - start;
      if (!p->split) return tk_pieces_push(out, start, n, -1, zero) ? oom(err) : 0;
      // split on the replacement char, MergedWithNext
      const char *m = in->a.p + start;
      sc->r1.n = 0;
      size_t last = 0;
      for (size_t i = 0; i < n;) {
        int k = tk_utf8_len((unsigned char)m[i]);
        if ((size_t)k == (size_t)p->rep_len && memcmp(m + i, p->rep, (size_t)k) == 0) {
          if (last < i && tk_ranges_push(&sc->r1, last, i - last, 0)) return oom(err);
          if (tk_ranges_push(&sc->r1, i, (size_t)k, 1)) return oom(err);
          last = i + (size_t)k;
        }
        i += (size_t)k;
      }
      if (n > last && tk_ranges_push(&sc->r1, last, n - last, 0)) return oom(err);
      if (tk_split_behavior(&sc->r1, TK_SPLIT_MERGED_NEXT, &sc->r2)) return oom(err);
      return emit_ranges(out, &sc->r2, start, zero) ? oom(err) : 0;
    }
  }
  return lt_errf(err, "tokenizer: bad pre-tokenizer");
}

int tk_pretok_apply(const tk_pretok *p, tk_scratch *sc, tk_pieces *in, tk_pieces *tmp, lt_err *err) {
  if (p->type == TK_P_NONE) return 0;
  if (p->type == TK_P_SEQ) {
    for (int i = 0; i < p->nsub; i++)
      if (tk_pretok_apply(&p->sub[i], sc, in, tmp, err)) return -1;
    return 0;
  }
  tmp->n = 0;
  for (size_t i = 0; i < in->n; i++) {
    tk_piece pc = in->p[i];
    if (pc.id >= 0) {
      if (tk_pieces_push(tmp, pc.off, pc.len, pc.id, pc.first)) return oom(err);
      continue;
    }
    if (apply_one(p, sc, in, &pc, tmp, err)) return -1;
  }
  // swap piece arrays (the arena stays with `in`)
  tk_piece *pp = in->p;
  size_t cap = in->cap;
  in->p = tmp->p;
  in->n = tmp->n;
  in->cap = tmp->cap;
  tmp->p = pp;
  tmp->cap = cap;
  tmp->n = 0;
  return 0;
}
