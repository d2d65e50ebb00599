// Streaming decode. Like tokenizers' DecodeStream, each push decodes a short window of ids that starts with
// already-emitted context tokens and emits only what follows the context's text. Text that may still change when
// more ids arrive is held back: trailing U+FFFD (an incomplete byte sequence), the tail a Strip decoder could
// remove, and a tail that transformers' clean_up_tokenization could rewrite. flush() decodes the whole sequence
// once and emits the rest, so the concatenated output always equals lt_tokenizer_decode of all ids.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

int tk_decode_impl(const lt_tokenizer *t, const int32_t *ids, int n, int skip_special, tk_buf *out, lt_err *err);

struct lt_detok_stream {
  const lt_tokenizer *t;
  int skip;
  int32_t *ids;
  int n, cap;
  int w;              // window start
  int chunk;          // first id after the last point where everything decoded so far was emitted
  size_t win_done;    // bytes of decode(ids[w..]) already emitted
  tk_buf all;         // everything emitted so far
  tk_buf text;        // scratch
  tk_buf win;         // the emitted prefix of decode(ids[w..]) (win.len == win_done)
  uint32_t strip_right;
  int cleanup;        // transformers clean_up_tokenization applies
};

int lt_detok_stream_new(lt_detok_stream **out, const lt_tokenizer *t, int skip_special, lt_err *err) {
  lt_detok_stream *s = calloc(1, sizeof *s);
  if (!s) return lt_errf(err, "tokenizer: out of memory");
  s->t = t;
  s->skip = skip_special;
  s->strip_right = t->has_dec ? tk_dec_strip_right(&t->dec) : 0;
  s->cleanup = t->cleanup_spaces && t->model.type != TK_M_BPE;
  *out = s;
  return 0;
}

void lt_detok_stream_free(lt_detok_stream *s) {
  if (!s) return;
  free(s->ids);
  tk_buf_free(&s->all);
  tk_buf_free(&s->text);
  tk_buf_free(&s->win);
  free(s);
}

static int set_out(const char *p, size_t n, char **out, size_t *len, lt_err *err) {
  *out = malloc(n + 1);
  if (!*out) return lt_errf(err, "tokenizer: out of memory");
  if (n) memcpy(*out, p, n);
  (*out)[n] = 0;
  if (len) *len = n;
  return 0;
}

// Bytes at the end of s[0..n) that must wait for more ids.
static size_t hold_back(const lt_detok_stream *s, const char *p, size_t n) {
  size_t h = 0;
  for (;;) {
    size_t k = n - h;
    if (k >= 3 && !memcmp(p + k - 3, "\xEF\xBF\xBD", 3)) {
      h += 3;
      continue;
    }
    if (s->strip_right && k > 0) {
      char u[4];
      int ul = tk_utf8_enc(s->strip_right, u);
      if (k >= (size_t)ul && !memcmp(p + k - ul, u, (size_t)ul)) {
        h += (size_t)ul;
        continue;
      }
    }
    break;
  }
  if (s->cleanup) {
    // Longest suffix that is a proper prefix of a clean_up_tokenization pattern.
    static const char *const pats[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    size_t k = n - h, best = 0;
    for (size_t q = 0; q < sizeof pats / sizeof pats[0]; q++) {
      size_t pl = strlen(pats[q]);
      for (size_t L = pl - 1; L > best; L--)
        if (L <= k && !memcmp(p + k - L, pats[q], L)) {
          best = L;
          break;
        }
    }
    h += best;
  }
  return h;
}

int lt_detok_stream_push(lt_detok_stream *s, int32_t id, char **out, size_t *len, lt_err *err) {
  *out = NULL;
  if (len) *len = 0;
  if (tk_ids_push(&s->ids, &s->n, &s->cap, id)) return lt_errf(err, "tokenizer: out of memory");
  if (tk_decode_impl(s->t, s->ids + s->w, s->n - s->w, s->skip, &s->text, err)) return -1;
  const char *p = s->text.p;
  size_t n = s->text.len;
  size_t stable = n - hold_back(s, p, n);
  // The already-emitted part of the window must still be a prefix (otherwise wait for flush).
  if (stable <= s->win_done || (s->win_done && memcmp(p, s->win.p, s->win_done) != 0)) return set_out("", 0, out, len, err);
  size_t emit_from = s->win_done;
  size_t cnt = stable - emit_from;
  if (set_out(p + emit_from, cnt, out, len, err)) return -1;
  if (tk_buf_put(&s->all, p + emit_from, cnt) || tk_buf_put(&s->win, p + emit_from, cnt)) {
    free(*out);
    *out = NULL;
    return lt_errf(err, "tokenizer: out of memory");
  }
  s->win_done = stable;
  if (stable == n) {
    // Everything is out: the new window starts with the ids emitted since the previous such point (they end on a
    // character boundary and begin on one, so byte-fallback groups and byte-level sequences stay whole); their
    // text is the new emitted context.
    s->w = s->chunk;
    s->chunk = s->n;
    if (tk_decode_impl(s->t, s->ids + s->w, s->n - s->w, s->skip, &s->win, err)) return -1;
    s->win_done = s->win.len;
  }
  return 0;
}

int lt_detok_stream_flush(lt_detok_stream *s, char **out, size_t *len, lt_err *err) {
  *out = NULL;
  if (len) *len = 0;
  if (tk_decode_impl(s->t, s->ids, s->n, s->skip, &s->text, err)) return -1;
  if (s->text.len < s->all.len || (s->all.len && memcmp(s->text.p, s->all.p, s->all.len)))
    return lt_errf(err, "tokenizer: streamed text diverged from the full decode (after %zu bytes)", s->all.len);
  size_t cnt = s->text.len - s->all.len;
  if (set_out(s->text.p + s->all.len, cnt, out, len, err)) return -1;
  // Reset: a flushed stream starts over.
  s->n = 0;
  s->w = 0;
  s->chunk = 0;
  s->win_done = 0;
  s->win.len = 0;
  s->all.len = 0;
  return 0;
}
