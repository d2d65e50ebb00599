// Byte-level BPE training, a faithful port of HF tokenizers' BpeTrainer (tokenizers/src/models/bpe/trainer.rs,
// v0.23) driven the way Tokenizer::train_from_files drives it with pre_tokenizer ByteLevel(add_prefix_space=false,
// use_regex=true), no normalizer, initial_alphabet = ByteLevel.alphabet():
//
//  * each file is read as lines that keep their "\n" (and any "\r"): every line is pre-tokenized on its own with the
//    GPT-2 regex (matches and any gaps are pieces), and each piece, bytes mapped to GPT-2's byte-to-unicode chars,
//    is a word; words are counted. Invalid UTF-8 is an error (HF's read_line fails). Special-token text in the
//    corpus is not split out (a fresh tokenizer has no added tokens while it trains).
//  * ids: special tokens first (duplicates skipped), then the 256 byte chars in code point order.
//  * pair counts + per-pair word-position sets, a max-heap of (count, pair, positions) ordered by count, ties to the
//    smaller (id_a, id_b). A popped entry whose count is stale is pushed back with the current count; a count
//    below max(1, min_frequency) stops training, as does reaching vocab_size. Merging a pair in a word (left to
//    right, non-overlapping) reports the neighbour pairs it destroys/creates; pairs that gained positions are pushed
//    as new heap entries. The merged pair's own count is not decremented (as in HF), and a merge that produces an
//    already existing token string reuses its id.
//  * the merges written are HF's model.merges map serialized by rank: a pair merged twice keeps its last rank.
// The output tokenizer.json is byte-identical to tokenizers' Tokenizer.save() of the same model (serde_json pretty
// printing), and tokenizer_config.json to transformers' save_pretrained() output for it.
#include "tokenizer/bpe_train.h"
#include "tokenizer/tok_internal.h"

#include <errno.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

// ------------------------------------------------------------------------------------------------ small helpers

static int sb_str(tk_buf *b, const char *s) { return tk_buf_put(b, s, strlen(s)); }

static int sb_int(tk_buf *b, long long v) {
  char t[32];
  int n = snprintf(t, sizeof t, "%lld", v);
  return tk_buf_put(b, t, (size_t)n);
}

// A JSON string as serde_json (and Python's json with ensure_ascii=False) writes it: quotes, backslash and control
// characters escaped (\b \t \n \f \r short forms, others \u00xx), everything else raw UTF-8.
static int sb_json_str(tk_buf *b, const char *s, size_t n) {
  if (tk_buf_put(b, "\"", 1)) return -1;
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[8];
    if (c == '"') esc = "\\\"";
    else if (c == '\\') esc = "\\\\";
    else if (c == '\b') esc = "\\b";
    else if (c == '\t') esc = "\\t";
    else if (c == '\n') esc = "\\n";
    else if (c == '\f') esc = "\\f";
    else if (c == '\r') esc = "\\r";
    else if (c < 0x20) {
      snprintf(u, sizeof u, "\\u%04x", c);
      esc = u;
    }
    if (!esc) continue;
    if (tk_buf_put(b, s + run, i - run) || sb_str(b, esc)) return -1;
    run = i + 1;
  }
  if (tk_buf_put(b, s + run, n - run)) return -1;
  return tk_buf_put(b, "\"", 1);
}

static uint64_t hash_bytes(const char *s, size_t n) {  // FNV-1a, then a final mix
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  h ^= h >> 31;
  h *= 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

// Strict UTF-8 validation (as Rust's str): no overlongs, no surrogates, <= U+10FFFF. Returns the offset of the first
// invalid byte, or n.
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) k = 1, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) k = 2, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) k = 3, cp = c & 0x07;
    else return i;
    for (size_t j = 1; j <= k; j++) {
      if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return i;
    i += k + 1;
  }
  return n;
}

// ------------------------------------------------------------------------------------------------ token strings

typedef struct {
  char **s;        // id -> token string (byte-level chars, UTF-8, NUL-ended)
  uint32_t *len;
  int n, cap;
  int32_t *slot;   // open addressing: token id or -1
  size_t mask;
} vocab_t;

static int32_t vocab_find(const vocab_t *v, const char *s, size_t n, uint64_t h) {
  for (size_t i = h & v->mask;; i = (i + 1) & v->mask) {
    int32_t id = v->slot[i];
    if (id < 0) return -1;
    if (v->len[id] == n && memcmp(v->s[id], s, n) == 0) return id;
  }
}

static int vocab_rehash(vocab_t *v, size_t cap) {
  int32_t *slot = malloc(cap * sizeof *slot);
  if (!slot) return -1;
  memset(slot, 0xff, cap * sizeof *slot);
  free(v->slot);
  v->slot = slot;
  v->mask = cap - 1;
  for (int id = 0; id < v->n; id++) {
    size_t i = hash_bytes(v->s[id], v->len[id]) & v->mask;
    while (slot[i] >= 0) i = (i + 1) & v->mask;
    slot[i] = id;
  }
  return 0;
}

// Id of token s, adding it when new. Returns -1 on out of memory.
static int32_t vocab_intern(vocab_t *v, const char *s, size_t n) {
  uint64_t h = hash_bytes(s, n);
  if (v->slot) {
    int32_t id = vocab_find(v, s, n, h);
    if (id >= 0) return id;
  }
  if ((size_t)(v->n + 1) * 2 > (v->slot ? v->mask + 1 : 0) && vocab_rehash(v, v->slot ? (v->mask + 1) * 2 : 1024))
    return -1;
  if (v->n == v->cap) {
    int nc = v->cap ? v->cap * 2 : 512;
    char **s2 = realloc(v->s, (size_t)nc * sizeof *s2);
    if (!s2) return -1;
    v->s = s2;
    uint32_t *l2 = realloc(v->len, (size_t)nc * sizeof *l2);
    if (!l2) return -1;
    v->len = l2;
    v->cap = nc;
  }
  char *c = malloc(n + 1);
  if (!c) return -1;
  memcpy(c, s, n);
  c[n] = 0;
  int32_t id = v->n++;
  v->s[id] = c;
  v->len[id] = (uint32_t)n;
  size_t i = h & v->mask;
  while (v->slot[i] >= 0) i = (i + 1) & v->mask;
  v->slot[i] = id;
  return id;
}

static void vocab_free(vocab_t *v) {
  for (int i = 0; i < v->n; i++) free(v->s[i]);
  free(v->s);
  free(v->len);
  free(v->slot);
}

// ------------------------------------------------------------------------------------------------ word counts

typedef struct {
  size_t off;      // bytes in wc->bytes
  uint32_t len;
  uint64_t hash;
  int64_t count;
} word_ent;

typedef struct {
  tk_buf bytes;
  word_ent *e;
  size_t n, cap;
  int64_t *slot;  // entry index or -1
  size_t mask;
} wordcount_t;

static int wc_rehash(wordcount_t *w, size_t cap) {
  int64_t *slot = malloc(cap * sizeof *slot);
  if (!slot) return -1;
  memset(slot, 0xff, cap * sizeof *slot);
  free(w->slot);
  w->slot = slot;
  w->mask = cap - 1;
  for (size_t k = 0; k < w->n; k++) {
    size_t i = w->e[k].hash & w->mask;
    while (slot[i] >= 0) i = (i + 1) & w->mask;
    slot[i] = (int64_t)k;
  }
  return 0;
}

static int wc_add(wordcount_t *w, const char *s, size_t n) {
  uint64_t h = hash_bytes(s, n);
  if (w->slot) {
    for (size_t i = h & w->mask;; i = (i + 1) & w->mask) {
      int64_t k = w->slot[i];
      if (k < 0) break;
      word_ent *e = &w->e[k];
      if (e->hash == h && e->len == n && memcmp(w->bytes.p + e->off, s, n) == 0) {
        e->count++;
        return 0;
      }
    }
  }
  if ((w->n + 1) * 2 > (w->slot ? w->mask + 1 : 0) && wc_rehash(w, w->slot ? (w->mask + 1) * 2 : 4096)) return -1;
  if (w->n == w->cap) {
    size_t nc = w->cap ? w->cap * 2 : 4096;
    word_ent *e = realloc(w->e, nc * sizeof *e);
    if (!e) return -1;
    w->e = e;
    w->cap = nc;
  }
  size_t off = w->bytes.len;
  if (tk_buf_put(&w->bytes, s, n)) return -1;
  w->e[w->n] = (word_ent){off, (uint32_t)n, h, 1};
  size_t i = h & w->mask;
  while (w->slot[i] >= 0) i = (i + 1) & w->mask;
  w->slot[i] = (int64_t)w->n++;
  return 0;
}

static void wc_free(wordcount_t *w) {
  free(w->bytes.p);
  free(w->e);
  free(w->slot);
}

// ------------------------------------------------------------------------------------------------ pair -> int64 map

typedef struct {
  uint64_t *key;  // UINT64_MAX: empty
  int64_t *val;
  size_t n, mask;
} pairmap_t;

static int pm_init(pairmap_t *m, size_t cap) {
  m->key = malloc(cap * sizeof *m->key);
  m->val = malloc(cap * sizeof *m->val);
  if (!m->key || !m->val) return -1;
  memset(m->key, 0xff, cap * sizeof *m->key);
  m->n = 0;
  m->mask = cap - 1;
  return 0;
}

static void pm_free(pairmap_t *m) {
  free(m->key);
  free(m->val);
}

// Pointer to the value of key, inserting 0 when absent (NULL: out of memory).
static int64_t *pm_slot(pairmap_t *m, uint64_t key) {
  size_t i = hash_u64(key) & m->mask;
  for (;; i = (i + 1) & m->mask) {
    if (m->key[i] == key) return &m->val[i];
    if (m->key[i] == UINT64_MAX) break;
  }
  if ((m->n + 1) * 2 > m->mask + 1) {
    pairmap_t g;
    if (pm_init(&g, (m->mask + 1) * 2)) {
      pm_free(&g);
      return NULL;
    }
    for (size_t k = 0; k <= m->mask; k++) {
      if (m->key[k] == UINT64_MAX) continue;
      size_t j = hash_u64(m->key[k]) & g.mask;
      while (g.key[j] != UINT64_MAX) j = (j + 1) & g.mask;
      g.key[j] = m->key[k];
      g.val[j] = m->val[k];
    }
    g.n = m->n;
    pm_free(m);
    *m = g;
    i = hash_u64(key) & m->mask;
    while (m->key[i] != UINT64_MAX) i = (i + 1) & m->mask;
  }
  m->key[i] = key;
  m->val[i] = 0;
  m->n++;
  return &m->val[i];
}

static int64_t pm_get(const pairmap_t *m, uint64_t key) {
  for (size_t i = hash_u64(key) & m->mask;; i = (i + 1) & m->mask) {
    if (m->key[i] == key) return m->val[i];
    if (m->key[i] == UINT64_MAX) return 0;
  }
}

static inline uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

// ------------------------------------------------------------------------------------------------ merge heap

typedef struct {
  uint64_t pair;
  uint64_t count;
  int32_t *pos;  // word indices (a set), owned
  int32_t npos;
} merge_ent;

typedef struct {
  merge_ent *e;
  size_t n, cap;
} heap_t;

// a before b: larger count first, then the smaller pair (HF's Merge Ord).
static inline int heap_before(const merge_ent *a, const merge_ent *b) {
  return a->count != b->count ? a->count > b->count : a->pair < b->pair;
}

static int heap_push(heap_t *h, merge_ent m) {
  if (h->n == h->cap) {
    size_t nc = h->cap ? h->cap * 2 : 1024;
    merge_ent *e = realloc(h->e, nc * sizeof *e);
    if (!e) return -1;
    h->e = e;
    h->cap = nc;
  }
  size_t i = h->n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_before(&m, &h->e[p])) break;
    h->e[i] = h->e[p];
    i = p;
  }
  h->e[i] = m;
  return 0;
}

static merge_ent heap_pop(heap_t *h) {
  merge_ent top = h->e[0];
  merge_ent last = h->e[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && heap_before(&h->e[c + 1], &h->e[c])) c++;
    if (!heap_before(&h->e[c], &last)) break;
    h->e[i] = h->e[c];
    i = c;
  }
  if (h->n) h->e[i] = last;
  return top;
}

static void heap_free(heap_t *h) {
  for (size_t i = 0; i < h->n; i++) free(h->e[i].pos);
  free(h->e);
}

// (pair, word) occurrences, sorted and grouped into position sets.
typedef struct {
  uint64_t pair;
  int32_t w;
} occ_t;

typedef struct {
  occ_t *o;
  size_t n, cap;
} occs_t;

static int occ_push(occs_t *v, uint64_t pair, int32_t w) {
  if (v->n == v->cap) {
    size_t nc = v->cap ? v->cap * 2 : 4096;
    occ_t *o = realloc(v->o, nc * sizeof *o);
    if (!o) return -1;
    v->o = o;
    v->cap = nc;
  }
  v->o[v->n++] = (occ_t){pair, w};
  return 0;
}

static int occ_cmp(const void *a, const void *b) {
  const occ_t *x = a, *y = b;
  if (x->pair != y->pair) return x->pair < y->pair ? -1 : 1;
  return (x->w > y->w) - (x->w < y->w);
}

// Sort the occurrences, and push one heap entry per pair (its distinct words) when its count is > 0; empties v.
static int push_grouped(occs_t *v, const pairmap_t *counts, heap_t *h) {
  if (v->n) qsort(v->o, v->n, sizeof *v->o, occ_cmp);
  size_t i = 0;
  while (i < v->n) {
    size_t j = i;
    while (j < v->n && v->o[j].pair == v->o[i].pair) j++;
    int64_t c = pm_get(counts, v->o[i].pair);
    if (c > 0) {
      int32_t *pos = malloc((j - i) * sizeof *pos);
      if (!pos) return -1;
      int32_t np = 0;
      for (size_t k = i; k < j; k++)
        if (np == 0 || pos[np - 1] != v->o[k].w) pos[np++] = v->o[k].w;
      if (heap_push(h, (merge_ent){v->o[i].pair, (uint64_t)c, pos, np})) {
        free(pos);
        return -1;
      }
    }
    i = j;
  }
  v->n = 0;
  return 0;
}

// ------------------------------------------------------------------------------------------------ pre-tokenization

// GPT-2's pattern as tokenizers' ByteLevel uses it (Oniguruma), with \s spelled out as Oniguruma's Unicode
// whitespace set so PCRE2 agrees (PCRE2's \s differs, e.g. on U+180E).
#define WS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char GPT2_RE[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS
                              "])|[" WS "]+";

typedef struct {
  pcre2_code *re;
  pcre2_match_data *md;
} pretok_t;

// Count the pieces of one line (matches and the gaps between them, as Split with Isolated behaviour).
static int count_line(const pretok_t *pt, const char *s, size_t n, wordcount_t *wc, const char *file, lt_err *err) {
  size_t at = 0;
  while (at < n) {
    int rc = pcre2_match(pt->re, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, pt->md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      return lt_errf(err, "%s: regex match failed: %s", file, (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(pt->md);
    size_t ms = ov[0], me = ov[1];
    if (me == ms) {  // cannot happen with this pattern; step over one character to stay safe
      me = ms + 1;
      while (me < n && ((unsigned char)s[me] & 0xC0) == 0x80) me++;
    }
    if (ms > at && wc_add(wc, s + at, ms - at)) return lt_errf(err, "%s: out of memory counting words", file);
    if (wc_add(wc, s + ms, me - ms)) return lt_errf(err, "%s: out of memory counting words", file);
    at = me;
  }
  if (at < n && wc_add(wc, s + at, n - at)) return lt_errf(err, "%s: out of memory counting words", file);
  return 0;
}

static int count_file(const pretok_t *pt, const char *path, wordcount_t *wc, lt_err *err) {
  char *data;
  size_t len;
  if (lt_read_file(path, &data, &len, err)) return lt_err_prefix(err, "bpe train: corpus file");
  size_t bad = utf8_valid_prefix((const unsigned char *)data, len);
  if (bad < len) {
    size_t line = 1;
    for (size_t i = 0; i < bad; i++) line += data[i] == '\n';
    free(data);
    return lt_errf(err, "%s: line %zu (byte offset %zu): invalid UTF-8", path, line, bad);
  }
  int rc = 0;
  size_t start = 0;
  while (start < len && rc == 0) {
    const char *nl = memchr(data + start, '\n', len - start);
    size_t end = nl ? (size_t)(nl - data) + 1 : len;  // the line keeps its "\n"
    rc = count_line(pt, data + start, end - start, wc, path, err);
    start = end;
  }
  free(data);
  return rc;
}

// ------------------------------------------------------------------------------------------------ output

static void bytelevel_table(uint32_t cp[256]) {
  int n = 0;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
  }
}

static size_t utf8_put(char *o, uint32_t cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  o[0] = (char)(0xC0 | (cp >> 6));
  o[1] = (char)(0x80 | (cp & 0x3F));
  return 2;  // byte-level code points are all < 0x800
}

static int write_tokenizer_json(const char *path, const vocab_t *v, const lt_bpe_train_opts *o,
                                const int32_t *special_id, const uint64_t *merges, size_t n_merges, lt_err *err) {
  tk_buf b = {0};
  int bad = 0;
  bad |= sb_str(&b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
  int first = 1;
  for (int i = 0; i < o->n_special; i++) {
    if (special_id[i] < 0) continue;  // a duplicate of an earlier special token
    bad |= sb_str(&b, first ? "\n    {\n      \"id\": " : ",\n    {\n      \"id\": ");
    bad |= sb_int(&b, special_id[i]);
    bad |= sb_str(&b, ",\n      \"content\": ");
    bad |= sb_json_str(&b, o->special[i], strlen(o->special[i]));
    bad |= sb_str(&b, ",\n      \"single_word\": false,\n      \"lstrip\": false,\n      \"rstrip\": false,\n"
                      "      \"normalized\": false,\n      \"special\": true\n    }");
    first = 0;
  }
  bad |= sb_str(&b, first ? "],\n" : "\n  ],\n");
  bad |= sb_str(&b,
                "  \"normalizer\": null,\n"
                "  \"pre_tokenizer\": {\n    \"type\": \"ByteLevel\",\n    \"add_prefix_space\": false,\n"
                "    \"trim_offsets\": true,\n    \"use_regex\": true\n  },\n"
                "  \"post_processor\": {\n    \"type\": \"ByteLevel\",\n    \"add_prefix_space\": true,\n"
                "    \"trim_offsets\": false,\n    \"use_regex\": true\n  },\n"
                "  \"decoder\": {\n    \"type\": \"ByteLevel\",\n    \"add_prefix_space\": true,\n"
                "    \"trim_offsets\": true,\n    \"use_regex\": true\n  },\n"
                "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
                "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
                "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n"
                "    \"vocab\": {");
  for (int id = 0; id < v->n && !bad; id++) {
    bad |= sb_str(&b, id ? ",\n      " : "\n      ");
    bad |= sb_json_str(&b, v->s[id], v->len[id]);
    bad |= sb_str(&b, ": ");
    bad |= sb_int(&b, id);
  }
  bad |= sb_str(&b, v->n ? "\n    },\n    \"merges\": [" : "},\n    \"merges\": [");
  for (size_t i = 0; i < n_merges && !bad; i++) {
    int32_t x = (int32_t)(merges[i] >> 32), y = (int32_t)(merges[i] & 0xffffffffu);
    bad |= sb_str(&b, i ? ",\n      [\n        " : "\n      [\n        ");
    bad |= sb_json_str(&b, v->s[x], v->len[x]);
    bad |= sb_str(&b, ",\n        ");
    bad |= sb_json_str(&b, v->s[y], v->len[y]);
    bad |= sb_str(&b, "\n      ]");
  }
  bad |= sb_str(&b, n_merges ? "\n    ]\n  }\n}" : "]\n  }\n}");
  if (bad) {
    free(b.p);
    return lt_errf(err, "%s: out of memory building the JSON", path);
  }
  int rc = lt_write_file_atomic(path, b.p, b.len, err);
  free(b.p);
  return rc;
}

// Role of a well-known special-token string in tokenizer_config.json (first one of each role wins).
static int special_role(const char *s) {
  static const char *const roles[4][6] = {
      {"<s>", "<bos>", "<|begin_of_text|>", "<|startoftext|>", NULL, NULL},                     // bos_token
      {"</s>", "<eos>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", NULL},                // eos_token
      {"<pad>", "<|pad|>", "[PAD]", "<|padding|>", NULL, NULL},                                  // pad_token
      {"<unk>", "<|unk|>", "[UNK]", NULL, NULL, NULL},                                           // unk_token
  };
  for (int r = 0; r < 4; r++)
    for (int k = 0; k < 6 && roles[r][k]; k++)
      if (strcmp(s, roles[r][k]) == 0) return r;
  return -1;
}

static int write_tokenizer_config(const char *path, const lt_bpe_train_opts *o, lt_err *err) {
  const char *role[4] = {NULL, NULL, NULL, NULL};
  for (int i = 0; i < o->n_special; i++) {
    int r = special_role(o->special[i]);
    if (r >= 0 && !role[r]) role[r] = o->special[i];
  }
  // Keys sorted, as transformers' save_pretrained writes them (json.dumps(sort_keys=True, indent=2)).
  tk_buf b = {0};
  int bad = sb_str(&b, "{\n  \"backend\": \"tokenizers\",\n");
  const char *names[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
  for (int r = 0; r < 2; r++) {
    if (r == 1 && o->chat_template) {  // sorts between bos_token and eos_token
      bad |= sb_str(&b, "  \"chat_template\": ");
      bad |= sb_json_str(&b, o->chat_template, strlen(o->chat_template));
      bad |= sb_str(&b, ",\n");
    }
    if (role[r]) {
      bad |= sb_str(&b, "  \"");
      bad |= sb_str(&b, names[r]);
      bad |= sb_str(&b, "\": ");
      bad |= sb_json_str(&b, role[r], strlen(role[r]));
      bad |= sb_str(&b, ",\n");
    }
  }
  bad |= sb_str(&b, "  \"model_max_length\": 1000000000000000019884624838656,\n");
  if (role[2]) {
    bad |= sb_str(&b, "  \"pad_token\": ");
    bad |= sb_json_str(&b, role[2], strlen(role[2]));
    bad |= sb_str(&b, ",\n");
  }
  bad |= sb_str(&b, role[3] ? "  \"tokenizer_class\": \"TokenizersBackend\",\n  \"unk_token\": "
                            : "  \"tokenizer_class\": \"TokenizersBackend\"\n");
  if (role[3]) {
    bad |= sb_json_str(&b, role[3], strlen(role[3]));
    bad |= sb_str(&b, "\n");
  }
  bad |= sb_str(&b, "}\n");
  if (bad) {
    free(b.p);
    return lt_errf(err, "%s: out of memory", path);
  }
  int rc = lt_write_file_atomic(path, b.p, b.len, err);
  free(b.p);
  return rc;
}

// ------------------------------------------------------------------------------------------------ training

typedef struct {
  vocab_t vocab;
  wordcount_t wc;
  int32_t *sym;      // all words' symbols
  size_t *woff;      // word -> offset in sym
  uint32_t *wlen;    // word -> current symbol count
  pairmap_t counts;  // pair -> count (HF's pair_counts)
  heap_t heap;
  occs_t occ;
  uint64_t *merges;  // pair per merge, in order
  size_t n_merges, cap_merges;
  int32_t *special_id;
  pretok_t pt;
} trainer_t;

static void trainer_free(trainer_t *t) {
  vocab_free(&t->vocab);
  wc_free(&t->wc);
  free(t->sym);
  free(t->woff);
  free(t->wlen);
  pm_free(&t->counts);
  heap_free(&t->heap);
  free(t->occ.o);
  free(t->merges);
  free(t->special_id);
  if (t->pt.md) pcre2_match_data_free(t->pt.md);
  if (t->pt.re) pcre2_code_free(t->pt.re);
}

// Change of a pair's count by `change` occurrences in word w; positive changes record w (where_to_update).
static inline int apply_change(trainer_t *t, int32_t a, int32_t b, int change, int32_t w) {
  uint64_t k = pair_key(a, b);
  int64_t *c = pm_slot(&t->counts, k);
  if (!c) return -1;
  *c += change * t->wc.e[w].count;
  if (change > 0 && occ_push(&t->occ, k, w)) return -1;
  return 0;
}

// Word::merge: replace every non-overlapping (a, b), left to right, by r, reporting neighbour pair changes.
static int merge_word(trainer_t *t, int32_t w, int32_t a, int32_t b, int32_t r) {
  int32_t *s = t->sym + t->woff[w];
  uint32_t n = t->wlen[w];
  for (uint32_t i = 0; i < n; i++) {
    if (s[i] != a || i + 1 >= n || s[i + 1] != b) continue;
    if (i > 0 && (apply_change(t, s[i - 1], a, -1, w) || apply_change(t, s[i - 1], r, 1, w))) return -1;
    s[i] = r;
    memmove(s + i + 1, s + i + 2, (size_t)(n - i - 2) * sizeof *s);
    n--;
    if (i + 1 < n && (apply_change(t, b, s[i + 1], -1, w) || apply_change(t, r, s[i + 1], 1, w))) return -1;
  }
  t->wlen[w] = n;
  return 0;
}

static int push_merge(trainer_t *t, uint64_t pair) {
  if (t->n_merges == t->cap_merges) {
    size_t nc = t->cap_merges ? t->cap_merges * 2 : 1024;
    uint64_t *m = realloc(t->merges, nc * sizeof *m);
    if (!m) return -1;
    t->merges = m;
    t->cap_merges = nc;
  }
  t->merges[t->n_merges++] = pair;
  return 0;
}

static int train(trainer_t *t, const char *const *files, int n_files, const lt_bpe_train_opts *o, lt_err *err) {
  // 1. special tokens, then the byte alphabet in code point order
  t->special_id = malloc((size_t)(o->n_special > 0 ? o->n_special : 1) * sizeof *t->special_id);
  if (!t->special_id) return lt_errf(err, "bpe train: out of memory");
  for (int i = 0; i < o->n_special; i++) {
    int before = t->vocab.n;
    int32_t id = vocab_intern(&t->vocab, o->special[i], strlen(o->special[i]));
    if (id < 0) return lt_errf(err, "bpe train: out of memory");
    t->special_id[i] = t->vocab.n > before ? id : -1;
  }
  uint32_t cp[256];
  bytelevel_table(cp);
  int32_t byte_id[256];
  for (uint32_t c = 0; c < 512; c++) {
    for (int bv = 0; bv < 256; bv++) {
      if (cp[bv] != c) continue;
      char u[2];
      size_t ul = utf8_put(u, c);
      byte_id[bv] = vocab_intern(&t->vocab, u, ul);
      if (byte_id[bv] < 0) return lt_errf(err, "bpe train: out of memory");
    }
  }

  // 2. count words
  int ec;
  PCRE2_SIZE eo;
  t->pt.re = pcre2_compile((PCRE2_SPTR)GPT2_RE, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
  if (!t->pt.re) return lt_errf(err, "bpe train: the GPT-2 regex does not compile (error %d at %zu)", ec, (size_t)eo);
  pcre2_jit_compile(t->pt.re, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is unavailable
  t->pt.md = pcre2_match_data_create_from_pattern(t->pt.re, NULL);
  if (!t->pt.md) return lt_errf(err, "bpe train: out of memory");
  for (int f = 0; f < n_files; f++)
    if (count_file(&t->pt, files[f], &t->wc, err)) return -1;
  if (t->wc.n > INT32_MAX) return lt_errf(err, "bpe train: too many distinct words (%zu)", t->wc.n);

  // 3. words as symbol ids
  size_t total = t->wc.bytes.len;
  t->sym = malloc((total ? total : 1) * sizeof *t->sym);
  t->woff = malloc((t->wc.n ? t->wc.n : 1) * sizeof *t->woff);
  t->wlen = malloc((t->wc.n ? t->wc.n : 1) * sizeof *t->wlen);
  if (!t->sym || !t->woff || !t->wlen) return lt_errf(err, "bpe train: out of memory for %zu words", t->wc.n);
  for (size_t w = 0; w < t->wc.n; w++) {
    const word_ent *e = &t->wc.e[w];
    t->woff[w] = e->off;
    t->wlen[w] = e->len;
    for (uint32_t i = 0; i < e->len; i++) t->sym[e->off + i] = byte_id[(unsigned char)t->wc.bytes.p[e->off + i]];
  }

  // 4. pair counts and the initial queue
  if (pm_init(&t->counts, 1 << 16)) return lt_errf(err, "bpe train: out of memory");
  for (size_t w = 0; w < t->wc.n; w++) {
    const int32_t *s = t->sym + t->woff[w];
    for (uint32_t i = 0; i + 1 < t->wlen[w]; i++)
      if (apply_change(t, s[i], s[i + 1], 1, (int32_t)w)) return lt_errf(err, "bpe train: out of memory");
  }
  if (push_grouped(&t->occ, &t->counts, &t->heap)) return lt_errf(err, "bpe train: out of memory");

  // 5. merges
  uint64_t min_freq = (uint64_t)(o->min_frequency > 0 ? o->min_frequency : 0);
  tk_buf tok = {0};
  int rc = 0;
  while (t->vocab.n < o->vocab_size && t->heap.n > 0) {
    merge_ent top = heap_pop(&t->heap);
    uint64_t cur = (uint64_t)pm_get(&t->counts, top.pair);
    if (top.count != cur) {
      top.count = cur;
      if (heap_push(&t->heap, top)) {
        free(top.pos);
        rc = lt_errf(err, "bpe train: out of memory");
        break;
      }
      continue;
    }
    if (top.count < 1 || min_freq > top.count) {
      free(top.pos);
      break;
    }
    int32_t a = (int32_t)(top.pair >> 32), b = (int32_t)(top.pair & 0xffffffffu);
    tok.len = 0;
    if (tk_buf_put(&tok, t->vocab.s[a], t->vocab.len[a]) || tk_buf_put(&tok, t->vocab.s[b], t->vocab.len[b])) {
      free(top.pos);
      rc = lt_errf(err, "bpe train: out of memory");
      break;
    }
    int32_t r = vocab_intern(&t->vocab, tok.p, tok.len);
    if (r < 0 || push_merge(t, top.pair)) {
      free(top.pos);
      rc = lt_errf(err, "bpe train: out of memory");
      break;
    }
    for (int32_t k = 0; k < top.npos && rc == 0; k++)
      if (merge_word(t, top.pos[k], a, b, r)) rc = lt_errf(err, "bpe train: out of memory");
    free(top.pos);
    if (rc == 0 && push_grouped(&t->occ, &t->counts, &t->heap)) rc = lt_errf(err, "bpe train: out of memory");
    if (rc) break;
  }
  free(tok.p);
  return rc;
}

int lt_bpe_train(const char *const *files, int n_files, const lt_bpe_train_opts *o, const char *out_dir, lt_err *err) {
  if (!files || n_files < 1) return lt_errf(err, "bpe train: no corpus files given");
  if (!o || !out_dir || !*out_dir) return lt_errf(err, "bpe train: missing options or output folder");
  if (o->n_special < 0 || (o->n_special > 0 && !o->special))
    return lt_errf(err, "bpe train: bad special-token list");
  for (int i = 0; i < o->n_special; i++) {
    if (!o->special[i] || !*o->special[i]) return lt_errf(err, "bpe train: special token %d is empty", i + 1);
    size_t sl = strlen(o->special[i]);
    if (utf8_valid_prefix((const unsigned char *)o->special[i], sl) != sl)
      return lt_errf(err, "bpe train: special token %d is not valid UTF-8", i + 1);
  }
  if (o->min_frequency < 0) return lt_errf(err, "bpe train: min_frequency %d must be >= 0", o->min_frequency);
  if (o->vocab_size < 256 + o->n_special)
    return lt_errf(err, "bpe train: vocab_size %d is smaller than the 256 byte tokens + %d special tokens", o->vocab_size,
                   o->n_special);
  // Fail early on a missing corpus file or an unusable output folder, before the (possibly long) training.
  for (int f = 0; f < n_files; f++) {
    struct stat st;
    FILE *fp = fopen(files[f], "rb");
    if (!fp) return lt_errf(err, "bpe train: corpus file %s: cannot open: %s", files[f], strerror(errno));
    int regular = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode);
    fclose(fp);
    if (!regular) return lt_errf(err, "bpe train: corpus file %s: not a regular file", files[f]);
  }
  if (lt_mkdirs(out_dir, err)) return lt_err_prefix(err, "bpe train: output folder %s", out_dir);
  if (access(out_dir, W_OK | X_OK) != 0) return lt_errf(err, "bpe train: output folder %s is not writable", out_dir);

  trainer_t t;
  memset(&t, 0, sizeof t);
  int rc = train(&t, files, n_files, o, err);
  uint64_t *kept = NULL;
  size_t n_kept = 0;
  if (rc == 0) {
    // model.merges is a map pair -> (rank, id) built from the merge list: a repeated pair keeps its last rank.
    pairmap_t last;
    kept = malloc((t.n_merges ? t.n_merges : 1) * sizeof *kept);
    if (!kept || pm_init(&last, 1024)) {
      rc = lt_errf(err, "bpe train: out of memory");
    } else {
      for (size_t i = 0; i < t.n_merges && rc == 0; i++) {
        int64_t *v = pm_slot(&last, t.merges[i]);
        if (!v) rc = lt_errf(err, "bpe train: out of memory");
        else *v = (int64_t)i;
      }
      for (size_t i = 0; i < t.n_merges && rc == 0; i++)
        if (pm_get(&last, t.merges[i]) == (int64_t)i) kept[n_kept++] = t.merges[i];
    }
    if (kept) pm_free(&last);
  }
  char path[4096];
  if (rc == 0) {
    if (lt_path_join(path, sizeof path, out_dir, "tokenizer.json"))
      rc = lt_errf(err, "bpe train: output path too long: %s", out_dir);
    else
      rc = write_tokenizer_json(path, &t.vocab, o, t.special_id, kept, n_kept, err);
  }
  if (rc == 0) {
    if (lt_path_join(path, sizeof path, out_dir, "tokenizer_config.json"))
      rc = lt_errf(err, "bpe train: output path too long: %s", out_dir);
    else
      rc = write_tokenizer_config(path, o, err);
  }
  free(kept);
  trainer_free(&t);
  return rc;
}
