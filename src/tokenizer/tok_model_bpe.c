// Models: parsing of "model" (BPE and WordPiece) and the BPE algorithm of tokenizers' models/bpe (merge_word +
// Word::merge_all with a priority queue over (rank, position)), with a per-word cache.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

#define CACHE_MAX_WORD 256            // as tokenizers: longer words are not cached
#define CACHE_MAX_ENTRIES 262144
#define CACHE_MAX_POOL (16u << 20)    // ids

struct tk_bpe_cache {
  pthread_mutex_t mu;
  tk_smap map;     // word -> offset into pool: pool[off] = count, then the ids
  int32_t *pool;
  size_t n, cap;
};

static int oom(lt_err *err) { return lt_errf(err, "tokenizer: out of memory"); }

static int dup_opt(const cJSON *j, const char *key, const char *path, char **out, size_t *len, lt_err *err) {
  const char *s;
  if (tk_jstr(j, key, path, 0, &s, err)) return -1;
  *out = NULL;
  if (len) *len = 0;
  if (!s) return 0;
  *out = strdup(s);
  if (!*out) return oom(err);
  if (len) *len = strlen(s);
  return 0;
}

static int parse_vocab(tk_model *m, const cJSON *v, const char *path, lt_err *err) {
  char p[512];
  snprintf(p, sizeof p, "%s.vocab", path);
  if (!v || !cJSON_IsObject(v)) return tk_jerr(err, p, "expected an object {token: id}");
  int cnt = cJSON_GetArraySize(v);
  if (tk_smap_init(&m->vocab, (uint32_t)cnt, err)) return -1;
  m->max_id = -1;
  for (const cJSON *c = v->child; c; c = c->next) {
    double d = cJSON_IsNumber(c) ? c->valuedouble : -1;
    if (!cJSON_IsNumber(c) || d < 0 || d > 2147483646.0 || d != (double)(int32_t)d)
      return tk_jerr(err, p, "token \"%.80s\": id must be an integer in [0, 2147483646]", c->string ? c->string : "");
    int32_t id = (int32_t)d;
    const char *k = c->string ? c->string : "";
    if (tk_smap_put(&m->vocab, k, strlen(k), id) < 0) return oom(err);
    if (id > m->max_id) m->max_id = id;
  }
  if ((size_t)m->max_id + 1 > (size_t)cnt * 4 + (1u << 20))
    return tk_jerr(err, p, "ids are too sparse (largest %d for %d tokens)", m->max_id, cnt);
  m->id2e = calloc((size_t)m->max_id + 2, sizeof *m->id2e);
  if (!m->id2e) return oom(err);
  for (uint32_t e = 0; e < m->vocab.n; e++) m->id2e[m->vocab.val[e]] = e + 1;
  return 0;
}

static int parse_merges(tk_model *m, const cJSON *arr, const char *path, lt_err *err) {
  char p[512];
  snprintf(p, sizeof p, "%s.merges", path);
  if (!arr) {
    return tk_pmap_init(&m->merges, 0, err);
  }
  if (!cJSON_IsArray(arr)) return tk_jerr(err, p, "expected an array of \"a b\" strings or [a, b] pairs");
  int cnt = cJSON_GetArraySize(arr);
  if (tk_pmap_init(&m->merges, (size_t)cnt, err)) return -1;
  tk_buf nb = {0};
  int i = 0;
  uint32_t rank = 0;
  for (const cJSON *c = arr->child; c; c = c->next, i++) {
    const char *a, *b;
    size_t al, bl;
    if (cJSON_IsString(c)) {
      const char *s = c->valuestring;
      if (!strncmp(s, "#version", 8)) continue;  // a header line, as tokenizers skips it
      const char *sp = strchr(s, ' ');
      if (!sp || strchr(sp + 1, ' ')) {
        tk_buf_free(&nb);
        snprintf(p, sizeof p, "%s.merges[%d]", path, i);
        return tk_jerr(err, p, "\"%.80s\" is not two tokens separated by one space", s);
      }
      a = s;
      al = (size_t)(sp - s);
      b = sp + 1;
      bl = strlen(b);
    } else if (cJSON_IsArray(c) && cJSON_GetArraySize(c) == 2 && cJSON_IsString(c->child) &&
               cJSON_IsString(c->child->next)) {
      a = c->child->valuestring;
      al = strlen(a);
      b = c->child->next->valuestring;
      bl = strlen(b);
    } else {
      tk_buf_free(&nb);
      snprintf(p, sizeof p, "%s.merges[%d]", path, i);
      return tk_jerr(err, p, "expected a string \"a b\" or a pair [\"a\", \"b\"]");
    }
    int32_t ia = tk_smap_get(&m->vocab, a, al, -1), ib = tk_smap_get(&m->vocab, b, bl, -1);
    if (ia < 0 || ib < 0 || bl < m->prefix_len) {
      tk_buf_free(&nb);
      snprintf(p, sizeof p, "%s.merges[%d]", path, i);
      return tk_jerr(err, p, "token \"%.80s\" is not in the vocabulary", ia < 0 ? a : b);
    }
    nb.len = 0;
    if (tk_buf_put(&nb, a, al) || tk_buf_put(&nb, b + m->prefix_len, bl - m->prefix_len)) {
      tk_buf_free(&nb);
      return oom(err);
    }
    int32_t id = tk_smap_get(&m->vocab, nb.p, nb.len, -1);
    if (id < 0) {
      snprintf(p, sizeof p, "%s.merges[%d]", path, i);
      tk_jerr(err, p, "merged token \"%.80s\" is not in the vocabulary", nb.p);
      tk_buf_free(&nb);
      return -1;
    }
    tk_pmap_put(&m->merges, ia, ib, rank++, id);
  }
  tk_buf_free(&nb);
  return 0;
}

int tk_model_parse(tk_model *m, const cJSON *j, const char *path, lt_err *err) {
  memset(m, 0, sizeof *m);
  m->unk_id = -1;
  for (int b = 0; b < 256; b++) m->byte_ids[b] = -1;
  if (!j || !cJSON_IsObject(j)) return tk_jerr(err, path, "missing model object");
  const char *type;
  if (tk_jstr(j, "type", path, 0, &type, err)) return -1;
  if (!type) type = tk_jget(j, "merges") ? "BPE" : "WordPiece";
  if (!strcmp(type, "BPE")) {
    m->type = TK_M_BPE;
    const cJSON *dr = tk_jget(j, "dropout");
    if (dr && !(cJSON_IsNumber(dr) && dr->valuedouble == 0.0))
      return tk_jerr(err, path, "BPE dropout is not supported (only null)");
    if (dup_opt(j, "unk_token", path, &m->unk_token, NULL, err) ||
        dup_opt(j, "continuing_subword_prefix", path, &m->prefix, &m->prefix_len, err) ||
        dup_opt(j, "end_of_word_suffix", path, &m->suffix, &m->suffix_len, err) ||
        tk_jbool(j, "fuse_unk", path, 0, &m->fuse_unk, err) ||
        tk_jbool(j, "byte_fallback", path, 0, &m->byte_fallback, err) ||
        tk_jbool(j, "ignore_merges", path, 0, &m->ignore_merges, err))
      return -1;
    if (parse_vocab(m, tk_jget(j, "vocab"), path, err) || parse_merges(m, tk_jget(j, "merges"), path, err))
      return -1;
    return tk_bpe_finish(m, err);
  }
  if (!strcmp(type, "WordPiece")) {
    m->type = TK_M_WORDPIECE;
    if (dup_opt(j, "unk_token", path, &m->unk_token, NULL, err) ||
        dup_opt(j, "continuing_subword_prefix", path, &m->prefix, &m->prefix_len, err) ||
        tk_jint(j, "max_input_chars_per_word", path, 0, 1L << 30, 100, &m->max_chars, err))
      return -1;
    if (!m->unk_token && !(m->unk_token = strdup("[UNK]"))) return oom(err);
    if (!m->prefix) {
      if (!(m->prefix = strdup("##"))) return oom(err);
      m->prefix_len = 2;
    }
    if (parse_vocab(m, tk_jget(j, "vocab"), path, err)) return -1;
    m->unk_id = tk_smap_get(&m->vocab, m->unk_token, strlen(m->unk_token), -1);
    return 0;
  }
  return tk_jerr(err, path, "unsupported model type \"%s\" (supported: BPE, WordPiece)", type);
}

int tk_bpe_finish(tk_model *m, lt_err *err) {
  m->unk_id = m->unk_token ? tk_smap_get(&m->vocab, m->unk_token, strlen(m->unk_token), -1) : -1;
  for (int b = 0; b < 256; b++) {
    char s[8];
    snprintf(s, sizeof s, "<0x%02X>", b);
    m->byte_ids[b] = tk_smap_get(&m->vocab, s, 6, -1);
  }
  if (!m->cache) {
    tk_bpe_cache *c = calloc(1, sizeof *c);
    if (!c) return oom(err);
    if (pthread_mutex_init(&c->mu, NULL)) {
      free(c);
      return lt_errf(err, "tokenizer: cannot create a mutex");
    }
    if (tk_smap_init(&c->map, 4096, err)) {
      pthread_mutex_destroy(&c->mu);
      free(c);
      return -1;
    }
    m->cache = c;
  }
  return 0;
}

void tk_model_free(tk_model *m) {
  tk_smap_free(&m->vocab);
  free(m->id2e);
  tk_pmap_free(&m->merges);
  free(m->unk_token);
  free(m->prefix);
  free(m->suffix);
  if (m->cache) {
    pthread_mutex_destroy(&m->cache->mu);
    tk_smap_free(&m->cache->map);
    free(m->cache->pool);
    free(m->cache);
  }
  memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------- BPE
typedef struct { int32_t c; int32_t prev, next; uint32_t len; } sym_t;
typedef struct { uint32_t rank; int32_t pos; int32_t id; } mrg_t;

static inline int mrg_less(const mrg_t *a, const mrg_t *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(mrg_t *h, int *n, mrg_t v) {
  int i = (*n)++;
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!mrg_less(&v, &h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = v;
}

static mrg_t heap_pop(mrg_t *h, int *n) {
  mrg_t top = h[0], v = h[--(*n)];
  int i = 0;
  for (;;) {
    int l = 2 * i + 1;
    if (l >= *n) break;
    int c = (l + 1 < *n && mrg_less(&h[l + 1], &h[l])) ? l + 1 : l;
    if (!mrg_less(&h[c], &v)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n > 0) h[i] = v;
  return top;
}

// merge_word + merge_all; appends the resulting ids to *out.
static int bpe_word(const tk_model *m, const char *w, size_t len, int32_t **ids, int *n, int *cap, lt_err *err) {
  sym_t sbuf[128];
  mrg_t hbuf[256];
  sym_t *sym = sbuf;
  mrg_t *heap = hbuf;
  size_t maxsym = len + 1;
  // each char may produce up to 4 byte-fallback symbols, but never more symbols than bytes
  if (maxsym > 128) {
    sym = malloc(maxsym * sizeof *sym);
    if (!sym) return oom(err);
  }
  // heap holds at most (symbols + merges performed * 2) entries; bound by 3 * symbols
  size_t hcap = 3 * maxsym + 8;
  if (hcap > 256) {
    heap = malloc(hcap * sizeof *heap);
    if (!heap) {
      if (sym != sbuf) free(sym);
      return oom(err);
    }
  }
  int ns = 0;
  int32_t unk = -1;
  uint32_t unk_len = 0;
  char kb[256];
  char *key = kb;
  size_t kcap = sizeof kb;
  int rc = 0;
  for (size_t i = 0; i < len;) {
    size_t cl = (size_t)tk_utf8_len((unsigned char)w[i]);
    if (i + cl > len) cl = len - i;
    int is_first = i == 0, is_last = i + cl == len;
    const char *s = w + i;
    size_t sl = cl;
    if ((!is_first && m->prefix) || (is_last && m->suffix)) {
      size_t need = cl + m->prefix_len + m->suffix_len;
      if (need > kcap) {
        char *nk = key == kb ? malloc(need) : realloc(key, need);
        if (!nk) {
          rc = oom(err);
          goto done;
        }
        key = nk;
        kcap = need;
      }
      sl = 0;
      if (!is_first && m->prefix) {
        memcpy(key, m->prefix, m->prefix_len);
        sl = m->prefix_len;
      }
      memcpy(key + sl, s, cl);
      sl += cl;
      if (is_last && m->suffix) {
        memcpy(key + sl, m->suffix, m->suffix_len);
        sl += m->suffix_len;
      }
      s = key;
    }
    int32_t id = tk_smap_get(&m->vocab, s, sl, -1);
    if (id >= 0) {
      if (unk >= 0) {
        sym[ns] = (sym_t){unk, ns - 1, ns + 1, unk_len};
        ns++;
        unk = -1;
      }
      sym[ns] = (sym_t){id, ns - 1, ns + 1, (uint32_t)cl};
      ns++;
    } else {
      int done_bf = 0;
      if (m->byte_fallback) {
        int ok = 1;
        for (size_t k = 0; k < sl; k++)
          if (m->byte_ids[(unsigned char)s[k]] < 0) ok = 0;
        if (ok && (size_t)ns + sl <= maxsym) {
          // (a prefix/suffix could exceed the symbol budget; grow then)
          for (size_t k = 0; k < sl; k++) {
            sym[ns] = (sym_t){m->byte_ids[(unsigned char)s[k]], ns - 1, ns + 1, 1};
            ns++;
          }
          done_bf = 1;
        } else if (ok) {
          size_t nm = (size_t)ns + sl + (len - i) + 1;
          sym_t *nsym = sym == sbuf ? malloc(nm * sizeof *nsym) : realloc(sym, nm * sizeof *nsym);
          if (!nsym) {
            rc = oom(err);
            goto done;
          }
          if (sym == sbuf) memcpy(nsym, sbuf, (size_t)ns * sizeof *nsym);
          sym = nsym;
          maxsym = nm;
          size_t nh = 3 * maxsym + 8;
          mrg_t *nheap = heap == hbuf ? malloc(nh * sizeof *nheap) : realloc(heap, nh * sizeof *nheap);
          if (!nheap) {
            rc = oom(err);
            goto done;
          }
          heap = nheap;
          hcap = nh;
          for (size_t k = 0; k < sl; k++) {
            sym[ns] = (sym_t){m->byte_ids[(unsigned char)s[k]], ns - 1, ns + 1, 1};
            ns++;
          }
          done_bf = 1;
        }
      }
      if (!done_bf && m->unk_token) {
        if (m->unk_id < 0) {
          rc = lt_errf(err, "tokenizer: unk_token \"%.80s\" is not in the vocabulary", m->unk_token);
          goto done;
        }
        if (unk >= 0 && m->fuse_unk) {
          unk_len += (uint32_t)cl;
        } else {
          if (unk >= 0) {
            sym[ns] = (sym_t){unk, ns - 1, ns + 1, unk_len};
            ns++;
          }
          unk = m->unk_id;
          unk_len = (uint32_t)cl;
        }
      }
    }
    i += cl;
  }
  if (unk >= 0) {
    sym[ns] = (sym_t){unk, ns - 1, ns + 1, unk_len};
    ns++;
  }
  if (ns == 0) goto done;
  sym[ns - 1].next = -1;
  // merge_all
  int hn = 0;
  for (int k = 0; k + 1 < ns; k++) {
    const tk_pent *pe = tk_pmap_get(&m->merges, sym[k].c, sym[k + 1].c);
    if (pe) heap_push(heap, &hn, (mrg_t){pe->rank, k, pe->id});
  }
  while (hn > 0) {
    mrg_t top = heap_pop(heap, &hn);
    sym_t *cur = &sym[top.pos];
    if (cur->len == 0 || cur->next == -1) continue;
    int32_t nx = cur->next;
    const tk_pent *pe = tk_pmap_get(&m->merges, cur->c, sym[nx].c);
    if (!pe || pe->id != top.id) continue;
    cur->c = top.id;
    cur->len += sym[nx].len;
    cur->next = sym[nx].next;
    sym[nx].len = 0;
    if (cur->next >= 0 && cur->next < ns) sym[cur->next].prev = top.pos;
    if ((size_t)hn + 2 > hcap) {
      size_t nh = hcap * 2;
      mrg_t *nheap = heap == hbuf ? malloc(nh * sizeof *nheap) : realloc(heap, nh * sizeof *nheap);
      if (!nheap) {
        rc = oom(err);
        goto done;
      }
      if (heap == hbuf) memcpy(nheap, hbuf, (size_t)hn * sizeof *nheap);
      heap = nheap;
      hcap = nh;
    }
    if (cur->prev >= 0) {
      const tk_pent *pp = tk_pmap_get(&m->merges, sym[cur->prev].c, cur->c);
      if (pp) heap_push(heap, &hn, (mrg_t){pp->rank, cur->prev, pp->id});
    }
    if (cur->next >= 0 && cur->next < ns) {
      const tk_pent *pn = tk_pmap_get(&m->merges, cur->c, sym[cur->next].c);
      if (pn) heap_push(heap, &hn, (mrg_t){pn->rank, top.pos, pn->id});
    }
  }
  for (int k = 0; k < ns; k++)
    if (sym[k].len && tk_ids_push(ids, n, cap, sym[k].c)) {
      rc = oom(err);
      goto done;
    }
done:
  if (sym != sbuf) free(sym);
  if (heap != hbuf) free(heap);
  if (key != kb) free(key);
  return rc;
}

int tk_bpe_tokenize(const tk_model *m, const char *s, size_t len, int32_t **ids, int *n, int *cap, lt_err *err) {
  if (m->ignore_merges) {
    int32_t id = tk_smap_get(&m->vocab, s, len, -1);
    if (id >= 0) return tk_ids_push(ids, n, cap, id) ? oom(err) : 0;
  }
  tk_bpe_cache *c = m->cache;
  int use_cache = c && len < CACHE_MAX_WORD;
  if (use_cache) {
    pthread_mutex_lock(&c->mu);
    int64_t e = tk_smap_find(&c->map, s, len);
    if (e >= 0) {
      int32_t off = c->map.val[e];
      int32_t cnt = c->pool[off];
      int rc = 0;
      for (int32_t k = 0; k < cnt && !rc; k++) rc = tk_ids_push(ids, n, cap, c->pool[off + 1 + k]);
      pthread_mutex_unlock(&c->mu);
      return rc ? oom(err) : 0;
    }
    pthread_mutex_unlock(&c->mu);
  }
  int n0 = *n;
  if (bpe_word(m, s, len, ids, n, cap, err)) return -1;
  if (use_cache) {
    int cnt = *n - n0;
    pthread_mutex_lock(&c->mu);
    if (c->map.n < CACHE_MAX_ENTRIES && c->n + (size_t)cnt + 1 <= CACHE_MAX_POOL) {
      if (c->n + (size_t)cnt + 1 > c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 65536;
        while (nc < c->n + (size_t)cnt + 1) nc *= 2;
        int32_t *np = realloc(c->pool, nc * sizeof *np);
        if (np) {
          c->pool = np;
          c->cap = nc;
        }
      }
      if (c->n + (size_t)cnt + 1 <= c->cap && tk_smap_put(&c->map, s, len, (int32_t)c->n) >= 0) {
        c->pool[c->n] = cnt;
        memcpy(c->pool + c->n + 1, *ids + n0, (size_t)cnt * sizeof(int32_t));
        c->n += (size_t)cnt + 1;
      }
    }
    pthread_mutex_unlock(&c->mu);
  }
  return 0;
}
