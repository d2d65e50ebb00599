// Elementwise helpers.
#include <string.h>

#include "core/core.h"
#include "kernels/kernels.h"
#include "kernels/vexp.h"

#define LT_EW_PAR (1 << 16)

// x (n) = 0, threads splitting the array
void lt_zero(float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > LT_EW_PAR)
  for (int64_t i0 = 0; i0 < n; i0 += 4096) memset(x + i0, 0, sizeof(float) * (size_t)(n - i0 < 4096 ? n - i0 : 4096));
}

// y (n) += x (n)
static LT_TARGET_AVX512 void add16(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
  }
}

void lt_add_inplace(float *y, const float *x, int64_t n) {
  if (lt_cpu_has_avx512()) {  // blocks of 8192
#pragma omp parallel for schedule(dynamic, 1) if (n > LT_EW_PAR)
    for (int64_t i = 0; i < n; i += 8192) add16(y + i, x + i, n - i < 8192 ? n - i : 8192);
    return;
  }
#pragma omp parallel for schedule(dynamic, 8192) if (n > LT_EW_PAR)
  for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

// x (n) = bf16(x) widened back (nearest even, NaN kept), in place
void lt_round_bf16(float *x, int64_t n) {
#pragma omp parallel for schedule(dynamic, 8192) if (n > LT_EW_PAR)
  for (int64_t i = 0; i < n; i++) x[i] = lt_bf16_to_f32(lt_f32_to_bf16(x[i]));
}

// y (n) += a * x (n)
void lt_scale_add(float *y, const float *x, float a, int64_t n) {
#pragma omp parallel for schedule(static) if (n > LT_EW_PAR)
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

// y (N,C) += b (C)
void lt_add_bias(float *y, const float *b, int N, int C) {
#pragma omp parallel for schedule(dynamic, 8) if ((int64_t)N * C > LT_EW_PAR)
  for (int n = 0; n < N; n++) {
    float *r = y + (int64_t)n * C;
    for (int c = 0; c < C; c++) r[c] += b[c];
  }
}
