// SwiGLU gate: h = silu(g) * u, silu(g) = g / (1 + exp(-g)) as torch computes it.
#include <math.h>

#include "core/core.h"
#include "kernels/kernels.h"
#include "kernels/vexp.h"

#define LT_SWIGLU_PAR (1 << 14)

// ---- AVX-512 bodies over [i0, i1) in steps of 16 (masked tail) ----
// Inputs come as f32 arrays or (the _b forms) as bf16 arrays widened exactly; the arithmetic is the same, so a bf16
// input gives the bits its f32 widening gives.

// den = 1 + exp(-x), the bits 1 + lt_exp512(-x) gives, with one range test instead of three: where -x < -87.3
// exp's clamped value (~1e-38) still leaves 1 + it = 1, and NaN passes through the clamps, so only -x > 88.7
// (exp = +inf) needs its own case.
static inline LT_TARGET_AVX512 __m512 swiglu_den16(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.72283935546875f), lo = _mm512_set1_ps(-87.33654785156250f);
  __m512 nx = _mm512_sub_ps(_mm512_setzero_ps(), x);
  __m512 den = _mm512_add_ps(_mm512_set1_ps(1.0f), lt_exp512_core(_mm512_max_ps(lo, _mm512_min_ps(hi, nx))));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(nx, hi, _CMP_GT_OQ), den, _mm512_set1_ps(__builtin_inff()));
}

static inline LT_TARGET_AVX512 __m512 silu_mul16(__m512 x, __m512 v) {
  return _mm512_mul_ps(_mm512_div_ps(x, swiglu_den16(x)), v);
}

// masked load of 16 bf16 values, widened to f32
static inline LT_TARGET_AVX512 __m512 load_b16(__mmask16 k, const uint16_t *p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
}

// f32 -> bf16 bits, rounded to nearest even with NaN kept quiet (lt_f32_to_bf16)
static inline LT_TARGET_AVX512 __m256i round_b16(__m512 x) {
  __m512i b = _mm512_castps_si512(x), lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(b, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

LT_TARGET_AVX512 static void swiglu_fwd16(float *h, const float *g, const float *u, int i0, int i1) {
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    _mm512_mask_storeu_ps(h + i, k, silu_mul16(_mm512_maskz_loadu_ps(k, g + i), _mm512_maskz_loadu_ps(k, u + i)));
  }
}

// g16, u16 = bf16(g), bf16(u) at [i, i+16) (mask k); returns h there, from the rounded values
static inline __attribute__((always_inline)) LT_TARGET_AVX512 __m512 keep_one(uint16_t *g16, uint16_t *u16,
                                                                             const float *g, const float *u, int i,
                                                                             __mmask16 k) {
  __m256i gb = round_b16(_mm512_maskz_loadu_ps(k, g + i)), ub = round_b16(_mm512_maskz_loadu_ps(k, u + i));
  _mm256_mask_storeu_epi16(g16 + i, k, gb);
  _mm256_mask_storeu_epi16(u16 + i, k, ub);
  __m512 x = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(gb), 16));
  __m512 v = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(ub), 16));
  return silu_mul16(x, v);
}

LT_TARGET_AVX512 static void swiglu_keep16(float *h, uint16_t *g16, uint16_t *u16, const float *g, const float *u,
                                           int i0, int i1) {
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    _mm512_mask_storeu_ps(h + i, k, keep_one(g16, u16, g, u, i, k));
  }
}

#define TARGET_BF16_SW __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
// the same, and hb = h rounded by the instruction the GEMM's input conversion uses (AVX512-BF16)
TARGET_BF16_SW static void swiglu_keep16_hb(float *h, uint16_t *hb, uint16_t *g16, uint16_t *u16, const float *g,
                                           const float *u, int i0, int i1) {
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    __m512 y = keep_one(g16, u16, g, u, i, k);
    _mm512_mask_storeu_ps(h + i, k, y);
    _mm256_mask_storeu_epi16(hb + i, k, (__m256i)_mm512_cvtneps_pbh(y));
  }
}

LT_TARGET_AVX512 static void swiglu_fwd16_b(float *h, const uint16_t *g16, const uint16_t *u16, int i0, int i1) {
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    _mm512_mask_storeu_ps(h + i, k, silu_mul16(load_b16(k, g16 + i), load_b16(k, u16 + i)));
  }
}

// h (when given) and hb = h rounded as the GEMM's input conversion rounds, from bf16 gate and up (AVX512-BF16)
TARGET_BF16_SW static void swiglu_fwd16_b_hb(float *h, uint16_t *hb, const uint16_t *g16, const uint16_t *u16, int i0,
                                            int i1) {
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    __m512 y = silu_mul16(load_b16(k, g16 + i), load_b16(k, u16 + i));
    if (h) _mm512_mask_storeu_ps(h + i, k, y);
    _mm256_mask_storeu_epi16(hb + i, k, (__m256i)_mm512_cvtneps_pbh(y));
  }
}

// one block of 16: x = g, v = u (only read when dg is wanted), d = dh; returns the dg values stored (0 without dg)
// and, in *duv when given, the du values stored
// the two gradients of one block at g = x, u = v, dh = d, with den = 1 + exp(-x): dg = d v sig (1 + x (1 - sig)),
// du = d silu(x), each added to old
static inline LT_TARGET_AVX512 __m512 swiglu_dg16(__m512 x, __m512 v, __m512 d, __m512 den, __m512 old) {
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 sig = _mm512_div_ps(one, den);
  __m512 t = _mm512_mul_ps(sig, _mm512_fmadd_ps(x, _mm512_sub_ps(one, sig), one));
  return _mm512_fmadd_ps(_mm512_mul_ps(d, v), t, old);
}
static inline LT_TARGET_AVX512 __m512 swiglu_du16(__m512 x, __m512 d, __m512 den, __m512 old) {
  return _mm512_fmadd_ps(d, _mm512_div_ps(x, den), old);
}

static inline LT_TARGET_AVX512 __m512 swiglu_bwd_one2(float *dg, float *du, __mmask16 k, __mmask16 on, __m512 x,
                                                      __m512 v, __m512 d, __m512 *duv) {
  __m512 den = swiglu_den16(x), gv = _mm512_setzero_ps();
  if (dg) {
    gv = swiglu_dg16(x, v, d, den, _mm512_maskz_loadu_ps(k & on, dg));
    _mm512_mask_storeu_ps(dg, k, gv);
  }
  if (du) {
    __m512 uv = swiglu_du16(x, d, den, _mm512_maskz_loadu_ps(k & on, du));
    _mm512_mask_storeu_ps(du, k, uv);
    if (duv) *duv = uv;
  }
  return gv;
}

static inline LT_TARGET_AVX512 __m512 swiglu_bwd_one(float *dg, float *du, __mmask16 k, __mmask16 on, __m512 x,
                                                     __m512 v, __m512 d) {
  return swiglu_bwd_one2(dg, du, k, on, x, v, d, NULL);
}

LT_TARGET_AVX512 static void swiglu_bwd16(float *dg, float *du, const float *dh, const float *g, const float *u,
                                          int i0, int i1, int acc) {
  const __mmask16 on = acc ? (__mmask16)0xffff : 0;  // the old values join the sums only when accumulating
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    __m512 v = dg ? _mm512_maskz_loadu_ps(k, u + i) : _mm512_setzero_ps();
    swiglu_bwd_one(dg ? dg + i : NULL, du ? du + i : NULL, k, on, _mm512_maskz_loadu_ps(k, g + i), v,
                   _mm512_maskz_loadu_ps(k, dh + i));
  }
}

LT_TARGET_AVX512 static void swiglu_bwd16_b(float *dg, float *du, const float *dh, const uint16_t *g16,
                                            const uint16_t *u16, int i0, int i1) {
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    swiglu_bwd_one(dg + i, du + i, k, 0, load_b16(k, g16 + i), load_b16(k, u16 + i), _mm512_maskz_loadu_ps(k, dh + i));
  }
}

// the same, and dgb = dg rounded by the instruction the GEMM's input conversion uses (AVX512-BF16)
TARGET_BF16_SW static void swiglu_bwd16_b_dgb(float *dg, uint16_t *dgb, float *du, const float *dh,
                                             const uint16_t *g16, const uint16_t *u16, int i0, int i1) {
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    __m512 gv = swiglu_bwd_one(dg + i, du + i, k, 0, load_b16(k, g16 + i), load_b16(k, u16 + i),
                               _mm512_maskz_loadu_ps(k, dh + i));
    _mm256_mask_storeu_epi16(dgb + i, k, (__m256i)_mm512_cvtneps_pbh(gv));
  }
}

// the same, and dub = du rounded likewise
// (dh from f32, or from bf16 dh16 when given)
TARGET_BF16_SW static void swiglu_bwd16_b_dgb_dub(float *dg, uint16_t *dgb, float *du, uint16_t *dub, const float *dh,
                                                 const uint16_t *dh16, const uint16_t *g16, const uint16_t *u16,
                                                 int i0, int i1) {
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    __m512 uv = _mm512_setzero_ps();
    __m512 d = dh16 ? load_b16(k, dh16 + i) : _mm512_maskz_loadu_ps(k, dh + i);
    __m512 gv = swiglu_bwd_one2(dg + i, du + i, k, 0, load_b16(k, g16 + i), load_b16(k, u16 + i), d, &uv);
    _mm256_mask_storeu_epi16(dgb + i, k, (__m256i)_mm512_cvtneps_pbh(gv));
    _mm256_mask_storeu_epi16(dub + i, k, (__m256i)_mm512_cvtneps_pbh(uv));
  }
}

// dgb, dub alone (no f32 dg, du): the values swiglu_bwd16_b_dgb_dub rounds; and when hb is given, h = silu(g) * u
// rounded as swiglu_fwd16_b_hb rounds it (the same silu bits: x / den once, times d for du and times u for h)
TARGET_BF16_SW static void swiglu_bwd16_b16only(uint16_t *dgb, uint16_t *dub, uint16_t *hb, const float *dh,
                                               const uint16_t *dh16, const uint16_t *g16, const uint16_t *u16, int i0,
                                               int i1) {
  for (int i = i0; i < i1; i += 16) {
    __mmask16 k = i1 - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (i1 - i)) - 1);
    __m512 x = load_b16(k, g16 + i), v = load_b16(k, u16 + i);
    __m512 d = dh16 ? load_b16(k, dh16 + i) : _mm512_maskz_loadu_ps(k, dh + i);
    __m512 den = swiglu_den16(x), s = _mm512_div_ps(x, den);
    __m512 gv = swiglu_dg16(x, v, d, den, _mm512_setzero_ps()), uv = _mm512_fmadd_ps(d, s, _mm512_setzero_ps());
    _mm256_mask_storeu_epi16(dgb + i, k, (__m256i)_mm512_cvtneps_pbh(gv));
    _mm256_mask_storeu_epi16(dub + i, k, (__m256i)_mm512_cvtneps_pbh(uv));
    if (hb) _mm256_mask_storeu_epi16(hb + i, k, (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(s, v)));
  }
}

#define SWIGLU_BLOCK 4096

// g (n), u (n) -> h (n)
void lt_swiglu_forward(float *h, const float *g, const float *u, int n) {
  if (lt_cpu_has_avx512()) {
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK) swiglu_fwd16(h, g, u, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
    return;
  }
#pragma omp parallel for schedule(dynamic, 8192) if (n > LT_SWIGLU_PAR)
  for (int i = 0; i < n; i++) {
    float x = g[i];
    h[i] = (x / (1.0f + expf(-x))) * u[i];
  }
}

// dh (n) -> dg (n) += dh * u * sig * (1 + g * (1 - sig)) ; du (n) += dh * silu(g); = instead of += when !accumulate
void lt_swiglu_backward_ex(float *dg, float *du, const float *dh, const float *g, const float *u, int n,
                           int accumulate) {
  if (lt_cpu_has_avx512()) {
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
      swiglu_bwd16(dg, du, dh, g, u, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n, accumulate);
    return;
  }
#pragma omp parallel for schedule(dynamic, 8192) if (n > LT_SWIGLU_PAR)
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

// ---- bf16-kept activations (training under bf16 compute keeps gate and up in bf16, as autocast's products give
// them): the f32 functions above applied to the rounded values, the same bits ----

void lt_swiglu_forward_keep(float *h, uint16_t *hb, uint16_t *g16, uint16_t *u16, const float *g, const float *u,
                            int n) {
  if (hb && lt_cpu_has_avx512bf16()) {
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
      swiglu_keep16_hb(h, hb, g16, u16, g, u, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
    return;
  }
  if (lt_cpu_has_avx512()) {
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
      swiglu_keep16(h, g16, u16, g, u, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
  } else {
#pragma omp parallel for schedule(dynamic, 8192) if (n > LT_SWIGLU_PAR)
    for (int i = 0; i < n; i++) {
      g16[i] = lt_f32_to_bf16(g[i]);
      u16[i] = lt_f32_to_bf16(u[i]);
      float x = lt_bf16_to_f32(g16[i]);
      h[i] = (x / (1.0f + expf(-x))) * lt_bf16_to_f32(u16[i]);
    }
  }
  if (hb) lt_f32_to_bf16_n(hb, h, n);  // without AVX512-BF16 (no GEMM reads it then)
}

void lt_swiglu_forward_b(float *h, const uint16_t *g16, const uint16_t *u16, int n) {
  if (lt_cpu_has_avx512()) {
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
      swiglu_fwd16_b(h, g16, u16, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
    return;
  }
#pragma omp parallel for schedule(dynamic, 8192) if (n > LT_SWIGLU_PAR)
  for (int i = 0; i < n; i++) {
    float x = lt_bf16_to_f32(g16[i]);
    h[i] = (x / (1.0f + expf(-x))) * lt_bf16_to_f32(u16[i]);
  }
}

void lt_swiglu_forward_bh(float *h, uint16_t *hb, const uint16_t *g16, const uint16_t *u16, int n) {
  if (hb && lt_cpu_has_avx512bf16()) {
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
      swiglu_fwd16_b_hb(h, hb, g16, u16, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
    return;
  }
  if (h) lt_swiglu_forward_b(h, g16, u16, n);
  if (hb && h) lt_f32_to_bf16_n(hb, h, n);
}

void lt_swiglu_backward_b2(float *dg, uint16_t *dgb, float *du, uint16_t *dub, float *dh, const uint16_t *dh16,
                           const uint16_t *g16, const uint16_t *u16, int n) {
  if (dgb && dub && !dg && !du && lt_cpu_has_avx512bf16()) {
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
      swiglu_bwd16_b16only(dgb, dub, NULL, dh, dh16, g16, u16, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
    return;
  }
  if (dgb && dub && lt_cpu_has_avx512bf16()) {
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
      swiglu_bwd16_b_dgb_dub(dg, dgb, du, dub, dh, dh16, g16, u16, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
    return;
  }
  if (dh16) {  // widened into dh first (the fallback's f32 input)
#pragma omp parallel for schedule(dynamic, 8192) if (n > LT_SWIGLU_PAR)
    for (int i = 0; i < n; i++) dh[i] = lt_bf16_to_f32(dh16[i]);
  }
  lt_swiglu_backward_b(dg, dgb, du, dh, g16, u16, n);
  if (dub) lt_f32_to_bf16_n(dub, du, n);
}

int lt_swiglu_backward_b16h(uint16_t *dgb, uint16_t *dub, uint16_t *hb, const uint16_t *dh16, const uint16_t *g16,
                            const uint16_t *u16, int n) {
  if (!lt_cpu_has_avx512bf16()) return -1;
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
  for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
    swiglu_bwd16_b16only(dgb, dub, hb, NULL, dh16, g16, u16, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
  return 0;
}

void lt_swiglu_backward_b(float *dg, uint16_t *dgb, float *du, const float *dh, const uint16_t *g16,
                          const uint16_t *u16, int n) {
  if (dgb && lt_cpu_has_avx512bf16()) {
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
      swiglu_bwd16_b_dgb(dg, dgb, du, dh, g16, u16, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
    return;
  }
  if (lt_cpu_has_avx512()) {
#pragma omp parallel for schedule(dynamic, 2) if (n > LT_SWIGLU_PAR)
    for (int i0 = 0; i0 < n; i0 += SWIGLU_BLOCK)
      swiglu_bwd16_b(dg, du, dh, g16, u16, i0, i0 + SWIGLU_BLOCK < n ? i0 + SWIGLU_BLOCK : n);
  } else {
#pragma omp parallel for schedule(dynamic, 8192) if (n > LT_SWIGLU_PAR)
    for (int i = 0; i < n; i++) {
      float x = lt_bf16_to_f32(g16[i]);
      float sig = 1.0f / (1.0f + expf(-x));
      dg[i] = 0.0f + dh[i] * lt_bf16_to_f32(u16[i]) * (sig * (1.0f + x * (1.0f - sig)));
      du[i] = 0.0f + dh[i] * (x / (1.0f + expf(-x)));
    }
  }
  if (dgb) lt_f32_to_bf16_n(dgb, dg, n);  // without AVX512-BF16 (no GEMM reads it then)
}
