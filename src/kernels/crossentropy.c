// Cross-entropy over logits (log-softmax with max subtraction, double row sums) and the fused LM head + CE.
// Targets: -100 (and, defensively, anything outside [0, V)) mark ignored rows: loss 0, no gradient.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include "core/core.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "kernels/vexp.h"

#define LT_CE_PAR (1 << 15)
#define LT_CE_SUB 256  // rows per deterministic loss-reduction block in lt_lmhead_ce

static inline int ce_valid(int32_t t, int V) { return t >= 0 && t < V; }

// ---- row access: f32 logits as they are (kind 0), f32 logits rounded to bf16 as they are read (kind 1: nearest
// even, NaN kept), or bf16 logits widened exactly (kind 2). Under bf16 compute the loss reads the logits rounded
// (autocast's LM head gives bf16 logits and the loss widens them); kinds 1 and 2 give the same values, so the
// statistics and dlogits below agree to the bit between the two forms.
static inline __attribute__((always_inline)) LT_TARGET_AVX512 __m512 ce_ld(const void *row, int i, __mmask16 k,
                                                                           int kind) {
  if (kind == 2)
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, (const uint16_t *)row + i)), 16));
  __m512 x = _mm512_maskz_loadu_ps(k, (const float *)row + i);
  if (kind == 0) return x;
  __m512i b = _mm512_castps_si512(x), lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_and_si512(_mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))),
                               _mm512_set1_epi32((int)0xffff0000u));
  __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  r = _mm512_mask_or_epi32(r, nan, _mm512_and_si512(b, _mm512_set1_epi32((int)0xffff0000u)),
                           _mm512_set1_epi32(0x00400000));
  return _mm512_castsi512_ps(r);
}

static inline float ce_at(const void *row, int i, int kind) {
  if (kind == 2) return lt_bf16_to_f32(((const uint16_t *)row)[i]);
  float x = ((const float *)row)[i];
  return kind ? lt_bf16_to_f32(lt_f32_to_bf16(x)) : x;
}

// AVX-512: the row's max and sum of exp(x - max), 16 lanes at a time, the exp sums accumulated in double; ex (when
// given): the V values exp(x - max) summed
static inline __attribute__((always_inline)) LT_TARGET_AVX512 void stats_body(const void *x, int V, float *mx,
                                                                              double *sum, int kind, float *ex) {
  __m512 vm = _mm512_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 16 <= V; i += 16) vm = _mm512_max_ps(vm, ce_ld(x, i, 0xffff, kind));
  float m = _mm512_reduce_max_ps(vm);
  for (int j = i; j < V; j++) m = ce_at(x, j, kind) > m ? ce_at(x, j, kind) : m;
  __m512 bm = _mm512_set1_ps(m);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (i = 0; i + 16 <= V; i += 16) {
    __m512 e = lt_exp512_softmax(_mm512_sub_ps(ce_ld(x, i, 0xffff, kind), bm));
    if (ex) _mm512_storeu_ps(ex + i, e);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  for (int j = i; j < V; j++) {
    float e = expf(ce_at(x, j, kind) - m);
    if (ex) ex[j] = e;
    s += e;
  }
  *mx = m, *sum = s;
}
LT_TARGET_AVX512 static void ce_row_stats16(const float *x, int V, float *mx, double *sum) {
  stats_body(x, V, mx, sum, 0, NULL);
}
LT_TARGET_AVX512 static void ce_row_stats16_r(const float *x, int V, float *mx, double *sum) {
  stats_body(x, V, mx, sum, 1, NULL);
}
LT_TARGET_AVX512 static void ce_row_stats16_b(const uint16_t *x, int V, float *mx, double *sum) {
  stats_body(x, V, mx, sum, 2, NULL);
}
LT_TARGET_AVX512 static void ce_row_stats16_bx(const uint16_t *x, int V, float *mx, double *sum, float *ex) {
  stats_body(x, V, mx, sum, 2, ex);
}

// z (V) <- scale * exp(z - m) / s in place (the softmax row, scaled), z as it is (kind 0) or rounded (kind 1)
static inline __attribute__((always_inline)) LT_TARGET_AVX512 void softmax_body(float *z, int V, float m, float k,
                                                                                int kind) {
  __m512 bm = _mm512_set1_ps(m), bk = _mm512_set1_ps(k);
  int i = 0;
  for (; i + 16 <= V; i += 16)
    _mm512_storeu_ps(z + i, _mm512_mul_ps(lt_exp512_softmax(_mm512_sub_ps(ce_ld(z, i, 0xffff, kind), bm)), bk));
  for (; i < V; i++) z[i] = expf(ce_at(z, i, kind) - m) * k;
}
LT_TARGET_AVX512 static void ce_row_softmax16(float *z, int V, float m, float k) { softmax_body(z, V, m, k, 0); }
LT_TARGET_AVX512 static void ce_row_softmax16_r(float *z, int V, float m, float k) { softmax_body(z, V, m, k, 1); }

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
    __m512 za = ce_ld(z, i, 0xffff, kind), zb = ce_ld(z, i + 16, 0xffff, kind);
    __m512 a = _mm512_mul_ps(lt_exp512_softmax(_mm512_sub_ps(za, bm)), bk);
    __m512 b = _mm512_mul_ps(lt_exp512_softmax(_mm512_sub_ps(zb, bm)), bk);
    if (t >= i && t < i + 16) a = _mm512_mask_sub_ps(a, (__mmask16)(1u << (t - i)), a, bs);
    if (t >= i + 16 && t < i + 32) b = _mm512_mask_sub_ps(b, (__mmask16)(1u << (t - i - 16)), b, bs);
    _mm512_storeu_si512((void *)(dst + i), (__m512i)_mm512_cvtne2ps_pbh(b, a));
  }
  float tail[32];
  int n = V - i, j = 0;
  if (n >= 16) {  // one more whole vector in the f32 row
    __m512 zv = ce_ld(z, i, 0xffff, kind);
    _mm512_storeu_ps(tail, _mm512_mul_ps(lt_exp512_softmax(_mm512_sub_ps(zv, bm)), bk));
    j = 16;
  }
  for (; j < n; j++) tail[j] = expf(ce_at(z, i + j, kind) - m) * k;
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

// The row ce_row_dlogits_bf16_b makes, from the exp values ce_row_stats16_bx kept (the same bits: the same exp values
// scaled, offset and rounded in the same order), without computing them again
TARGET_BF16_CE static void ce_row_dlogits_bf16_x(uint16_t *dst, const float *ex, int V, float k, int t, float scale) {
  const __m512 bk = _mm512_set1_ps(k), bs = _mm512_set1_ps(scale);
  int i = 0;
  for (; i + 32 <= V; i += 32) {
    __m512 a = _mm512_mul_ps(_mm512_loadu_ps(ex + i), bk), b = _mm512_mul_ps(_mm512_loadu_ps(ex + i + 16), bk);
    if (t >= i && t < i + 16) a = _mm512_mask_sub_ps(a, (__mmask16)(1u << (t - i)), a, bs);
    if (t >= i + 16 && t < i + 32) b = _mm512_mask_sub_ps(b, (__mmask16)(1u << (t - i - 16)), b, bs);
    _mm512_storeu_si512((void *)(dst + i), (__m512i)_mm512_cvtne2ps_pbh(b, a));
  }
  for (int j = i; j < V; j++) dst[j] = lt_f32_to_bf16(ex[j] * k - (j == t ? scale : 0.0f));
  if (V & 1) dst[V] = 0;
}

// max and sum(exp(x - max)) of one f32 row as it is (kind 0) or rounded to bf16 (kind 1) (avx: lt_cpu_has_avx512(),
// read once by the caller)
static void ce_row_stats(const float *x, int V, float *mx, double *sum, int avx, int kind) {
  if (avx) {
    if (kind) ce_row_stats16_r(x, V, mx, sum);
    else ce_row_stats16(x, V, mx, sum);
    return;
  }
  float m = -INFINITY;
  for (int i = 0; i < V; i++) m = ce_at(x, i, kind) > m ? ce_at(x, i, kind) : m;
  double s = 0.0;
  for (int i = 0; i < V; i++) s += expf(ce_at(x, i, kind) - m);
  *mx = m, *sum = s;
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
    ce_row_stats(x, V, &m, &s, avx, 0);
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
    ce_row_stats(x, V, &m, &s, avx, 0);
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
      lt_gemm_epi e = {NULL, NULL, NULL, 0, 0, z16, NULL, NULL, 0};
      lt_gemm_nt_out o = {scratch, wbf, V, wpk ? wpk[0] : NULL, &e, NULL};
      lt_gemm_bf16_ex(&o, 1, xc, nc, C, 0, 0, gs);
    } else if (wbf) {
      lt_gemm_bf16_pk(scratch, xc, wbf, wpk ? wpk[0] : NULL, nc, V, C, 0, 0, gs);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, V, C, 1.0f, xc, C, w, C, 0.0f, scratch, V);
    }
    int64_t lda = 2 * (int64_t)((V + 1) / 2);
    // with the logits in bf16 alone, scratch's first half is free: a row of f32 exp values per thread there lets
    // the gradient pass scale them instead of computing them again
    int keep = z16 && ab && avx && (int64_t)omp_get_max_threads() * V <= (int64_t)nc * V / 2;
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
        float m, zt = zb ? ce_at(zb, t, 2) : ce_at(z, t, r16);
        double s;
        float *ex = keep ? scratch + (int64_t)omp_get_thread_num() * V : NULL;
        if (ex) ce_row_stats16_bx(zb, V, &m, &s, ex);
        else if (zb) ce_row_stats16_b(zb, V, &m, &s);
        else ce_row_stats(z, V, &m, &s, avx, r16);
        if (ab) {
          if (ex) ce_row_dlogits_bf16_x(ab + r * lda, ex, V, (float)(scale / s), t, scale);
          else if (zb) ce_row_dlogits_bf16_b(ab + r * lda, zb, V, m, (float)(scale / s), t, scale);
          else if (r16) ce_row_dlogits_bf16_r(ab + r * lda, z, V, m, (float)(scale / s), t, scale);
          else ce_row_dlogits_bf16(ab + r * lda, z, V, m, (float)(scale / s), t, scale);
        } else if (grads) {  // z becomes dlogits = scale * (softmax - onehot)
          float k = (float)(scale / s);
          if (avx && r16) {
            ce_row_softmax16_r(z, V, m, k);
          } else if (avx) {
            ce_row_softmax16(z, V, m, k);
          } else {
            for (int i = 0; i < V; i++) z[i] = expf(ce_at(z, i, r16) - m) * k;
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
