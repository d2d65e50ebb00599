// LoRA's low-rank products in f32. Their shapes are skinny (r = 4..64 columns against hundreds to thousands of rows
// and features), which BLAS serves poorly: it packs the long operand for a few flops per element. The AVX-512
// kernels here read every operand in its stored layout (vectors along the long dimension or along r, no transposed
// copies) and each output element is summed by one thread in a fixed order, so the results do not depend on the
// thread count. Without AVX-512 (or with LMTUNE_NO_AVX512) the same products go to OpenBLAS sgemm.
#include <cblas.h>
#include <omp.h>
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "kernels/kernels.h"
#include "kernels/simd.h"
#include "kernels/vexp.h"

static inline LT_TARGET_AVX512 __mmask16 tail16(int n) {
  return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

// The inner steps below take the count of live vectors (qn, cn) as an argument and are always inlined: each
// kernel calls them once with the literal of a whole chunk (the common case, where the per-vector tests fold away)
// and once with the run-time count. Arrays of vectors are only indexed by constants after unrolling, so they stay
// in registers (a run-time index puts them on the stack, which cost the kernels 2-3x).
#define LORA_STEP static inline __attribute__((always_inline)) LT_TARGET_AVX512 void

// ---- xa (N,r) = x (N,in) . A^T, A (r,in) ----
// s0[q], s1[q] += a0, a1 times rank row q (q < qn) of A at this block of in (Ak: row 0, stride in)
LORA_STEP xa_step(__m512 s0[8], __m512 s1[8], __m512 a0, __m512 a1, const float *Ak, int64_t in, __mmask16 m, int qn) {
#pragma GCC unroll 8
  for (int q = 0; q < 8; q++)
    if (q < qn) {
      __m512 w = _mm512_maskz_loadu_ps(m, Ak + q * in);
      s0[q] = _mm512_fmadd_ps(a0, w, s0[q]);
      s1[q] = _mm512_fmadd_ps(a1, w, s1[q]);
    }
}

// 16 values of an f32 row (b16 = 0) or of a bf16 row (b16 = 1, widened exactly) at element k
static inline __attribute__((always_inline)) LT_TARGET_AVX512 __m512 row_load(const void *row, int64_t k, __mmask16 m,
                                                                             int b16) {
  if (b16)
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k)), 16));
  return _mm512_maskz_loadu_ps(m, (const float *)row + k);
}

// Dot products along in: a tile of 2 rows x 8 rank rows keeps 16 vector sums, reduced once at the end. x: f32 rows,
// or bf16 rows when b16.
static inline __attribute__((always_inline)) LT_TARGET_AVX512 void xa_body(float *xa, const void *x, const float *A,
                                                                           int N, int in, int r, int b16) {
  int np = (N + 1) / 2, kv = in / 16 * 16;
  __mmask16 km = tail16(in - kv);
  size_t es = b16 ? 2 : 4;
#pragma omp parallel for schedule(dynamic, 16) if ((int64_t)N * in * r > (1 << 18))
  for (int ip = 0; ip < np; ip++) {
    int i0 = 2 * ip, two = i0 + 1 < N;
    const char *x0 = (const char *)x + (size_t)i0 * (size_t)in * es, *x1 = two ? x0 + (size_t)in * es : x0;
    for (int q0 = 0; q0 < r; q0 += 8) {
      int qn = LT_MIN(8, r - q0);
      __m512 s0[8], s1[8];
#pragma GCC unroll 8
      for (int q = 0; q < 8; q++) s0[q] = s1[q] = _mm512_setzero_ps();
      for (int k = 0; k < in; k += 16) {
        __mmask16 m = k < kv ? (__mmask16)0xffff : km;
        __m512 a0 = row_load(x0, k, m, b16), a1 = row_load(x1, k, m, b16);
        if (qn == 8) xa_step(s0, s1, a0, a1, A + (int64_t)q0 * in + k, in, m, 8);
        else xa_step(s0, s1, a0, a1, A + (int64_t)q0 * in + k, in, m, qn);
      }
#pragma GCC unroll 8
      for (int q = 0; q < 8; q++) {  // constant indices keep the sums in registers
        if (q >= qn) break;
        xa[(int64_t)i0 * r + q0 + q] = _mm512_reduce_add_ps(s0[q]);
        if (two) xa[(int64_t)(i0 + 1) * r + q0 + q] = _mm512_reduce_add_ps(s1[q]);
      }
    }
  }
}

LT_TARGET_AVX512 static void xa_avx512(float *xa, const float *x, const float *A, int N, int in, int r) {
  xa_body(xa, x, A, N, in, r, 0);
}

LT_TARGET_AVX512 static void xa_avx512_b16(float *xa, const uint16_t *x, const float *A, int N, int in, int r) {
  xa_body(xa, x, A, N, in, r, 1);
}

// ---- y (N,out) += s * xa (N,r) . B^T, B (out,r) ----
// Vectors along out: for 16 output columns, the 16 x (r chunk of 16) block of B is transposed in registers
// (16-lane gathers from the stored rows) and scaled by s, then every row of the tile gets r broadcast FMAs.
#define UP_ROWS 64
// rows n0..n1 of y, columns j0.. (mask jm), rank chunk q0.. of qn
LORA_STEP up_tile(float *y, const float *xa, const float *B, __m512i rows, __m512 sv, int n0, int n1, int out, int r,
                  int j0, int q0, __mmask16 jm, int qn) {
  __m512 bt[16];  // bt[q][jj] = s * B[j0 + jj][q0 + q]
#pragma GCC unroll 16
  for (int q = 0; q < 16; q++)
    bt[q] = q < qn ? _mm512_mul_ps(sv, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), jm, rows,
                                                                B + (int64_t)j0 * r + q0 + q, 4))
                   : _mm512_setzero_ps();
  for (int n = n0; n < n1; n++) {
    float *yr = y + (int64_t)n * out + j0;
    const float *xr = xa + (int64_t)n * r + q0;
    __m512 acc = _mm512_maskz_loadu_ps(jm, yr);
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++)
      if (q < qn) acc = _mm512_fmadd_ps(_mm512_set1_ps(xr[q]), bt[q], acc);
    _mm512_mask_storeu_ps(yr, jm, acc);
  }
}

LT_TARGET_AVX512 static void up_avx512(float *y, const float *xa, const float *B, float s, int N, int out, int r) {
  int nb = (N + UP_ROWS - 1) / UP_ROWS;
  const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                          _mm512_set1_epi32(r));
  const __m512 sv = _mm512_set1_ps(s);
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)N * out * r > (1 << 18))
  for (int b = 0; b < nb; b++) {
    int n0 = b * UP_ROWS, n1 = LT_MIN(N, n0 + UP_ROWS);
    for (int j0 = 0; j0 < out; j0 += 16) {
      __mmask16 jm = tail16(out - j0);
      for (int q0 = 0; q0 < r; q0 += 16) {
        int qn = LT_MIN(16, r - q0);
        if (qn == 16) up_tile(y, xa, B, rows, sv, n0, n1, out, r, j0, q0, jm, 16);
        else up_tile(y, xa, B, rows, sv, n0, n1, out, r, j0, q0, jm, qn);
      }
    }
  }
}

// ---- dxa (N,r) = s * dy (N,out) . B (out,r) ----
// Vectors along r (one stored row of B per step), 8 rows of dy at a time.
LT_TARGET_AVX512 static void dxa_avx512(float *dxa, const float *dy, const float *B, float s, int N, int out, int r) {
  int nb = (N + 7) / 8;
#pragma omp parallel for schedule(dynamic, 4) if ((int64_t)N * out * r > (1 << 18))
  for (int b = 0; b < nb; b++) {
    int n0 = 8 * b, nn = LT_MIN(8, N - n0);
    const float *d[8];
    for (int i = 0; i < 8; i++) d[i] = dy + (int64_t)(n0 + (i < nn ? i : 0)) * out;
    for (int q0 = 0; q0 < r; q0 += 16) {
      __mmask16 qm = tail16(r - q0);
      __m512 acc[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) acc[i] = _mm512_setzero_ps();
      for (int j = 0; j < out; j++) {
        __m512 w = _mm512_maskz_loadu_ps(qm, B + (int64_t)j * r + q0);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(d[i][j]), w, acc[i]);
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) {  // constant indices keep the sums in registers
        if (i >= nn) break;
        _mm512_mask_storeu_ps(dxa + (int64_t)(n0 + i) * r + q0, qm, _mm512_mul_ps(acc[i], _mm512_set1_ps(s)));
      }
    }
  }
}

// acc[i] += d[i] * v for i < n
LORA_STEP bcast_fma16(__m512 acc[16], const float *d, __m512 v, int n) {
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++)
    if (i < n) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(d[i]), v, acc[i]);
}

// ---- g (cols,vl) += s * d (N,cols)^T . v (N,vl) ----
// gB with (d, v) = (dy, xa), gA with (d, v) = (dxa, x) and s = 1. Tiles of 16 columns of d x 16 elements of v
// (16 x 16 sums). A task takes a group of up to GT_TILES consecutive tiles (adjacent in the long operand's rows)
// and walks the rows in blocks of GT_ROWS, keeping each tile's sums in a small stack buffer between blocks: the
// long operand is read in runs of up to 4 KB per row instead of 64 bytes at a time. Every sum still adds its rows
// in order from 0, so the result does not depend on the grouping or the thread count.
#define GT_TILES 64
#define GT_ROWS 16
// acc[c] += d[n][c0 + c] * v[n][q0..] for rows n0..n1 (cn live columns)
// (v: f32 rows, or bf16 rows when b16)
LORA_STEP grad_rows(__m512 acc[16], const float *d, const void *v, int n0, int n1, int cols, int vl, int c0, int q0,
                    __mmask16 qm, int cn, int b16) {
  for (int n = n0; n < n1; n++) {
    __m512 w = row_load(v, (int64_t)n * vl + q0, qm, b16);
    bcast_fma16(acc, d + (int64_t)n * cols + c0, w, cn);
  }
}

static inline __attribute__((always_inline)) LT_TARGET_AVX512 void gradT_body(float *g, const float *d, const void *v,
                                                                              float s, int N, int cols, int vl,
                                                                              int b16) {
  int cb = (cols + 15) / 16, vb = (vl + 15) / 16, tiles = cb * vb;
  int threads = omp_get_max_threads();
  int gt = LT_MAX(1, LT_MIN(GT_TILES, tiles / (4 * LT_MAX(1, threads))));
  int groups = (tiles + gt - 1) / gt;
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)N * cols * vl > (1 << 18))
  for (int grp = 0; grp < groups; grp++) {
    int t0 = grp * gt, t1 = LT_MIN(tiles, t0 + gt);
    __m512 buf[GT_TILES][16];
    for (int n0 = 0; n0 < N; n0 += GT_ROWS) {
      int n1 = LT_MIN(N, n0 + GT_ROWS);
      for (int t = t0; t < t1; t++) {
        int c0 = 16 * (t / vb), cn = LT_MIN(16, cols - c0), q0 = 16 * (t % vb);
        __mmask16 qm = tail16(vl - q0);
        __m512 acc[16];
#pragma GCC unroll 16
        for (int c = 0; c < 16; c++) acc[c] = n0 == 0 ? _mm512_setzero_ps() : buf[t - t0][c];
        if (cn == 16) grad_rows(acc, d, v, n0, n1, cols, vl, c0, q0, qm, 16, b16);
        else grad_rows(acc, d, v, n0, n1, cols, vl, c0, q0, qm, cn, b16);
#pragma GCC unroll 16
        for (int c = 0; c < 16; c++) buf[t - t0][c] = acc[c];
      }
    }
    for (int t = t0; t < t1; t++) {
      int c0 = 16 * (t / vb), cn = LT_MIN(16, cols - c0), q0 = 16 * (t % vb);
      __mmask16 qm = tail16(vl - q0);
      for (int c = 0; c < cn; c++) {
        float *gr = g + (int64_t)(c0 + c) * vl + q0;
        _mm512_mask_storeu_ps(gr, qm,
                              _mm512_fmadd_ps(buf[t - t0][c], _mm512_set1_ps(s), _mm512_maskz_loadu_ps(qm, gr)));
      }
    }
  }
}

LT_TARGET_AVX512 static void gradT_avx512(float *g, const float *d, const float *v, float s, int N, int cols, int vl) {
  gradT_body(g, d, v, s, N, cols, vl, 0);
}

LT_TARGET_AVX512 static void gradT_avx512_b16(float *g, const float *d, const uint16_t *v, int N, int cols, int vl) {
  gradT_body(g, d, v, 1.0f, N, cols, vl, 1);
}

// ---- dx (N,in) (+)= dxa (N,r) . A (r,in) ----
// Vectors along in; a tile of rows x 16 features keeps the r chunk's 16 rows of A in registers.
// rows n0..n1 of dx, features k0.. (mask km), rank chunk q0.. of qn; first: overwrite instead of accumulate
LORA_STEP dx_tile(float *dx, const float *dxa, const float *A, int n0, int n1, int in, int r, int k0, int q0,
                  __mmask16 km, int first, int qn) {
  __m512 a[16];
#pragma GCC unroll 16
  for (int q = 0; q < 16; q++)
    a[q] = q < qn ? _mm512_maskz_loadu_ps(km, A + (int64_t)(q0 + q) * in + k0) : _mm512_setzero_ps();
  for (int n = n0; n < n1; n++) {
    float *xr = dx + (int64_t)n * in + k0;
    const float *dr = dxa + (int64_t)n * r + q0;
    __m512 acc = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(km, xr);
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++)
      if (q < qn) acc = _mm512_fmadd_ps(_mm512_set1_ps(dr[q]), a[q], acc);
    _mm512_mask_storeu_ps(xr, km, acc);
  }
}

LT_TARGET_AVX512 static void dx_avx512(float *dx, const float *dxa, const float *A, int N, int in, int r,
                                       int accumulate) {
  int nb = (N + UP_ROWS - 1) / UP_ROWS;
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)N * in * r > (1 << 18))
  for (int b = 0; b < nb; b++) {
    int n0 = b * UP_ROWS, n1 = LT_MIN(N, n0 + UP_ROWS);
    for (int k0 = 0; k0 < in; k0 += 16) {
      __mmask16 km = tail16(in - k0);
      for (int q0 = 0; q0 < r; q0 += 16) {
        int qn = LT_MIN(16, r - q0), first = q0 == 0 && !accumulate;
        if (qn == 16) dx_tile(dx, dxa, A, n0, n1, in, r, k0, q0, km, first, 16);
        else dx_tile(dx, dxa, A, n0, n1, in, r, k0, q0, km, first, qn);
      }
    }
  }
}

void lt_lora_xa(float *xa, const float *x, const float *A, int N, int in, int r) {
  if (N <= 0 || r <= 0) return;
  if (in <= 0) {
    memset(xa, 0, sizeof(float) * (size_t)N * (size_t)r);
  } else if (lt_cpu_has_avx512()) {
    xa_avx512(xa, x, A, N, in, r);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, in, 1.0f, x, in, A, in, 0.0f, xa, r);
  }
}

void lt_lora_up(float *y, const float *xa, const float *B, float s, int N, int out, int r) {
  if (N <= 0 || out <= 0 || r <= 0) return;
  if (lt_cpu_has_avx512()) up_avx512(y, xa, B, s, N, out, r);
  else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, r, s, xa, r, B, r, 1.0f, y, out);
}

void lt_lora_up_backward(float *gB, float *dxa, const float *dy, const float *xa, const float *B, float s, int N,
                         int out, int r) {
  if (N <= 0 || r <= 0) return;
  if (out <= 0) {
    if (dxa) memset(dxa, 0, sizeof(float) * (size_t)N * (size_t)r);
  } else if (lt_cpu_has_avx512()) {
    gradT_avx512(gB, dy, xa, s, N, out, r);
    if (dxa) dxa_avx512(dxa, dy, B, s, N, out, r);
  } else {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, N, s, dy, out, xa, r, 1.0f, gB, r);
    if (dxa) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, out, s, dy, out, B, r, 0.0f, dxa, r);
  }
}

void lt_lora_down_backward(float *gA, float *dx, const float *dxa, const float *x, const float *A, int N, int in,
                           int r, int accumulate) {
  if (N <= 0 || in <= 0) return;
  if (r <= 0) {
    if (dx && !accumulate) memset(dx, 0, sizeof(float) * (size_t)N * (size_t)in);
    return;
  }
  if (lt_cpu_has_avx512()) {
    gradT_avx512(gA, dxa, x, 1.0f, N, r, in);
    if (dx) dx_avx512(dx, dxa, A, N, in, r, accumulate);
  } else {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, 1.0f, dxa, r, x, in, 1.0f, gA, in);
    if (dx)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, dxa, r, A, in, accumulate ? 1.0f : 0.0f,
                  dx, in);
  }
}

// ---- the up projection's backward with dy given in bf16 rows (dyb, N x out) ----
// gB (out,r) += s dyb^T xa: vectors along out (16 columns of dy widened per row), one sum per rank q of the chunk,
// rows in order from 0, then a 16 x 16 transpose into gB's rows: each sum takes the products gradT_avx512 takes
// on the widened values, in the same order, so the bits are the same.
LORA_STEP gb16_rows(__m512 acc[16], const uint16_t *dyb, const float *xa, int N, int out, int r, int j0, int q0,
                    __mmask16 jm, int qn) {
  for (int n = 0; n < N; n++) {
    __m512 d = row_load(dyb, (int64_t)n * out + j0, jm, 1);
    const float *xr = xa + (int64_t)n * r + q0;
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++)
      if (q < qn) acc[q] = _mm512_fmadd_ps(_mm512_set1_ps(xr[q]), d, acc[q]);
  }
}

// gB rows j0..j0+jn, ranks q0..q0+qn += s * the tile's sums acc[q] (lane jj: column j0 + jj), by a 16 x 16 transpose
static inline __attribute__((always_inline)) LT_TARGET_AVX512 void gb_store(float *gB, const __m512 acc[16], float s,
                                                                           int r, int j0, int jn, int q0, int qn) {
  __m512i tr[16];
#pragma GCC unroll 16
  for (int q = 0; q < 16; q++) tr[q] = _mm512_castps_si512(acc[q]);
  lt_transpose16x16(tr);  // tr[jj]: column j0 + jj's sums over q
  __mmask16 qm = tail16(qn);
  for (int jj = 0; jj < jn; jj++) {
    float *g = gB + (int64_t)(j0 + jj) * r + q0;
    _mm512_mask_storeu_ps(g, qm, _mm512_fmadd_ps(_mm512_castsi512_ps(tr[jj]), _mm512_set1_ps(s),
                                                  _mm512_maskz_loadu_ps(qm, g)));
  }
}

LT_TARGET_AVX512 static void gradB_avx512_b16(float *gB, const uint16_t *dyb, const float *xa, float s, int N,
                                              int out, int r) {
  int nj = (out + 15) / 16;
#pragma omp parallel for schedule(dynamic, 4) if ((int64_t)N * out * r > (1 << 18))
  for (int t = 0; t < nj; t++) {
    int j0 = 16 * t, jn = LT_MIN(16, out - j0);
    __mmask16 jm = tail16(jn);
    for (int q0 = 0; q0 < r; q0 += 16) {
      int qn = LT_MIN(16, r - q0);
      __m512 acc[16];
#pragma GCC unroll 16
      for (int q = 0; q < 16; q++) acc[q] = _mm512_setzero_ps();
      if (qn == 16) gb16_rows(acc, dyb, xa, N, out, r, j0, q0, jm, 16);
      else gb16_rows(acc, dyb, xa, N, out, r, j0, q0, jm, qn);
      gb_store(gB, acc, s, r, j0, jn, q0, qn);
    }
  }
}

// dxa (N,r) = s dyb B: dxa_avx512's loop on chunks of DXA_CHUNK columns of 8 rows widened into a stack buffer (the
// same sums in the same order)
#define DXA_CHUNK 256
LT_TARGET_AVX512 static void dxa_avx512_b16(float *dxa, const uint16_t *dyb, const float *B, float s, int N, int out,
                                            int r) {
  int nb = (N + 7) / 8;
#pragma omp parallel for schedule(dynamic, 4) if ((int64_t)N * out * r > (1 << 18))
  for (int b = 0; b < nb; b++) {
    int n0 = 8 * b, nn = LT_MIN(8, N - n0);
    float buf[8][DXA_CHUNK];
    for (int q0 = 0; q0 < r; q0 += 16) {
      __mmask16 qm = tail16(r - q0);
      __m512 acc[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) acc[i] = _mm512_setzero_ps();
      for (int c0 = 0; c0 < out; c0 += DXA_CHUNK) {
        int cn = LT_MIN(DXA_CHUNK, out - c0);
        for (int i = 0; i < 8; i++) {
          const uint16_t *src = dyb + (int64_t)(n0 + (i < nn ? i : 0)) * out + c0;
          for (int c = 0; c < cn; c += 16) _mm512_storeu_ps(buf[i] + c, row_load(src, c, tail16(cn - c), 1));
        }
        for (int j = 0; j < cn; j++) {
          __m512 w = _mm512_maskz_loadu_ps(qm, B + (int64_t)(c0 + j) * r + q0);
#pragma GCC unroll 8
          for (int i = 0; i < 8; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(buf[i][j]), w, acc[i]);
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) {
        if (i >= nn) break;
        _mm512_mask_storeu_ps(dxa + (int64_t)(n0 + i) * r + q0, qm, _mm512_mul_ps(acc[i], _mm512_set1_ps(s)));
      }
    }
  }
}

void lt_lora_up_backward_b16(float *gB, float *dxa, const uint16_t *dyb, const float *xa, const float *B, float s,
                             int N, int out, int r) {
  if (N <= 0 || r <= 0) return;
  if (out <= 0) {
    if (dxa) memset(dxa, 0, sizeof(float) * (size_t)N * (size_t)r);
    return;
  }
  if (lt_cpu_has_avx512()) {
    gradB_avx512_b16(gB, dyb, xa, s, N, out, r);
    if (dxa) dxa_avx512_b16(dxa, dyb, B, s, N, out, r);
    return;
  }
  for (int j = 0; j < out; j++)
    for (int q = 0; q < r; q++) {
      float acc = 0.0f;
      for (int n = 0; n < N; n++) acc = fmaf(lt_bf16_to_f32(dyb[(int64_t)n * out + j]), xa[(int64_t)n * r + q], acc);
      gB[(int64_t)j * r + q] = fmaf(acc, s, gB[(int64_t)j * r + q]);
    }
  for (int n = 0; dxa && n < N; n++)
    for (int q = 0; q < r; q++) {
      float acc = 0.0f;
      for (int j = 0; j < out; j++) acc = fmaf(lt_bf16_to_f32(dyb[(int64_t)n * out + j]), B[(int64_t)j * r + q], acc);
      dxa[(int64_t)n * r + q] = acc * s;
    }
}

void lt_lora_xa_b16(float *xa, const uint16_t *x, const float *A, int N, int in, int r) {
  if (N <= 0 || r <= 0) return;
  if (in <= 0) {
    memset(xa, 0, sizeof(float) * (size_t)N * (size_t)r);
  } else if (lt_cpu_has_avx512()) {
    xa_avx512_b16(xa, x, A, N, in, r);
  } else {
    for (int i = 0; i < N; i++)
      for (int q = 0; q < r; q++) {
        float acc = 0.0f;
        for (int k = 0; k < in; k++) acc = fmaf(lt_bf16_to_f32(x[(int64_t)i * in + k]), A[(int64_t)q * in + k], acc);
        xa[(int64_t)i * r + q] = acc;
      }
  }
}

void lt_lora_grad_a_b16(float *gA, const float *dxa, const uint16_t *x, int N, int in, int r) {
  if (N <= 0 || in <= 0 || r <= 0) return;
  if (lt_cpu_has_avx512()) {
    gradT_avx512_b16(gA, dxa, x, N, r, in);
    return;
  }
  for (int q = 0; q < r; q++)
    for (int k = 0; k < in; k++) {
      float acc = 0.0f;
      for (int n = 0; n < N; n++) acc = fmaf(dxa[(int64_t)n * r + q], lt_bf16_to_f32(x[(int64_t)n * in + k]), acc);
      gA[(int64_t)q * in + k] += acc;
    }
}

// ---- gB from bf16 products (lt_lora_grad_b_bf16) ----
#define TARGET_BF16_LORA __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
// lane order that turns (16 values of row a | 16 of row b) into the pairs (a_j, b_j)
#define PAIR16 31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, \
               17, 1, 16, 0

// xp[p * r + q] = (bf16(xa[2p][q]), bf16(xa[2p+1][q])), an odd N's last partner 0
TARGET_BF16_LORA static void xa_pairs(uint32_t *xp, const float *xa, int N, int r) {
  const __m512i pair = _mm512_set_epi16(PAIR16);
#pragma omp parallel for schedule(static) if ((int64_t)N * r >= (1 << 13))
  for (int p = 0; p < (N + 1) / 2; p++)
    for (int q0 = 0; q0 < r; q0 += 16) {
      __mmask16 qm = tail16(r - q0);
      __m512 lo = _mm512_maskz_loadu_ps(qm, xa + (int64_t)(2 * p) * r + q0);
      __m512 hi = 2 * p + 1 < N ? _mm512_maskz_loadu_ps(qm, xa + (int64_t)(2 * p + 1) * r + q0) : _mm512_setzero_ps();
      _mm512_mask_storeu_epi32(xp + (int64_t)p * r + q0, qm,
                               _mm512_permutexvar_epi16(pair, (__m512i)_mm512_cvtne2ps_pbh(hi, lo)));
    }
}

// acc[q] += the long operand's pairs of rows (L: N rows of len bf16) at columns j0.. (mask jm) times xp's pair q,
// q < qn, over all pairs
static inline __attribute__((always_inline)) TARGET_BF16_LORA void gb_pairs(__m512 acc[16], const uint16_t *L,
                                                                           const uint32_t *xp, int N, int len, int r,
                                                                           int j0, int q0, __mmask16 jm, int qn) {
  const __m512i pair = _mm512_set_epi16(PAIR16);
  for (int p = 0; p < (N + 1) / 2; p++) {
    __m256i a = _mm256_maskz_loadu_epi16(jm, L + (int64_t)(2 * p) * len + j0);
    __m256i b = 2 * p + 1 < N ? _mm256_maskz_loadu_epi16(jm, L + (int64_t)(2 * p + 1) * len + j0)
                              : _mm256_setzero_si256();
    __m512bh d = (__m512bh)_mm512_permutexvar_epi16(pair, _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1));
    const uint32_t *xr = xp + (int64_t)p * r + q0;
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++)
      if (q < qn) acc[q] = _mm512_dpbf16_ps(acc[q], d, (__m512bh)_mm512_set1_epi32((int)xr[q]));
  }
}

// gB (out,r) += s L^T xp (L = dy, out = len; a 16 x 16 transpose per tile) or gA (r,in) += xp^T L (L = x, in = len;
// rank q's sums of 16 columns of x added straight into gA's row q), tile by tile of 16 columns of L over all pairs
// of rows.
TARGET_BF16_LORA static void grad_pairs_bf16(float *g, const uint16_t *L, const uint32_t *xp, float s, int N, int len,
                                             int r, int ga) {
  int nj = (len + 15) / 16;
  // (static: each thread's columns in one contiguous range, which streams better than dynamic chunks)
#pragma omp parallel for schedule(static) if ((int64_t)N * len * r > (1 << 18))
  for (int t = 0; t < nj; t++) {
    int j0 = 16 * t, jn = LT_MIN(16, len - j0);
    __mmask16 jm = tail16(jn);
    for (int q0 = 0; q0 < r; q0 += 16) {
      int qn = LT_MIN(16, r - q0);
      __m512 acc[16];
#pragma GCC unroll 16
      for (int q = 0; q < 16; q++) acc[q] = _mm512_setzero_ps();
      if (qn == 16) gb_pairs(acc, L, xp, N, len, r, j0, q0, jm, 16);
      else gb_pairs(acc, L, xp, N, len, r, j0, q0, jm, qn);
      if (!ga) {
        gb_store(g, acc, s, r, j0, jn, q0, qn);
        continue;
      }
#pragma GCC unroll 16
      for (int q = 0; q < 16; q++) {  // constant indices keep the sums in registers
        if (q >= qn) break;
        float *gr = g + (int64_t)(q0 + q) * len + j0;
        _mm512_mask_storeu_ps(gr, jm, _mm512_add_ps(_mm512_maskz_loadu_ps(jm, gr), acc[q]));
      }
    }
  }
}

int lt_lora_grad_b_bf16(float *gB, const uint16_t *dyb, const float *xa, float s, int N, int out, int r, uint32_t *xp,
                        size_t xp_bytes) {
  if (!lt_cpu_has_avx512bf16() || !xp || (size_t)((N + 1) / 2) * (size_t)r * sizeof(uint32_t) > xp_bytes) return -1;
  if (N <= 0 || r <= 0 || out <= 0) return 0;
  xa_pairs(xp, xa, N, r);
  grad_pairs_bf16(gB, dyb, xp, s, N, out, r, 0);
  return 0;
}

int lt_lora_grad_a_bf16(float *gA, const uint16_t *xb, const float *dxa, int N, int in, int r, uint32_t *xp,
                        size_t xp_bytes) {
  if (!lt_cpu_has_avx512bf16() || !xp || (size_t)((N + 1) / 2) * (size_t)r * sizeof(uint32_t) > xp_bytes) return -1;
  if (N <= 0 || r <= 0 || in <= 0) return 0;
  xa_pairs(xp, dxa, N, r);
  grad_pairs_bf16(gA, xb, xp, 1.0f, N, in, r, 1);
  return 0;
}
