// bf16 GEMM: f32 activations (rounded to bf16 once per call) times bf16 weights with f32 accumulation.
// Blocking: the weight operand is packed per 64-column panel into (K/2, 64) pairs — the layout vdpbf16ps
// consumes — and every 6-row group of activations streams that panel from L2 into a 6x64 register tile.
// Threads (OpenMP) take panels. Without AVX512-BF16 the panel is widened to f32 and multiplied by sgemm.
#include "kernels/gemm.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "kernels/simd.h"

#define NR 64
#define MR 6
#define PF_PAIRS 64  // pack_nt: software prefetch distance along a row (64 pairs = 256 bytes)
#define PF_ROWS 8     // pack_nn: software prefetch distance in row pairs
#define KC 2048  // reduction block: a packed panel is KC/2 x 64 pairs = 256 KiB, resident in L2
#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

int lt_cpu_has_avx512bf16(void) {
  if (getenv("LMTUNE_NO_AVX512BF16") || getenv("LMTUNE_NO_AVX512")) return 0;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static size_t panel_bytes(int K) { return align64((size_t)LT_MIN(K, KC) * NR * sizeof(float) + 64); }

// activations: M * ceil(K/2) pairs of bf16 = 2 * M * (K rounded up to even) bytes <= 2 * max_mk
static size_t act_bytes(int64_t max_mk) { return align64((size_t)max_mk * 2 + 64); }
size_t lt_gemm_bf16_scratch(int64_t max_mk, int threads) {
  return act_bytes(max_mk) + (size_t)threads * panel_bytes(KC);
}

// ---- operand packing ----
// One row of x (K f32) -> bf16 pairs, the odd tail padded with a zero
TARGET_BF16 static inline void convert_row(uint16_t *ar, const float *xr, int K) {
  int k = 0;
  for (; k + 32 <= K; k += 32) {
    __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + k + 16), _mm512_loadu_ps(xr + k));
    _mm512_storeu_si512((void *)(ar + k), (__m512i)v);
  }
  for (; k < K; k++) ar[k] = lt_f32_to_bf16(xr[k]);
  if (K & 1) ar[K] = 0;
}

// x (M,K) f32 -> a (M, kh) bf16 pairs (round to nearest even, as torch)
TARGET_BF16 static void convert_rows_bf16(uint32_t *a, const float *x, int M, int K) {
  int kh = (K + 1) / 2;
#pragma omp parallel for schedule(dynamic, 8)
  for (int i = 0; i < M; i++) convert_row((uint16_t *)(a + (int64_t)i * kh), x + (int64_t)i * K, K);
}

// dst (n) = bf16(src (n)), round to nearest even as torch, on the calling thread (AVX512-BF16 callers; also
// inside parallel regions)
TARGET_BF16 void lt_f32_to_bf16_st(uint16_t *dst, const float *src, int64_t n) {
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
    _mm512_storeu_si512((void *)(dst + k), (__m512i)v);
  }
  for (; k < n; k++) dst[k] = lt_f32_to_bf16(src[k]);
}

void lt_f32_to_bf16_n(uint16_t *dst, const float *src, int64_t n) {
  if (lt_cpu_has_avx512bf16()) {  // threads split the array in blocks
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t k = 0; k < n; k += 4096) lt_f32_to_bf16_st(dst + k, src + k, LT_MIN(4096, n - k));
    return;
  }
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t k = 0; k < n; k++) dst[k] = lt_f32_to_bf16(src[k]);
}

// NT: panel of columns j0.. of y = rows j0.. of w (N,K), reduction block k0..k0+kc:
// p[q*NR + j] = (w[j][k0+2q], w[j][k0+2q+1]). Blocks of 16 rows x 16 pairs are transposed in registers (one
// 64-byte load per row, one 64-byte store per pair); the rest pair by pair.
TARGET_BF16 static void pack_nt(uint32_t *p, const uint16_t *w, int K, int k0, int kc, int j0, int nv) {
  int kh = (kc + 1) / 2, full = kc / 2, q16 = full / 16 * 16;
  const uint16_t *rows[NR];
  for (int j = 0; j < nv; j++) rows[j] = w + (int64_t)(j0 + j) * K + k0;
  int jv = nv / 16 * 16;  // rows handled by the transposes
  for (int jg = 0; jg < jv; jg += 16)
    for (int q0 = 0; q0 < q16; q0 += 16) {
      __m512i r[16];
      if (q0 + PF_PAIRS < full)  // 16 row streams: fetch ahead of them (the hardware prefetchers follow fewer)
        for (int i = 0; i < 16; i++) _mm_prefetch((const char *)(rows[jg + i] + 2 * (q0 + PF_PAIRS)), _MM_HINT_T0);
      for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512((const void *)(rows[jg + i] + 2 * q0));
      lt_transpose16x16(r);
      for (int c = 0; c < 16; c++) _mm512_store_si512((void *)(p + (int64_t)(q0 + c) * NR + jg), r[c]);
    }
  for (int q = 0; q < full; q++) {
    uint32_t *d = p + (int64_t)q * NR;
    for (int j = q < q16 ? jv : 0; j < nv; j++) memcpy(d + j, rows[j] + 2 * q, 4);
    for (int j = nv; j < NR; j++) d[j] = 0;
  }
  if (kh > full) {  // odd block: the last pair's upper half is zero
    uint32_t *d = p + (int64_t)full * NR;
    for (int j = 0; j < NR; j++) d[j] = j < nv ? rows[j][kc - 1] : 0;
  }
}

// NT panel from the NN pre-packed copy of the same matrix (lt_bf16_prepack(src, w, K, N, 1) of w (N,K)): there
// src[(kb * khn + n / 2) * NR + k % NR] = (w[n & ~1][k], w[n | 1][k]) with kb = k / NR, khn = (N + 1) / 2, and the
// panel wants p[q*NR + j] = (w[j0+j][k0+2q], w[j0+j][k0+2q+1]) as pack_nt. Blocks of 16 rows of w x 16 pairs:
// 8 source rows of 32 words, their 16-bit halves split by row parity, then one 16 x 16 transpose; the rest one
// value at a time. The same words as pack_nt.
static inline uint16_t nn_at(const uint32_t *src, int khn, int N, int K, int n, int k) {
  if (n >= N || k >= K) return 0;
  uint32_t wd = src[((int64_t)(k / NR) * khn + n / 2) * NR + k % NR];
  return (uint16_t)(n & 1 ? wd >> 16 : wd);
}

TARGET_BF16 static void pack_nt_pk(uint32_t *p, const uint32_t *src, int N, int K, int k0, int kc, int j0, int nv) {
  int khn = (N + 1) / 2, kh = (kc + 1) / 2, full = kc / 2, q16 = full / 16 * 16, jv = nv / 16 * 16;
  const __m512i ev = _mm512_set_epi16(62, 60, 58, 56, 54, 52, 50, 48, 46, 44, 42, 40, 38, 36, 34, 32, 30, 28, 26, 24,
                                      22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i od = _mm512_add_epi16(ev, _mm512_set1_epi16(1));
  for (int q0 = 0; q0 < q16; q0 += 16)  // pairs outer: the source rows of a panel's 64 columns are contiguous
    for (int jg = 0; jg < jv; jg += 16) {
      int k = k0 + 2 * q0;  // 32 columns inside one source panel (k0 and q0 keep k a multiple of 32)
      const uint32_t *s0 = src + ((int64_t)(k / NR) * khn + (j0 + jg) / 2) * NR + k % NR;
      if (q0 + 32 < q16)  // the same rows of the next source panel (far away in memory): fetch them now
        for (int i = 0; i < 8; i++) {
          const char *f = (const char *)(s0 + (int64_t)khn * NR + (int64_t)i * NR);
          _mm_prefetch(f, _MM_HINT_T0);
          _mm_prefetch(f + 64, _MM_HINT_T0);
        }
      __m512i r[16];
      for (int i = 0; i < 8; i++) {
        __m512i a = _mm512_loadu_si512((const void *)(s0 + (int64_t)i * NR));
        __m512i b = _mm512_loadu_si512((const void *)(s0 + (int64_t)i * NR + 16));
        r[2 * i] = _mm512_permutex2var_epi16(a, ev, b);
        r[2 * i + 1] = _mm512_permutex2var_epi16(a, od, b);
      }
      lt_transpose16x16(r);
      for (int c = 0; c < 16; c++) _mm512_store_si512((void *)(p + (int64_t)(q0 + c) * NR + jg), r[c]);
    }
  for (int q = 0; q < kh; q++) {
    uint32_t *d = p + (int64_t)q * NR;
    int k = k0 + 2 * q;
    for (int j = q < q16 ? jv : 0; j < NR; j++) {
      int n = j0 + j;
      uint32_t hi = 2 * q + 1 < kc ? (uint32_t)nn_at(src, khn, N, K, n, k + 1) << 16 : 0u;
      d[j] = j < nv ? (uint32_t)nn_at(src, khn, N, K, n, k) | hi : 0u;
    }
  }
}

// NN: w (K,N), reduction block k0..k0+kc: p[q*NR + j] = (w[k0+2q][j0+j], w[k0+2q+1][j0+j]).
// Two rows are interleaved 16 bits at a time, 32 columns per permute pair.
TARGET_BF16 static void pack_nn(uint32_t *p, const uint16_t *w, int N, int k0, int kc, int j0, int nv) {
  int kh = (kc + 1) / 2;
  const __m512i lo_idx = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6,
                                          37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i hi_idx = _mm512_add_epi16(lo_idx, _mm512_set1_epi16(16));
  for (int q = 0; q < kh; q++) {
    const uint16_t *r0 = w + (int64_t)(k0 + 2 * q) * N + j0;
    const uint16_t *r1 = 2 * q + 1 < kc ? r0 + N : NULL;
    if (2 * (q + PF_ROWS) + 1 < kc) {  // strided rows: fetch the pair PF_ROWS ahead
      const char *f = (const char *)(r0 + (int64_t)2 * PF_ROWS * N);
      _mm_prefetch(f, _MM_HINT_T0);
      _mm_prefetch(f + 64, _MM_HINT_T0);
      _mm_prefetch(f + (int64_t)N * 2, _MM_HINT_T0);
      _mm_prefetch(f + (int64_t)N * 2 + 64, _MM_HINT_T0);
    }
    uint32_t *d = p + (int64_t)q * NR;
    if (r1 && nv == NR) {
      for (int j = 0; j < NR; j += 32) {
        __m512i a = _mm512_loadu_si512((const void *)(r0 + j)), b = _mm512_loadu_si512((const void *)(r1 + j));
        _mm512_storeu_si512((void *)(d + j), _mm512_permutex2var_epi16(a, lo_idx, b));
        _mm512_storeu_si512((void *)(d + j + 16), _mm512_permutex2var_epi16(a, hi_idx, b));
      }
      continue;
    }
    for (int j = 0; j < nv; j++) d[j] = (uint32_t)r0[j] | (r1 ? (uint32_t)r1[j] << 16 : 0u);
    for (int j = nv; j < NR; j++) d[j] = 0;
  }
}

// ---- micro-kernel: c (mr, nv) (+)= a (mr, kh pairs) . b (kh pairs, 64), then the epilogue e (optional) ----
// e: c += bias (columns col0..), then c += sum over q of xa[row0 + i][q] * bt[q][col0 + j], in the order the
// separate passes (bias, LoRA term) would add them, so that the fused result is the same to the last bit.
static inline __attribute__((always_inline)) TARGET_BF16 void kern(const int mr, int kh, const uint32_t *a,
                                                                   int64_t lda, const uint32_t *b, float *c,
                                                                   int64_t ldc, int nv, int accumulate,
                                                                   const lt_gemm_epi *e, int64_t row0, int col0) {
  __m512 acc[MR][4];
#pragma GCC unroll 6
  for (int i = 0; i < mr; i++) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
  }
  // The output tile's lines, for writing (and reading when accumulating), fetched now: with thousands of rows they
  // come from L3 or memory, and the loop below hides the wait.
  if (kh >= 64) {
    if (e && e->y16) {
#pragma GCC unroll 6
      for (int i = 0; i < mr; i++) {
        const uint16_t *c16 = e->y16 + (row0 + i) * ldc + col0;
        __builtin_prefetch(c16, 1, 3);
        __builtin_prefetch(c16 + 32, 1, 3);
      }
    } else {
#pragma GCC unroll 6
      for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) __builtin_prefetch(c + i * ldc + 16 * j, 1, 3);
    }
  }
  for (int q = 0; q < kh; q++) {
    if ((q & 15) == 0 && q + 64 < kh) {
#pragma GCC unroll 6
      for (int i = 0; i < mr; i++) _mm_prefetch((const char *)(a + i * lda + q + 64), _MM_HINT_T0);
    }
    const uint32_t *bq = b + (int64_t)q * NR;
    __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)bq);
    __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(bq + 16));
    __m512bh b2 = (__m512bh)_mm512_load_si512((const void *)(bq + 32));
    __m512bh b3 = (__m512bh)_mm512_load_si512((const void *)(bq + 48));
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
      __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i * lda + q]);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
      acc[i][2] = _mm512_dpbf16_ps(acc[i][2], ai, b2);
      acc[i][3] = _mm512_dpbf16_ps(acc[i][3], ai, b3);
    }
  }
  __mmask16 m[4];
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    int cols = nv - 16 * j;
    m[j] = cols >= 16 ? (__mmask16)0xffff : cols <= 0 ? (__mmask16)0 : (__mmask16)((1u << cols) - 1);
  }
  if (accumulate) {
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) acc[i][j] = _mm512_add_ps(acc[i][j], _mm512_maskz_loadu_ps(m[j], c + i * ldc + 16 * j));
    }
  }
  if (e) {
    if (e->bias) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        __m512 bv = _mm512_maskz_loadu_ps(m[j], e->bias + col0 + 16 * j);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) acc[i][j] = _mm512_add_ps(acc[i][j], bv);
      }
    }
    if (e->xa2) {
      const uint32_t *x2 = e->xa2 + row0 * e->r2;
      for (int q = 0; q < e->r2; q++) {
        const uint32_t *bt = e->bt2 + (int64_t)q * e->ldb + col0;
        __m512bh t0 = (__m512bh)_mm512_maskz_loadu_epi32(m[0], bt);
        __m512bh t1 = (__m512bh)_mm512_maskz_loadu_epi32(m[1], bt + 16);
        __m512bh t2 = (__m512bh)_mm512_maskz_loadu_epi32(m[2], bt + 32);
        __m512bh t3 = (__m512bh)_mm512_maskz_loadu_epi32(m[3], bt + 48);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
          __m512bh xv = (__m512bh)_mm512_set1_epi32((int)x2[(int64_t)i * e->r2 + q]);
          acc[i][0] = _mm512_dpbf16_ps(acc[i][0], xv, t0);
          acc[i][1] = _mm512_dpbf16_ps(acc[i][1], xv, t1);
          acc[i][2] = _mm512_dpbf16_ps(acc[i][2], xv, t2);
          acc[i][3] = _mm512_dpbf16_ps(acc[i][3], xv, t3);
        }
      }
    }
    const float *xa = e->xa ? e->xa + row0 * e->r : NULL;
    for (int q = 0; xa && q < e->r; q++) {
      const float *bt = e->bt + (int64_t)q * e->ldb + col0;
      __m512 t0 = _mm512_maskz_loadu_ps(m[0], bt), t1 = _mm512_maskz_loadu_ps(m[1], bt + 16);
      __m512 t2 = _mm512_maskz_loadu_ps(m[2], bt + 32), t3 = _mm512_maskz_loadu_ps(m[3], bt + 48);
#pragma GCC unroll 6
      for (int i = 0; i < mr; i++) {
        __m512 xv = _mm512_set1_ps(xa[(int64_t)i * e->r + q]);
        acc[i][0] = _mm512_fmadd_ps(xv, t0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(xv, t1, acc[i][1]);
        acc[i][2] = _mm512_fmadd_ps(xv, t2, acc[i][2]);
        acc[i][3] = _mm512_fmadd_ps(xv, t3, acc[i][3]);
      }
    }
  }
  if (e && e->y16) {
    uint16_t *c16 = e->y16 + row0 * ldc + col0;
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        if (16 * j >= nv) break;
        _mm256_mask_storeu_epi16(c16 + i * ldc + 16 * j, m[j], (__m256i)_mm512_cvtneps_pbh(acc[i][j]));
      }
    }
    return;
  }
#pragma GCC unroll 6
  for (int i = 0; i < mr; i++) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      if (16 * j >= nv) break;
      _mm512_mask_storeu_ps(c + i * ldc + 16 * j, m[j], acc[i][j]);
    }
  }
}

// y (M, nv) columns j0.. (+)= a (M, kh pairs, row stride lda) . p, then the epilogue e (rows row0.. of its xa)
TARGET_BF16 static void panel_bf16(float *y, const uint32_t *a, int64_t lda, const uint32_t *p, int M, int N, int kh,
                                   int j0, int nv, int accumulate, const lt_gemm_epi *e, int64_t row0) {
  int i0 = 0;
  for (; i0 + MR <= M; i0 += MR)
    kern(6, kh, a + i0 * lda, lda, p, y + (int64_t)i0 * N + j0, N, nv, accumulate, e, row0 + i0, j0);
  const uint32_t *ai = a + i0 * lda;
  float *yi = y + (int64_t)i0 * N + j0;
  int64_t ri = row0 + i0;
  switch (M - i0) {
    case 5: kern(5, kh, ai, lda, p, yi, N, nv, accumulate, e, ri, j0); break;
    case 4: kern(4, kh, ai, lda, p, yi, N, nv, accumulate, e, ri, j0); break;
    case 3: kern(3, kh, ai, lda, p, yi, N, nv, accumulate, e, ri, j0); break;
    case 2: kern(2, kh, ai, lda, p, yi, N, nv, accumulate, e, ri, j0); break;
    case 1: kern(1, kh, ai, lda, p, yi, N, nv, accumulate, e, ri, j0); break;
    default: break;
  }
}

// Fallback: widen the block to f32 (NT: (nv, kc) rows; NN: (kc, nv)) and use sgemm on it.
static void panel_f32(float *y, const float *x, const uint16_t *w, float *pf, int M, int N, int K, int k0, int kc,
                      int j0, int nv, int accumulate, int nn) {
  if (!nn) {
    for (int j = 0; j < nv; j++)
      for (int k = 0; k < kc; k++) pf[(int64_t)j * kc + k] = lt_bf16_to_f32(w[(int64_t)(j0 + j) * K + k0 + k]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nv, kc, 1.0f, x + k0, K, pf, kc,
                accumulate ? 1.0f : 0.0f, y + j0, N);
  } else {
    for (int k = 0; k < kc; k++)
      for (int j = 0; j < nv; j++) pf[(int64_t)k * nv + j] = lt_bf16_to_f32(w[(int64_t)(k0 + k) * N + j0 + j]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, nv, kc, 1.0f, x + k0, K, pf, nv,
                accumulate ? 1.0f : 0.0f, y + j0, N);
  }
}

// The epilogue on a finished f32 block (the path without AVX512-BF16): columns j0..j0+nv of rows i0..i1
static void epilogue_f32(float *y, const lt_gemm_epi *e, int i0, int i1, int N, int j0, int nv) {
  for (int i = i0; i < i1; i++)
    for (int j = j0; j < j0 + nv; j++) {
      float v = y[(int64_t)i * N + j];
      if (e->bias) v += e->bias[j];
      for (int q = 0; e->xa2 && q < e->r2; q++) {  // vdpbf16ps's order: the odd element's product, then the even's
        uint32_t a = e->xa2[(int64_t)i * e->r2 + q], b = e->bt2[(int64_t)q * e->ldb + j];
        v = fmaf(lt_bf16_to_f32((uint16_t)(a >> 16)), lt_bf16_to_f32((uint16_t)(b >> 16)), v);
        v = fmaf(lt_bf16_to_f32((uint16_t)a), lt_bf16_to_f32((uint16_t)b), v);
      }
      for (int q = 0; e->xa && q < e->r; q++) v = fmaf(e->xa[(int64_t)i * e->r + q], e->bt[(int64_t)q * e->ldb + j], v);
      y[(int64_t)i * N + j] = v;
      if (e->y16) e->y16[(int64_t)i * N + j] = lt_f32_to_bf16(v);
    }
}

// Few rows (decoding): y (M<=4, N) (+)= x . w^T reading each weight row once, contiguously; threads split the rows
// of w. Memory-bound, so no packing: every byte of w is touched exactly once, each row read start to end
// (interleaving several rows streamed at ~12 GB/s per thread against ~23 GB/s for one row at a time).
#define GEMV_MAX_M 4
TARGET_BF16 static void gemv1_nt_bf16(float *y, const uint32_t *a, const uint16_t *w, int N, int K, int accumulate,
                                      int threads) {
  int full = K / 64 * 64, half = K / 32 * 32;
  const uint16_t *x = (const uint16_t *)a;  // zero-padded to an even length
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int j = 0; j < N; j++) {  // one row, start to end: the stream the prefetchers serve best
    const uint16_t *r = w + (int64_t)j * K;
    __m512 c0 = _mm512_setzero_ps(), c1 = c0;
    int k = 0;
    for (; k < full; k += 64) {
      c0 = _mm512_dpbf16_ps(c0, (__m512bh)_mm512_loadu_si512((const void *)(x + k)),
                            (__m512bh)_mm512_loadu_si512((const void *)(r + k)));
      c1 = _mm512_dpbf16_ps(c1, (__m512bh)_mm512_loadu_si512((const void *)(x + k + 32)),
                            (__m512bh)_mm512_loadu_si512((const void *)(r + k + 32)));
    }
    for (; k < K; k += 32) {
      __mmask32 m = k < half ? 0xffffffffu : (__mmask32)((1u << (K - k)) - 1u);
      c0 = _mm512_dpbf16_ps(c0, (__m512bh)_mm512_maskz_loadu_epi16(m, x + k), (__m512bh)_mm512_maskz_loadu_epi16(m, r + k));
    }
    float v = _mm512_reduce_add_ps(_mm512_add_ps(c0, c1));
    y[j] = accumulate ? y[j] + v : v;
  }
}

TARGET_BF16 static void gemv_nt_bf16(float *y, const uint32_t *a, const uint16_t *w, int M, int N, int K,
                                     int accumulate, int threads) {
  if (M == 1) {
    gemv1_nt_bf16(y, a, w, N, K, accumulate, threads);
    return;
  }
  int kh = (K + 1) / 2, full = K / 32 * 32;
  __mmask32 tail = (__mmask32)((K - full) >= 32 ? 0xffffffffu : ((1u << (K - full)) - 1u));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int j = 0; j < N; j++) {
    const uint16_t *row = w + (int64_t)j * K;
    __m512 acc[GEMV_MAX_M];
    for (int i = 0; i < M; i++) acc[i] = _mm512_setzero_ps();
    int k = 0;
    for (; k < full; k += 32) {
      __m512bh wv = (__m512bh)_mm512_loadu_si512((const void *)(row + k));
      for (int i = 0; i < M; i++) {
        __m512bh xv = (__m512bh)_mm512_loadu_si512((const void *)(a + (int64_t)i * kh + k / 2));
        acc[i] = _mm512_dpbf16_ps(acc[i], xv, wv);
      }
    }
    if (k < K) {  // tail: masked loads (the activation row is zero-padded to an even length)
      __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(tail, row + k);
      for (int i = 0; i < M; i++) {
        __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(tail, (const uint16_t *)(a + (int64_t)i * kh) + k);
        acc[i] = _mm512_dpbf16_ps(acc[i], xv, wv);
      }
    }
    for (int i = 0; i < M; i++) {
      float v = _mm512_reduce_add_ps(acc[i]);
      float *yp = y + (int64_t)i * N + j;
      *yp = accumulate ? *yp + v : v;
    }
  }
}

// y_i (M, N_i) (+)= x (M,K) times w_i (NT) or w_i (NN) for the n outputs: x converted once, the column panels of
// all outputs in one parallel loop.
// x == NULL: the bf16 copy of x is already in the scratch, at act or else at its start (lt_gemm_bf16_act; the bf16
// path is then certain).
static void gemm_multi(const lt_gemm_nt_out *o, int n, const float *x, const uint32_t *act, int M, int K,
                       int accumulate, const lt_gemm_scratch *s, int nn) {
  if (M <= 0 || n <= 0) return;
  int kh = (K + 1) / 2, nbs[LT_GEMM_MULTI_MAX], ntasks = 0;
  for (int i = 0; i < n; i++) ntasks += nbs[i] = o[i].N > 0 ? (o[i].N + NR - 1) / NR : 0;
  if (ntasks == 0) return;
  // the bf16 copy of x needs M * 2*kh <= max_mk (the scratch contract); a caller outside it gets the f32 path
  int bf = lt_cpu_has_avx512bf16() && (int64_t)M * 2 * kh <= s->max_mk;
  const uint32_t *a = !x && act ? act : s->buf;
  char *panels = (char *)s->buf + act_bytes(s->max_mk);
  if (!bf && !x) return;  // outside lt_gemm_bf16_act's contract: nothing to multiply
  if (bf && x) convert_rows_bf16(s->buf, x, M, K);
  int threads = LT_MAX(1, LT_MIN(omp_get_max_threads(), s->threads));
  if (bf && !nn && M <= GEMV_MAX_M && K > 0) {
    for (int i = 0; i < n; i++)
      if (o[i].N > 0) {
        gemv_nt_bf16(o[i].y, a, o[i].w, M, o[i].N, K, accumulate, threads);
        if (o[i].epi) epilogue_f32(o[i].y, o[i].epi, 0, M, o[i].N, 0, o[i].N);
      }
    return;
  }
  // Tasks are whole panels, except the last `threads` panels: each is split into row blocks, so that the threads
  // finish within a fraction of a block of each other even when a panel takes milliseconds (K in the thousands,
  // the LM head's input gradient). Pre-packed panels: blocks of about 2^15 / K rows (~20 us of work, at least MR
  // rows: the worker's idle samples at products' ends 0.5% -> 0.3-0.4% of a 512-token step against 2^17 / K);
  // panels packed per task: at most 2 * threads blocks (each packs the panel again).
  int rp = (int)LT_MAX(MR, LT_MIN((int64_t)M, ((int64_t)1 << 15) / LT_MAX(K, 1)) / MR * MR), allpk = 1;
  for (int i = 0; i < n; i++) allpk = allpk && (o[i].pk || o[i].N <= 0);
  int split = bf && threads > 1 && M >= 4 * MR * threads ? LT_MAX(threads, (M + rp - 1) / rp) : 1;
  if (!allpk) split = LT_MIN(split, 2 * threads);
  int whole = split > 1 ? LT_MAX(0, ntasks - threads) : ntasks;
  int total = whole + (ntasks - whole) * split;
#pragma omp parallel num_threads(threads)
  {
    void *p = panels + (size_t)omp_get_thread_num() * panel_bytes(K);
#pragma omp for schedule(dynamic, 1)
    for (int task = 0; task < total; task++) {
      int panel = task < whole ? task : whole + (task - whole) / split;
      int part = task < whole ? 0 : (task - whole) % split, parts = task < whole ? 1 : split;
      int r0 = (int)((int64_t)M * part / parts / MR * MR);
      int r1 = part + 1 == parts ? M : (int)((int64_t)M * (part + 1) / parts / MR * MR);
      int oi = 0, jb = panel;
      while (jb >= nbs[oi]) jb -= nbs[oi++];
      float *y = o[oi].y;
      const uint16_t *w = o[oi].w;
      int N = o[oi].N, j0 = jb * NR, nv = LT_MIN(NR, N - j0);
      for (int k0 = 0; k0 < K || k0 == 0; k0 += KC) {
        int kc = LT_MIN(KC, K - k0), acc = accumulate || k0 > 0;
        if (kc <= 0) {  // K == 0: y = 0 (or unchanged when accumulating)
          if (!accumulate)
            for (int i = r0; i < r1; i++) memset(y + (int64_t)i * N + j0, 0, sizeof(float) * (size_t)nv);
          if (o[oi].epi) epilogue_f32(y, o[oi].epi, r0, r1, N, j0, nv);
          break;
        }
        if (bf) {
          const uint32_t *pp = p;
          if (o[oi].pk) pp = o[oi].pk + ((int64_t)jb * kh + k0 / 2) * NR;
          else if (nn) pack_nn(p, w, N, k0, kc, j0, nv);
          else if (o[oi].pkt) pack_nt_pk(p, o[oi].pkt, N, K, k0, kc, j0, nv);
          else pack_nt(p, w, K, k0, kc, j0, nv);
          panel_bf16(y + (int64_t)r0 * N, a + (int64_t)r0 * kh + k0 / 2, kh, pp, r1 - r0, N, (kc + 1) / 2, j0, nv,
                     acc, k0 + kc >= K ? o[oi].epi : NULL, r0);
        } else {
          panel_f32(y, x, w, p, M, N, K, k0, kc, j0, nv, acc, nn);
          if (k0 + kc >= K && o[oi].epi) epilogue_f32(y, o[oi].epi, 0, M, N, j0, nv);
        }
      }
    }
  }
}

static void gemm(float *y, const float *x, const uint16_t *w, int M, int N, int K, int accumulate,
                 const lt_gemm_scratch *s, int nn) {
  lt_gemm_nt_out o = {y, w, N, NULL, NULL, NULL};
  gemm_multi(&o, 1, x, NULL, M, K, accumulate, s, nn);
}

// Panel jb, reduction block k0 of the pre-packed form starts at pair (jb * kh + k0 / 2) * NR: the blocks of a panel
// follow each other (every block but the last has KC/2 pairs, KC being even).
size_t lt_bf16_prepack_bytes(int N, int K) {
  if (N <= 0 || K <= 0) return 64;
  return align64((size_t)((N + NR - 1) / NR) * (size_t)((K + 1) / 2) * NR * sizeof(uint32_t));
}

void lt_bf16_prepack(uint32_t *dst, const uint16_t *w, int N, int K, int nn) {
  if (N <= 0 || K <= 0 || !lt_cpu_has_avx512bf16()) return;  // without it the products never read the copy
  int nb = (N + NR - 1) / NR, kh = (K + 1) / 2, nk = (K + KC - 1) / KC;
#pragma omp parallel for schedule(dynamic, 1)
  for (int t = 0; t < nb * nk; t++) {
    int jb = t / nk, k0 = (t % nk) * KC, kc = LT_MIN(KC, K - k0), j0 = jb * NR, nv = LT_MIN(NR, N - j0);
    uint32_t *p = dst + ((int64_t)jb * kh + k0 / 2) * NR;
    if (nn) pack_nn(p, w, N, k0, kc, j0, nv);
    else pack_nt(p, w, K, k0, kc, j0, nv);
  }
}

// Column j of panel jb holds row 64 jb + j of w: its pair q at (jb * kh + q) * NR + j, across the reduction blocks.
void lt_bf16_prepacked_row(float *out, const uint32_t *pk, int K, int row) {
  int64_t kh = (K + 1) / 2;
  const uint32_t *p = pk + (int64_t)(row / NR) * kh * NR + row % NR;
  for (int64_t q = 0; q < kh; q++) {
    uint32_t v = p[q * NR];
    out[2 * q] = lt_bf16_to_f32((uint16_t)v);
    if (2 * q + 1 < K) out[2 * q + 1] = lt_bf16_to_f32((uint16_t)(v >> 16));
  }
}

void lt_gemm_bf16_pk(float *y, const float *x, const uint16_t *w, const uint32_t *pk, int M, int N, int K,
                     int accumulate, int nn, const lt_gemm_scratch *s) {
  lt_gemm_nt_out o = {y, w, N, pk, NULL, NULL};
  gemm_multi(&o, 1, x, NULL, M, K, accumulate, s, nn);
}

uint16_t *lt_gemm_bf16_act(const lt_gemm_scratch *s, int M, int K) {
  if (!s || !s->buf || M <= 0 || K <= 0 || !lt_cpu_has_avx512bf16() || (int64_t)M * 2 * ((K + 1) / 2) > s->max_mk)
    return NULL;
  return (uint16_t *)s->buf;
}

void lt_gemm_bf16_pk_act(float *y, const uint16_t *w, const uint32_t *pk, int M, int N, int K, int accumulate, int nn,
                         const lt_gemm_scratch *s) {
  lt_gemm_nt_out o = {y, w, N, pk, NULL, NULL};
  gemm_multi(&o, 1, NULL, NULL, M, K, accumulate, s, nn);
}

void lt_gemm_bf16_ex(const lt_gemm_nt_out *o, int n, const float *x, int M, int K, int accumulate, int nn,
                     const lt_gemm_scratch *s) {
  for (int i = 0; i < n; i += LT_GEMM_MULTI_MAX)
    gemm_multi(o + i, LT_MIN(LT_GEMM_MULTI_MAX, n - i), x, NULL, M, K, accumulate, s, nn);
}

int lt_gemm_bf16_y16_only(const lt_gemm_scratch *s, int M, int K) {
  return s && s->buf && lt_cpu_has_avx512bf16() && M > GEMV_MAX_M && K > 0 && K <= KC &&
         (int64_t)M * 2 * ((K + 1) / 2) <= s->max_mk;
}

int lt_gemm_bf16_ex_act(const lt_gemm_nt_out *o, int n, const uint32_t *act, int M, int K, int accumulate, int nn,
                        const lt_gemm_scratch *s) {
  if (!act || !lt_cpu_has_avx512bf16() || (int64_t)M * 2 * ((K + 1) / 2) > s->max_mk) return 0;
  for (int i = 0; i < n; i += LT_GEMM_MULTI_MAX)
    gemm_multi(o + i, LT_MIN(LT_GEMM_MULTI_MAX, n - i), NULL, act, M, K, accumulate, s, nn);
  return 1;
}

#define WGRAD_ROWS 512  // rows of dw per product of lt_gemm_bf16_wgrad: their input rows stay in L2

// act (cols rows of kh = ceil(n/2) pairs): act[c][p] = (bf16(d[2p][c]), bf16(d[2p+1][c])) from d (n, cols) f32
// rows, an odd n's last partner 0. Blocks of 16 columns x 16 row pairs: two rows rounded into one vector and
// interleaved into pairs, then a 16 x 16 transpose.
TARGET_BF16 static void pairs_t(uint32_t *act, const float *d, int n, int cols) {
  int kh = (n + 1) / 2;
  const __m512i pair = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                        5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
#pragma omp parallel for schedule(dynamic, 4)
  for (int cb = 0; cb < cols; cb += 16) {
    int cn = LT_MIN(16, cols - cb);
    __mmask16 cm = cn == 16 ? (__mmask16)0xffff : (__mmask16)((1u << cn) - 1);
    for (int p0 = 0; p0 < kh; p0 += 16) {
      int pn = LT_MIN(16, kh - p0);
      __mmask16 pm = pn == 16 ? (__mmask16)0xffff : (__mmask16)((1u << pn) - 1);
      __m512i r[16];
      for (int i = 0; i < 16; i++) {
        int t = 2 * (p0 + i);
        r[i] = _mm512_setzero_si512();
        if (i >= pn) continue;
        __m512 lo = _mm512_maskz_loadu_ps(cm, d + (int64_t)t * cols + cb);
        __m512 hi = t + 1 < n ? _mm512_maskz_loadu_ps(cm, d + (int64_t)(t + 1) * cols + cb) : _mm512_setzero_ps();
        r[i] = _mm512_permutexvar_epi16(pair, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));  // lane j: (lo_j, hi_j)
      }
      lt_transpose16x16(r);  // r[j]: pairs p0.. of column cb + j
      for (int j = 0; j < cn; j++) _mm512_mask_storeu_epi32(act + (int64_t)(cb + j) * kh + p0, pm, r[j]);
    }
  }
}

int lt_gemm_bf16_wgrad(float *dw, const float *dy, const float *x, int N, int out, int in, uint16_t *xb,
                       size_t xb_bytes, const lt_gemm_scratch *s) {
  if (N <= 0 || out <= 0 || in <= 0) return 0;
  uint16_t *act = lt_gemm_bf16_act(s, out, N);
  if (!act || !xb || (size_t)N * (size_t)in * sizeof(uint16_t) > xb_bytes) return 0;
  int64_t kh = (N + 1) / 2;
  pairs_t((uint32_t *)act, dy, N, out);
  lt_f32_to_bf16_n(xb, x, (int64_t)N * in);
  for (int r0 = 0; r0 < out; r0 += WGRAD_ROWS) {
    lt_gemm_nt_out o = {dw + (int64_t)r0 * in, xb, in, NULL, NULL, NULL};
    gemm_multi(&o, 1, NULL, (const uint32_t *)act + r0 * kh, LT_MIN(WGRAD_ROWS, out - r0), N, 1, s, 1);
  }
  return 1;
}

// row i of lt_gemm_bf16_lora_add
TARGET_BF16 static void lora_add_row(float *yr, const uint32_t *xr, const uint32_t *w2, int64_t ldw, int N, int r2,
                                     int first) {
  for (int j = 0; j < N; j += 16) {
    __mmask16 m = N - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (N - j)) - 1);
    __m512 acc = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, yr + j);
    for (int q = 0; q < r2; q++)
      acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_set1_epi32((int)xr[q]),
                             (__m512bh)_mm512_maskz_loadu_epi32(m, w2 + (int64_t)q * ldw + j));
    _mm512_mask_storeu_ps(yr + j, m, acc);
  }
}

void lt_gemm_bf16_lora_add(float *y, int64_t ldy, const uint32_t *x2, const uint32_t *w2, int64_t ldw, int M, int N,
                           int r2, int first) {
  if (!lt_cpu_has_avx512bf16() || M <= 0 || N <= 0) return;
#pragma omp parallel for schedule(dynamic, 16) if ((int64_t)M * N * r2 > (1 << 18))
  for (int i = 0; i < M; i++) lora_add_row(y + (int64_t)i * ldy, x2 + (int64_t)i * r2, w2, ldw, N, r2, first);
}

// rows i0.. of lt_bf16_skinny in a tile of mr rows x nz vectors of 16 rank columns (nz = ceil(r / 16))
static inline __attribute__((always_inline)) TARGET_BF16 void skinny_tile(float *y, const uint32_t *x2, int64_t ldx,
                                                                          const uint32_t *w2, int mr, int nz, int kh,
                                                                          int r, float s) {
  __m512 acc[24];
#pragma GCC unroll 24
  for (int t = 0; t < 24; t++) acc[t] = _mm512_setzero_ps();
  __mmask16 m[4];
#pragma GCC unroll 4
  for (int z = 0; z < 4; z++) {
    int c = r - 16 * z;
    m[z] = c >= 16 ? (__mmask16)0xffff : c <= 0 ? (__mmask16)0 : (__mmask16)((1u << c) - 1);
  }
  for (int q = 0; q < kh; q++) {
    if ((q & 15) == 0 && q + 64 < kh) {
#pragma GCC unroll 24
      for (int i = 0; i < mr; i++) _mm_prefetch((const char *)(x2 + i * ldx + q + 64), _MM_HINT_T0);
    }
    __m512bh w[4];
#pragma GCC unroll 4
    for (int z = 0; z < nz; z++) w[z] = (__m512bh)_mm512_maskz_loadu_epi32(m[z], w2 + (int64_t)q * r + 16 * z);
#pragma GCC unroll 24
    for (int i = 0; i < mr; i++) {
      __m512bh xv = (__m512bh)_mm512_set1_epi32((int)x2[i * ldx + q]);
#pragma GCC unroll 4
      for (int z = 0; z < nz; z++) acc[i * nz + z] = _mm512_dpbf16_ps(acc[i * nz + z], xv, w[z]);
    }
  }
  __m512 vs = _mm512_set1_ps(s);
#pragma GCC unroll 24
  for (int i = 0; i < mr; i++) {
#pragma GCC unroll 4
    for (int z = 0; z < nz; z++)
      _mm512_mask_storeu_ps(y + (int64_t)i * r + 16 * z, m[z], _mm512_mul_ps(acc[i * nz + z], vs));
  }
}

#define SKINNY_TILE(NZ)                                                                                    \
  TARGET_BF16 static void skinny_rows##NZ(float *y, const uint32_t *x2, int64_t ldx, const uint32_t *w2, int i0, \
                                          int i1, int kh, int r, float s) {                                \
    int i = i0;                                                                                            \
    for (; i + 24 / NZ <= i1; i += 24 / NZ)                                                                \
      skinny_tile(y + (int64_t)i * r, x2 + i * ldx, ldx, w2, 24 / NZ, NZ, kh, r, s);                       \
    for (; i < i1; i++) skinny_tile(y + (int64_t)i * r, x2 + i * ldx, ldx, w2, 1, NZ, kh, r, s);           \
  }
SKINNY_TILE(1)
SKINNY_TILE(2)
SKINNY_TILE(3)
SKINNY_TILE(4)

int lt_bf16_skinny(float *y, const uint32_t *x2, int64_t ldx, const uint32_t *w2, int M, int kh, int r, float s) {
  int nz = (r + 15) / 16;
  if (!lt_cpu_has_avx512bf16() || r <= 0 || nz > 4) return -1;
  if (M <= 0) return 0;
  int rows = 24 / nz, tiles = (M + rows - 1) / rows;
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)M * kh * r > (1 << 16))
  for (int t = 0; t < tiles; t++) {
    int i0 = t * rows, i1 = LT_MIN(M, i0 + rows);
    if (nz == 1) skinny_rows1(y, x2, ldx, w2, i0, i1, kh, r, s);
    else if (nz == 2) skinny_rows2(y, x2, ldx, w2, i0, i1, kh, r, s);
    else if (nz == 3) skinny_rows3(y, x2, ldx, w2, i0, i1, kh, r, s);
    else skinny_rows4(y, x2, ldx, w2, i0, i1, kh, r, s);
  }
  return 0;
}

#define PAIRS_PAR (1 << 13)  // values of a LoRA matrix (or its rows) from which the threads make pairs together
TARGET_BF16 static void pairs_rows_bf16(uint32_t *dst, float *x, int M, int r) {
  int r2 = (r + 1) / 2;
#pragma omp parallel for schedule(static) if ((int64_t)M * r >= PAIRS_PAR)
  for (int i = 0; i < M; i++) {
    float *xr = x + (int64_t)i * r;
    for (int c = 0; c < r; c += 32) {  // 32 values = 16 pairs per step
      int n = r - c, w = (n + 1) / 2;
      __mmask16 m0 = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
      __mmask16 m1 = n >= 32 ? (__mmask16)0xffff : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
      __m512i v =
          (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, xr + c + 16), _mm512_maskz_loadu_ps(m0, xr + c));
      _mm512_mask_storeu_epi32(dst + (int64_t)i * r2 + c / 2, w >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << w) - 1),
                               v);
      __m512i lo = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)), 16);
      __m512i hi = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)), 16);
      _mm512_mask_storeu_ps(xr + c, m0, _mm512_castsi512_ps(lo));
      _mm512_mask_storeu_ps(xr + c + 16, m1, _mm512_castsi512_ps(hi));
    }
  }
}

void lt_bf16_pairs_rows(uint32_t *dst, float *x, int M, int r) {
  if (lt_cpu_has_avx512bf16()) {
    pairs_rows_bf16(dst, x, M, r);
    return;
  }
  int r2 = (r + 1) / 2;
  for (int i = 0; i < M; i++) {
    float *xr = x + (int64_t)i * r;
    for (int q = 0; q < r2; q++) {
      uint16_t lo = lt_f32_to_bf16(xr[2 * q]), hi = 2 * q + 1 < r ? lt_f32_to_bf16(xr[2 * q + 1]) : 0;
      xr[2 * q] = lt_bf16_to_f32(lo);
      if (2 * q + 1 < r) xr[2 * q + 1] = lt_bf16_to_f32(hi);
      dst[(int64_t)i * r2 + q] = (uint32_t)lo | (uint32_t)hi << 16;
    }
  }
}

// trans = 0: rows (2q, 2q+1) of w (r, cols), 16 columns at a time, interleaved 16 bits apart
TARGET_BF16 static void pairs_rank_rows(uint32_t *dst, const float *w, int r, int cols, float s) {
  __m512 vs = _mm512_set1_ps(s);
#pragma omp parallel for schedule(static) if ((int64_t)r * cols >= PAIRS_PAR)
  for (int j = 0; j < cols; j += 16) {
    __mmask16 m = cols - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - j)) - 1);
    for (int q = 0; q < (r + 1) / 2; q++) {
      const float *a = w + (int64_t)(2 * q) * cols, *b = 2 * q + 1 < r ? a + cols : NULL;
      __m256bh la = _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, a + j), vs));
      __m256bh lb = _mm512_cvtneps_pbh(b ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, b + j), vs) : _mm512_setzero_ps());
      __m512i lo = _mm512_cvtepu16_epi32((__m256i)la), hi = _mm512_cvtepu16_epi32((__m256i)lb);
      _mm512_mask_storeu_epi32(dst + (int64_t)q * cols + j, m, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

// trans = 1: each row of w (cols, r) holds its pairs side by side; 16 rows at a time, transposed in registers
TARGET_BF16 static void pairs_rank_cols(uint32_t *dst, const float *w, int r, int cols, float s) {
  __m512 vs = _mm512_set1_ps(s);
#pragma omp parallel for schedule(static) if ((int64_t)r * cols >= PAIRS_PAR)
  for (int j0 = 0; j0 < cols; j0 += 16) {
    int jn = LT_MIN(16, cols - j0);
    __mmask16 jm = jn == 16 ? (__mmask16)0xffff : (__mmask16)((1u << jn) - 1);
    for (int c = 0; c < r; c += 32) {
      int n = r - c, qn = LT_MIN(16, (n + 1) / 2);
      __mmask16 m0 = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
      __mmask16 m1 = n >= 32 ? (__mmask16)0xffff : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
      __m512i t[16];
      for (int jj = 0; jj < 16; jj++) {
        const float *row = w + (int64_t)(j0 + jj) * r + c;
        t[jj] = jj < jn ? (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(_mm512_maskz_loadu_ps(m1, row + 16), vs),
                                                       _mm512_mul_ps(_mm512_maskz_loadu_ps(m0, row), vs))
                        : _mm512_setzero_si512();
      }
      lt_transpose16x16(t);
      for (int q = 0; q < qn; q++) _mm512_mask_storeu_epi32(dst + (int64_t)(c / 2 + q) * cols + j0, jm, t[q]);
    }
  }
}

void lt_bf16_pairs_rank(uint32_t *dst, const float *w, int r, int cols, float s, int trans) {
  if (lt_cpu_has_avx512bf16()) {
    if (trans) pairs_rank_cols(dst, w, r, cols, s);
    else pairs_rank_rows(dst, w, r, cols, s);
    return;
  }
  int r2 = (r + 1) / 2;
  for (int q = 0; q < r2; q++)
    for (int j = 0; j < cols; j++) {
      float a = trans ? w[(int64_t)j * r + 2 * q] : w[(int64_t)(2 * q) * cols + j];
      float b = 2 * q + 1 >= r ? 0.0f : trans ? w[(int64_t)j * r + 2 * q + 1] : w[(int64_t)(2 * q + 1) * cols + j];
      dst[(int64_t)q * cols + j] = (uint32_t)lt_f32_to_bf16(s * a) | (uint32_t)lt_f32_to_bf16(s * b) << 16;
    }
}

void lt_bf16_panel_mm(float *y, int64_t ldy, const uint32_t *a, int64_t lda, const uint32_t *panel, int M, int kh,
                      int nv, int accumulate) {
  if (M > 0 && nv > 0) panel_bf16(y, a, lda, panel, M, (int)ldy, kh, 0, nv, accumulate, NULL, 0);
}

void lt_bf16_pack_nt(uint32_t *panel, const uint16_t *w, int ldw, int k0, int kc, int j0, int nv) {
  pack_nt(panel, w, ldw, k0, kc, j0, nv);
}

void lt_bf16_pack_nn(uint32_t *panel, const uint16_t *w, int ldw, int k0, int kc, int j0, int nv) {
  pack_nn(panel, w, ldw, k0, kc, j0, nv);
}

size_t lt_gemm_bf16_st_scratch(int M, int K) {
  return align64((size_t)M * (size_t)((K + 1) / 2) * 4 + 64) + panel_bytes(K) + 64;
}

TARGET_BF16 void lt_gemm_bf16_st(float *y, int ldy, const float *x, int ldx, const uint16_t *w, int ldw, int M, int N,
                                 int K, int accumulate, int nn, void *scratch) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int i = 0; i < M; i++) memset(y + (int64_t)i * ldy, 0, sizeof(float) * (size_t)N);
    return;
  }
  int kh = (K + 1) / 2;
  uint32_t *a = (uint32_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  uint32_t *p = (uint32_t *)((char *)a + align64((size_t)M * (size_t)kh * 4 + 64));
  for (int i = 0; i < M; i++) convert_row((uint16_t *)(a + (int64_t)i * kh), x + (int64_t)i * ldx, K);
  for (int j0 = 0; j0 < N; j0 += NR) {
    int nv = LT_MIN(NR, N - j0);
    for (int k0 = 0; k0 < K; k0 += KC) {
      int kc = LT_MIN(KC, K - k0);
      if (nn) pack_nn(p, w, ldw, k0, kc, j0, nv);
      else pack_nt(p, w, ldw, k0, kc, j0, nv);
      panel_bf16(y, a + k0 / 2, kh, p, M, ldy, (kc + 1) / 2, j0, nv, accumulate || k0 > 0, NULL, 0);
    }
  }
}

void lt_gemm_bf16_nt(float *y, const float *x, const uint16_t *w, int M, int N, int K, int accumulate,
                     const lt_gemm_scratch *s) {
  gemm(y, x, w, M, N, K, accumulate, s, 0);
}

void lt_gemm_bf16_nn(float *y, const float *x, const uint16_t *w, int M, int N, int K, int accumulate,
                     const lt_gemm_scratch *s) {
  gemm(y, x, w, M, N, K, accumulate, s, 1);
}
