// Inference benchmark (workload C): prompt processing and greedy decoding with the KV cache, in f32 or bf16
// compute, after one warm-up prompt pass. Each repetition measures, on a fresh cache:
//   prompt   P tokens in one lt_model_decode call (logits of the last token only)   -> prompt tok/s
//   decode   N greedy tokens one at a time after that prompt (context P .. P+N-1)   -> decode tok/s
//   pg       prompt + decode together: (P + N) / their total time (llama-bench -pg P,N)
//   tg0      N greedy tokens one at a time from an empty cache (llama-bench -n N, depth 0)
// Prints one JSON line: the median of each figure over the repetitions and the per-repetition samples.
// Usage: bench_decode --model DIR [--prompt 512] [--new 128] [--dtype bf16|f32] [--reps 1] [--tg0 1]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <sys/resource.h>

#include "core/core.h"
#include "lmtune.h"

enum { PP, TG, PG, TG0, NFIG };
static const char *const fig_name[NFIG] = {"prompt", "decode", "pg", "tg0"};

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(const double *v, int n, double *scratch) {
  memcpy(scratch, v, sizeof(double) * (size_t)n);
  qsort(scratch, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? scratch[n / 2] : 0.5 * (scratch[n / 2 - 1] + scratch[n / 2]);
}

static int32_t argmax(const float *logits, int vocab) {
  int32_t best = 0;
  for (int v = 1; v < vocab; v++)
    if (logits[v] > logits[best]) best = v;
  return best;
}

// N greedy single-token steps starting from `first`; returns 0 or -1 (err filled)
static int greedy(lt_model *m, lt_kvcache *kc, int32_t first, int N, float *logits, int vocab, lt_err *err) {
  int32_t tok = first;
  for (int i = 0; i < N; i++) {
    if (lt_model_decode(m, kc, &tok, 1, logits, 0, err)) return -1;
    tok = argmax(logits, vocab);
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *model = NULL, *dtype = "bf16";
  int P = 512, NEW = 128, reps = 1, tg0 = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!strcmp(argv[i], "--prompt")) P = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--new")) NEW = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--dtype")) dtype = argv[i + 1];
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--tg0")) tg0 = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "bench_decode: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!model || P <= 0 || NEW <= 0 || reps <= 0 || reps > 100 || (strcmp(dtype, "bf16") && strcmp(dtype, "f32"))) {
    fprintf(stderr, "usage: bench_decode --model DIR [--prompt 512] [--new 128] [--dtype bf16|f32] [--reps 1] "
                    "[--tg0 1|0]\n");
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
  double *samples = malloc(sizeof(double) * (size_t)(NFIG * reps + reps));
  if (!ids || !logits || !samples) {
    fprintf(stderr, "bench_decode: out of memory\n");
    return 1;
  }
  double *scratch = samples + NFIG * reps;
  for (int i = 0; i < P; i++) ids[i] = (int32_t)(lt_rng_u64(1234, 0, (uint64_t)i) % (uint64_t)in.vocab);
  // warm-up (as llama-bench does): one prompt pass into a throwaway cache touches every mapped weight page
  lt_kvcache *warm;
  if (lt_kvcache_new(&warm, m, P, &err) || lt_model_decode(m, warm, ids, P, logits, 0, &err)) {
    fprintf(stderr, "bench_decode: warm-up: %s\n", err.msg);
    return 1;
  }
  lt_kvcache_free(warm);
  for (int r = 0; r < reps; r++) {
    lt_kvcache_reset(kc);
    double t0 = lt_now();
    if (lt_model_decode(m, kc, ids, P, logits, 0, &err)) goto fail;
    double t1 = lt_now();
    if (greedy(m, kc, argmax(logits, in.vocab), NEW, logits, in.vocab, &err)) goto fail;
    double t2 = lt_now();
    samples[PP * reps + r] = P / (t1 - t0);
    samples[TG * reps + r] = NEW / (t2 - t1);
    samples[PG * reps + r] = (P + NEW) / (t2 - t0);
    samples[TG0 * reps + r] = 0;
    if (tg0) {
      lt_kvcache_reset(kc);
      double t3 = lt_now();
      if (greedy(m, kc, ids[0], NEW, logits, in.vocab, &err)) goto fail;
      samples[TG0 * reps + r] = NEW / (lt_now() - t3);
    }
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"impl\": \"lmtune\", \"dtype\": \"%s\", \"prompt\": %d, \"new\": %d, \"reps\": %d, \"threads\": %d", dtype,
         P, NEW, reps, omp_get_max_threads());
  for (int f = 0; f < NFIG; f++) {
    if (f == TG0 && !tg0) continue;
    printf(", \"%s_tokens_per_s\": %.2f, \"%s_samples\": [", fig_name[f], median(samples + f * reps, reps, scratch),
           fig_name[f]);
    for (int r = 0; r < reps; r++) printf("%s%.2f", r ? ", " : "", samples[f * reps + r]);
    printf("]");
  }
  printf(", \"peak_rss_mb\": %.1f}\n", ru.ru_maxrss / 1024.0);
  lt_kvcache_free(kc);
  lt_model_free(m);
  free(ids);
  free(logits);
  free(samples);
  return 0;
fail:
  fprintf(stderr, "bench_decode: %s\n", err.msg);
  return 1;
}
