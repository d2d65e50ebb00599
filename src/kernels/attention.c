// Causal grouped-query self-attention for one sequence (flash-attention style backward: probabilities are
// recomputed from the stored log-sum-exp, dS = P * (dP - rowsum(dO * O))).
//
// Work is split into tiles of up to LT_ATT_BQ query rows (LT_ATT_BQB in the packed bf16 backward). A tile of rows
// [t0, t0+nt) only multiplies the keys it can see ([first key of row t0's window, p0+t0+nt)), so causal attention
// costs about half of T x L, and the score tile is a small (nt x nk) sgemm into a per-thread slice of scratch.
//
// Scratch (lt_attention_scratch[_ex]): omp_get_max_threads() slots of about 2 * min(T, LT_ATT_BQ) * L floats, one
// slot per thread of the team (plus, for bf16 products, transposes and GEMM scratch per slot and bf16 copies of
// q, k, v and dout before the slots). Size it with the same OpenMP thread setting as the kernels (the kernels
// never start more threads than omp_get_max_threads() at their call).
//
// bf16 products (the _ex functions with bf16 = 1, AVX512-BF16 only, otherwise the f32 path): q (scaled by
// 1/sqrt(D)), k, v, dout, the probabilities and dS are rounded to bf16 and multiplied with f32 accumulation, as
// PyTorch's bf16 autocast attention does; softmax, lse and row sums stay f32.
//
// Forward: parallel over (head, row tile). Backward, deterministic in both modes:
//  - KV >= threads: parallel over kv heads, each thread runs its group's heads and tiles in order (5 sgemms/tile);
//  - otherwise two passes for more parallelism: dq over (head, row tile), then dk/dv over (kv head, key tile of
//    LT_ATT_BK keys), recomputing the probabilities (7 sgemms per tile pair instead of 5).
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/core.h"
#include "kernels/kernels.h"
#include "kernels/simd.h"
#include "kernels/vexp.h"

#define LT_ATT_BQ 64    // query rows per tile
#define LT_ATT_BQB 128  // query rows per tile of the packed backward: its dK^T, dV^T products sum over them
#define LT_ATT_BK 64  // keys per tile in the key-parallel dk/dv pass
#define TARGET_BF16_ATT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

typedef struct {
  const float *q, *k, *v;
  const uint8_t *kmask;
  int T, p0, H, KV, D, window, G, HD, KVD, L;
  float scale;
  int avx;  // AVX-512 exp for the probability rows
  // bf16 products (AVX512-BF16): bf16 copies per kv head (KV, L, D) of k, v and per head (H, T, D) of q, dout
  int bf;
  uint16_t *kb, *vb, *qb, *dob;
  // backward on pre-packed panels (bf16 products, even D, one thread per kv head): per kv head, K and V as NT
  // panels of 64 keys (pairs along d) and K as NN panels of 64 dims (pairs along keys); per head, bf16 rows of
  // scale * q, and q and dout transposed into pairs along rows (D x T2); f32 dK^T, dV^T accumulators (D x L).
  int pk;
  uint32_t *knt, *vnt, *knn, *vnn, *qs, *qT, *doT;
  float *dkT, *dvT, *di;  // di (H, T): rowsum(dO * O) per head and row
} att_ctx;

// A thread's scratch: A, B (bq x L), and for bf16 products Tb (L x bq, transposes), qt (bq x D, a scaled query
// tile) and the GEMM's own scratch.
typedef struct {
  float *A, *B, *Tb, *qt;
  void *st;
  uint32_t *pp, *dsp, *dsr;  // packed mode: row-pair panels of P and dS, dS rows in bf16
} att_slot;

typedef struct {
  float *dq, *dk, *dv;
  const float *dout, *out, *lse;
} att_grads;

static inline int att_min(int a, int b) { return a < b ? a : b; }

// First key position visible to query row t (the window's left edge, or 0).
static inline int key_lo(const att_ctx *c, int t) {
  int lo = c->window > 0 ? c->p0 + t - c->window + 1 : 0;
  return lo > 0 ? lo : 0;
}

static void att_init(att_ctx *c, const float *q, const float *k, const float *v, const uint8_t *kmask, int T, int p0,
                     int H, int KV, int D, int window) {
  c->q = q, c->k = k, c->v = v, c->kmask = kmask;
  int all = kmask != NULL;  // every key visible: the unmasked loops (the same values)
  for (int j = 0; all && j < p0 + T; j++) all = kmask[j] != 0;
  if (all) c->kmask = NULL;
  c->T = T, c->p0 = p0, c->H = H, c->KV = KV, c->D = D, c->window = window;
  c->G = H / KV, c->HD = H * D, c->KVD = KV * D, c->L = p0 + T;
  c->bf = c->pk = 0;
  c->kb = c->vb = c->qb = c->dob = NULL;
  c->knt = c->vnt = c->knn = c->vnn = c->qs = c->qT = c->doT = NULL;
  c->dkT = c->dvT = c->di = NULL;
  c->scale = (float)(1.0 / sqrt((double)D));  // head_dim ** -0.5 as Python computes it
  c->avx = lt_cpu_has_avx512();
}

// Visible keys of [j, j+16) within [j, jhi] (kmask permitting), as a lane mask.
static inline LT_TARGET_AVX512 __mmask16 vis16(const uint8_t *km, int j, int jhi) {
  int n = jhi - j + 1;
  __mmask16 m = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
  if (km) m &= _mm_test_epi8_mask(_mm_maskz_loadu_epi8(m, km + j), _mm_set1_epi8(-1));
  return m;
}

// s[jlo..jhi] -> exp(s - sub) where visible, 0 elsewhere in that range; returns the f32 sum of the row's values.
static LT_TARGET_AVX512 float exp_row16(float *s, const uint8_t *km, int jlo, int jhi, float sub) {
  __m512 acc = _mm512_setzero_ps(), vs = _mm512_set1_ps(sub);
  int j0 = jlo;
  if (!km)  // whole vectors without masks (the same values and sums as the masked loop)
    for (; j0 + 15 <= jhi; j0 += 16) {
      __m512 e = lt_exp512_softmax(_mm512_sub_ps(_mm512_loadu_ps(s + j0), vs));
      _mm512_storeu_ps(s + j0, e);
      acc = _mm512_add_ps(acc, e);
    }
  for (int j = j0; j <= jhi; j += 16) {
    __mmask16 in = jhi - j + 1 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (jhi - j + 1)) - 1);
    __mmask16 v = vis16(km, j, jhi);
    __m512 e = _mm512_maskz_mov_ps(v, lt_exp512_softmax(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, s + j), vs)));
    _mm512_mask_storeu_ps(s + j, in, e);
    acc = _mm512_add_ps(acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}

// sum of a[d] * b[d] over d < n in double, eight lanes at a time (then the lanes in a fixed order)
static LT_TARGET_AVX512 double dot_row_pd(const float *a, const float *b, int n) {
  __m512d acc = _mm512_setzero_pd();
  for (int d = 0; d < n; d += 8) {
    __mmask8 m = n - d >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (n - d)) - 1);
    __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, a + d)), y = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, b + d));
    acc = _mm512_fmadd_pd(x, y, acc);
  }
  return _mm512_reduce_add_pd(acc);
}

// rowsum(dO * O) of one row, in double
static double att_di(const att_ctx *c, const float *dor, const float *orow) {
  if (c->avx) return dot_row_pd(dor, orow, c->D);
  double di = 0.0;
  for (int d = 0; d < c->D; d++) di += (double)dor[d] * orow[d];
  return di;
}

// s[jlo..jhi] *= k
static LT_TARGET_AVX512 void scale_row16(float *s, int jlo, int jhi, float k) {
  __m512 vk = _mm512_set1_ps(k);
  for (int j = jlo; j <= jhi; j += 16) {
    __mmask16 in = jhi - j + 1 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (jhi - j + 1)) - 1);
    _mm512_mask_storeu_ps(s + j, in, _mm512_mul_ps(_mm512_maskz_loadu_ps(in, s + j), vk));
  }
}

// max of the visible s[jlo..jhi] (-inf when none)
static LT_TARGET_AVX512 float max_row16(const float *s, const uint8_t *km, int jlo, int jhi) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int j = jlo; j <= jhi; j += 16) {
    __mmask16 v = vis16(km, j, jhi);
    mx = _mm512_mask_max_ps(mx, v, mx, _mm512_maskz_loadu_ps(v, s + j));
  }
  return _mm512_reduce_max_ps(mx);
}

static inline int att_bq(int T) { return T < LT_ATT_BQ ? T : LT_ATT_BQ; }
static inline int att_bqb(int T) { return T < LT_ATT_BQB ? T : LT_ATT_BQB; }
// the largest tile either pass uses: the slots' size
static inline int att_bq_slot(int T) { return att_bq(T) > att_bqb(T) ? att_bq(T) : att_bqb(T); }
static inline int64_t up16(int64_t n) { return (n + 15) & ~(int64_t)15; }  // floats, to 64 bytes

// GEMM scratch for every product of a tile: (rows x reduction) = (bq x D) scores and dP, (bq x L) P V and dS K,
// (L x bq) P^T dO and dS^T Q
static int64_t st_floats(int T, int L, int D) {
  int bq = att_bq_slot(T);
  size_t a = lt_gemm_bf16_st_scratch(bq, L), b = lt_gemm_bf16_st_scratch(L, bq), d = lt_gemm_bf16_st_scratch(bq, D);
  size_t m = a > b ? a : b;
  return up16((int64_t)((m > d ? m : d) + 3) / 4);
}

static inline int64_t half_up(int64_t n) { return (n + 1) / 2; }
static inline int64_t nblk64(int64_t n) { return (n + 63) / 64; }
static inline int packed_ok(int D, int bf) { return bf && D % 2 == 0; }

// packed mode, floats per thread: P and dS row-pair panels, dS rows in bf16 (plus alignment slack)
static int64_t slot_packed(int T, int L) {
  int64_t bq = att_bq_slot(T);
  return 16 + 2 * up16(half_up(bq) * nblk64(L) * 64) + up16(bq * half_up(L));
}

// packed mode, shared floats (plus alignment slack)
static int64_t shared_packed(int T, int L, int H, int KV, int D) {
  int64_t Dh = D / 2, L2 = half_up(L), T2 = half_up(T);
  return 16 + 2 * up16((int64_t)KV * nblk64(L) * Dh * 64) + 2 * up16((int64_t)KV * nblk64(D) * L2 * 64) +
         up16((int64_t)H * T * Dh) + 2 * up16((int64_t)H * D * T2) + 2 * up16((int64_t)KV * D * L) +
         up16((int64_t)H * T);
}

// floats per thread
static int64_t slot_floats(int T, int L, int D, int bf) {
  int64_t bq = att_bq_slot(T), n = 2 * up16(bq * L);
  if (bf) n += up16((int64_t)L * bq) + up16(bq * D) + st_floats(T, L, D);
  if (packed_ok(D, bf)) n += slot_packed(T, L);
  return n;
}

// floats before the slots: the bf16 copies of k, v (KV, L, D) and q, dout (H, T, D), and the packed operands
static int64_t att_shared(int T, int L, int H, int KV, int D, int bf) {
  int64_t n = bf ? 2 * up16(((int64_t)KV * L * D + 1) / 2) + 2 * up16(((int64_t)H * T * D + 1) / 2) : 0;
  if (packed_ok(D, bf)) n += shared_packed(T, L, H, KV, D);
  return n;
}

int64_t lt_attention_scratch_ex(int T, int L, int H, int KV, int D, int bf16) {
  if (T <= 0 || L <= 0) return 0;
  return att_shared(T, L, H, KV, D, bf16) + (int64_t)omp_get_max_threads() * slot_floats(T, L, D, bf16);
}

static float *align64f(float *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

int64_t lt_attention_scratch(int T, int L) { return lt_attention_scratch_ex(T, L, 1, 1, 1, 0); }

static att_slot slot_of(const att_ctx *c, float *scratch, int tid) {
  int bq = att_bq_slot(c->T);
  float *s = scratch + att_shared(c->T, c->L, c->H, c->KV, c->D, c->bf) + tid * slot_floats(c->T, c->L, c->D, c->bf);
  att_slot sl = {s, s + up16((int64_t)bq * c->L), NULL, NULL, NULL, NULL, NULL, NULL};
  if (c->bf) {
    sl.Tb = sl.B + up16((int64_t)bq * c->L);
    sl.qt = sl.Tb + up16((int64_t)c->L * bq);
    sl.st = sl.qt + up16((int64_t)bq * c->D);
  }
  if (packed_ok(c->D, c->bf)) {
    float *p = align64f((float *)sl.st + st_floats(c->T, c->L, c->D));
    int64_t pan = up16(half_up(bq) * nblk64(c->L) * 64);
    sl.pp = (uint32_t *)p;
    sl.dsp = (uint32_t *)(p + pan);
    sl.dsr = (uint32_t *)(p + 2 * pan);
  }
  return sl;
}

// bf16 copies: dst (n_heads, rows, D) from src (rows, n_heads * D); AVX512-BF16 only
static void to_heads_bf16(uint16_t *dst, const float *src, int rows, int nh, int D) {
#pragma omp parallel for schedule(dynamic, 16) if ((int64_t)rows * nh * D > (1 << 15))
  for (int t = 0; t < rows; t++)
    for (int h = 0; h < nh; h++)
      lt_f32_to_bf16_st(dst + ((int64_t)h * rows + t) * D, src + ((int64_t)t * nh + h) * D, D);
}

// Turn on bf16 products (when the CPU has them): the shared bf16 copies of k and v, and for backward (dout given)
// q and dout (the packed backward passes NULL: rows_setup_bwd makes the rows it reads).
static void att_bf16_setup(att_ctx *c, float *scratch, const float *dout) {
  if (!lt_cpu_has_avx512bf16()) return;
  c->bf = 1;
  int64_t kvh = up16(((int64_t)c->KV * c->L * c->D + 1) / 2), qh = up16(((int64_t)c->H * c->T * c->D + 1) / 2);
  c->kb = (uint16_t *)scratch;
  c->vb = (uint16_t *)(scratch + kvh);
  c->qb = (uint16_t *)(scratch + 2 * kvh);
  c->dob = (uint16_t *)(scratch + 2 * kvh + qh);
  to_heads_bf16(c->kb, c->k, c->L, c->KV, c->D);
  to_heads_bf16(c->vb, c->v, c->L, c->KV, c->D);
  if (dout) {
    to_heads_bf16(c->qb, c->q, c->T, c->H, c->D);
    to_heads_bf16(c->dob, dout, c->T, c->H, c->D);
  }
}

// S (nt x nk, ld nk) = scale * Q[t0:t0+nt, head h] K[ks:ks+nk, kv head of h]^T
static void att_scores(const att_ctx *c, const att_slot *sl, float *S, int h, int t0, int nt, int ks, int nk) {
  int kh = h / c->G;
  if (c->bf) {  // bf16(scale * q) . bf16(k)^T
    for (int r = 0; r < nt; r++)
      for (int d = 0; d < c->D; d++) sl->qt[r * c->D + d] = c->scale * c->q[(int64_t)(t0 + r) * c->HD + h * c->D + d];
    lt_gemm_bf16_st(S, nk, sl->qt, c->D, c->kb + ((int64_t)kh * c->L + ks) * c->D, c->D, nt, nk, c->D, 0, 0, sl->st);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nk, c->D, c->scale, c->q + (int64_t)t0 * c->HD + h * c->D,
              c->HD, c->k + (int64_t)ks * c->KVD + kh * c->D, c->KVD, 0.0f, S, nk);
}

// In place: scores of rows [t0, t0+nt) x keys [ks, ks+nk) (row stride ld) -> probabilities exp(s - lse), 0 where
// not visible.
static void att_probs_from_lse(const att_ctx *c, float *S, int64_t ld, const float *lse_h, int t0, int nt, int ks,
                               int nk) {
  for (int r = 0; r < nt; r++) {
    int t = t0 + r;
    float *s = S + (int64_t)r * ld;
    float l = lse_h[t];
    // visible columns jlo..jhi (clipped to the tile), kmask permitting
    int jlo = key_lo(c, t) - ks, jhi = c->p0 + t - ks;
    if (jlo < 0) jlo = 0;
    if (jhi > nk - 1) jhi = nk - 1;
    if (l == -INFINITY) jhi = jlo - 1;  // row with no visible key
    for (int j = 0; j < jlo && j < nk; j++) s[j] = 0.0f;
    if (c->avx && jhi >= jlo) exp_row16(s, c->kmask ? c->kmask + ks : NULL, jlo, jhi, l);
    else
      for (int j = jlo; j <= jhi; j++) s[j] = (!c->kmask || c->kmask[ks + j]) ? expf(s[j] - l) : 0.0f;
    for (int j = jhi + 1 > 0 ? jhi + 1 : 0; j < nk; j++) s[j] = 0.0f;
  }
}

// Tb (nk x nt) = A (nt x nk)^T
static void transpose(float *Tb, const float *A, int nt, int nk) {
  for (int r = 0; r < nt; r++)
    for (int j = 0; j < nk; j++) Tb[(int64_t)j * nt + r] = A[(int64_t)r * nk + j];
}

// One backward tile: rows [t0, t0+nt) of head h against keys [ks, ks+nk), in the slot's A and B (nt*nk each).
static void att_bwd_tile(const att_ctx *c, const att_grads *g, const att_slot *sl, int h, int t0, int nt, int ks,
                         int nk, int want_dq, int want_dk, int want_dv) {
  int kh = h / c->G, D = c->D;
  float *A = sl->A, *B = sl->B;
  const float *dO = g->dout + (int64_t)t0 * c->HD + h * D;
  const float *Kb = c->k + (int64_t)ks * c->KVD + kh * D, *Vb = c->v + (int64_t)ks * c->KVD + kh * D;
  const uint16_t *kb = c->bf ? c->kb + ((int64_t)kh * c->L + ks) * D : NULL;
  const uint16_t *vb = c->bf ? c->vb + ((int64_t)kh * c->L + ks) * D : NULL;
  float *dv = g->dv + (int64_t)ks * c->KVD + kh * D, *dk = g->dk + (int64_t)ks * c->KVD + kh * D;
  float *dq = g->dq + (int64_t)t0 * c->HD + h * D;
  att_scores(c, sl, A, h, t0, nt, ks, nk);
  att_probs_from_lse(c, A, nk, g->lse + (int64_t)h * c->T, t0, nt, ks, nk);
  if (want_dv) {  // dV[ks:ks+nk] += P^T dO
    if (c->bf) {
      transpose(sl->Tb, A, nt, nk);
      lt_gemm_bf16_st(dv, c->KVD, sl->Tb, nt, c->dob + ((int64_t)h * c->T + t0) * D, D, nk, D, nt, 1, 1, sl->st);
    } else {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nt, 1.0f, A, nk, dO, c->HD, 1.0f, dv, c->KVD);
    }
  }
  if (!want_dq && !want_dk) return;
  // dP = dO V^T, then dS = P * (dP - rowsum(dO * O)) into A (times the score scale for bf16 products, which
  // have no alpha).
  if (c->bf) lt_gemm_bf16_st(B, nk, dO, c->HD, vb, D, nt, nk, D, 0, 0, sl->st);
  else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nk, D, 1.0f, dO, c->HD, Vb, c->KVD, 0.0f, B, nk);
  float post = c->bf ? c->scale : 1.0f;
  for (int r = 0; r < nt; r++) {
    const float *dor = dO + (int64_t)r * c->HD, *orow = g->out + (int64_t)(t0 + r) * c->HD + h * D;
    float dif = (float)att_di(c, dor, orow);
    float *a = A + (int64_t)r * nk;
    const float *b = B + (int64_t)r * nk;
    for (int j = 0; j < nk; j++) a[j] = a[j] * (b[j] - dif) * post;
  }
  if (want_dq) {  // dQ += scale * dS K
    if (c->bf) lt_gemm_bf16_st(dq, c->HD, A, nk, kb, D, nt, D, nk, 1, 1, sl->st);
    else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, D, nk, c->scale, A, nk, Kb, c->KVD, 1.0f, dq, c->HD);
  }
  if (want_dk) {  // dK[ks:ks+nk] += scale * dS^T Q
    if (c->bf) {
      transpose(sl->Tb, A, nt, nk);
      lt_gemm_bf16_st(dk, c->KVD, sl->Tb, nt, c->qb + ((int64_t)h * c->T + t0) * D, D, nk, D, nt, 1, 1, sl->st);
    } else {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nt, c->scale, A, nk,
                  c->q + (int64_t)t0 * c->HD + h * D, c->HD, 1.0f, dk, c->KVD);
    }
  }
}

// ---- backward on pre-packed bf16 panels ----
// dst (T, D) = bf16(scale * src (T rows of D, row stride lds)), rounded as lt_f32_to_bf16 (nearest even)
TARGET_BF16_ATT static void scaled_rows_bf16(uint16_t *dst, const float *src, int64_t lds, int T, int D, float scale) {
  __m512 vs = _mm512_set1_ps(scale);
  for (int t = 0; t < T; t++) {
    const float *x = src + (int64_t)t * lds;
    uint16_t *o = dst + (int64_t)t * D;
    for (int d = 0; d < D; d += 16) {
      __mmask16 m = D - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (D - d)) - 1);
      __m256bh v = _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + d), vs));
      _mm256_mask_storeu_epi16(o + d, m, (__m256i)v);
    }
  }
}

// r[ii] = (bf16(src row t0 + 2ii), bf16(src row t0 + 2ii + 1)) for 16 dims (mask dm) as pairs, rows t >= T as 0;
// the rows bf16(k * src) (scaled) or bf16(src) into rows (row stride ldr). All in registers (constant indices).
static inline __attribute__((always_inline)) TARGET_BF16_ATT void pair_rows16(__m512i r[16], const float *src,
                                                                             int64_t lds, int t0, int T, __mmask16 dm,
                                                                             uint16_t *rows, int64_t ldr, __m512 k,
                                                                             int scaled) {
#pragma GCC unroll 16
  for (int ii = 0; ii < 16; ii++) {
    __m512i v = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int e = 0; e < 2; e++) {
      int64_t t = t0 + 2 * ii + e;
      if (t >= T) break;
      __m512 x = _mm512_maskz_loadu_ps(dm, src + t * lds);
      __m256i b = (__m256i)_mm512_cvtneps_pbh(x);
      _mm256_mask_storeu_epi16(rows + t * ldr, dm, scaled ? (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(x, k)) : b);
      __m512i w = _mm512_cvtepu16_epi32(b);
      v = _mm512_or_si512(v, e ? _mm512_slli_epi32(w, 16) : w);
    }
    r[ii] = v;
  }
}

// dst rows d0 + dd < d0 + dn of a (D x T2) pair matrix, pairs i0.. (mask im), from the transposed r
static inline __attribute__((always_inline)) TARGET_BF16_ATT void store_pairsT16(uint32_t *dst, int64_t T2, int d0,
                                                                                int dn, int i0, __mmask16 im,
                                                                                __m512i r[16]) {
  lt_transpose16x16(r);
#pragma GCC unroll 16
  for (int dd = 0; dd < 16; dd++) {
    if (dd >= dn) break;
    _mm512_mask_storeu_epi32(dst + (int64_t)(d0 + dd) * T2 + i0, im, r[dd]);
  }
}

// The packed backward's operands for 16 pairs of rows from i0 on (32 rows of q and dout, read whole across the
// heads), head by head: qs = bf16(scale * q) and dob = bf16(dout) rows, q and dout in bf16 transposed into pairs
// along rows (qT, doT: D x T2 per head, the odd T's last partner 0), and di = rowsum(dO * O). The values of
// scaled_rows_bf16 and to_heads_bf16 (one rounding to nearest even each).
TARGET_BF16_ATT static void rows_setup_bwd(const att_ctx *c, const att_grads *g, int i0) {
  int T = c->T, D = c->D, Dh = D / 2;
  int64_t T2 = half_up(T);
  int in = att_min(16, (int)T2 - i0);
  __mmask16 im = in == 16 ? (__mmask16)0xffff : (__mmask16)((1u << in) - 1);
  const __m512 vs = _mm512_set1_ps(c->scale);
  // di first, row by row across the heads (dout and out read in order), fetching q's rows too: the head loop below
  // then reads all three from the cache instead of walking each head's columns down the rows in memory
  for (int t = 2 * i0; t < T && t < 2 * (i0 + in); t++)
    for (int h = 0; h < c->H; h++) {
      int64_t o = (int64_t)t * c->HD + h * D;
      for (int d = 0; d < D; d += 16) _mm_prefetch((const char *)(c->q + o + d), _MM_HINT_T1);
      c->di[(int64_t)h * T + t] = (float)att_di(c, g->dout + o, g->out + o);
    }
  for (int h = 0; h < c->H; h++) {
    uint16_t *qs = (uint16_t *)(c->qs + (int64_t)h * T * Dh), *dob = c->dob + (int64_t)h * T * D;
    const float *q = c->q + (int64_t)h * D, *dout = g->dout + (int64_t)h * D;
    for (int d0 = 0; d0 < D; d0 += 16) {
      int dn = att_min(16, D - d0);
      __mmask16 dm = dn == 16 ? (__mmask16)0xffff : (__mmask16)((1u << dn) - 1);
      __m512i r[16];
      pair_rows16(r, q + d0, c->HD, 2 * i0, T, dm, qs + d0, D, vs, 1);
      store_pairsT16(c->qT + (int64_t)h * D * T2, T2, d0, dn, i0, im, r);
      pair_rows16(r, dout + d0, c->HD, 2 * i0, T, dm, dob + d0, D, vs, 0);
      store_pairsT16(c->doT + (int64_t)h * D * T2, T2, d0, dn, i0, im, r);
    }
  }
}

// Packed operands (after att_bf16_setup; see att_ctx). Forward (g NULL): K as NT and V as NN panels, scale * q rows.
// Backward (g given): K, V as NT and K as NN panels, the dK^T, dV^T accumulators zeroed, and rows_setup_bwd's
// operands (scale * q and dout's bf16 rows, q and dout transposed into row pairs, rowsum(dO * O) per head and row).
static void att_packed_setup(att_ctx *c, float *scratch, const att_grads *g) {
  int bwd = g != NULL;
  int T = c->T, L = c->L, H = c->H, KV = c->KV, D = c->D, Dh = D / 2;
  int64_t L2 = half_up(L), T2 = half_up(T), nkb = nblk64(L), ndp = nblk64(D);
  float *p = align64f(scratch + att_shared(T, L, H, KV, D, 1) - shared_packed(T, L, H, KV, D));
  c->pk = 1;
  c->knt = (uint32_t *)p;
  p += up16((int64_t)KV * nkb * Dh * 64);
  c->vnt = (uint32_t *)p;
  p += up16((int64_t)KV * nkb * Dh * 64);
  c->knn = (uint32_t *)p;
  p += up16((int64_t)KV * ndp * L2 * 64);
  c->vnn = (uint32_t *)p;
  p += up16((int64_t)KV * ndp * L2 * 64);
  c->qs = (uint32_t *)p;
  p += up16((int64_t)H * T * Dh);
  c->qT = (uint32_t *)p;
  p += up16((int64_t)H * D * T2);
  c->doT = (uint32_t *)p;
  p += up16((int64_t)H * D * T2);
  c->dkT = p;
  p += up16((int64_t)KV * D * L);
  c->dvT = p;
  p += up16((int64_t)KV * D * L);
  c->di = bwd ? p : NULL;
  // then blocks of 32 rows (all heads, the rows read in order): the backward's rows_setup_bwd, the forward's scaled q
  int nrb = (int)((T2 + 15) / 16);
#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < KV + nrb; task++) {
    if (task < KV) {
      int kh = task;
      const uint16_t *kr = c->kb + (int64_t)kh * L * D, *vr = c->vb + (int64_t)kh * L * D;
      for (int64_t b = 0; b < nkb; b++) {
        int j0 = (int)b * 64, nv = att_min(64, L - j0);
        lt_bf16_pack_nt(c->knt + ((int64_t)kh * nkb + b) * Dh * 64, kr, D, 0, D, j0, nv);
        if (bwd) lt_bf16_pack_nt(c->vnt + ((int64_t)kh * nkb + b) * Dh * 64, vr, D, 0, D, j0, nv);
      }
      for (int64_t dp = 0; dp < ndp; dp++) {
        int j0 = (int)dp * 64, nv = att_min(64, D - j0);
        if (bwd) lt_bf16_pack_nn(c->knn + ((int64_t)kh * ndp + dp) * L2 * 64, kr, D, 0, L, j0, nv);
        else lt_bf16_pack_nn(c->vnn + ((int64_t)kh * ndp + dp) * L2 * 64, vr, D, 0, L, j0, nv);
      }
      if (bwd) {
        memset(c->dkT + (int64_t)kh * D * L, 0, sizeof(float) * (size_t)D * (size_t)L);
        memset(c->dvT + (int64_t)kh * D * L, 0, sizeof(float) * (size_t)D * (size_t)L);
      }
    } else {
      int i0 = 16 * (task - KV);
      if (bwd) {
        rows_setup_bwd(c, g, i0);
        continue;
      }
      for (int t = 2 * i0; t < T && t < 2 * i0 + 32; t++)
        for (int h = 0; h < H; h++)
          scaled_rows_bf16((uint16_t *)(c->qs + ((int64_t)h * T + t) * Dh), c->q + (int64_t)t * c->HD + h * D, c->HD,
                           1, D, c->scale);
    }
  }
}

// Row-pair panels of a tile X (nt x nk, row stride ldx) in bf16: per block of 64 columns b, pp[(b * nt2 + i) * 64
// + j] = (X[2i][64b + j], X[2i+1][64b + j]), zero beyond the tile.
TARGET_BF16_ATT static void rowpair_panels(uint32_t *pp, const float *X, int64_t ldx, int nt, int nk) {
  int nt2 = (nt + 1) / 2, nkb = (nk + 63) / 64;
  for (int b = 0; b < nkb; b++)
    for (int i = 0; i < nt2; i++) {
      const float *r0 = X + (int64_t)(2 * i) * ldx + b * 64, *r1 = 2 * i + 1 < nt ? r0 + ldx : NULL;
      uint32_t *d = pp + ((int64_t)b * nt2 + i) * 64;
      for (int jj = 0; jj < 64; jj += 16) {
        int n = nk - b * 64 - jj;
        __mmask16 m = n >= 16 ? (__mmask16)0xffff : n > 0 ? (__mmask16)((1u << n) - 1) : 0;
        __m512 a = _mm512_maskz_loadu_ps(m, r0 + jj), e = r1 ? _mm512_maskz_loadu_ps(m, r1 + jj) : _mm512_setzero_ps();
        __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
        __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(e));
        _mm512_store_si512((void *)(d + jj), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
    }
}

// dst rows (nt x nk2 pairs) = bf16(X rows (nt x nk, stride ldx) times rs[row] when rs is given), the odd element's
// partner zero
TARGET_BF16_ATT static void rows_bf16(uint32_t *dst, int64_t nk2, const float *X, int64_t ldx, int nt, int nk,
                                     const float *rs) {
  for (int r = 0; r < nt; r++) {
    const float *x = X + (int64_t)r * ldx;
    uint16_t *o = (uint16_t *)(dst + (int64_t)r * nk2);
    __m512 k = _mm512_set1_ps(rs ? rs[r] : 1.0f);
    for (int j = 0; j < 2 * nk2; j += 32) {
      int n = nk - j;
      __mmask16 m0 = n >= 16 ? (__mmask16)0xffff : n > 0 ? (__mmask16)((1u << n) - 1) : 0;
      __mmask16 m1 = n >= 32 ? (__mmask16)0xffff : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0;
      __m512 lo = _mm512_maskz_loadu_ps(m0, x + j), hi = _mm512_maskz_loadu_ps(m1, x + j + 16);
      if (rs) lo = _mm512_mul_ps(lo, k), hi = _mm512_mul_ps(hi, k);
      __m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
      int w = (int)(2 * nk2) - j;
      __mmask32 mw = w >= 32 ? 0xffffffffu : (__mmask32)((1u << w) - 1u);
      _mm512_mask_storeu_epi16(o + j, mw, (__m512i)v);
    }
  }
}

// One block of at most 64 keys: dS rows (nt x nv) = (A * (B - dif[row])) * scale (A = P, B = dP, row stride ld),
// rounded to bf16 into the block's row-pair panel dsp (dsp[i * 64 + j] = pair of rows 2i, 2i+1, when given) and
// the rows dsr (stride nk2 pairs, the block's first nw <= 64 entries, when given); +0 beyond nv in both.
TARGET_BF16_ATT static void ds_pack(uint32_t *dsp, uint32_t *dsr, int64_t nk2, const float *A, const float *B,
                                   int64_t ld, const float *dif, float scale, int nt, int nv, int nw) {
  int nt2 = (nt + 1) / 2;
  const __m512 vs = _mm512_set1_ps(scale);
  for (int i = 0; i < nt2; i++) {
    int r0 = 2 * i, two = r0 + 1 < nt;
    const float *a0 = A + (int64_t)r0 * ld, *b0 = B + (int64_t)r0 * ld;
    const __m512 d0 = _mm512_set1_ps(dif[r0]), d1 = _mm512_set1_ps(two ? dif[r0 + 1] : 0.0f);
    for (int j = 0; j < 64; j += 16) {
      int n = nv - j, w = nw - j;
      __mmask16 m = n >= 16 ? (__mmask16)0xffff : n > 0 ? (__mmask16)((1u << n) - 1) : 0;
      __m512 e0 = _mm512_maskz_mul_ps(m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a0 + j),
                                                       _mm512_sub_ps(_mm512_maskz_loadu_ps(m, b0 + j), d0)), vs);
      __m512 e1 = _mm512_setzero_ps();
      if (two)
        e1 = _mm512_maskz_mul_ps(m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a0 + ld + j),
                                                  _mm512_sub_ps(_mm512_maskz_loadu_ps(m, b0 + ld + j), d1)), vs);
      __m256bh h0 = _mm512_cvtneps_pbh(e0), h1 = _mm512_cvtneps_pbh(e1);
      if (dsp) {
        __m512i lo = _mm512_cvtepu16_epi32((__m256i)h0), hi = _mm512_cvtepu16_epi32((__m256i)h1);
        _mm512_store_si512((void *)(dsp + (int64_t)i * 64 + j), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
      if (dsr && w > 0) {
        __mmask16 mw = w >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << w) - 1);
        _mm256_mask_storeu_epi16((uint16_t *)(dsr + (int64_t)r0 * nk2) + j, mw, (__m256i)h0);
        if (two) _mm256_mask_storeu_epi16((uint16_t *)(dsr + (int64_t)(r0 + 1) * nk2) + j, mw, (__m256i)h1);
      }
    }
  }
}

// First row of a tile (rows t0.., keys ks..) that sees a key of its 64-key block b (causal: key j is visible from
// position j - p0 on), rounded down to even; 0 when every row may.
static inline int diag_lo(const att_ctx *c, int t0, int nt, int ks, int b) {
  int r = ks + 64 * b - c->p0 - t0;
  return r <= 0 ? 0 : att_min(r, nt - 1) & ~1;
}

// One backward tile on packed operands: rows [t0, t0+nt) of head h against keys [ks, ks+nk), ks a multiple of 64.
// Block by block of 64 keys, so that the block's f32 P and dP (nt x 64 each) stay in the cache: S, P, dV^T, dP,
// dS and dK^T of a block, then dQ = dS K over all the blocks. A block's rows above its first visible row are
// skipped (their P and dS are 0: the dS rows dQ reads there are written as zeros).
static void att_bwd_tile_packed(const att_ctx *c, const att_grads *g, const att_slot *sl, int h, int t0, int nt,
                                int ks, int nk, int want_dq, int want_dk, int want_dv) {
  int kh = h / c->G, D = c->D, Dh = D / 2, T = c->T, L = c->L;
  int64_t T2 = half_up(T), L2 = half_up(L), nkb = nblk64(L), ndp = nblk64(D), b0 = ks / 64;
  int tb = (nk + 63) / 64, nk2 = (nk + 1) / 2;
  float *A = sl->A, *B = sl->B;
  int ld = att_min(64, L);  // the blocks' row stride (the slot's A and B hold bq x L floats)
  const uint32_t *qs = c->qs + ((int64_t)h * T + t0) * Dh, *dob = (const uint32_t *)c->dob + ((int64_t)h * T + t0) * Dh;
  const float *difs = c->di + (int64_t)h * T + t0;  // rowsum(dO * O)
  int want_ds = want_dq || want_dk;
  for (int b = 0; b < tb; b++) {
    int lo = diag_lo(c, t0, nt, ks, b), lo2 = lo / 2, nv = att_min(64, nk - b * 64), rows = nt - lo;
    float *Ab = A + (int64_t)lo * ld, *Bb = B + (int64_t)lo * ld;
    // S = (scale q) K^T, then P
    lt_bf16_panel_mm(Ab, ld, qs + (int64_t)lo * Dh, Dh, c->knt + ((int64_t)kh * nkb + b0 + b) * Dh * 64, rows, Dh, nv, 0);
    att_probs_from_lse(c, Ab, ld, g->lse + (int64_t)h * T, t0 + lo, rows, ks + b * 64, nv);
    if (want_dv) {  // dV^T[:, block] += dO^T P
      rowpair_panels(sl->pp + (int64_t)lo2 * 64, Ab, ld, rows, nv);
      lt_bf16_panel_mm(c->dvT + (int64_t)kh * D * L + ks + b * 64, L, c->doT + (int64_t)h * D * T2 + t0 / 2 + lo2, T2,
                       sl->pp + (int64_t)lo2 * 64, D, (rows + 1) / 2, nv, 1);
    }
    if (!want_ds) continue;
    // dP = dO V^T, then dS = scale * P * (dP - rowsum(dO * O)) straight into its two bf16 layouts
    lt_bf16_panel_mm(Bb, ld, dob + (int64_t)lo * Dh, Dh, c->vnt + ((int64_t)kh * nkb + b0 + b) * Dh * 64, rows, Dh, nv,
                     0);
    uint32_t *dsr = want_dq ? sl->dsr + (int64_t)b * 32 : NULL;
    int nw = att_min(64, 2 * nk2 - b * 64);
    for (int r = 0; dsr && r < lo; r++) memset(dsr + (int64_t)r * nk2, 0, sizeof(uint16_t) * (size_t)nw);
    ds_pack(want_dk ? sl->dsp + (int64_t)lo2 * 64 : NULL, dsr ? dsr + (int64_t)lo * nk2 : NULL, nk2, Ab, Bb, ld, difs + lo,
            c->scale, rows, nv, nw);
    if (want_dk)  // dK^T[:, block] += q^T dS
      lt_bf16_panel_mm(c->dkT + (int64_t)kh * D * L + ks + b * 64, L, c->qT + (int64_t)h * D * T2 + t0 / 2 + lo2, T2,
                       sl->dsp + (int64_t)lo2 * 64, D, (rows + 1) / 2, nv, 1);
  }
  if (want_dq) {  // dQ += dS K; rows above the last block's lo sum the keys before that block only
    int lo = diag_lo(c, t0, nt, ks, tb - 1), kfull = 32 * (tb - 1);  // (pairs before the last block)
    for (int dp = 0; dp < ndp; dp++) {
      const uint32_t *kp = c->knn + ((int64_t)kh * ndp + dp) * L2 * 64 + (int64_t)(ks / 2) * 64;
      float *dqr = g->dq + (int64_t)t0 * c->HD + h * D + dp * 64;
      int nv = att_min(64, D - dp * 64);
      if (lo > 0 && kfull > 0) lt_bf16_panel_mm(dqr, c->HD, sl->dsr, nk2, kp, lo, kfull, nv, 1);
      int r0 = kfull > 0 ? lo : 0;
      lt_bf16_panel_mm(dqr + (int64_t)r0 * c->HD, c->HD, sl->dsr + (int64_t)r0 * nk2, nk2, kp, nt - r0, nk2, nv, 1);
    }
  }
}

// g (L, KV*D) += the transposed accumulator aT (KV, D, L) for keys [j0, j0+16) of kv head kh (16 x 16 blocks)
TARGET_BF16_ATT static void add_transposed16(float *g, const float *aT, const att_ctx *c, int kh, int j0) {
  int L = c->L, D = c->D, jn = att_min(16, L - j0);
  __mmask16 jm = jn == 16 ? (__mmask16)0xffff : (__mmask16)((1u << jn) - 1);
  for (int d0 = 0; d0 < D; d0 += 16) {
    int dn = att_min(16, D - d0);
    __mmask16 dm = dn == 16 ? (__mmask16)0xffff : (__mmask16)((1u << dn) - 1);
    __m512i r[16];
    for (int dd = 0; dd < 16; dd++)
      r[dd] = _mm512_setzero_si512();
    for (int dd = 0; dd < dn; dd++) r[dd] = _mm512_maskz_loadu_epi32(jm, aT + ((int64_t)kh * D + d0 + dd) * L + j0);
    lt_transpose16x16(r);
    for (int jj = 0; jj < jn; jj++) {
      float *row = g + (int64_t)(j0 + jj) * c->KVD + kh * D + d0;
      _mm512_mask_storeu_ps(row, dm, _mm512_add_ps(_mm512_maskz_loadu_ps(dm, row), _mm512_castsi512_ps(r[jj])));
    }
  }
}

// dk, dv (L, KV*D) += the transposed accumulators
static void att_packed_finish(const att_ctx *c, float *dk, float *dv) {
  int nj = (c->L + 15) / 16;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < nj; b++)
    for (int kh = 0; kh < c->KV; kh++) {
      if (dk) add_transposed16(dk, c->dkT, c, kh, 16 * b);
      if (dv) add_transposed16(dv, c->dvT, c, kh, 16 * b);
    }
}

// q (T,H*D), k, v (L,KV*D), L = p0+T -> out (T,H*D), lse (H,T)
void lt_attention_forward_ex(float *out, float *lse, const float *q, const float *k, const float *v,
                             const uint8_t *kmask, int T, int p0, int H, int KV, int D, int window, int bf16,
                             float *scratch) {
  if (T <= 0 || H <= 0) return;
  att_ctx c;
  att_init(&c, q, k, v, kmask, T, p0, H, KV, D, window);
  if (bf16) att_bf16_setup(&c, scratch, NULL);
  if (c.bf && packed_ok(D, 1)) att_packed_setup(&c, scratch, NULL);
  int bq = att_bq(T), nb = (T + bq - 1) / bq, ntasks = H * nb;
  int nth = omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth) if (ntasks > 1 && nth > 1)
  for (int task = 0; task < ntasks; task++) {
    // the largest tiles (the last rows, which see the most keys) first, so that the threads end on small ones
    int h = task % H, t0 = (nb - 1 - task / H) * bq, nt = att_min(bq, T - t0), kh = h / c.G;
    int ks = key_lo(&c, t0);
    if (c.pk) ks = ks / 64 * 64;  // whole key panels; the keys left of the window get probability 0
    int nk = p0 + t0 + nt - ks;
    att_slot sl = slot_of(&c, scratch, omp_get_thread_num());
    float *S = sl.A, rsc[LT_ATT_BQ];  // packed path: each row's 1 / sum, applied when P is rounded to bf16
    if (c.pk) {
      int Dh = D / 2;
      int64_t nkb = nblk64(c.L);
      for (int b = 0; b < (nk + 63) / 64; b++)  // S = (scale q) K^T
        lt_bf16_panel_mm(S + b * 64, nk, c.qs + ((int64_t)h * T + t0) * Dh, Dh,
                         c.knt + ((int64_t)kh * nkb + ks / 64 + b) * Dh * 64, nt, Dh, att_min(64, nk - b * 64), 0);
    } else {
      att_scores(&c, &sl, S, h, t0, nt, ks, nk);
    }
    for (int r = 0; r < nt; r++) {  // masked softmax in f32
      int t = t0 + r, jlo = key_lo(&c, t) - ks, jhi = p0 + t - ks;  // visible columns: jlo..jhi, kmask permitting
      float *s = S + (int64_t)r * nk;
      const uint8_t *km = c.kmask ? c.kmask + ks : NULL;
      float m = -INFINITY;
      if (c.avx && jhi >= jlo) {
        m = max_row16(s, km, jlo, jhi);
      } else {
        for (int j = jlo; j <= jhi; j++)
          if ((!km || km[j]) && s[j] > m) m = s[j];
      }
      rsc[r] = 1.0f;
      if (m == -INFINITY) {  // no visible key
        for (int j = 0; j < nk; j++) s[j] = 0.0f;
        lse[(int64_t)h * T + t] = -INFINITY;
        continue;
      }
      for (int j = 0; j < jlo; j++) s[j] = 0.0f;
      for (int j = jhi + 1; j < nk; j++) s[j] = 0.0f;
      double sum = 0.0;
      if (c.avx) {
        sum = exp_row16(s, km, jlo, jhi, m);
      } else {
        for (int j = jlo; j <= jhi; j++) {
          float e = (!km || km[j]) ? expf(s[j] - m) : 0.0f;
          s[j] = e;
          sum += e;
        }
      }
      float inv = (float)(1.0 / sum);
      if (c.pk) rsc[r] = inv;  // the bf16 rounding of P below multiplies by it (the same product, one pass less)
      else if (c.avx) scale_row16(s, jlo, jhi, inv);
      else
        for (int j = jlo; j <= jhi; j++) s[j] *= inv;
      lse[(int64_t)h * T + t] = m + (float)log(sum);
    }
    // out rows = P V
    float *o = out + (int64_t)t0 * c.HD + h * D;
    if (c.pk) {
      int64_t nk2 = half_up(nk), L2 = half_up(c.L), ndp = nblk64(D);
      rows_bf16(sl.dsr, nk2, S, nk, nt, nk, rsc);
      for (int dp = 0; dp < ndp; dp++)
        lt_bf16_panel_mm(o + dp * 64, c.HD, sl.dsr, nk2, c.vnn + ((int64_t)kh * ndp + dp) * L2 * 64 + (int64_t)(ks / 2) * 64,
                         nt, (int)nk2, att_min(64, D - dp * 64), 0);
    } else if (c.bf) lt_gemm_bf16_st(o, c.HD, S, nk, c.vb + ((int64_t)kh * c.L + ks) * D, D, nt, D, nk, 0, 1, sl.st);
    else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, D, nk, 1.0f, S, nk, v + (int64_t)ks * c.KVD + kh * D,
                     c.KVD, 0.0f, o, c.HD);
  }
}

void lt_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const uint8_t *kmask,
                          int T, int p0, int H, int KV, int D, int window, float *scratch) {
  lt_attention_forward_ex(out, lse, q, k, v, kmask, T, p0, H, KV, D, window, 0, scratch);
}

// dout (T,H*D) -> dq (T,H*D) +=, dk, dv (L,KV*D) +=
void lt_attention_backward_ex(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                              const float *q, const float *k, const float *v, const uint8_t *kmask, int T, int p0,
                              int H, int KV, int D, int window, int bf16, float *scratch) {
  if (T <= 0 || H <= 0 || (!dq && !dk && !dv)) return;
  att_ctx c;
  att_init(&c, q, k, v, kmask, T, p0, H, KV, D, window);
  int L = p0 + T, bq = att_bq(T), nb = (T + bq - 1) / bq;
  int nth = omp_get_max_threads(), by_kv = KV >= nth || nth == 1;
  int packed = bf16 && lt_cpu_has_avx512bf16() && packed_ok(D, 1) && by_kv;
  if (bf16) att_bf16_setup(&c, scratch, packed ? NULL : dout);  // (the packed setup makes q's and dout's rows)
  att_grads g = {dq, dk, dv, dout, out, lse};
  if (by_kv) {
    if (packed) att_packed_setup(&c, scratch, &g);
    if (c.pk) bq = att_bqb(T);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth) if (KV > 1 && nth > 1)
    for (int kh = 0; kh < KV; kh++) {
      att_slot sl = slot_of(&c, scratch, omp_get_thread_num());
      for (int gi = 0; gi < c.G; gi++) {
        int h = kh * c.G + gi;
        for (int t0 = 0; t0 < T; t0 += bq) {
          int nt = att_min(bq, T - t0), ks = key_lo(&c, t0), nk = p0 + t0 + nt - ks;
          if (c.pk) {
            ks = ks / 64 * 64;  // whole key panels; the keys left of the window get probability 0
            att_bwd_tile_packed(&c, &g, &sl, h, t0, nt, ks, p0 + t0 + nt - ks, dq != NULL, dk != NULL, dv != NULL);
          } else {
            att_bwd_tile(&c, &g, &sl, h, t0, nt, ks, nk, dq != NULL, dk != NULL, dv != NULL);
          }
        }
      }
    }
    if (c.pk) att_packed_finish(&c, dk, dv);
    return;
  }
  if (dq) {  // pass 1: dq over (head, row tile)
    int ntasks = H * nb;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int task = 0; task < ntasks; task++) {
      int h = task / nb, t0 = (task % nb) * bq, nt = att_min(bq, T - t0);
      int ks = key_lo(&c, t0), nk = p0 + t0 + nt - ks;
      att_slot sl = slot_of(&c, scratch, omp_get_thread_num());
      att_bwd_tile(&c, &g, &sl, h, t0, nt, ks, nk, 1, 0, 0);
    }
  }
  if (dk || dv) {  // pass 2: dk, dv over (kv head, key tile); each tile sums its rows and heads in a fixed order
    int bk = att_min(L, LT_ATT_BK), nkb = (L + bk - 1) / bk, ntasks = KV * nkb;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int task = 0; task < ntasks; task++) {
      int kh = task / nkb, k0 = (task % nkb) * bk, nk = att_min(bk, L - k0);
      int tlo = k0 - p0 > 0 ? k0 - p0 : 0;  // rows that can see a key of [k0, k0+nk)
      int thi = window > 0 ? att_min(T, k0 + nk + window - 1 - p0) : T;
      att_slot sl = slot_of(&c, scratch, omp_get_thread_num());
      for (int gi = 0; gi < c.G; gi++) {
        int h = kh * c.G + gi;
        for (int t0 = tlo; t0 < thi; t0 += bq) {
          int nt = att_min(bq, thi - t0);
          att_bwd_tile(&c, &g, &sl, h, t0, nt, k0, nk, 0, dk != NULL, dv != NULL);
        }
      }
    }
  }
}

void lt_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                           const float *q, const float *k, const float *v, const uint8_t *kmask, int T, int p0, int H,
                           int KV, int D, int window, float *scratch) {
  lt_attention_backward_ex(dq, dk, dv, dout, out, lse, q, k, v, kmask, T, p0, H, KV, D, window, 0, scratch);
}
