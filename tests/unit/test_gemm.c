// bf16 GEMM (NT and NN) against a double-precision reference, on odd shapes and tails, for both the
// AVX512-BF16 path (activations rounded to bf16) and the f32 fallback (LMTUNE_NO_AVX512BF16).
#include <omp.h>

#include "core/core.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "test.h"

static float frand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static void run(int M, int N, int K, int nn, int accumulate, int bf16_path) {
  uint64_t s = (uint64_t)(M * 131 + N * 17 + K + nn);
  float *x = malloc(sizeof(float) * (size_t)M * K), *y = malloc(sizeof(float) * (size_t)M * N);
  uint16_t *w = malloc(sizeof(uint16_t) * (size_t)N * K);
  for (int64_t i = 0; i < (int64_t)M * K; i++) x[i] = frand(&s);
  for (int64_t i = 0; i < (int64_t)N * K; i++) w[i] = lt_f32_to_bf16(frand(&s));
  for (int64_t i = 0; i < (int64_t)M * N; i++) y[i] = accumulate ? 0.5f : 12345.0f;
  int64_t mk = (int64_t)M * ((K + 1) & ~1);  // the scratch contract: K rounded up to even
  size_t sb = lt_gemm_bf16_scratch(mk, omp_get_max_threads());
  lt_gemm_scratch gs = {aligned_alloc(64, (sb + 63) & ~(size_t)63), mk, omp_get_max_threads()};
  void *scratch = gs.buf;
  if (nn) lt_gemm_bf16_nn(y, x, w, M, N, K, accumulate, &gs);  // w viewed as (K, N)
  else lt_gemm_bf16_nt(y, x, w, M, N, K, accumulate, &gs);     // w viewed as (N, K)
  double maxerr = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double ref = accumulate ? 0.5 : 0.0, mag = 0;
      for (int k = 0; k < K; k++) {
        float xv = bf16_path ? lt_bf16_to_f32(lt_f32_to_bf16(x[(int64_t)i * K + k])) : x[(int64_t)i * K + k];
        float wv = lt_bf16_to_f32(nn ? w[(int64_t)k * N + j] : w[(int64_t)j * K + k]);
        ref += (double)xv * wv;
        mag += fabs((double)xv * wv);
      }
      double e = fabs(y[(int64_t)i * N + j] - ref) / (mag + 1e-6);
      if (e > maxerr) maxerr = e;
    }
  CHECK_MSG(maxerr < 1e-5, "%s M=%d N=%d K=%d acc=%d bf16=%d: rel err %g", nn ? "NN" : "NT", M, N, K, accumulate,
            bf16_path, maxerr);
  // the pre-packed weight gives the very same values (the same panels, read from the packed copy)
  uint32_t *pk = aligned_alloc(64, lt_bf16_prepack_bytes(N, K));
  float *y2 = malloc(sizeof(float) * (size_t)M * N);
  lt_bf16_prepack(pk, w, N, K, nn);
  for (int64_t i = 0; i < (int64_t)M * N; i++) y2[i] = accumulate ? 0.5f : 12345.0f;
  lt_gemm_bf16_pk(y2, x, w, pk, M, N, K, accumulate, nn, &gs);
  int diff = 0;
  for (int64_t i = 0; i < (int64_t)M * N; i++) diff += y2[i] != y[i];
  CHECK_MSG(diff == 0, "%s M=%d N=%d K=%d acc=%d bf16=%d: pre-packed weight: %d values differ", nn ? "NN" : "NT", M,
            N, K, accumulate, bf16_path, diff);
  // NT panels built from the NN pre-packed copy of w (the layout training keeps) are the same panels
  if (!nn) {
    // ... and w's rows read back from the NT copy are w's rows (an embedding lookup on a packed LM head)
    if (bf16_path) {
      float *row = malloc(sizeof(float) * (size_t)K);
      int bad = 0;
      for (int j = 0; j < N; j++) {
        lt_bf16_prepacked_row(row, pk, K, j);
        for (int k = 0; k < K; k++) bad += row[k] != lt_bf16_to_f32(w[(int64_t)j * K + k]);
      }
      CHECK_MSG(bad == 0, "NT N=%d K=%d: %d values of the rows read back from the packed copy differ", N, K, bad);
      free(row);
    }
    uint32_t *pkn = aligned_alloc(64, lt_bf16_prepack_bytes(K, N));
    lt_bf16_prepack(pkn, w, K, N, 1);
    for (int64_t i = 0; i < (int64_t)M * N; i++) y2[i] = accumulate ? 0.5f : 12345.0f;
    lt_gemm_nt_out on = {y2, w, N, NULL, NULL, pkn};
    lt_gemm_bf16_ex(&on, 1, x, M, K, accumulate, 0, &gs);
    diff = 0;
    for (int64_t i = 0; i < (int64_t)M * N; i++) diff += y2[i] != y[i];
    CHECK_MSG(diff == 0, "NT M=%d N=%d K=%d acc=%d: panels from the NN-packed copy: %d values differ", M, N, K,
              accumulate, diff);
    free(pkn);
  }
  // the epilogue (bias, then the rank-r term q by q) equals the same additions done after the product
  enum { R = 5 };
  float *bias = malloc(sizeof(float) * (size_t)N), *xa = malloc(sizeof(float) * (size_t)M * R),
        *bt = malloc(sizeof(float) * (size_t)R * (N + 3));
  for (int j = 0; j < N; j++) bias[j] = frand(&s);
  for (int64_t i = 0; i < (int64_t)M * R; i++) xa[i] = frand(&s);
  for (int64_t i = 0; i < (int64_t)R * (N + 3); i++) bt[i] = frand(&s);
  lt_gemm_epi e = {nn ? NULL : bias, xa, bt, R, N + 3, NULL, NULL, NULL, 0};
  for (int64_t i = 0; i < (int64_t)M * N; i++) y2[i] = accumulate ? 0.5f : 12345.0f;
  lt_gemm_nt_out o = {y2, w, N, (M + N) % 2 ? pk : NULL, &e, NULL};
  lt_gemm_bf16_ex(&o, 1, x, M, K, accumulate, nn, &gs);
  diff = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float v = y[(int64_t)i * N + j];
      if (e.bias) v += bias[j];
      for (int q = 0; q < R; q++) v = fmaf(xa[(int64_t)i * R + q], bt[(int64_t)q * (N + 3) + j], v);
      diff += v != y2[(int64_t)i * N + j];
    }
  CHECK_MSG(diff == 0, "%s M=%d N=%d K=%d acc=%d bf16=%d: epilogue: %d values differ from the separate additions",
            nn ? "NN" : "NT", M, N, K, accumulate, bf16_path, diff);
  // ... and written in bf16 instead (y16): the same values rounded to nearest even
  uint16_t *y16 = malloc(sizeof(uint16_t) * (size_t)M * N);
  float *ref = malloc(sizeof(float) * (size_t)M * N);
  memcpy(ref, y2, sizeof(float) * (size_t)M * N);
  for (int64_t i = 0; i < (int64_t)M * N; i++) y2[i] = accumulate ? 0.5f : 12345.0f;
  e.y16 = y16;
  lt_gemm_bf16_ex(&o, 1, x, M, K, accumulate, nn, &gs);
  diff = 0;
  for (int64_t i = 0; i < (int64_t)M * N; i++) diff += y16[i] != lt_f32_to_bf16(ref[i]);
  CHECK_MSG(diff == 0, "%s M=%d N=%d K=%d acc=%d bf16=%d: bf16 output: %d values differ from the rounded f32 output",
            nn ? "NN" : "NT", M, N, K, accumulate, bf16_path, diff);
  // the rank term in bf16 pairs (R odd: the last pair's partner 0): the epilogue equals the separate pass
  // lt_gemm_bf16_lora_add after the bias, to the bit, and both equal a double sum of the rounded values
  if (bf16_path) {
    enum { R2 = (R + 1) / 2 };
    uint32_t *x2 = malloc(sizeof(uint32_t) * (size_t)M * R2), *b2 = malloc(sizeof(uint32_t) * (size_t)R2 * (N + 3));
    float *xr = malloc(sizeof(float) * (size_t)M * R);
    memcpy(xr, xa, sizeof(float) * (size_t)M * R);
    lt_bf16_pairs_rows(x2, xr, M, R);
    lt_bf16_pairs_rank(b2, bt, R, N + 3, 0.5f, 0);
    int rounded = 1;
    for (int64_t i = 0; i < (int64_t)M * R; i++) rounded &= xr[i] == lt_bf16_to_f32(lt_f32_to_bf16(xa[i]));
    CHECK_MSG(rounded, "pairs_rows: the rows are not rounded to bf16 in place");
    e = (lt_gemm_epi){nn ? NULL : bias, NULL, NULL, 0, N + 3, NULL, x2, b2, R2};
    for (int64_t i = 0; i < (int64_t)M * N; i++) y2[i] = accumulate ? 0.5f : 12345.0f;
    lt_gemm_bf16_ex(&o, 1, x, M, K, accumulate, nn, &gs);
    memcpy(ref, y, sizeof(float) * (size_t)M * N);
    if (e.bias)
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) ref[(int64_t)i * N + j] += bias[j];
    lt_gemm_bf16_lora_add(ref, N, x2, b2, N + 3, M, N, R2, 0);
    diff = 0;
    double worst = 0;
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        diff += ref[(int64_t)i * N + j] != y2[(int64_t)i * N + j];
        double v = y[(int64_t)i * N + j] + (e.bias ? bias[j] : 0.0), mag = fabs(v);
        for (int q = 0; q < R; q++) {
          float bq = lt_bf16_to_f32(lt_f32_to_bf16(0.5f * bt[(int64_t)q * (N + 3) + j]));
          double t = (double)xr[(int64_t)i * R + q] * bq;
          v += t;
          mag += fabs(t);
        }
        double d = fabs(v - y2[(int64_t)i * N + j]) / (mag + 1e-30);
        if (d > worst) worst = d;
      }
    CHECK_MSG(diff == 0, "%s M=%d N=%d K=%d acc=%d: pair epilogue: %d values differ from lt_gemm_bf16_lora_add",
              nn ? "NN" : "NT", M, N, K, accumulate, diff);
    CHECK_MSG(worst < 1e-6, "%s M=%d N=%d K=%d acc=%d: pair epilogue off the double sum by %g", nn ? "NN" : "NT", M,
              N, K, accumulate, worst);
    // pairs along the rank of a (cols, r) matrix (trans): the same words as of its transpose
    float *btT = malloc(sizeof(float) * (size_t)R * (N + 3));
    uint32_t *b3 = malloc(sizeof(uint32_t) * (size_t)R2 * (N + 3));
    for (int q = 0; q < R; q++)
      for (int j = 0; j < N + 3; j++) btT[(int64_t)j * R + q] = bt[(int64_t)q * (N + 3) + j];
    lt_bf16_pairs_rank(b3, btT, R, N + 3, 0.5f, 1);
    CHECK(memcmp(b2, b3, sizeof(uint32_t) * (size_t)R2 * (N + 3)) == 0);
    free(btT);
    free(b3);
    free(x2);
    free(b2);
    free(xr);
  }
  free(y16);
  free(ref);
  free(bias);
  free(xa);
  free(bt);
  free(pk);
  free(y2);
  free(x);
  free(y);
  free(w);
  free(scratch);
}

// The skinny bf16 product of LoRA's xa and dxa: y (M, r) = s * x2 (M, kh pairs) . w2 (kh pairs, r), with w2 made by
// lt_bf16_pairs_rank from a (r, 2 kh) matrix as the forward makes A's pairs: against a double sum of the rounded
// values, for tile remainders (M), one-vector to four-vector ranks with tails, and r > 64 refused.
static void check_skinny(int M, int kh, int r) {
  uint64_t s = (uint64_t)(M * 131 + kh * 7 + r);
  int K = 2 * kh, ldx = kh + 3;  // rows with slack: the row stride is ldx pairs
  uint32_t *x2 = malloc(sizeof(uint32_t) * (size_t)M * ldx), *w2 = malloc(sizeof(uint32_t) * (size_t)kh * r);
  float *A = malloc(sizeof(float) * (size_t)r * K), *y = malloc(sizeof(float) * (size_t)M * r);
  for (int64_t i = 0; i < (int64_t)M * ldx; i++)
    x2[i] = (uint32_t)lt_f32_to_bf16(frand(&s)) | (uint32_t)lt_f32_to_bf16(frand(&s)) << 16;
  for (int64_t i = 0; i < (int64_t)r * K; i++) A[i] = frand(&s);
  lt_bf16_pairs_rank(w2, A, K, r, 1.0f, 1);
  for (int64_t i = 0; i < (int64_t)M * r; i++) y[i] = 12345.0f;
  int rc = lt_bf16_skinny(y, x2, ldx, w2, M, kh, r, 0.5f);
  if (r > 64) {
    CHECK_MSG(rc == -1 && y[0] == 12345.0f, "skinny r=%d: not refused", r);
  } else {
    CHECK_MSG(rc == 0, "skinny M=%d kh=%d r=%d: refused", M, kh, r);
    double worst = 0;
    for (int i = 0; i < M; i++)
      for (int q = 0; q < r; q++) {
        double v = 0, mag = 0;
        for (int k = 0; k < K; k++) {
          uint32_t wd = x2[(int64_t)i * ldx + k / 2];
          double t = lt_bf16_to_f32((uint16_t)(k % 2 ? wd >> 16 : wd)) *
                     (double)lt_bf16_to_f32(lt_f32_to_bf16(A[(int64_t)q * K + k]));
          v += t;
          mag += fabs(t);
        }
        double d = fabs(0.5 * v - y[(int64_t)i * r + q]) / (0.5 * mag + 1e-30);
        if (d > worst) worst = d;
      }
    CHECK_MSG(worst < 1e-6, "skinny M=%d kh=%d r=%d: off the double sum by %g", M, kh, r, worst);
  }
  free(x2);
  free(w2);
  free(A);
  free(y);
}

// The fused LM head + cross-entropy in bf16: with dL/dx alone the dlogits rows go straight into the GEMM's bf16
// input; with dL/dw too they pass through the f32 row and the GEMM's conversion. Both give the same loss and dx bits
// (vocabulary sizes with and without 32- and 16-value tails, the target in a block and in the tail, an ignored row,
// several row chunks).
static void check_lmhead_bf16(int N, int C, int V, int chunk) {
  uint64_t s = (uint64_t)(N * 7 + C * 3 + V);
  float *x = malloc(sizeof(float) * (size_t)N * C), *w = malloc(sizeof(float) * (size_t)V * C);
  uint16_t *wb = malloc(sizeof(uint16_t) * (size_t)V * C);
  int32_t *tg = malloc(sizeof(int32_t) * (size_t)N);
  for (int64_t i = 0; i < (int64_t)N * C; i++) x[i] = 3.0f * frand(&s);
  for (int64_t i = 0; i < (int64_t)V * C; i++) w[i] = lt_bf16_to_f32(wb[i] = lt_f32_to_bf16(frand(&s)));
  for (int n = 0; n < N; n++) tg[n] = n == 1 ? -100 : n == 2 ? 48 % V : n % 3 == 0 ? V - 1 - n % 7 : (n * 37) % V;
  int64_t mk = (int64_t)((chunk + 1) & ~1) * (((V > C ? V : C) + 1) & ~1);  // as lt_model_max_mk
  size_t sb = lt_gemm_bf16_scratch(mk, omp_get_max_threads());
  lt_gemm_scratch gs = {aligned_alloc(64, (sb + 63) & ~(size_t)63), mk, omp_get_max_threads()};
  float *scratch = malloc(sizeof(float) * (size_t)chunk * V), *dx1 = calloc((size_t)N * C, sizeof(float)),
        *dx2 = calloc((size_t)N * C, sizeof(float)), *dw = calloc((size_t)V * C, sizeof(float));
  double l1 = lt_lmhead_ce_ex(dx1, NULL, x, w, wb, NULL, &gs, tg, N, C, V, 0.25f, scratch, chunk);
  double l2 = lt_lmhead_ce_ex(dx2, dw, x, w, wb, NULL, &gs, tg, N, C, V, 0.25f, scratch, chunk);
  int diff = 0;
  for (int64_t i = 0; i < (int64_t)N * C; i++) diff += dx1[i] != dx2[i];
  CHECK_MSG(l1 == l2 && diff == 0, "lmhead bf16 N=%d C=%d V=%d chunk=%d: loss %.9g vs %.9g, %d dx values differ", N,
            C, V, chunk, l1, l2, diff);
  // the loss alone (logits written in bf16 by the product where it can) is the same number
  double l0 = lt_lmhead_ce_ex(NULL, NULL, x, w, wb, NULL, &gs, tg, N, C, V, 0.25f, scratch, chunk);
  CHECK_MSG(l0 == l1, "lmhead bf16 N=%d C=%d V=%d chunk=%d: loss alone %.9g vs %.9g", N, C, V, chunk, l0, l1);
  // dw from bf16 products (AVX512-BF16) against the f32 path's sgemm: within bf16 rounding, and not the same bits
  float *dx3 = calloc((size_t)N * C, sizeof(float)), *dw3 = calloc((size_t)V * C, sizeof(float));
  lt_lmhead_ce_ex(dx3, dw3, x, w, NULL, NULL, NULL, tg, N, C, V, 0.25f, scratch, chunk);
  double big = 1e-30, err = 0;
  int same = 1;
  for (int64_t i = 0; i < (int64_t)V * C; i++) {
    big = fmax(big, fabs(dw3[i]));
    err = fmax(err, fabs((double)dw[i] - dw3[i]));
    same = same && dw[i] == dw3[i];
  }
  CHECK_MSG(err <= 2e-2 * big, "lmhead bf16 N=%d C=%d V=%d chunk=%d: dw max error %g of %g", N, C, V, chunk, err, big);
  if (lt_cpu_has_avx512bf16())
    CHECK_MSG(!same, "lmhead bf16 N=%d V=%d: dw has the f32 path's bits (were bf16 products used?)", N, V);
  free(x), free(w), free(wb), free(tg), free(gs.buf), free(scratch);
  free(dx1), free(dx2), free(dw), free(dx3), free(dw3);
}

// lt_gemm_bf16_wgrad: dw += dy^T x from bf16-rounded operands (f32 accumulation) against a double sum of the same
// rounded products; odd N (the last pair's partner 0), out beyond one 512-row block and not a multiple of 16
static void check_wgrad(int N, int out, int in) {
  uint64_t s = (uint64_t)(N * 5 + out * 11 + in);
  float *dy = malloc(sizeof(float) * (size_t)N * out), *x = malloc(sizeof(float) * (size_t)N * in);
  float *dw = malloc(sizeof(float) * (size_t)out * in);
  for (int64_t i = 0; i < (int64_t)N * out; i++) dy[i] = frand(&s);
  for (int64_t i = 0; i < (int64_t)N * in; i++) x[i] = frand(&s);
  for (int64_t i = 0; i < (int64_t)out * in; i++) dw[i] = 0.25f;
  int64_t mk = (int64_t)out * ((N + 1) & ~1);
  size_t sb = lt_gemm_bf16_scratch(mk, omp_get_max_threads());
  lt_gemm_scratch gs = {aligned_alloc(64, (sb + 63) & ~(size_t)63), mk, omp_get_max_threads()};
  uint16_t *xb = malloc(sizeof(uint16_t) * (size_t)N * in);
  int done = lt_gemm_bf16_wgrad(dw, dy, x, N, out, in, xb, sizeof(uint16_t) * (size_t)N * in, &gs);
  CHECK(done == lt_cpu_has_avx512bf16());
  CHECK(lt_gemm_bf16_wgrad(dw, dy, x, N, out, in, xb, sizeof(uint16_t) * (size_t)N * in - 2, &gs) == 0);
  if (done) {
    double maxerr = 0;
    for (int o = 0; o < out; o++)
      for (int i = 0; i < in; i++) {
        double ref = 0.25, mag = 0.25;
        for (int n = 0; n < N; n++) {
          double t = (double)lt_bf16_to_f32(lt_f32_to_bf16(dy[(int64_t)n * out + o])) *
                     lt_bf16_to_f32(lt_f32_to_bf16(x[(int64_t)n * in + i]));
          ref += t, mag += fabs(t);
        }
        maxerr = fmax(maxerr, fabs(dw[(int64_t)o * in + i] - ref) / mag);
      }
    CHECK_MSG(maxerr < 1e-5, "wgrad N=%d out=%d in=%d: rel err %g", N, out, in, maxerr);
  }
  free(dy), free(x), free(dw), free(xb), free(gs.buf);
}

// the array conversion equals the scalar rounding (normal numbers, ties, infinities, NaN stays NaN)
static void check_convert(void) {
  enum { n = 100003 };
  float *x = malloc(sizeof(float) * n);
  uint16_t *b = malloc(sizeof(uint16_t) * n);
  uint64_t s = 99;
  for (int i = 0; i < n; i++) x[i] = frand(&s) * (float)(1 << (i % 20));
  x[5] = 1.00390625f;  // exactly halfway between two bf16 values: ties to even
  x[6] = 1.01171875f;
  x[7] = INFINITY;
  x[8] = -INFINITY;
  x[9] = NAN;
  lt_f32_to_bf16_n(b, x, n);
  int bad = 0;
  for (int i = 0; i < n; i++)
    if (i == 9 ? !isnan(lt_bf16_to_f32(b[i])) : b[i] != lt_f32_to_bf16(x[i])) bad++;
  CHECK_MSG(bad == 0, "lt_f32_to_bf16_n: %d of %d values differ from lt_f32_to_bf16", bad, n);
  if (lt_cpu_has_avx512bf16()) {  // the calling-thread variant, on a length with a tail
    uint16_t *b2 = malloc(sizeof(uint16_t) * n);
    lt_f32_to_bf16_st(b2, x, n);
    CHECK_MSG(memcmp(b, b2, sizeof(uint16_t) * n) == 0, "lt_f32_to_bf16_st differs from lt_f32_to_bf16_n");
    free(b2);
  }
  free(x);
  free(b);
}

int main(void) {
  static const int shapes[][3] = {{1, 1, 1},   {1, 64, 32},  {6, 64, 64},    {7, 65, 33},
                                  {13, 130, 95}, {32, 200, 17}, {5, 3, 300},  {50, 128, 896}, {7, 70, 4501},
                                  {3, 37, 75},  {4, 100, 33},  {2, 5, 64},   {4, 9, 1},   {61, 300, 4200}};
  int has = lt_cpu_has_avx512bf16();
  for (int path = 0; path < 2; path++) {
    if (path == 0 && !has) {
      fprintf(stderr, "no AVX512-BF16 on this CPU: testing the fallback only\n");
      continue;
    }
    if (path == 1) setenv("LMTUNE_NO_AVX512BF16", "1", 1);
    CHECK(lt_cpu_has_avx512bf16() == (path == 0));
    check_convert();
    check_wgrad(37, 530, 70);
    check_wgrad(64, 16, 33);
    check_lmhead_bf16(40, 16, 1000, 7);  // V % 32 = 8: a scalar tail; a target at lane 16 of a block
    check_lmhead_bf16(5, 24, 1013, 2);  // odd V, V % 32 = 21: a 16-value vector and a scalar tail
    check_lmhead_bf16(4, 64, 512, 4);   // no tail
    if (path == 0) {
      const int sk[][3] = {{1, 1, 1}, {23, 37, 5}, {50, 448, 16}, {25, 100, 17}, {13, 64, 33}, {7, 30, 64}, {3, 5, 65}};
      for (size_t i = 0; i < sizeof sk / sizeof sk[0]; i++) check_skinny(sk[i][0], sk[i][1], sk[i][2]);
    }
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
      for (int nn = 0; nn < 2; nn++)
        for (int acc = 0; acc < 2; acc++) run(shapes[i][0], shapes[i][1], shapes[i][2], nn, acc, path == 0);
  }
  TEST_MAIN_END();
}
