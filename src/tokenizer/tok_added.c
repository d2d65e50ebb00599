// Added tokens (tokenizers' tokenizer/added_vocabulary.rs): parsed from "added_tokens", split out of the input
// before the model. Non-normalized tokens are matched on the raw text, normalized ones on the normalized text;
// leftmost-longest matching (a byte trie), with single_word / lstrip / rstrip handling.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static int oom(lt_err *err) { return lt_errf(err, "tokenizer: out of memory"); }

int tk_added_parse(tk_addvocab *a, const cJSON *j, const char *path, lt_err *err) {
  memset(a, 0, sizeof *a);
  a->max_id = -1;
  int cnt = j ? cJSON_GetArraySize(j) : 0;
  if (j && !cJSON_IsArray(j)) return tk_jerr(err, path, "expected an array");
  if (tk_smap_init(&a->by_content, (uint32_t)cnt, err)) return -1;
  a->t = calloc((size_t)cnt + 1, sizeof *a->t);
  if (!a->t) return oom(err);
  int i = 0;
  char p[512];
  for (const cJSON *c = j ? j->child : NULL; c; c = c->next, i++) {
    snprintf(p, sizeof p, "%s[%d]", path, i);
    if (!cJSON_IsObject(c)) return tk_jerr(err, p, "expected an object");
    tk_added *t = &a->t[a->n];
    long id;
    const char *content;
    if (tk_jint(c, "id", p, 0, 2147483646L, -1, &id, err) || tk_jstr(c, "content", p, 1, &content, err) ||
        tk_jbool(c, "special", p, 0, &t->special, err) || tk_jbool(c, "lstrip", p, 0, &t->lstrip, err) ||
        tk_jbool(c, "rstrip", p, 0, &t->rstrip, err) || tk_jbool(c, "single_word", p, 0, &t->single_word, err) ||
        tk_jbool(c, "normalized", p, !t->special, &t->normalized, err))
      return -1;
    if (id < 0) return tk_jerr(err, p, "missing integer field \"id\"");
    size_t bad, len = strlen(content);
    if (!tk_utf8_valid(content, len, &bad)) return tk_jerr(err, p, "content is not valid UTF-8");
    if (len == 0) continue;  // tokenizers ignores empty added tokens
    if (!(t->content = strdup(content))) return oom(err);
    t->len = len;
    t->id = (int32_t)id;
    if (tk_smap_put(&a->by_content, content, len, a->n) < 0) return oom(err);
    if (t->id > a->max_id) a->max_id = t->id;
    a->n++;
  }
  if ((size_t)a->max_id + 1 > (size_t)a->n * 64 + (1u << 24))
    return tk_jerr(err, path, "ids are too sparse (largest %d for %d tokens)", a->max_id, a->n);
  a->by_id = calloc((size_t)a->max_id + 2, sizeof *a->by_id);
  if (!a->by_id) return oom(err);
  for (int k = 0; k < a->n; k++) a->by_id[a->t[k].id] = k + 1;
  return 0;
}

void tk_added_free(tk_addvocab *a) {
  for (int i = 0; i < a->n; i++) {
    if (a->t[i].match != a->t[i].content) free(a->t[i].match);
    free(a->t[i].content);
  }
  free(a->t);
  tk_smap_free(&a->by_content);
  free(a->by_id);
  free(a->nodes[0]);
  free(a->nodes[1]);
  memset(a, 0, sizeof *a);
}

static int trie_new(tk_addvocab *a, int w, unsigned char b) {
  if (a->nnodes[w] == a->cap[w]) {
    int nc = a->cap[w] ? a->cap[w] * 2 : 256;
    tk_trie_node *n = realloc(a->nodes[w], (size_t)nc * sizeof *n);
    if (!n) return -1;
    a->nodes[w] = n;
    a->cap[w] = nc;
  }
  a->nodes[w][a->nnodes[w]] = (tk_trie_node){-1, -1, -1, b};
  return a->nnodes[w]++;
}

static int trie_insert(tk_addvocab *a, int w, const char *s, size_t n, int32_t tok) {
  const unsigned char *u = (const unsigned char *)s;
  int32_t cur = a->root[w][u[0]];
  if (cur < 0) {
    if ((cur = trie_new(a, w, u[0])) < 0) return -1;
    a->root[w][u[0]] = cur;
  }
  for (size_t i = 1; i < n; i++) {
    int32_t ch = a->nodes[w][cur].child, found = -1;
    for (; ch >= 0; ch = a->nodes[w][ch].sibling)
      if (a->nodes[w][ch].byte == u[i]) {
        found = ch;
        break;
      }
    if (found < 0) {
      if ((found = trie_new(a, w, u[i])) < 0) return -1;
      a->nodes[w][found].sibling = a->nodes[w][cur].child;
      a->nodes[w][cur].child = found;
    }
    cur = found;
  }
  a->nodes[w][cur].tok = tok;
  return 0;
}

int tk_added_build(tk_addvocab *a, const tk_norm *norm, tk_scratch *sc, lt_err *err) {
  for (int w = 0; w < 2; w++) {
    free(a->nodes[w]);
    a->nodes[w] = NULL;
    a->nnodes[w] = a->cap[w] = 0;
    a->has[w] = 0;
    for (int b = 0; b < 256; b++) a->root[w][b] = -1;
  }
  tk_buf nb = {0};
  for (int i = 0; i < a->n; i++) {
    tk_added *t = &a->t[i];
    if (t->match && t->match != t->content) free(t->match);
    t->match = t->content;
    t->match_len = t->len;
    // only the last token with a given content is live (its id wins in the content map)
    if (tk_smap_get(&a->by_content, t->content, t->len, -1) != i) continue;
    if (t->normalized && norm->type != TK_N_NONE) {
      if (tk_norm_apply(norm, sc, t->content, t->len, &nb, err)) {
        tk_buf_free(&nb);
        return -1;
      }
      if (nb.len != t->len || memcmp(nb.p, t->content, t->len)) {
        if (!(t->match = malloc(nb.len + 1))) {
          tk_buf_free(&nb);
          return oom(err);
        }
        memcpy(t->match, nb.p, nb.len);
        t->match[nb.len] = 0;
        t->match_len = nb.len;
      }
    }
    if (!t->match_len) continue;
    int w = t->normalized ? 1 : 0;
    if (trie_insert(a, w, t->match, t->match_len, i)) {
      tk_buf_free(&nb);
      return oom(err);
    }
    a->has[w] = 1;
  }
  tk_buf_free(&nb);
  return 0;
}

// Longest token starting at s[i]; returns token index or -1, *end receives the end offset.
static int32_t trie_match(const tk_addvocab *a, int w, const unsigned char *s, size_t len, size_t i, size_t *end) {
  int32_t cur = a->root[w][s[i]], best = -1;
  const tk_trie_node *nd = a->nodes[w];
  size_t k = i + 1;
  while (cur >= 0) {
    if (nd[cur].tok >= 0) {
      best = nd[cur].tok;
      *end = k;
    }
    if (k >= len) break;
    int32_t ch = nd[cur].child;
    while (ch >= 0 && nd[ch].byte != s[k]) ch = nd[ch].sibling;
    cur = ch;
    k++;
  }
  return best;
}

static int last_char_word(const char *s, size_t end) {
  if (end == 0) return 0;
  size_t p = end - 1;
  while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
  uint32_t c;
  tk_utf8_dec((const unsigned char *)s + p, &c);
  return tk_is_word(c);
}

// find_matches over s with trie w; pushes pieces (offsets relative to `base` in out->a).
static int find_matches(const tk_addvocab *a, int w, const char *s, size_t len, size_t base, int first,
                        tk_pieces *out) {
  const unsigned char *u = (const unsigned char *)s;
  size_t start_off = 0, i = 0;
  while (a->has[w] && i < len) {
    size_t end = 0;
    int32_t tix = a->root[w][u[i]] >= 0 ? trie_match(a, w, u, len, i, &end) : -1;
    if (tix < 0) {
      i++;
      continue;
    }
    const tk_added *t = &a->t[tix];
    size_t ms = i, me = end;
    i = end;
    if (t->single_word) {
      int start_space = ms == 0 || !last_char_word(s, ms);
      int stop_space = 1;
      if (me < len) {
        uint32_t c;
        tk_utf8_dec(u + me, &c);
        stop_space = !tk_is_word(c);
      }
      if (!start_space || !stop_space) continue;
    }
    if (t->lstrip) {
      size_t ns = ms;
      while (ns > 0) {
        size_t p = ns - 1;
        while (p > 0 && (u[p] & 0xC0) == 0x80) p--;
        uint32_t c;
        tk_utf8_dec(u + p, &c);
        if (!tk_is_whitespace(c)) break;
        ns = p;
      }
      ms = ns > start_off ? ns : start_off;
    }
    if (t->rstrip) {
      while (me < len) {
        uint32_t c;
        int k = tk_utf8_dec(u + me, &c);
        if (!tk_is_whitespace(c)) break;
        me += (size_t)k;
      }
      i = me;
    }
    if (start_off < ms && tk_pieces_push(out, base + start_off, ms - start_off, -1, start_off < (size_t)first ? (int)((size_t)first - start_off) : 0))
      return -1;
    if (tk_pieces_push(out, base + ms, me - ms, t->id, 0)) return -1;
    start_off = me;
  }
  if (start_off < len && tk_pieces_push(out, base + start_off, len - start_off, -1, start_off < (size_t)first ? (int)((size_t)first - start_off) : 0))
    return -1;
  return 0;
}

int tk_added_extract(const tk_addvocab *a, const tk_norm *norm, tk_scratch *sc, const char *text, size_t len,
                     tk_pieces *out, lt_err *err) {
  out->n = 0;
  out->a.len = 0;
  tk_pieces raw = {0};
  // Pass 1 on the raw text (offsets into `text`, base 0).
  if (find_matches(a, 0, text, len, 0, 1, &raw)) {
    tk_pieces_free(&raw);
    return oom(err);
  }
  int rc = 0;
  for (size_t k = 0; k < raw.n && !rc; k++) {
    tk_piece pc = raw.p[k];
    if (pc.id >= 0) {
      if (tk_pieces_push(out, 0, 0, pc.id, 0)) rc = oom(err);
      continue;
    }
    size_t base = out->a.len;
    if (norm->type == TK_N_NONE) {
      if (tk_buf_put(&out->a, text + pc.off, pc.len)) rc = oom(err);
    } else {
      if (tk_norm_apply(norm, sc, text + pc.off, pc.len, &sc->t2, err)) rc = -1;
      else if (tk_buf_put(&out->a, sc->t2.p ? sc->t2.p : "", sc->t2.len)) rc = oom(err);
    }
    if (rc) break;
    size_t nlen = out->a.len - base;
    if (nlen == 0) continue;
    // Bytes of the normalized piece aligned to offset 0 of the input: those produced from its first character
    // (as tokenizers' alignments; Metaspace prepend_scheme "first" looks at them).
    int zero = 0;
    if (pc.first) {
      size_t cl = (size_t)tk_utf8_len((unsigned char)text[pc.off]);
      if (cl > pc.len) cl = pc.len;
      if (norm->type == TK_N_NONE) zero = (int)cl;
      else if (tk_norm_apply(norm, sc, text + pc.off, cl, &sc->t2, err)) rc = -1;
      else zero = (int)(sc->t2.len ? sc->t2.len : 1);
      if (rc) break;
    }
    if (find_matches(a, 1, out->a.p + base, nlen, base, zero, out)) rc = oom(err);
  }
  tk_pieces_free(&raw);
  return rc;
}
