// Tokenizer internals shared by the tok_*.c files: byte buffers, hash maps, regex wrapper, the component structs
// (normalizer, pre-tokenizer, model, post-processor, decoder, added vocabulary) and the lt_tokenizer itself.
#ifndef LT_TOK_INTERNAL_H
#define LT_TOK_INTERNAL_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <pcre2.h>

#include "core/core.h"
#include "tokenizer/tokenizer.h"

// ---------------------------------------------------------------- byte buffer
typedef struct { char *p; size_t len, cap; } tk_buf;
int tk_buf_reserve(tk_buf *b, size_t extra);  // 0 or -1 (out of memory)
int tk_buf_put(tk_buf *b, const void *s, size_t n);
int tk_buf_put_cp(tk_buf *b, uint32_t cp);     // UTF-8 encode
void tk_buf_free(tk_buf *b);

// ---------------------------------------------------------------- UTF-8
// Length of the valid UTF-8 prefix; *bad_off receives the offset of the first invalid byte (== len when valid).
int tk_utf8_valid(const char *s, size_t len, size_t *bad_off);
// Decode one code point of valid UTF-8 at s (returns its byte length).
static inline int tk_utf8_dec(const unsigned char *s, uint32_t *cp) {
  unsigned c = s[0];
  if (c < 0x80) { *cp = c; return 1; }
  if (c < 0xE0) { *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu); return 2; }
  if (c < 0xF0) { *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu); return 3; }
  *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
  return 4;
}
static inline int tk_utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }
int tk_utf8_enc(uint32_t cp, char out[4]);
// Rust's String::from_utf8_lossy: invalid sequences (maximal subparts) become U+FFFD.
int tk_utf8_lossy(tk_buf *out, const unsigned char *s, size_t len);

// Character classes as Rust's char methods define them (via utf8proc categories).
int tk_is_whitespace(uint32_t c);   // char::is_whitespace (White_Space)
int tk_is_punct(uint32_t c);        // ascii punctuation or general category P*
int tk_is_numeric(uint32_t c);      // Nd | Nl | No
int tk_is_word(uint32_t c);         // regex \w: Alphabetic | M | Nd | Pc | Join_Control

// ---------------------------------------------------------------- hashing
static inline uint64_t tk_hash(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  h = (h ^ v) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h;
}

// String -> int32 map; keys are copied into an internal pool. Entries keep insertion order (index = entry).
typedef struct {
  uint32_t *slot;        // entry index + 1, 0 = empty
  uint32_t mask;
  uint32_t *koff, *klen; // key location in pool
  int32_t *val;
  uint32_t n, cap;
  tk_buf pool;
} tk_smap;
int tk_smap_init(tk_smap *m, uint32_t expect, lt_err *err);
void tk_smap_free(tk_smap *m);
// Entry index of key or -1.
int64_t tk_smap_find(const tk_smap *m, const char *k, size_t len);
static inline int32_t tk_smap_get(const tk_smap *m, const char *k, size_t len, int32_t dflt) {
  int64_t e = tk_smap_find(m, k, len);
  return e < 0 ? dflt : m->val[e];
}
// Insert or overwrite; returns the entry index, or -1 on out of memory.
int64_t tk_smap_put(tk_smap *m, const char *k, size_t len, int32_t val);
static inline const char *tk_smap_key(const tk_smap *m, uint32_t e) { return m->pool.p + m->koff[e]; }

// (a, b) pair -> (rank, new id) map for BPE merges.
typedef struct { uint64_t key; uint32_t rank; int32_t id; } tk_pent;
typedef struct { tk_pent *e; uint64_t mask; uint64_t n; } tk_pmap;
int tk_pmap_init(tk_pmap *m, size_t expect, lt_err *err);
void tk_pmap_free(tk_pmap *m);
static inline const tk_pent *tk_pmap_get(const tk_pmap *m, int32_t a, int32_t b) {
  if (!m->e) return NULL;
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  for (uint64_t i = (h ^ (h >> 29)) & m->mask;; i = (i + 1) & m->mask) {
    if (m->e[i].key == key) return &m->e[i];
    if (m->e[i].key == UINT64_MAX) return NULL;
  }
}
void tk_pmap_put(tk_pmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id);  // capacity reserved by init

// ---------------------------------------------------------------- regex
typedef struct {
  pcre2_code *code;  // NULL: literal pattern (lit/lit_len), matched with memmem
  char *lit;
  size_t lit_len;
} tk_regex;
// literal: pattern is a plain string ({"String": ...}); else a regex in HF (Oniguruma) syntax.
int tk_regex_init(tk_regex *r, const char *pat, size_t len, int literal, const char *where, lt_err *err);
void tk_regex_free(tk_regex *r);
// One match at or after `from` (Oniguruma find_iter semantics are handled by tk_find_all). 1 found, 0 none, -1 error.
int tk_regex_search(const tk_regex *r, pcre2_match_data *md, const char *s, size_t len, size_t from, size_t *ms,
                    size_t *me, lt_err *err);

// Split a string into (offset, len, is_match) ranges: non-matching gaps and matches, covering the whole string
// (as tokenizers' Pattern::find_matches). An empty string gives one empty non-match.
typedef struct { size_t off, len; int match; } tk_range;
typedef struct { tk_range *r; size_t n, cap; } tk_ranges;
int tk_ranges_push(tk_ranges *v, size_t off, size_t len, int match);
int tk_find_all(const tk_regex *r, pcre2_match_data *md, const char *s, size_t len, tk_ranges *out, lt_err *err);
// Predicate-based find_matches (each char with pred true is its own match).
int tk_find_pred(int (*pred)(uint32_t), const char *s, size_t len, tk_ranges *out);
void tk_ranges_invert(tk_ranges *v);

enum { TK_SPLIT_REMOVED, TK_SPLIT_ISOLATED, TK_SPLIT_MERGED_PREV, TK_SPLIT_MERGED_NEXT, TK_SPLIT_CONTIGUOUS };
// Apply a SplitDelimiterBehavior to find_matches output; writes kept (off, len) ranges (match flag unused).
int tk_split_behavior(const tk_ranges *in, int behavior, tk_ranges *out);

// ---------------------------------------------------------------- JSON helpers
// Errors read "tokenizer.json: <path>: <message>".
int tk_jerr(lt_err *err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const cJSON *tk_jget(const cJSON *o, const char *key);  // NULL when absent or JSON null
int tk_jstr(const cJSON *o, const char *key, const char *path, int required, const char **out, lt_err *err);
int tk_jbool(const cJSON *o, const char *key, const char *path, int dflt, int *out, lt_err *err);
int tk_jint(const cJSON *o, const char *key, const char *path, long lo, long hi, long dflt, long *out, lt_err *err);

// ---------------------------------------------------------------- pieces (pre-tokenized string)
// A piece of the text: bytes [off, off+len) of an arena; id >= 0 for an already-tokenized added token.
// first: the piece begins at offset 0 of the original input (Metaspace prepend_scheme "first").
typedef struct { size_t off, len; int32_t id; int first; } tk_piece;
typedef struct {
  tk_buf a;  // arena
  tk_piece *p;
  size_t n, cap;
} tk_pieces;
int tk_pieces_push(tk_pieces *v, size_t off, size_t len, int32_t id, int first);
void tk_pieces_free(tk_pieces *v);

// Per-encode scratch.
typedef struct {
  pcre2_match_data *md;
  tk_ranges r1, r2;
  tk_buf t1, t2;
} tk_scratch;

// ---------------------------------------------------------------- normalizers
typedef enum {
  TK_N_NONE, TK_N_SEQ, TK_N_NFC, TK_N_NFD, TK_N_NFKC, TK_N_NFKD, TK_N_LOWER, TK_N_REPLACE, TK_N_PREPEND,
  TK_N_STRIP, TK_N_STRIP_ACCENTS, TK_N_BERT, TK_N_NMT
} tk_ntype;
typedef struct tk_norm {
  tk_ntype type;
  struct tk_norm *sub;
  int nsub;
  tk_regex re;      // Replace
  char *content;    // Replace content / Prepend string
  size_t content_len;
  int left, right;  // Strip
  int clean_text, chinese, strip_accents, lowercase;  // Bert (strip_accents: -1 = follow lowercase)
} tk_norm;
int tk_norm_parse(tk_norm *n, const cJSON *j, const char *path, lt_err *err);
void tk_norm_free(tk_norm *n);
// Normalize s into out (out->len reset first).
int tk_norm_apply(const tk_norm *n, tk_scratch *sc, const char *s, size_t len, tk_buf *out, lt_err *err);

// ---------------------------------------------------------------- pre-tokenizers
typedef enum {
  TK_P_NONE, TK_P_SEQ, TK_P_BYTELEVEL, TK_P_SPLIT, TK_P_DIGITS, TK_P_METASPACE, TK_P_PUNCT, TK_P_WHITESPACE,
  TK_P_WSSPLIT, TK_P_BERT
} tk_ptype;
enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER };
typedef struct tk_pretok {
  tk_ptype type;
  struct tk_pretok *sub;
  int nsub;
  int add_prefix_space, use_regex;  // ByteLevel
  tk_regex re;                      // Split / ByteLevel regex
  int behavior, invert;             // Split / Punctuation
  int individual_digits;            // Digits
  uint32_t replacement;             // Metaspace
  char rep[4];
  int rep_len;
  int prepend_scheme, split;
  char enc[256][3];                 // ByteLevel alphabet
  uint8_t enc_len[256];
} tk_pretok;
int tk_pretok_parse(tk_pretok *p, const cJSON *j, const char *path, lt_err *err);
void tk_pretok_free(tk_pretok *p);
// Transform the pieces (added-token pieces pass through untouched).
int tk_pretok_apply(const tk_pretok *p, tk_scratch *sc, tk_pieces *in, tk_pieces *tmp, lt_err *err);
extern const char tk_bytelevel_gpt2_re[];
// Byte -> UTF-8 of the ByteLevel alphabet char; and char -> byte (-1 if not in the alphabet).
void tk_bytelevel_tables(char enc[256][3], uint8_t enc_len[256]);
int tk_bytelevel_char_byte(uint32_t cp);

// ---------------------------------------------------------------- models
typedef enum { TK_M_BPE, TK_M_WORDPIECE } tk_mtype;
typedef struct tk_bpe_cache tk_bpe_cache;
typedef struct {
  tk_mtype type;
  tk_smap vocab;          // token -> id
  int32_t max_id;         // largest id in vocab
  uint32_t *id2e;         // id -> vocab entry index + 1 (0 = hole), max_id + 1 entries
  // BPE
  tk_pmap merges;
  char *unk_token;        // may be NULL
  int32_t unk_id;         // -1 when no unk token (or not in vocab)
  char *prefix, *suffix;  // continuing_subword_prefix, end_of_word_suffix (NULL when absent)
  size_t prefix_len, suffix_len;
  int fuse_unk, byte_fallback, ignore_merges;
  int32_t byte_ids[256];  // <0xXX> ids, -1 when absent
  tk_bpe_cache *cache;
  // WordPiece
  long max_chars;
} tk_model;
int tk_model_parse(tk_model *m, const cJSON *j, const char *path, lt_err *err);
void tk_model_free(tk_model *m);
int tk_bpe_finish(tk_model *m, lt_err *err);  // after parse: byte ids, cache
// Tokenize one pre-token, appending ids.
int tk_bpe_tokenize(const tk_model *m, const char *s, size_t len, int32_t **ids, int *n, int *cap, lt_err *err);
int tk_wordpiece_tokenize(const tk_model *m, const char *s, size_t len, int32_t **ids, int *n, int *cap,
                          lt_err *err);
static inline const char *tk_model_id_to_token(const tk_model *m, int32_t id, size_t *len) {
  if (id < 0 || id > m->max_id || !m->id2e[id]) return NULL;
  uint32_t e = m->id2e[id] - 1;
  *len = m->vocab.klen[e];
  return tk_smap_key(&m->vocab, e);
}
int tk_ids_push(int32_t **ids, int *n, int *cap, int32_t id);

// ---------------------------------------------------------------- post-processors
typedef enum { TK_PP_NONE, TK_PP_SEQ, TK_PP_TEMPLATE, TK_PP_BYTELEVEL, TK_PP_ROBERTA, TK_PP_BERT } tk_pptype;
typedef struct tk_post {
  tk_pptype type;
  struct tk_post *sub;
  int nsub;
  // Template (single): item k is a special token when ids of it are listed, else the sequence.
  int nitems;
  int32_t **item_ids;  // NULL = $A
  int *item_n;
  int32_t cls_id, sep_id;  // Roberta / Bert
} tk_post;
int tk_post_parse(tk_post *p, const cJSON *j, const char *path, lt_err *err);
void tk_post_free(tk_post *p);
int tk_post_apply(const tk_post *p, int32_t **ids, int *n, int *cap, lt_err *err);

// ---------------------------------------------------------------- decoders
typedef enum {
  TK_D_NONE, TK_D_SEQ, TK_D_BYTELEVEL, TK_D_METASPACE, TK_D_BYTEFALLBACK, TK_D_FUSE, TK_D_STRIP, TK_D_REPLACE,
  TK_D_WORDPIECE, TK_D_BPE
} tk_dtype;
typedef struct tk_dec {
  tk_dtype type;
  struct tk_dec *sub;
  int nsub;
  uint32_t replacement;  // Metaspace
  int prepend_scheme;
  uint32_t strip_content;  // Strip
  long start, stop;
  tk_regex re;  // Replace
  char *content;
  size_t content_len;
  char *prefix;  // WordPiece prefix / BPEDecoder suffix
  size_t prefix_len;
  int cleanup;
} tk_dec;
// A list of token strings.
typedef struct { tk_buf a; size_t *off, *len; size_t n, cap; } tk_toks;
int tk_toks_push(tk_toks *t, const char *s, size_t len);
void tk_toks_free(tk_toks *t);
int tk_dec_parse(tk_dec *d, const cJSON *j, const char *path, lt_err *err);
void tk_dec_free(tk_dec *d);
// Decode chain: consumes *t, replaces it with the result.
int tk_dec_chain(const tk_dec *d, tk_scratch *sc, tk_toks *t, lt_err *err);
// Whether decoded text can still change at its end when more tokens come (streaming hold-back rules).
int tk_dec_has_cleanup(const tk_dec *d);
uint32_t tk_dec_strip_right(const tk_dec *d);  // content char of a Strip with stop > 0, or 0

// ---------------------------------------------------------------- added tokens
typedef struct {
  char *content;  // as written
  size_t len;
  char *match;    // the pattern (content, or content normalized for normalized tokens)
  size_t match_len;
  int32_t id;
  int special, lstrip, rstrip, single_word, normalized;
} tk_added;
typedef struct tk_trie_node { int32_t child, sibling, tok; unsigned char byte; } tk_trie_node;
typedef struct {
  tk_added *t;
  int n;
  tk_smap by_content;      // content -> index into t
  int32_t *by_id;          // id -> index + 1 over [0, max_id]
  int32_t max_id;
  // Tries (raw text and normalized text): node 0 is the root; root_child[b] is the first node for byte b.
  tk_trie_node *nodes[2];
  int nnodes[2], cap[2];
  int32_t root[2][256];
  int has[2];
} tk_addvocab;
int tk_added_parse(tk_addvocab *a, const cJSON *j, const char *path, lt_err *err);
int tk_added_build(tk_addvocab *a, const tk_norm *norm, tk_scratch *sc, lt_err *err);  // tries + normalized forms
void tk_added_free(tk_addvocab *a);
static inline const tk_added *tk_added_by_id(const tk_addvocab *a, int32_t id) {
  if (id < 0 || id > a->max_id || !a->by_id[id]) return NULL;
  return &a->t[a->by_id[id] - 1];
}
// Split text into pieces: added-token matches (id set) and the rest (which `norm` then normalizes), as
// AddedVocabulary::extract_and_normalize.
int tk_added_extract(const tk_addvocab *a, const tk_norm *norm, tk_scratch *sc, const char *text, size_t len,
                     tk_pieces *out, lt_err *err);

// ---------------------------------------------------------------- tokenizer
struct lt_tokenizer {
  tk_norm norm;
  tk_pretok pre;
  tk_model model;
  tk_post post;
  tk_dec dec;
  int has_dec;
  tk_addvocab added;
  int32_t bos_id, eos_id, pad_id;
  int cleanup_spaces;  // transformers' clean_up_tokenization on decode (non-BPE models only)
  char cls_name[64];   // transformers class applied ("" = tokenizer.json as is)
};

#endif
