// SwiGLU gate: h = silu(g) * u, silu(g) = g / (1 + exp(-g)) as torch computes it.
#include <math.h>

#include "kernels/kernels.h"
#include "kernels/vexp.h"

#define LT_SWIGLU_PAR (1 << 14)

// AVX-512 bodies over [i0, i1) in steps of 16 (masked tail)
LT_TARGET_AVX512 static void swiglu_fwd16(float *h, const float *g, const float *u, int i0, int i1) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    __m512 x = _mm512_maskz_loadu_ps(k, g + i), v = _mm512_maskz_loadu_ps(k, u + i);
    __m512 silu = _mm512_div_ps(x, _mm512_add_ps(one, lt_exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
    _mm512_mask_storeu_ps(h + i, k, _mm512_mul_ps(silu, v));
  }
}

LT_TARGET_AVX512 static void swiglu_bwd16(float *dg, float *du, const float *dh, const float *g, const float *u,
                                          int i0, int i1, int acc) {
  const __mmask16 on = acc ? (__mmask16)0xffff : 0;  // the old values join the sums only when accumulating
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    __m512 x = _mm512_maskz_loadu_ps(k, g + i), d = _mm512_maskz_loadu_ps(k, dh + i);
    __m512 den = _mm512_add_ps(one, lt_exp512(_mm512_sub_ps(_mm512_setzero_ps(), x)));
    if (dg) {
      __m512 sig = _mm512_div_ps(one, den), v = _mm512_maskz_loadu_ps(k, u + i);
      __m512 t = _mm512_mul_ps(sig, _mm512_fmadd_ps(x, _mm512_sub_ps(one, sig), one));
      _mm512_mask_storeu_ps(dg + i, k, _mm512_fmadd_ps(_mm512_mul_ps(d, v), t, _mm512_maskz_loadu_ps(k & on, dg + i)));
    }
    if (du)
      _mm512_mask_storeu_ps(du + i, k, _mm512_fmadd_ps(d, _mm512_div_ps(x, den), _mm512_maskz_loadu_ps(k & on, du + i)));
  }
}

#define SWIGLU_BLOCK 4096

// g (n), u (n) -> h (n)
void lt_swiglu_forward(float *h, const float *g, const float *u, int n) {
  if (lt_cpu_has_avx512()) {
#pragma omp parallel for schedule(static) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK) swiglu_fwd16(h, g, u, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
    return;
  }
#pragma omp parallel for schedule(static) if (n > LT_SWIGLU_PAR)
  for (int i = 0; i < n; i++) {
    float x = g[i];
    h[i] = (x / (1.0f + expf(-x))) * u[i];
  }
}

// dh (n) -> dg (n) += dh * u * sig * (1 + g * (1 - sig)) ; du (n) += dh * silu(g); = instead of += when !accumulate
void lt_swiglu_backward_ex(float *dg, float *du, const float *dh, const float *g, const float *u, int n,
                           int accumulate) {
  if (lt_cpu_has_avx512()) {
#pragma omp parallel for schedule(static) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
      swiglu_bwd16(dg, du, dh, g, u, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n, accumulate);
    return;
  }
#pragma omp parallel for schedule(static) if (n > LT_SWIGLU_PAR)
  for (int i = 0; i < n; i++) {
    float x = g[i];
    float sig = 1.0f / (1.0f + expf(-x));
    if (dg) dg[i] = (accumulate ? dg[i] : 0.0f) + dh[i] * u[i] * (sig * (1.0f + x * (1.0f - sig)));
    if (du) du[i] = (accumulate ? du[i] : 0.0f) + dh[i] * (x / (1.0f + expf(-x)));
  }
}

void lt_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int n) {
  lt_swiglu_backward_ex(dg, du, dh, g, u, n, 1);
}
