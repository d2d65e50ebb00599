// bf16 GEMM: f32 activations times bf16 weights, f32 accumulation (as PyTorch's bf16 autocast computes).
// AVX512-BF16 micro-kernel (vdpbf16ps) when the CPU has it, detected at run time; otherwise the bf16 panels
// are widened to f32 and multiplied with OpenBLAS sgemm.
#ifndef LT_GEMM_H
#define LT_GEMM_H
#include <stddef.h>
#include <stdint.h>

// 1 when the AVX512-BF16 path is in use (the CPU supports it and LMTUNE_NO_AVX512BF16 is not set).
int lt_cpu_has_avx512bf16(void);

// Scratch for operands up to M x K elements (M * (K rounded up to even) <= max_mk) on up to `threads` threads;
// callers allocate
// lt_gemm_bf16_scratch(...) bytes once, outside the step loop.
typedef struct lt_gemm_scratch {
  void *buf;
  int64_t max_mk;
  int threads;
} lt_gemm_scratch;
size_t lt_gemm_bf16_scratch(int64_t max_mk, int threads);

// dst (n) = src (n) rounded to bf16 (nearest even, NaN kept), multi-threaded for large n.
void lt_f32_to_bf16_n(uint16_t *dst, const float *src, int64_t n);
// The same on the calling thread, no OpenMP (for short rows inside parallel regions); AVX512-BF16 only.
void lt_f32_to_bf16_st(uint16_t *dst, const float *src, int64_t n);

// NT: y (M,N) = x (M,K) @ w^T with w (N,K) bf16 row-major (a linear layer's forward); y += ... if accumulate.
void lt_gemm_bf16_nt(float *y, const float *x, const uint16_t *w, int M, int N, int K, int accumulate,
                     const lt_gemm_scratch *s);
// NN: y (M,N) = x (M,K) @ w with w (K,N) bf16 row-major (a linear layer's input gradient dX = dY W).
void lt_gemm_bf16_nn(float *y, const float *x, const uint16_t *w, int M, int N, int K, int accumulate,
                     const lt_gemm_scratch *s);

#define LT_GEMM_MULTI_MAX 4
// What a product adds to its finished output while the output is in registers (a linear layer's bias and LoRA
// term): y[i][j] += bias[j], then y[i][j] += xa[i][q] * bt[q * ldb + j] for q = 0..r-1 in that order (the order
// of separate passes doing the same, so the values are equal).
typedef struct lt_gemm_epi {
  const float *bias;  // (N) or NULL
  const float *xa;    // (M, r) or NULL
  const float *bt;    // (r, ldb)
  int r;
  int64_t ldb;
  uint16_t *y16;  // or NULL: the finished output goes here rounded to bf16 (nearest even; the instruction's
                  // denormal handling on the AVX512-BF16 path), (M, N) row-major, instead of to y (which a product
                  // with K beyond one reduction block still uses for its partial sums)
  // or, instead of xa and bt (xa NULL): the low-rank term in bf16 pairs, c += sum over q < r2 of the pair products
  // xa2[row0 + i][q] . bt2[q][col0 + j] (vdpbf16ps, pairs q in order), as lt_gemm_bf16_lora_add adds it
  const uint32_t *xa2;  // (M, r2) bf16 pairs along the rank
  const uint32_t *bt2;  // (r2, ldb) bf16 pairs along the rank
  int r2;
} lt_gemm_epi;
typedef struct lt_gemm_nt_out {
  float *y;
  const uint16_t *w;
  int N;
  const uint32_t *pk;       // w pre-packed by lt_bf16_prepack (same nn), or NULL: packed panel by panel on the fly
  const lt_gemm_epi *epi;   // or NULL
  const uint32_t *pkt;      // NT only, when pk is NULL: w's NN pre-packed copy (lt_bf16_prepack(pkt, w, K, N, 1));
                            // the NT panels are built from it instead of from w (which may then be paged out)
} lt_gemm_nt_out;
// y (M, N, row stride ldy) (+)= x2 (M, r2 pairs) . w2 (r2 pairs, N, row stride ldw): the low-rank term of
// lt_gemm_epi.xa2 as a separate pass over a finished y (the same instructions in the same order as the epilogue, so
// the same bits); y is overwritten (the sums start from 0) when first. AVX512-BF16 only (a no-op without).
void lt_gemm_bf16_lora_add(float *y, int64_t ldy, const uint32_t *x2, const uint32_t *w2, int64_t ldw, int M, int N,
                           int r2, int first);
// y (M, r) = s * x2 (M rows of kh bf16 pairs, row stride ldx) . w2 (kh pairs, r): a skinny product (LoRA's xa and
// dxa: r = the rank, kh = half the feature count) in f32 sums of vdpbf16ps, each row summed in pair order by one
// thread. Returns -1 (y untouched) without AVX512-BF16 or for r > 64, else 0.
int lt_bf16_skinny(float *y, const uint32_t *x2, int64_t ldx, const uint32_t *w2, int M, int kh, int r, float s);
// dst (M, r2 = (r + 1) / 2) = x (M, r) rounded to bf16 in pairs along r (the odd r's last partner 0); x's values are
// rounded in place too (nearest even), so that f32 kernels reading x see the bf16 values
void lt_bf16_pairs_rows(uint32_t *dst, float *x, int M, int r);
// dst (r2, cols) = pairs of rows (2q, 2q+1) of s * w (r, cols) rounded to bf16 (trans = 0), or of columns
// (2q, 2q+1) of s * w (cols, r) (trans = 1); r2 = (r + 1) / 2, the odd r's last partner 0
void lt_bf16_pairs_rank(uint32_t *dst, const float *w, int r, int cols, float s, int trans);
// 1 when a product of M rows and reduction K on scratch s with an epilogue's y16 writes y16 alone and never
// touches y (the AVX512-BF16 kernel path, more than 4 rows, K within one reduction block), so y16 may share y's
// storage
int lt_gemm_bf16_y16_only(const lt_gemm_scratch *s, int M, int K);
// Several products of one x (e.g. the q, k, v projections): y_i (M, N_i) (+)= x (M,K) @ w_i^T with w_i (N_i, K)
// bf16 (nn = 0) or x @ w_i with w_i (K, N_i) (nn = 1), each with its optional pre-packed weight and epilogue; x is
// converted once and the column panels of all outputs share one parallel loop.
void lt_gemm_bf16_ex(const lt_gemm_nt_out *o, int n, const float *x, int M, int K, int accumulate, int nn,
                     const lt_gemm_scratch *s);
// The same on x's bf16 rows already made (act: M rows of (K + 1) / 2 pairs, an odd K's last pair padded with 0),
// anywhere in memory; AVX512-BF16 only, with M * 2 * ((K + 1) / 2) <= the scratch's max_mk (else returns 0, nothing
// done); 1 when done.
int lt_gemm_bf16_ex_act(const lt_gemm_nt_out *o, int n, const uint32_t *act, int M, int K, int accumulate, int nn,
                        const lt_gemm_scratch *s);

// Pre-packed weights (a frozen weight used by many products): every panel of w in the order the kernel reads
// them, so that no product packs it again. NT (nn = 0): w (N,K) for y = x w^T; NN (nn = 1): w (K,N) for y = x w.
// lt_bf16_prepack_bytes(N, K) bytes, 64-byte aligned; about 2 N K bytes (N rounded up to 64 columns). Without
// AVX512-BF16 the products do not read packed copies and lt_bf16_prepack leaves dst unwritten.
size_t lt_bf16_prepack_bytes(int N, int K);
void lt_bf16_prepack(uint32_t *dst, const uint16_t *w, int N, int K, int nn);
// Row `row` of w (N, K) read back from its NT pre-packed copy pk (lt_bf16_prepack(pk, w, N, K, 0)), widened to f32
// into out (K values): the same values as w's row, without touching w (an embedding lookup on a packed LM head).
void lt_bf16_prepacked_row(float *out, const uint32_t *pk, int K, int row);
// y (M,N) (+)= x (M,K) times w^T (nn = 0) or w (nn = 1), reading the panels from pk (lt_bf16_prepack of the same w
// and nn) when pk is not NULL and the AVX512-BF16 path is in use; otherwise as lt_gemm_bf16_nt / _nn.
void lt_gemm_bf16_pk(float *y, const float *x, const uint16_t *w, const uint32_t *pk, int M, int N, int K,
                     int accumulate, int nn, const lt_gemm_scratch *s);
// A producer may write the bf16 copy of x itself: lt_gemm_bf16_act gives the scratch rows (row i at 2 * ((K + 1) / 2)
// * i values, an odd K's last pair padded with 0), or NULL when the bf16 path cannot take (M, K); then
// lt_gemm_bf16_pk_act runs the product on them as lt_gemm_bf16_pk would on x (the same values when the rows hold
// x rounded as lt_f32_to_bf16_n rounds).
uint16_t *lt_gemm_bf16_act(const lt_gemm_scratch *s, int M, int K);
void lt_gemm_bf16_pk_act(float *y, const uint16_t *w, const uint32_t *pk, int M, int N, int K, int accumulate, int nn,
                         const lt_gemm_scratch *s);

// A weight gradient from bf16 products with f32 accumulation, as autocast's bf16 matmul gives it: dw (out, in) +=
// dy^T x for dy (N, out), x (N, in) f32. dy^T goes into the GEMM's input rows (pairs along N), x in bf16 into xb
// (N * in values within xb_bytes; xb may be dy's own storage: dy is read first), then products over blocks of rows
// of dw. Returns 1, or 0 (nothing done) without AVX512-BF16 or when the scratch cannot take out x N or xb is too
// small: the caller then uses sgemm.
int lt_gemm_bf16_wgrad(float *dw, const float *dy, const float *x, int N, int out, int in, uint16_t *xb,
                       size_t xb_bytes, const lt_gemm_scratch *s);

// Single-threaded, strided, on caller scratch (for tiles inside a parallel region, e.g. attention), AVX512-BF16
// only (callers check lt_cpu_has_avx512bf16()): y (M,N; row stride ldy) (+)= x (M,K; ldx, f32, rounded to bf16)
// times w^T with w (N,K; ldw) bf16 (nn = 0), or times w with w (K,N; ldw) bf16 (nn = 1).
// scratch: lt_gemm_bf16_st_scratch(M, K) bytes, any alignment.
size_t lt_gemm_bf16_st_scratch(int M, int K);
void lt_gemm_bf16_st(float *y, int ldy, const float *x, int ldx, const uint16_t *w, int ldw, int M, int N, int K,
                     int accumulate, int nn, void *scratch);

// Building blocks for fused kernels on pre-packed operands (AVX512-BF16 only). A bf16 "pair" is a uint32 holding
// two bf16 values adjacent along the reduction dimension (the lower half first). A panel of up to LT_BF16_NR columns
// holds kh pairs per column: p[q * LT_BF16_NR + j] = pair q of column j (64-byte aligned, unused columns zero).
#define LT_BF16_NR 64
// y (M, nv; row stride ldy) (+)= a (M rows of kh pairs, row stride lda pairs) . panel (kh pairs x nv columns)
void lt_bf16_panel_mm(float *y, int64_t ldy, const uint32_t *a, int64_t lda, const uint32_t *panel, int M, int kh,
                      int nv, int accumulate);
// panel of columns j0..j0+nv of w^T with w (N, ldw) bf16 rows (pairs along a row), reduction elements k0..k0+kc
void lt_bf16_pack_nt(uint32_t *panel, const uint16_t *w, int ldw, int k0, int kc, int j0, int nv);
// panel of columns j0..j0+nv of w (K, ldw) bf16 rows (pairs across two rows), reduction rows k0..k0+kc
void lt_bf16_pack_nn(uint32_t *panel, const uint16_t *w, int ldw, int k0, int kc, int j0, int nv);

#endif
