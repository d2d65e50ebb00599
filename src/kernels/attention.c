// Causal grouped-query self-attention for one sequence (flash-attention style backward: probabilities are
// recomputed from the stored log-sum-exp, dS = P * (dP - rowsum(dO * O))).
//
// Work is split into tiles of up to LT_ATT_BQ query rows. A tile of rows [t0, t0+nt) only multiplies the keys it
// can see ([first key of row t0's window, p0+t0+nt)), so causal attention costs about half of T x L, and the
// score tile is a small (nt x nk) sgemm into a per-thread slice of scratch.
//
// Scratch (lt_attention_scratch): omp_get_max_threads() slots of 2 * min(T, LT_ATT_BQ) * L floats, one slot per
// thread of the team. Call lt_attention_scratch with the same OpenMP thread setting as the kernels (the kernels
// never start more threads than omp_get_max_threads() at their call).
//
// Forward: parallel over (head, row tile). Backward, deterministic in both modes:
//  - KV >= threads: parallel over kv heads, each thread runs its group's heads and tiles in order (5 sgemms/tile);
//  - otherwise two passes for more parallelism: dq over (head, row tile), then dk/dv over (kv head, key tile of
//    LT_ATT_BK keys), recomputing the probabilities (7 sgemms per tile pair instead of 5).
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include "kernels/kernels.h"
#include "kernels/vexp.h"

#define LT_ATT_BQ 64  // query rows per tile
#define LT_ATT_BK 64  // keys per tile in the key-parallel dk/dv pass

typedef struct {
  const float *q, *k, *v;
  const uint8_t *kmask;
  int T, p0, H, KV, D, window, G, HD, KVD;
  float scale;
  int avx;  // AVX-512 exp for the probability rows
} att_ctx;

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
  c->T = T, c->p0 = p0, c->H = H, c->KV = KV, c->D = D, c->window = window;
  c->G = H / KV, c->HD = H * D, c->KVD = KV * D;
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
  for (int j = jlo; j <= jhi; j += 16) {
    __mmask16 in = jhi - j + 1 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (jhi - j + 1)) - 1);
    __mmask16 v = vis16(km, j, jhi);
    __m512 e = _mm512_maskz_mov_ps(v, lt_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, s + j), vs)));
    _mm512_mask_storeu_ps(s + j, in, e);
    acc = _mm512_add_ps(acc, e);
  }
  return _mm512_reduce_add_ps(acc);
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
static inline int64_t att_slot(int T, int L) { return 2 * (int64_t)att_bq(T) * L; }

int64_t lt_attention_scratch(int T, int L) {
  if (T <= 0 || L <= 0) return 0;
  return (int64_t)omp_get_max_threads() * att_slot(T, L);
}

// S (nt x nk, ld nk) = scale * Q[t0:t0+nt, head h] K[ks:ks+nk, kv head of h]^T
static void att_scores(const att_ctx *c, float *S, int h, int t0, int nt, int ks, int nk) {
  int kh = h / c->G;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nk, c->D, c->scale, c->q + (int64_t)t0 * c->HD + h * c->D,
              c->HD, c->k + (int64_t)ks * c->KVD + kh * c->D, c->KVD, 0.0f, S, nk);
}

// In place: scores of rows [t0, t0+nt) x keys [ks, ks+nk) -> probabilities exp(s - lse), 0 where not visible.
static void att_probs_from_lse(const att_ctx *c, float *S, const float *lse_h, int t0, int nt, int ks, int nk) {
  for (int r = 0; r < nt; r++) {
    int t = t0 + r;
    float *s = S + (int64_t)r * nk;
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

// One backward tile: rows [t0, t0+nt) of head h against keys [ks, ks+nk). A, B: nt*nk floats each.
static void att_bwd_tile(const att_ctx *c, const att_grads *g, int h, int t0, int nt, int ks, int nk, float *A, float *B,
                         int want_dq, int want_dk, int want_dv) {
  int kh = h / c->G, D = c->D;
  const float *dO = g->dout + (int64_t)t0 * c->HD + h * D;
  const float *Kb = c->k + (int64_t)ks * c->KVD + kh * D, *Vb = c->v + (int64_t)ks * c->KVD + kh * D;
  att_scores(c, A, h, t0, nt, ks, nk);
  att_probs_from_lse(c, A, g->lse + (int64_t)h * c->T, t0, nt, ks, nk);
  if (want_dv)  // dV[ks:ks+nk] += P^T dO
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nt, 1.0f, A, nk, dO, c->HD, 1.0f,
                g->dv + (int64_t)ks * c->KVD + kh * D, c->KVD);
  if (!want_dq && !want_dk) return;
  // dP = dO V^T, then dS = P * (dP - rowsum(dO * O)) into A.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nk, D, 1.0f, dO, c->HD, Vb, c->KVD, 0.0f, B, nk);
  for (int r = 0; r < nt; r++) {
    const float *dor = dO + (int64_t)r * c->HD, *orow = g->out + (int64_t)(t0 + r) * c->HD + h * D;
    double di = 0.0;
    for (int d = 0; d < D; d++) di += (double)dor[d] * orow[d];
    float dif = (float)di;
    float *a = A + (int64_t)r * nk;
    const float *b = B + (int64_t)r * nk;
    for (int j = 0; j < nk; j++) a[j] = a[j] * (b[j] - dif);
  }
  if (want_dq)  // dQ += scale * dS K
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, D, nk, c->scale, A, nk, Kb, c->KVD, 1.0f,
                g->dq + (int64_t)t0 * c->HD + h * D, c->HD);
  if (want_dk)  // dK[ks:ks+nk] += scale * dS^T Q
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nt, c->scale, A, nk,
                c->q + (int64_t)t0 * c->HD + h * D, c->HD, 1.0f, g->dk + (int64_t)ks * c->KVD + kh * D, c->KVD);
}

// q (T,H*D), k, v (L,KV*D), L = p0+T -> out (T,H*D), lse (H,T)
void lt_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const uint8_t *kmask,
                          int T, int p0, int H, int KV, int D, int window, float *scratch) {
  if (T <= 0 || H <= 0) return;
  att_ctx c;
  att_init(&c, q, k, v, kmask, T, p0, H, KV, D, window);
  int L = p0 + T, bq = att_bq(T), nb = (T + bq - 1) / bq, ntasks = H * nb;
  int64_t slot = att_slot(T, L);
  int nth = omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth) if (ntasks > 1 && nth > 1)
  for (int task = 0; task < ntasks; task++) {
    int h = task / nb, t0 = (task % nb) * bq, nt = att_min(bq, T - t0), kh = h / c.G;
    int ks = key_lo(&c, t0), nk = p0 + t0 + nt - ks;
    float *S = scratch + omp_get_thread_num() * slot;
    att_scores(&c, S, h, t0, nt, ks, nk);
    for (int r = 0; r < nt; r++) {  // masked softmax in f32 (double row sum)
      int t = t0 + r, jlo = key_lo(&c, t) - ks, jhi = p0 + t - ks;  // visible columns: jlo..jhi, kmask permitting
      float *s = S + (int64_t)r * nk;
      const uint8_t *km = kmask ? kmask + ks : NULL;
      float m = -INFINITY;
      if (c.avx && jhi >= jlo) {
        m = max_row16(s, km, jlo, jhi);
      } else {
        for (int j = jlo; j <= jhi; j++)
          if ((!km || km[j]) && s[j] > m) m = s[j];
      }
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
      for (int j = jlo; j <= jhi; j++) s[j] *= inv;
      lse[(int64_t)h * T + t] = m + (float)log(sum);
    }
    // out rows = P V
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, D, nk, 1.0f, S, nk, v + (int64_t)ks * c.KVD + kh * D,
                c.KVD, 0.0f, out + (int64_t)t0 * c.HD + h * D, c.HD);
  }
}

// dout (T,H*D) -> dq (T,H*D) +=, dk, dv (L,KV*D) +=
void lt_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                           const float *q, const float *k, const float *v, const uint8_t *kmask, int T, int p0, int H,
                           int KV, int D, int window, float *scratch) {
  if (T <= 0 || H <= 0 || (!dq && !dk && !dv)) return;
  att_ctx c;
  att_init(&c, q, k, v, kmask, T, p0, H, KV, D, window);
  att_grads g = {dq, dk, dv, dout, out, lse};
  int L = p0 + T, bq = att_bq(T), nb = (T + bq - 1) / bq;
  int64_t slot = att_slot(T, L);
  int nth = omp_get_max_threads();
  if (KV >= nth || nth == 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth) if (KV > 1 && nth > 1)
    for (int kh = 0; kh < KV; kh++) {
      float *A = scratch + omp_get_thread_num() * slot, *B = A + (int64_t)bq * L;
      for (int gi = 0; gi < c.G; gi++) {
        int h = kh * c.G + gi;
        for (int t0 = 0; t0 < T; t0 += bq) {
          int nt = att_min(bq, T - t0), ks = key_lo(&c, t0), nk = p0 + t0 + nt - ks;
          att_bwd_tile(&c, &g, h, t0, nt, ks, nk, A, B, dq != NULL, dk != NULL, dv != NULL);
        }
      }
    }
    return;
  }
  if (dq) {  // pass 1: dq over (head, row tile)
    int ntasks = H * nb;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int task = 0; task < ntasks; task++) {
      int h = task / nb, t0 = (task % nb) * bq, nt = att_min(bq, T - t0);
      int ks = key_lo(&c, t0), nk = p0 + t0 + nt - ks;
      float *A = scratch + omp_get_thread_num() * slot, *B = A + (int64_t)bq * L;
      att_bwd_tile(&c, &g, h, t0, nt, ks, nk, A, B, 1, 0, 0);
    }
  }
  if (dk || dv) {  // pass 2: dk, dv over (kv head, key tile); each tile sums its rows and heads in a fixed order
    int bk = att_min(L, LT_ATT_BK), nkb = (L + bk - 1) / bk, ntasks = KV * nkb;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int task = 0; task < ntasks; task++) {
      int kh = task / nkb, k0 = (task % nkb) * bk, nk = att_min(bk, L - k0);
      int tlo = k0 - p0 > 0 ? k0 - p0 : 0;  // rows that can see a key of [k0, k0+nk)
      int thi = window > 0 ? att_min(T, k0 + nk + window - 1 - p0) : T;
      float *A = scratch + omp_get_thread_num() * slot, *B = A + (int64_t)bq * L;
      for (int gi = 0; gi < c.G; gi++) {
        int h = kh * c.G + gi;
        for (int t0 = tlo; t0 < thi; t0 += bq) {
          int nt = att_min(bq, thi - t0);
          att_bwd_tile(&c, &g, h, t0, nt, k0, nk, A, B, 0, dk != NULL, dv != NULL);
        }
      }
    }
  }
}
