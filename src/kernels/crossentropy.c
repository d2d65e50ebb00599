// Cross-entropy over logits (log-softmax with max subtraction, double row sums) and the fused LM head + CE.
// Targets: -100 (and, defensively, anything outside [0, V)) mark ignored rows: loss 0, no gradient.
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "core/core.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "kernels/vexp.h"

#define LT_CE_PAR (1 << 15)
#define LT_CE_SUB 256  // rows per deterministic loss-reduction block in lt_lmhead_ce

static inline int ce_valid(int32_t t, int V) { return t >= 0 && t < V; }

// AVX-512: the same statistics, 16 lanes at a time, the exp sums accumulated in double
LT_TARGET_AVX512 static void ce_row_stats16(const float *x, int V, float *mx, double *sum) {
  __m512 vm = _mm512_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 16 <= V; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(x + i));
  float m = _mm512_reduce_max_ps(vm);
  for (int j = i; j < V; j++) m = x[j] > m ? x[j] : m;
  __m512 bm = _mm512_set1_ps(m);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (i = 0; i + 16 <= V; i += 16) {
    __m512 e = lt_exp512_nonpos(_mm512_sub_ps(_mm512_loadu_ps(x + i), bm));
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  for (int j = i; j < V; j++) s += expf(x[j] - m);
  *mx = m, *sum = s;
}

// ---- rows of logits rounded to bf16 (bf16 compute: autocast's LM head gives bf16 logits and the loss widens them)
// f32 rows are rounded as they are read (nearest even, NaN kept); bf16 rows (b16) are widened exactly. Both give
// the same values, so the statistics and dlogits below agree to the bit between the two forms.
static inline __attribute__((always_inline)) LT_TARGET_AVX512 __m512 ld_r16(const void *row, int i, __mmask16 k,
                                                                            int b16) {
  if (b16)
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, (const uint16_t *)row + i)), 16));
  __m512 x = _mm512_maskz_loadu_ps(k, (const float *)row + i);
  __m512i b = _mm512_castps_si512(x), lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_and_si512(_mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))),
                               _mm512_set1_epi32((int)0xffff0000u));
  __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  r = _mm512_mask_or_epi32(r, nan, _mm512_and_si512(b, _mm512_set1_epi32((int)0xffff0000u)),
                           _mm512_set1_epi32(0x00400000));
  return _mm512_castsi512_ps(r);
}

static inline float r16_at(const void *row, int i, int b16) {
  return b16 ? lt_bf16_to_f32(((const uint16_t *)row)[i]) : lt_bf16_to_f32(lt_f32_to_bf16(((const float *)row)[i]));
}

// ce_row_stats16 on the rounded row
static inline __attribute__((always_inline)) LT_TARGET_AVX512 void stats_r16(const void *x, int V, float *mx,
                                                                             double *sum, int b16) {
  __m512 vm = _mm512_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 16 <= V; i += 16) vm = _mm512_max_ps(vm, ld_r16(x, i, 0xffff, b16));
  float m = _mm512_reduce_max_ps(vm);
  for (int j = i; j < V; j++) m = r16_at(x, j, b16) > m ? r16_at(x, j, b16) : m;
  __m512 bm = _mm512_set1_ps(m);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (i = 0; i + 16 <= V; i += 16) {
    __m512 e = lt_exp512_nonpos(_mm512_sub_ps(ld_r16(x, i, 0xffff, b16), bm));
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  for (int j = i; j < V; j++) s += expf(r16_at(x, j, b16) - m);
  *mx = m, *sum = s;
}
LT_TARGET_AVX512 static void ce_row_stats16_r(const float *x, int V, float *mx, double *sum) {
  stats_r16(x, V, mx, sum, 0);
}
LT_TARGET_AVX512 static void ce_row_stats16_b(const uint16_t *x, int V, float *mx, double *sum) {
  stats_r16(x, V, mx, sum, 1);
}

// z (V) <- scale * exp(round(z) - m) / s in place (ce_row_softmax16 on the rounded row)
LT_TARGET_AVX512 static void ce_row_softmax16_r(float *z, int V, float m, float k) {
  __m512 bm = _mm512_set1_ps(m), bk = _mm512_set1_ps(k);
  int i = 0;
  for (; i + 16 <= V; i += 16)
    _mm512_storeu_ps(z + i, _mm512_mul_ps(lt_exp512_nonpos(_mm512_sub_ps(ld_r16(z, i, 0xffff, 0), bm)), bk));
  for (; i < V; i++) z[i] = expf(r16_at(z, i, 0) - m) * k;
}

// z (V) <- scale * exp(z - m) / s (the softmax row, scaled)
LT_TARGET_AVX512 static void ce_row_softmax16(float *z, int V, float m, float k) {
  __m512 bm = _mm512_set1_ps(m), bk = _mm512_set1_ps(k);
  int i = 0;
  for (; i + 16 <= V; i += 16)
    _mm512_storeu_ps(z + i, _mm512_mul_ps(lt_exp512_nonpos(_mm512_sub_ps(_mm512_loadu_ps(z + i), bm)), bk));
  for (; i < V; i++) z[i] = expf(z[i] - m) * k;
}

#define TARGET_BF16_CE __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
// dst (V, bf16) <- the row ce_row_softmax16 makes, with scale taken off at the target t, rounded to bf16 as the
// GEMM's conversion rounds it (32 values per instruction, the last V % 32 one by one): the same values the f32 row
// would give after that conversion, without writing the f32 row. An odd V's pair is padded with 0.
// z: f32 logits (kind 0), f32 rounded as read (1) or bf16 (2)
static inline __attribute__((always_inline)) TARGET_BF16_CE void dlogits_body(uint16_t *dst, const void *z, int V,
                                                                              float m, float k, int t, float scale,
                                                                              int kind) {
  const __m512 bm = _mm512_set1_ps(m), bk = _mm512_set1_ps(k), bs = _mm512_set1_ps(scale);
  int i = 0;
  for (; i + 32 <= V; i += 32) {
    __m512 za = kind ? ld_r16(z, i, 0xffff, kind == 2) : _mm512_loadu_ps((const float *)z + i);
    __m512 zb = kind ? ld_r16(z, i + 16, 0xffff, kind == 2) : _mm512_loadu_ps((const float *)z + i + 16);
    __m512 a = _mm512_mul_ps(lt_exp512_nonpos(_mm512_sub_ps(za, bm)), bk);
    __m512 b = _mm512_mul_ps(lt_exp512_nonpos(_mm512_sub_ps(zb, bm)), bk);
    if (t >= i && t < i + 16) a = _mm512_mask_sub_ps(a, (__mmask16)(1u << (t - i)), a, bs);
    if (t >= i + 16 && t < i + 32) b = _mm512_mask_sub_ps(b, (__mmask16)(1u << (t - i - 16)), b, bs);
    _mm512_storeu_si512((void *)(dst + i), (__m512i)_mm512_cvtne2ps_pbh(b, a));
  }
  float tail[32];
  int n = V - i, j = 0;
  if (n >= 16) {  // one more whole vector in the f32 row
    __m512 zv = kind ? ld_r16(z, i, 0xffff, kind == 2) : _mm512_loadu_ps((const float *)z + i);
    _mm512_storeu_ps(tail, _mm512_mul_ps(lt_exp512_nonpos(_mm512_sub_ps(zv, bm)), bk));
    j = 16;
  }
  for (; j < n; j++) tail[j] = expf((kind ? r16_at(z, i + j, kind == 2) : ((const float *)z)[i + j]) - m) * k;
  if (t >= i) tail[t - i] -= scale;
  for (j = 0; j < n; j++) dst[i + j] = lt_f32_to_bf16(tail[j]);
  if (V & 1) dst[V] = 0;
}

TARGET_BF16_CE static void ce_row_dlogits_bf16(uint16_t *dst, const float *z, int V, float m, float k, int t,
                                               float scale) {
  dlogits_body(dst, z, V, m, k, t, scale, 0);
}
TARGET_BF16_CE static void ce_row_dlogits_bf16_r(uint16_t *dst, const float *z, int V, float m, float k, int t,
                                                 float scale) {
  dlogits_body(dst, z, V, m, k, t, scale, 1);
}
TARGET_BF16_CE static void ce_row_dlogits_bf16_b(uint16_t *dst, const uint16_t *z, int V, float m, float k, int t,
                                                 float scale) {
  dlogits_body(dst, z, V, m, k, t, scale, 2);
}

// max and sum(exp(x - max)) of one row (avx: lt_cpu_has_avx512(), read once by the caller)
static void ce_row_stats(const float *x, int V, float *mx, double *sum, int avx) {
  if (avx) {
    ce_row_stats16(x, V, mx, sum);
    return;
  }
  float m = -INFINITY;
  for (int i = 0; i < V; i++) m = x[i] > m ? x[i] : m;
  double s = 0.0;
  for (int i = 0; i < V; i++) s += expf(x[i] - m);
  *mx = m, *sum = s;
}

// ce_row_stats on the row rounded to bf16 (r16) or as it is
static void ce_row_stats_any(const float *x, int V, float *mx, double *sum, int avx, int r16) {
  if (!r16) {
    ce_row_stats(x, V, mx, sum, avx);
  } else if (avx) {
    ce_row_stats16_r(x, V, mx, sum);
  } else {
    float m = -INFINITY;
    for (int i = 0; i < V; i++) m = r16_at(x, i, 0) > m ? r16_at(x, i, 0) : m;
    double s = 0.0;
    for (int i = 0; i < V; i++) s += expf(r16_at(x, i, 0) - m);
    *mx = m, *sum = s;
  }
}

// logits (N,V), targets (N) -> losses (N) (0 where ignored); returns the number of valid rows
int lt_crossentropy_forward(float *losses, const float *logits, const int32_t *targets, int N, int V) {
  int nvalid = 0, avx = lt_cpu_has_avx512();
#pragma omp parallel for schedule(static) reduction(+ : nvalid) if ((int64_t)N * V > LT_CE_PAR)
  for (int n = 0; n < N; n++) {
    if (!ce_valid(targets[n], V)) {
      losses[n] = 0.0f;
      continue;
    }
    const float *x = logits + (int64_t)n * V;
    float m;
    double s;
    ce_row_stats(x, V, &m, &s, avx);
    losses[n] = (float)(log(s) + (double)m - (double)x[targets[n]]);
    nvalid++;
  }
  return nvalid;
}

// dlogits (N,V) += scale * (softmax(logits) - onehot(target)) for valid rows
void lt_crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets, int N, int V, float scale) {
  int avx = lt_cpu_has_avx512();
#pragma omp parallel for schedule(static) if ((int64_t)N * V > LT_CE_PAR)
  for (int n = 0; n < N; n++) {
    if (!ce_valid(targets[n], V)) continue;
    const float *x = logits + (int64_t)n * V;
    float *d = dlogits + (int64_t)n * V;
    float m;
    double s;
    ce_row_stats(x, V, &m, &s, avx);
    float k = (float)(scale / s);
    for (int i = 0; i < V; i++) d[i] += expf(x[i] - m) * k;
    d[targets[n]] -= scale;
  }
}

// x (N,C), w (V,C), targets (N) -> summed loss over valid rows; dx (N,C) += dlogits w, dw (V,C) += dlogits^T x with
// dlogits = scale * (softmax - onehot). Chunks of `chunk` rows: logits into scratch (chunk*V) by sgemm (all BLAS
// threads), rows in parallel (one exp per logit), then two sgemms. The loss sum is deterministic.
double lt_lmhead_ce_ex(float *dx, float *dw, const float *x, const float *w, const uint16_t *wbf,
                       const uint32_t *const *wpk, const lt_gemm_scratch *gs, const int32_t *targets, int N, int C,
                       int V, float scale, float *scratch, int chunk) {
  if (chunk < 1) chunk = 1;
  // under bf16 compute (wbf) the loss reads the logits rounded to bf16, as autocast's bf16 LM head output
  int grads = dx != NULL || dw != NULL, avx = lt_cpu_has_avx512(), r16 = wbf != NULL;
  double total = 0.0;
  for (int n0 = 0; n0 < N; n0 += chunk) {
    int nc = N - n0 < chunk ? N - n0 : chunk;
    const float *xc = x + (int64_t)n0 * C;
    const int32_t *tc = targets + n0;
    // dL/dx alone in bf16: the rows of dlogits go straight into the GEMM's bf16 input (no f32 row, no conversion
    // pass), written after the logits product has finished with that scratch
    uint16_t *ab = dx && !dw && wbf && avx ? lt_gemm_bf16_act(gs, nc, V) : NULL;
    // ... and (or without gradients) the product writes the logits in bf16 alone, into scratch's second half
    uint16_t *z16 = wbf && (ab || !grads) && lt_gemm_bf16_y16_only(gs, nc, C) ? (uint16_t *)scratch + (int64_t)nc * V
                                                                         : NULL;
    if (z16) {
      lt_gemm_epi e = {NULL, NULL, NULL, 0, 0, z16};
      lt_gemm_nt_out o = {scratch, wbf, V, wpk ? wpk[0] : NULL, &e, NULL};
      lt_gemm_bf16_ex(&o, 1, xc, nc, C, 0, 0, gs);
    } else if (wbf) {
      lt_gemm_bf16_pk(scratch, xc, wbf, wpk ? wpk[0] : NULL, nc, V, C, 0, 0, gs);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, V, C, 1.0f, xc, C, w, C, 0.0f, scratch, V);
    }
    int64_t lda = 2 * (int64_t)((V + 1) / 2);
    for (int r0 = 0; r0 < nc; r0 += LT_CE_SUB) {
      int nr = nc - r0 < LT_CE_SUB ? nc - r0 : LT_CE_SUB;
      double rowloss[LT_CE_SUB];
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)nr * V > LT_CE_PAR)
      for (int r = r0; r < r0 + nr; r++) {
        float *z = scratch + (int64_t)r * V;
        int32_t t = tc[r];
        if (!ce_valid(t, V)) {
          rowloss[r - r0] = 0.0;
          if (ab)
            memset(ab + r * lda, 0, sizeof(uint16_t) * (size_t)lda);
          else if (grads)
            for (int i = 0; i < V; i++) z[i] = 0.0f;
          continue;
        }
        const uint16_t *zb = z16 ? z16 + (int64_t)r * V : NULL;
        float m, zt = zb ? lt_bf16_to_f32(zb[t]) : r16 ? r16_at(z, t, 0) : z[t];
        double s;
        if (zb) ce_row_stats16_b(zb, V, &m, &s);
        else ce_row_stats_any(z, V, &m, &s, avx, r16);
        if (ab) {
          if (zb) ce_row_dlogits_bf16_b(ab + r * lda, zb, V, m, (float)(scale / s), t, scale);
          else if (r16) ce_row_dlogits_bf16_r(ab + r * lda, z, V, m, (float)(scale / s), t, scale);
          else ce_row_dlogits_bf16(ab + r * lda, z, V, m, (float)(scale / s), t, scale);
        } else if (grads) {  // z becomes dlogits = scale * (softmax - onehot)
          float k = (float)(scale / s);
          if (avx && r16) {
            ce_row_softmax16_r(z, V, m, k);
          } else if (avx) {
            ce_row_softmax16(z, V, m, k);
          } else {
            for (int i = 0; i < V; i++) z[i] = expf((r16 ? r16_at(z, i, 0) : z[i]) - m) * k;
          }
          z[t] -= scale;
        }
        rowloss[r - r0] = log(s) + (double)m - (double)zt;
      }
      for (int r = 0; r < nr; r++) total += rowloss[r];
    }
    if (ab) lt_gemm_bf16_pk_act(dx + (int64_t)n0 * C, wbf, wpk ? wpk[1] : NULL, nc, C, V, 1, 1, gs);
    else if (dx && wbf) lt_gemm_bf16_pk(dx + (int64_t)n0 * C, scratch, wbf, wpk ? wpk[1] : NULL, nc, C, V, 1, 1, gs);
    else if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nc, C, V, 1.0f, scratch, V, w, C, 1.0f,
                             dx + (int64_t)n0 * C, C);
    // dw from bf16 products under bf16 compute (wbf), after dx: x's bf16 copy overwrites the dlogits in scratch
    if (dw && !(wbf && lt_gemm_bf16_wgrad(dw, scratch, xc, nc, V, C, (uint16_t *)scratch,
                                          sizeof(float) * (size_t)nc * (size_t)V, gs)))
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, nc, 1.0f, scratch, V, xc, C, 1.0f, dw, C);
  }
  return total;
}

double lt_lmhead_ce(float *dx, float *dw, const float *x, const float *w, const int32_t *targets, int N, int C, int V,
                    float scale, float *scratch, int chunk) {
  return lt_lmhead_ce_ex(dx, dw, x, w, NULL, NULL, NULL, targets, N, C, V, scale, scratch, chunk);
}
