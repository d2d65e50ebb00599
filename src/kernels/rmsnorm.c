// RMSNorm as transformers LlamaRMSNorm: y = w * (x * rsqrt(mean(x^2) + eps)), f32 with a double sum of squares.
// The row sums run in 8 double lanes (lane k takes the elements c = k mod 8, then a fixed tree adds the lanes), the
// same order in the AVX-512 and the portable code, so both give the same bits whatever the thread count.
#include <math.h>
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "kernels/vexp.h"

#define LT_RMS_PAR (1 << 15)

static double lanes8(const double s[8]) { return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); }

// sum over c of x[c]^2 (p == NULL) or of (p[c] * w[c]) * x[c], in double
static double rowsum_c(const float *x, const float *p, const float *w, int C) {
  double s[8] = {0};
  for (int c = 0; c < C; c++) {
    double v = p ? (double)p[c] * w[c] * x[c] : (double)x[c] * x[c];
    s[c & 7] += v;
  }
  return lanes8(s);
}

static LT_TARGET_AVX512 double rowsum_avx512(const float *x, const float *p, const float *w, int C) {
  __m512d acc = _mm512_setzero_pd();
  for (int c = 0; c < C; c += 8) {
    __mmask8 m = C - c >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (C - c)) - 1u);
    __m512d xv = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + c));
    __m512d v = p ? _mm512_mul_pd(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, p + c)),
                                                _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, w + c))),
                                  xv)
                  : _mm512_mul_pd(xv, xv);
    acc = _mm512_add_pd(acc, v);
  }
  double s[8];
  _mm512_storeu_pd(s, acc);
  return lanes8(s);
}

static double rowsum(const float *x, const float *p, const float *w, int C, int avx) {
  return avx ? rowsum_avx512(x, p, w, C) : rowsum_c(x, p, w, C);
}

// y[c] = w[c] * (x[c] * r): the portable loop's two products in its order, 16 lanes at a time
static LT_TARGET_AVX512 void scale_row16(float *y, const float *x, const float *w, float r, int C) {
  __m512 vr = _mm512_set1_ps(r);
  for (int c = 0; c < C; c += 16) {
    __mmask16 m = C - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - c)) - 1u);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + c), _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + c), vr));
    _mm512_mask_storeu_ps(y + c, m, v);
  }
}
static void scale_row(float *y, const float *x, const float *w, float r, int C, int avx) {
  if (avx) {
    scale_row16(y, x, w, r, C);
    return;
  }
  for (int c = 0; c < C; c++) y[c] = w[c] * (x[c] * r);
}

// dx[c] += r * (w[c] * dy[c]) - k * x[c], the portable loop's operations in its order
static LT_TARGET_AVX512 void bwd_row16(float *dx, const float *x, const float *dy, const float *w, float r, float k,
                                       int C) {
  __m512 vr = _mm512_set1_ps(r), vk = _mm512_set1_ps(k);
  for (int c = 0; c < C; c += 16) {
    __mmask16 m = C - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - c)) - 1u);
    __m512 t = _mm512_mul_ps(vr, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + c), _mm512_maskz_loadu_ps(m, dy + c)));
    t = _mm512_sub_ps(t, _mm512_mul_ps(vk, _mm512_maskz_loadu_ps(m, x + c)));
    _mm512_mask_storeu_ps(dx + c, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dx + c), t));
  }
}

// x (N,C), w (C) -> y (N,C), rstd (N)
void lt_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int N, int C, float eps) {
  int avx = lt_cpu_has_avx512();
#pragma omp parallel for schedule(dynamic, 8) if ((int64_t)N * C > LT_RMS_PAR)
  for (int n = 0; n < N; n++) {
    const float *xr = x + (int64_t)n * C;
    float *yr = y + (int64_t)n * C;
    float var = (float)(rowsum(xr, NULL, NULL, C, avx) / C);
    float r = 1.0f / sqrtf(var + eps);  // torch.rsqrt on CPU is 1/sqrt
    scale_row(yr, xr, w, r, C, avx);
    if (rstd) rstd[n] = r;
  }
}

// yb[c] = bf16(w[c] * (x[c] * r)): scale_row16's values rounded as lt_f32_to_bf16_st rounds them (32 at a time by
// the instruction, the last C % 32 one by one), without the f32 row in between
#define TARGET_BF16_RMS __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
TARGET_BF16_RMS static void scale_row_b16(uint16_t *yb, const float *x, const float *w, float r, int C) {
  __m512 vr = _mm512_set1_ps(r);
  int c = 0;
  for (; c + 32 <= C; c += 32) {
    __m512 lo = _mm512_mul_ps(_mm512_loadu_ps(w + c), _mm512_mul_ps(_mm512_loadu_ps(x + c), vr));
    __m512 hi = _mm512_mul_ps(_mm512_loadu_ps(w + c + 16), _mm512_mul_ps(_mm512_loadu_ps(x + c + 16), vr));
    _mm512_storeu_si512((void *)(yb + c), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
  if (c < C) {
    float buf[32];
    scale_row16(buf, x + c, w + c, r, C - c);
    lt_f32_to_bf16_st(yb + c, buf, C - c);
  }
}

// The same, y's values also (or only, y NULL) rounded to bf16 into yb: rows of 2 * ceil(C/2) values (an odd C's last
// padded with 0), rounded as the bf16 GEMM's input conversion rounds (lt_f32_to_bf16_st): the GEMM's input rows
// for y. AVX512-BF16 only.
#define RMS_CHUNK 512
void lt_rmsnorm_forward_b16(float *y, uint16_t *yb, float *rstd, const float *x, const float *w, int N, int C,
                            float eps) {
  int avx = lt_cpu_has_avx512();
  int64_t ldb = 2 * (int64_t)((C + 1) / 2);
#pragma omp parallel for schedule(dynamic, 8) if ((int64_t)N * C > LT_RMS_PAR)
  for (int n = 0; n < N; n++) {
    const float *xr = x + (int64_t)n * C;
    float var = (float)(rowsum(xr, NULL, NULL, C, avx) / C);
    float r = 1.0f / sqrtf(var + eps);
    if (!y && avx) {  // the bf16 row alone
      scale_row_b16(yb + n * ldb, xr, w, r, C);
      if (C & 1) yb[n * ldb + C] = 0;
      if (rstd) rstd[n] = r;
      continue;
    }
    float buf[RMS_CHUNK];
    for (int c0 = 0; c0 < C; c0 += RMS_CHUNK) {  // chunks of 512 (a multiple of 32): the same rounding per block
      int cn = C - c0 < RMS_CHUNK ? C - c0 : RMS_CHUNK;
      float *yr = y ? y + (int64_t)n * C + c0 : buf;
      scale_row(yr, xr + c0, w + c0, r, cn, avx);
      lt_f32_to_bf16_st(yb + n * ldb + c0, yr, cn);
    }
    if (C & 1) yb[n * ldb + C] = 0;
    if (rstd) rstd[n] = r;
  }
}

// dy (N,C) -> dx (N,C) += r*w*dy - r^3/C * x * sum(dy*w*x) ; dw (C) += sum_n dy * x * r
void lt_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd, int N,
                         int C) {
  if (dx) {
    int avx = lt_cpu_has_avx512();
#pragma omp parallel for schedule(dynamic, 8) if ((int64_t)N * C > LT_RMS_PAR)
    for (int n = 0; n < N; n++) {
      const float *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
      float *dxr = dx + (int64_t)n * C;
      float r = rstd[n];
      double dot = rowsum(xr, dyr, w, C, avx);
      float k = (float)(dot * r * r * r / C);
      if (avx) {
        bwd_row16(dxr, xr, dyr, w, r, k, C);
        continue;
      }
      for (int c = 0; c < C; c++) dxr[c] += r * (w[c] * dyr[c]) - k * xr[c];
    }
  }
  if (dw) {
    // Threads split the columns; each column sums rows in order (deterministic).
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)N * C > LT_RMS_PAR)
    for (int c0 = 0; c0 < C; c0 += 128) {
      int c1 = c0 + 128 < C ? c0 + 128 : C;
      for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
        float r = rstd[n];
        for (int c = c0; c < c1; c++) dw[c] += dyr[c] * (xr[c] * r);
      }
    }
  }
}
