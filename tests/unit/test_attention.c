// Attention with bf16 products against the f32 kernels (which are checked against PyTorch in test_kernels):
// forward outputs, lse and all three gradients within bf16 tolerance on odd sizes, grouped-query heads, padding
// keys, sliding windows and queries after a cache (p0 > 0); results are deterministic; without AVX512-BF16 the
// bf16 functions give the f32 results exactly.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "test.h"

static float frand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static float *rnd(int64_t n, uint64_t *s, float amp) {
  float *x = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = amp * frand(s);
  return x;
}

// max |a - b| / max(max |b|, 0.1): inputs are O(1), so near-zero references (T = 1 gives dq = dk = 0) use a floor
static double rel(const float *a, const float *b, int64_t n) {
  double d = 0, m = 0.1;
  for (int64_t i = 0; i < n; i++) {
    if (isfinite(b[i])) m = fmax(m, fabs(b[i]));
    if (isfinite(b[i]) || isfinite(a[i])) d = fmax(d, fabs((double)a[i] - b[i]));
  }
  return d / m;
}

typedef struct {
  float *out, *lse, *dq, *dk, *dv;
} result;

static result run(int bf, const float *q, const float *k, const float *v, const float *dout, const uint8_t *km, int T,
                  int p0, int H, int KV, int D, int window) {
  int L = p0 + T;
  result r = {calloc((size_t)T * H * D, 4), calloc((size_t)H * T, 4), calloc((size_t)T * H * D, 4),
              calloc((size_t)L * KV * D, 4), calloc((size_t)L * KV * D, 4)};
  float *scratch = malloc(sizeof(float) * (size_t)lt_attention_scratch_ex(T, L, H, KV, D, bf));
  lt_attention_forward_ex(r.out, r.lse, q, k, v, km, T, p0, H, KV, D, window, bf, scratch);
  lt_attention_backward_ex(r.dq, r.dk, r.dv, dout, r.out, r.lse, q, k, v, km, T, p0, H, KV, D, window, bf, scratch);
  free(scratch);
  return r;
}

static void release(result *r) {
  free(r->out);
  free(r->lse);
  free(r->dq);
  free(r->dk);
  free(r->dv);
}

static int same(const result *a, const result *b, int T, int L, int H, int KV, int D) {
  return !memcmp(a->out, b->out, 4 * (size_t)T * H * D) && !memcmp(a->lse, b->lse, 4 * (size_t)T * H) &&
         !memcmp(a->dq, b->dq, 4 * (size_t)T * H * D) && !memcmp(a->dk, b->dk, 4 * (size_t)L * KV * D) &&
         !memcmp(a->dv, b->dv, 4 * (size_t)L * KV * D);
}

static void check(int T, int p0, int H, int KV, int D, int window, int pad, int has_bf) {
  int L = p0 + T;
  uint64_t s = (uint64_t)(T * 7919 + p0 * 31 + H * 7 + KV + D + window);
  float *q = rnd((int64_t)T * H * D, &s, 1.0f), *k = rnd((int64_t)L * KV * D, &s, 1.0f),
        *v = rnd((int64_t)L * KV * D, &s, 1.0f), *dout = rnd((int64_t)T * H * D, &s, 1.0f);
  uint8_t *km = NULL;
  if (pad) {  // padding keys: every third key, and never the first
    km = malloc((size_t)L);
    for (int j = 0; j < L; j++) km[j] = j == 0 || j % 3 != 1;
  }
  result f = run(0, q, k, v, dout, km, T, p0, H, KV, D, window), b = run(1, q, k, v, dout, km, T, p0, H, KV, D, window);
  double eo = rel(b.out, f.out, (int64_t)T * H * D), el = rel(b.lse, f.lse, (int64_t)H * T),
         eq = rel(b.dq, f.dq, (int64_t)T * H * D), ek = rel(b.dk, f.dk, (int64_t)L * KV * D),
         ev = rel(b.dv, f.dv, (int64_t)L * KV * D);
  if (has_bf) {
    CHECK_MSG(eo < 2e-2 && el < 1e-2 && eq < 3e-2 && ek < 3e-2 && ev < 2e-2,
              "T=%d p0=%d H=%d KV=%d D=%d window=%d pad=%d: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e", T, p0, H, KV,
              D, window, pad, eo, el, eq, ek, ev);
    CHECK_MSG(eo > 0 || T * D < 8, "T=%d: the bf16 path gave the f32 result exactly (was it used?)", T);
  } else {
    CHECK_MSG(same(&b, &f, T, L, H, KV, D), "T=%d: the fallback differs from the f32 path", T);
  }
  result b2 = run(1, q, k, v, dout, km, T, p0, H, KV, D, window);
  CHECK_MSG(same(&b, &b2, T, L, H, KV, D), "T=%d p0=%d H=%d: bf16 attention is not deterministic", T, p0, H);
  release(&f);
  release(&b);
  release(&b2);
  free(q);
  free(k);
  free(v);
  free(dout);
  free(km);
}

static void suite(int has_bf) {
  check(1, 0, 2, 1, 64, 0, 0, has_bf);
  check(7, 100, 4, 2, 64, 0, 0, has_bf);  // queries after a cache
  check(1, 100, 4, 2, 32, 0, 1, has_bf);
  check(33, 0, 4, 2, 64, 0, 1, has_bf);
  check(65, 0, 4, 4, 32, 0, 0, has_bf);
  check(130, 0, 14, 2, 64, 0, 0, has_bf);  // Qwen2.5-0.5B heads, three query tiles
  check(97, 0, 6, 3, 48, 20, 1, has_bf);   // sliding window, odd head size, padding
  check(200, 0, 2, 1, 64, 0, 0, has_bf);
  check(200, 0, 4, 2, 64, 30, 1, has_bf);  // window: later tiles start at key panel 64 and 128
  check(70, 130, 4, 2, 32, 50, 0, has_bf);  // window after a cache
  check(45, 0, 4, 2, 40, 0, 1, has_bf);     // head size 40: the packed transposes' partial 16-blocks
  check(260, 0, 4, 2, 64, 70, 1, has_bf);  // backward tiles of 128 rows: the last one 4 rows, window from panel 64
}

int main(void) {
  int has = lt_cpu_has_avx512bf16();
  for (int threads = 1; threads <= 2; threads++) {
    omp_set_num_threads(threads);
    if (has) suite(1);
  }
  setenv("LMTUNE_NO_AVX512BF16", "1", 1);
  suite(0);
  TEST_MAIN_END();
}
