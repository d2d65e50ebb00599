// bench_train: the LoRA training-step benchmark on the lmtune side (the PyTorch side is bench/torch_ref.py).
//
// Workload, identical to torch_ref.py: load a model folder; LoRA r=16, alpha=32, dropout 0 on all seven
// projections; one fixed batch of B x T token ids from splitmix64(seed) % vocab (the same stream as the Python
// script), labels = ids; per step: zero_grad, loss with backward, AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8,
// weight_decay 0.0 on both sides) on every trainable tensor. Timing covers the whole step; reports the median of
// the measured steps after the warm-up steps. Prints one JSON object on stdout, per-step progress on stderr.
//
// Usage: bench_train --model DIR [--seq 512] [--batch 1] [--steps 3] [--warmup 1] [--seed 1234] [--dtype f32|bf16]
//                    [--mode lora|full] [--grad-ckpt 0|1]
// --dtype selects lt_model_set_compute (bf16: frozen-weight products in bf16, like PyTorch's autocast).
// Threads come from OMP_NUM_THREADS.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kernels/kernels.h"
#include "lmtune.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static void usage(FILE *f) {
  fprintf(f, "usage: bench_train --model DIR [--seq T=512] [--batch B=1] [--steps N=3] [--warmup W=1] "
             "[--seed S=1234] [--dtype f32|bf16] [--mode lora|full] [--grad-ckpt 0|1]\n");
}

static int parse_int(const char *flag, const char *s, long lo, long hi, long *out) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (!s[0] || *end || v < lo || v > hi) {
    fprintf(stderr, "bench_train: %s must be an integer in [%ld, %ld], got \"%s\"\n", flag, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  const char *model_dir = NULL, *dtype = "f32", *mode = "lora";
  long T = 512, B = 1, steps = 3, warmup = 1, seed = 1234, ckpt = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "bench_train: %s needs a value\n", a);
      usage(stderr);
      return 1;
    }
    const char *v = argv[++i];
    int rc = 0;
    if (!strcmp(a, "--model")) model_dir = v;
    else if (!strcmp(a, "--seq")) rc = parse_int(a, v, 2, 1 << 20, &T);
    else if (!strcmp(a, "--batch")) rc = parse_int(a, v, 1, 1 << 16, &B);
    else if (!strcmp(a, "--steps")) rc = parse_int(a, v, 1, 1 << 20, &steps);
    else if (!strcmp(a, "--warmup")) rc = parse_int(a, v, 0, 1 << 20, &warmup);
    else if (!strcmp(a, "--dtype")) {
      dtype = v;
      if (strcmp(v, "f32") && strcmp(v, "bf16")) {
        fprintf(stderr, "bench_train: --dtype must be f32 or bf16, got \"%s\"\n", v);
        return 1;
      }
    } else if (!strcmp(a, "--mode")) {
      mode = v;
      if (strcmp(v, "lora") && strcmp(v, "full")) {
        fprintf(stderr, "bench_train: --mode must be lora or full, got \"%s\"\n", v);
        return 1;
      }
    } else if (!strcmp(a, "--seed")) rc = parse_int(a, v, 0, 0x7fffffffL, &seed);
    else if (!strcmp(a, "--grad-ckpt")) rc = parse_int(a, v, 0, 1, &ckpt);
    else {
      fprintf(stderr, "bench_train: unknown flag %s\n", a);
      usage(stderr);
      return 1;
    }
    if (rc) return 1;
  }
  if (!model_dir) {
    fprintf(stderr, "bench_train: --model is required\n");
    usage(stderr);
    return 1;
  }

  lt_err err;
  memset(&err, 0, sizeof err);
  lt_model *m = NULL;
  double t0 = now_s();
  if (lt_model_load(&m, model_dir, &err)) {
    fprintf(stderr, "bench_train: load %s: %s\n", model_dir, err.msg);
    return 1;
  }
  double load_s = now_s() - t0;

  if (lt_model_set_compute(m, strcmp(dtype, "bf16") ? LT_COMPUTE_F32 : LT_COMPUTE_BF16, &err)) {
    fprintf(stderr, "bench_train: set_compute(%s): %s\n", dtype, err.msg);
    lt_model_free(m);
    return 1;
  }
  if (lt_model_set_grad_checkpointing(m, (int)ckpt, &err)) {
    fprintf(stderr, "bench_train: gradient checkpointing: %s\n", err.msg);
    lt_model_free(m);
    return 1;
  }
  lt_lora_config lc = {.r = 16, .alpha = 32.0f, .dropout = 0.0f, .use_rslora = 0, .targets = LT_LORA_ALL,
                       .seed = (uint64_t)seed};
  int full = !strcmp(mode, "full");
  if (lt_model_set_train_mode(m, full ? LT_TRAIN_FULL : LT_TRAIN_LORA, full ? NULL : &lc, &err)) {
    fprintf(stderr, "bench_train: set_train_mode(%s): %s\n", mode, err.msg);
    lt_model_free(m);
    return 1;
  }

  lt_model_info info;
  lt_model_get_info(m, &info);
  int ntr = lt_model_num_trainable(m);
  if (ntr <= 0) {
    fprintf(stderr, "bench_train: %s mode reports %d trainable tensors\n", mode, ntr);
    lt_model_free(m);
    return 1;
  }
  float **pw = calloc((size_t)ntr, sizeof *pw), **pg = calloc((size_t)ntr, sizeof *pg);
  float **pm = calloc((size_t)ntr, sizeof *pm), **pv = calloc((size_t)ntr, sizeof *pv);
  int64_t *pn = calloc((size_t)ntr, sizeof *pn);
  int32_t *ids = malloc((size_t)(B * T) * sizeof *ids);
  double *times = calloc((size_t)steps, sizeof *times);
  int rc = 1;
  if (!pw || !pg || !pm || !pv || !pn || !ids || !times) {
    fprintf(stderr, "bench_train: out of memory\n");
    goto done;
  }
  int64_t trainable_params = 0;
  for (int i = 0; i < ntr; i++) {
    const char *name = NULL;
    int64_t shape[2];
    if (lt_model_trainable(m, i, &name, &pw[i], &pg[i], &pn[i], shape) || !pw[i] || !pg[i] || pn[i] <= 0) {
      fprintf(stderr, "bench_train: trainable tensor %d is not usable\n", i);
      goto done;
    }
    pm[i] = calloc((size_t)pn[i], sizeof(float));
    pv[i] = calloc((size_t)pn[i], sizeof(float));
    if (!pm[i] || !pv[i]) {
      fprintf(stderr, "bench_train: out of memory for optimizer state\n");
      goto done;
    }
    trainable_params += pn[i];
  }

  uint64_t st = (uint64_t)seed;
  for (long i = 0; i < B * T; i++) ids[i] = (int32_t)(splitmix64(&st) % (uint64_t)info.vocab);

  float loss_first = NAN, loss_last = NAN;
  for (long s = 0; s < warmup + steps; s++) {
    double ts = now_s();
    float loss = NAN;
    lt_model_zero_grad(m);
    if (lt_model_loss(m, ids, NULL, ids, (int)B, (int)T, 1, &loss, &err)) {
      fprintf(stderr, "bench_train: step %ld: lt_model_loss: %s\n", s, err.msg);
      goto done;
    }
    // (as lt_optim_step: the small matrices shared among the threads, then the large ones each by all threads)
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < ntr; i++)
      if (pn[i] <= LT_ADAMW_PAR)
        lt_adamw_step(pw[i], pg[i], pm[i], pv[i], NULL, pn[i], 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, (int64_t)s + 1);
    for (int i = 0; i < ntr; i++)
      if (pn[i] > LT_ADAMW_PAR)
        lt_adamw_step(pw[i], pg[i], pm[i], pv[i], NULL, pn[i], 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, (int64_t)s + 1);
    lt_model_params_updated(m);
    double dt = now_s() - ts;
    if (!isfinite(loss)) {
      fprintf(stderr, "bench_train: step %ld: loss is %f\n", s, (double)loss);
      goto done;
    }
    if (s == 0) loss_first = loss;
    loss_last = loss;
    if (s >= warmup) times[s - warmup] = dt;
    fprintf(stderr, "bench_train: step %ld loss %.5f %.3fs%s\n", s, (double)loss, dt, s < warmup ? " (warm-up)" : "");
  }
  if (warmup + steps > 1 && !(loss_last < loss_first))
    fprintf(stderr, "bench_train: WARNING: loss did not decrease (%.5f -> %.5f)\n", (double)loss_first,
            (double)loss_last);

  qsort(times, (size_t)steps, sizeof *times, cmp_double);
  double med = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double rss_mb = (double)ru.ru_maxrss / 1024.0;  // KiB on Linux
  printf("{\"impl\": \"lmtune\", \"mode\": \"%s\", \"dtype\": \"%s\", \"batch\": %ld, \"seq\": %ld, \"steps\": %ld, \"warmup\": %ld, "
         "\"threads\": %d, \"tokens_per_s\": %.3f, \"step_s_median\": %.4f, \"step_s_min\": %.4f, "
         "\"peak_rss_mb\": %.1f, "
         "\"loss_first\": %.6f, \"loss_last\": %.6f, \"load_s\": %.3f, \"trainable_params\": %lld, "
         "\"weights_dtype\": \"%s\", \"grad_ckpt\": %ld}\n",
         mode, dtype, B, T, steps, warmup, omp_get_max_threads(), (double)(B * T) / med, med, times[0], rss_mb,
         (double)loss_first, (double)loss_last, load_s, (long long)trainable_params, info.dtype ? info.dtype : "?", ckpt);
  fflush(stdout);
  rc = 0;

done:
  if (pm)
    for (int i = 0; i < ntr; i++) free(pm[i]);
  if (pv)
    for (int i = 0; i < ntr; i++) free(pv[i]);
  free(pw);
  free(pg);
  free(pm);
  free(pv);
  free(pn);
  free(ids);
  free(times);
  lt_model_free(m);
  return rc;
}
