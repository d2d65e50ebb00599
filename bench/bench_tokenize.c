// Tokenizer benchmark helper: bench_tokenize TOKENIZER_PATH TEXTS.bin [REPEAT [raw]]
// TEXTS.bin: for each text a little-endian uint32 byte length then the UTF-8 bytes (written by
// bench/bench_tokenize.py). Prints one JSON line: load seconds, encode seconds (best of REPEAT passes over all
// texts, single thread, add_special_tokens off), bytes, tokens, MB/s. "raw": tokenizer.json only (LT_TOK_RAW).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_tokenize TOKENIZER_PATH TEXTS.bin [REPEAT]\n");
    return 2;
  }
  int repeat = argc > 3 ? atoi(argv[3]) : 3;
  if (repeat < 1) repeat = 1;
  lt_err err;
  char *data;
  size_t len;
  if (lt_read_file(argv[2], &data, &len, &err)) {
    fprintf(stderr, "bench_tokenize: %s\n", err.msg);
    return 1;
  }
  size_t ntext = 0, cap = 1024;
  size_t *off = malloc(cap * sizeof *off), *tl = malloc(cap * sizeof *tl);
  if (!off || !tl) return 1;
  for (size_t p = 0; p + 4 <= len;) {
    uint32_t n = (uint32_t)(unsigned char)data[p] | (uint32_t)(unsigned char)data[p + 1] << 8 |
                 (uint32_t)(unsigned char)data[p + 2] << 16 | (uint32_t)(unsigned char)data[p + 3] << 24;
    p += 4;
    if (p + n > len) break;
    if (ntext == cap) {
      cap *= 2;
      off = realloc(off, cap * sizeof *off);
      tl = realloc(tl, cap * sizeof *tl);
      if (!off || !tl) return 1;
    }
    off[ntext] = p;
    tl[ntext] = n;
    ntext++;
    p += n;
  }
  double t0 = lt_now();
  lt_tokenizer *t;
  if (lt_tokenizer_load_ex(&t, argv[1], argc > 4 && !strcmp(argv[4], "raw") ? LT_TOK_RAW : 0, &err)) {
    fprintf(stderr, "bench_tokenize: %s\n", err.msg);
    return 1;
  }
  double load = lt_now() - t0, best = 1e30;
  size_t bytes = 0, tokens = 0;
  for (int r = 0; r < repeat; r++) {
    bytes = tokens = 0;
    double s = lt_now();
    for (size_t i = 0; i < ntext; i++) {
      int32_t *ids;
      int n;
      if (lt_tokenizer_encode(t, data + off[i], tl[i], 0, &ids, &n, &err)) {
        fprintf(stderr, "bench_tokenize: text %zu: %s\n", i, err.msg);
        return 1;
      }
      bytes += tl[i];
      tokens += (size_t)n;
      free(ids);
    }
    double e = lt_now() - s;
    if (e < best) best = e;
  }
  printf("{\"load_s\": %.4f, \"encode_s\": %.4f, \"bytes\": %zu, \"tokens\": %zu, \"mb_s\": %.3f}\n", load, best,
         bytes, tokens, (double)bytes / best / 1e6);
  lt_tokenizer_free(t);
  free(off);
  free(tl);
  free(data);
  return 0;
}
