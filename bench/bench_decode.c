// Inference benchmark: prompt processing (tokens/s over a P-token prompt) and greedy decode (tokens/s over N new
// tokens, greedy, after the prompt) with the KV cache, in f32 or bf16 compute, after one warm-up prompt pass.
// Prints one JSON line.
// Usage: bench_decode --model DIR [--prompt 512] [--new 128] [--dtype bf16]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/core.h"
#include "lmtune.h"

int main(int argc, char **argv) {
  const char *model = NULL, *dtype = "bf16";
  int P = 512, NEW = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!strcmp(argv[i], "--prompt")) P = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--new")) NEW = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--dtype")) dtype = argv[i + 1];
  }
  if (!model || P <= 0 || NEW <= 0) {
    fprintf(stderr, "usage: bench_decode --model DIR [--prompt 512] [--new 128] [--dtype bf16|f32]\n");
    return 2;
  }
  lt_err err;
  lt_model *m;
  lt_kvcache *kc;
  if (lt_model_load(&m, model, &err) ||
      lt_model_set_compute(m, strcmp(dtype, "f32") ? LT_COMPUTE_BF16 : LT_COMPUTE_F32, &err) ||
      lt_kvcache_new(&kc, m, P + NEW, &err)) {
    fprintf(stderr, "bench_decode: %s\n", err.msg);
    return 1;
  }
  lt_model_info in;
  lt_model_get_info(m, &in);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)P);
  float *logits = malloc(sizeof(float) * (size_t)in.vocab);
  for (int i = 0; i < P; i++) ids[i] = (int32_t)(lt_rng_u64(1234, 0, (uint64_t)i) % (uint64_t)in.vocab);
  // warm-up (as llama-bench does): one prompt pass into a throwaway cache touches every mapped weight page
  lt_kvcache *warm;
  if (lt_kvcache_new(&warm, m, P, &err) || lt_model_decode(m, warm, ids, P, logits, 0, &err)) {
    fprintf(stderr, "bench_decode: warm-up: %s\n", err.msg);
    return 1;
  }
  lt_kvcache_free(warm);
  double t0 = lt_now();
  if (lt_model_decode(m, kc, ids, P, logits, 0, &err)) {
    fprintf(stderr, "bench_decode: %s\n", err.msg);
    return 1;
  }
  double t1 = lt_now();
  for (int i = 0; i < NEW; i++) {
    int32_t best = 0;
    for (int v = 1; v < in.vocab; v++)
      if (logits[v] > logits[best]) best = v;
    if (lt_model_decode(m, kc, &best, 1, logits, 0, &err)) {
      fprintf(stderr, "bench_decode: %s\n", err.msg);
      return 1;
    }
  }
  double t2 = lt_now();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"impl\": \"lmtune\", \"dtype\": \"%s\", \"prompt\": %d, \"new\": %d, \"prompt_tokens_per_s\": %.2f, "
         "\"decode_tokens_per_s\": %.2f, \"peak_rss_mb\": %.1f}\n",
         dtype, P, NEW, P / (t1 - t0), NEW / (t2 - t1), ru.ru_maxrss / 1024.0);
  lt_kvcache_free(kc);
  lt_model_free(m);
  free(ids);
  free(logits);
  return 0;
}
