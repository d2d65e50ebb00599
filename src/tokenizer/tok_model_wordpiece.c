// WordPiece (tokenizers' models/wordpiece): greedy longest-match-first with a continuing-subword prefix; a word
// longer than max_input_chars_per_word chars, or with an unmatchable rest, becomes the unk token.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

int tk_wordpiece_tokenize(const tk_model *m, const char *s, size_t len, int32_t **ids, int *n, int *cap,
                          lt_err *err) {
  size_t chars = 0;
  for (size_t i = 0; i < len; i += (size_t)tk_utf8_len((unsigned char)s[i])) chars++;
  int n0 = *n;
  if (chars <= (size_t)m->max_chars) {
    char kb[512];
    char *key = kb;
    if (len + m->prefix_len > sizeof kb) {
      key = malloc(len + m->prefix_len);
      if (!key) return lt_errf(err, "tokenizer: out of memory");
    }
    size_t start = 0;
    int bad = 0;
    while (start < len) {
      size_t end = len;
      int32_t found = -1;
      while (start < end) {
        const char *sub = s + start;
        size_t sl = end - start;
        if (start > 0) {
          memcpy(key, m->prefix, m->prefix_len);
          memcpy(key + m->prefix_len, s + start, end - start);
          sub = key;
          sl += m->prefix_len;
        }
        found = tk_smap_get(&m->vocab, sub, sl, -1);
        if (found >= 0) break;
        // drop the last char
        size_t k = end - 1;
        while (k > start && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        end = k;
      }
      if (found < 0) {
        bad = 1;
        break;
      }
      if (tk_ids_push(ids, n, cap, found)) {
        if (key != kb) free(key);
        return lt_errf(err, "tokenizer: out of memory");
      }
      start = end;
    }
    if (key != kb) free(key);
    if (!bad) return 0;
    *n = n0;
  }
  if (m->unk_id < 0) return lt_errf(err, "tokenizer: WordPiece unk_token \"%s\" is not in the vocabulary", m->unk_token);
  return tk_ids_push(ids, n, cap, m->unk_id) ? lt_errf(err, "tokenizer: out of memory") : 0;
}
