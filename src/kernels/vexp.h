// Vectorised exp for AVX-512 (16 floats): range reduction by ln 2 (two-part constant), a degree-6 polynomial
// (the classic Cephes expf coefficients) and scaling by 2^n with vscalefps. Within ~1 ulp of expf over the range
// that matters here; inputs below -87.3 give 0, above 88.7 give +inf, NaN stays NaN.
#ifndef LT_VEXP_H
#define LT_VEXP_H
#include <immintrin.h>
#include <stdlib.h>

#define LT_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))

// exp of an argument already clamped to [-87.3, 88.7] (or NaN): range reduction, polynomial, scaling
static inline LT_TARGET_AVX512 __m512 lt_exp512_core(__m512 xc) {
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

static inline LT_TARGET_AVX512 __m512 lt_exp512(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.72283935546875f), lo = _mm512_set1_ps(-87.33654785156250f);
  __m512 y = lt_exp512_core(_mm512_max_ps(_mm512_min_ps(x, hi), lo));
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), y, _mm512_setzero_ps());
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), y, _mm512_set1_ps(__builtin_inff()));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
}

// The same for arguments known not to be positive (x - max in a softmax): no overflow side, and below -87.3 the
// result is exp(-87.3) ~ 1e-38 instead of 0. Equal to lt_exp512 on [-87.3, 0]; NaN stays NaN.
static inline LT_TARGET_AVX512 __m512 lt_exp512_nonpos(__m512 x) {
  return lt_exp512_core(_mm512_max_ps(_mm512_set1_ps(-87.33654785156250f), x));  // the second operand on NaN: x
}

// exp for softmax arguments (x - max, x - lse: not positive), cheaper: one-constant range reduction by ln 2 and a
// degree-5 polynomial (fitted to e^r on [-ln2/2, ln2/2], 1.05e-7 relative in exact arithmetic): measured within
// 2.2e-7 relative of exp on [-20, 0] and 4e-7 down to -87 (the reduction's error grows with the exponent), in 10
// instructions instead of 14. Probabilities go on to bf16 products and f32 sums, where this is far below their
// rounding. Below -87.3 the result is exp(-87.3); NaN stays NaN.
static inline LT_TARGET_AVX512 __m512 lt_exp512_softmax(__m512 x) {
  __m512 xc = _mm512_max_ps(_mm512_set1_ps(-87.33654785156250f), x);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693147180559945309f), xc);
  __m512 p = _mm512_set1_ps(8.3125019446e-3f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1890118271e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6667114198e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.9999231100e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// 1 when the AVX-512 paths are in use (the CPU has AVX-512 F/DQ/BW/VL and LMTUNE_NO_AVX512 is not set).
static inline int lt_cpu_has_avx512(void) {
  if (getenv("LMTUNE_NO_AVX512")) return 0;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

#endif
