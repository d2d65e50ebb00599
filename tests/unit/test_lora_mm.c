// LoRA's low-rank products (src/kernels/lora_mm.c) against a double-precision reference on odd shapes (rank and
// feature tails, one row, r > 16), accumulate/overwrite semantics, and bit-identical results for 1 and 2 threads.
// Run again with LMTUNE_NO_AVX512=1 (the OpenBLAS path).
#include <omp.h>

#include "core/core.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "test.h"

static float frand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static float *rnd(int64_t n, uint64_t *s) {
  float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  for (int64_t i = 0; i < n; i++) p[i] = frand(s);
  return p;
}

typedef struct {
  float *xa, *y, *gB, *dxa, *gA, *dx;
} outs;

// every product once, outputs preset to known values (the += ones) or garbage (the = ones)
static outs run_all(const float *x, const float *A, const float *B, const float *dy, const float *dxa_in, float s,
                    int N, int in, int out, int r, int acc) {
  outs o;
  o.xa = malloc(sizeof(float) * (size_t)N * r);
  o.y = malloc(sizeof(float) * (size_t)N * out);
  o.gB = malloc(sizeof(float) * (size_t)out * r);
  o.dxa = malloc(sizeof(float) * (size_t)N * r);
  o.gA = malloc(sizeof(float) * (size_t)r * in);
  o.dx = malloc(sizeof(float) * (size_t)N * in);
  for (int64_t i = 0; i < (int64_t)N * r; i++) o.xa[i] = o.dxa[i] = 777.0f;
  for (int64_t i = 0; i < (int64_t)N * out; i++) o.y[i] = 0.25f;
  for (int64_t i = 0; i < (int64_t)out * r; i++) o.gB[i] = 0.5f;
  for (int64_t i = 0; i < (int64_t)r * in; i++) o.gA[i] = -0.5f;
  for (int64_t i = 0; i < (int64_t)N * in; i++) o.dx[i] = acc ? 1.5f : 999.0f;
  lt_lora_xa(o.xa, x, A, N, in, r);
  lt_lora_up(o.y, dxa_in, B, s, N, out, r);
  lt_lora_up_backward(o.gB, o.dxa, dy, dxa_in, B, s, N, out, r);
  lt_lora_down_backward(o.gA, o.dx, dxa_in, x, A, N, in, r, acc);
  return o;
}

static void free_outs(outs *o) {
  free(o->xa);
  free(o->y);
  free(o->gB);
  free(o->dxa);
  free(o->gA);
  free(o->dx);
}

// relative error of got against sum_k a(k) b(k) + base, scaled by sum |a b|
static double relerr(double got, double ref, double mag) { return fabs(got - ref) / (mag + 1e-6); }

static void check_shape(int N, int in, int out, int r, int acc) {
  uint64_t sd = (uint64_t)(N * 1000003 + in * 1009 + out * 31 + r);
  float *x = rnd((int64_t)N * in, &sd), *A = rnd((int64_t)r * in, &sd), *B = rnd((int64_t)out * r, &sd);
  float *dy = rnd((int64_t)N * out, &sd), *v = rnd((int64_t)N * r, &sd);  // v: the xa / dxa input
  float s = 1.75f;
  outs o = run_all(x, A, B, dy, v, s, N, in, out, r, acc);
  double e_xa = 0, e_y = 0, e_gB = 0, e_dxa = 0, e_gA = 0, e_dx = 0;
  for (int n = 0; n < N; n++)
    for (int q = 0; q < r; q++) {
      double ref = 0, mag = 0;
      for (int k = 0; k < in; k++) {
        double t = (double)x[(int64_t)n * in + k] * A[(int64_t)q * in + k];
        ref += t;
        mag += fabs(t);
      }
      e_xa = fmax(e_xa, relerr(o.xa[(int64_t)n * r + q], ref, mag));
      ref = mag = 0;
      for (int j = 0; j < out; j++) {
        double t = (double)s * dy[(int64_t)n * out + j] * B[(int64_t)j * r + q];
        ref += t;
        mag += fabs(t);
      }
      e_dxa = fmax(e_dxa, relerr(o.dxa[(int64_t)n * r + q], ref, mag));
    }
  for (int n = 0; n < N; n++)
    for (int j = 0; j < out; j++) {
      double ref = 0.25, mag = 0.25;
      for (int q = 0; q < r; q++) {
        double t = (double)s * v[(int64_t)n * r + q] * B[(int64_t)j * r + q];
        ref += t;
        mag += fabs(t);
      }
      e_y = fmax(e_y, relerr(o.y[(int64_t)n * out + j], ref, mag));
    }
  for (int j = 0; j < out; j++)
    for (int q = 0; q < r; q++) {
      double ref = 0.5, mag = 0.5;
      for (int n = 0; n < N; n++) {
        double t = (double)s * dy[(int64_t)n * out + j] * v[(int64_t)n * r + q];
        ref += t;
        mag += fabs(t);
      }
      e_gB = fmax(e_gB, relerr(o.gB[(int64_t)j * r + q], ref, mag));
    }
  for (int q = 0; q < r; q++)
    for (int k = 0; k < in; k++) {
      double ref = -0.5, mag = 0.5;
      for (int n = 0; n < N; n++) {
        double t = (double)v[(int64_t)n * r + q] * x[(int64_t)n * in + k];
        ref += t;
        mag += fabs(t);
      }
      e_gA = fmax(e_gA, relerr(o.gA[(int64_t)q * in + k], ref, mag));
    }
  for (int n = 0; n < N; n++)
    for (int k = 0; k < in; k++) {
      double ref = acc ? 1.5 : 0.0, mag = fabs(ref);
      for (int q = 0; q < r; q++) {
        double t = (double)v[(int64_t)n * r + q] * A[(int64_t)q * in + k];
        ref += t;
        mag += fabs(t);
      }
      e_dx = fmax(e_dx, relerr(o.dx[(int64_t)n * in + k], ref, mag));
    }
  double tol = 1e-5;
  CHECK_MSG(e_xa < tol && e_y < tol && e_gB < tol && e_dxa < tol && e_gA < tol && e_dx < tol,
            "N=%d in=%d out=%d r=%d acc=%d: xa %g y %g gB %g dxa %g gA %g dx %g", N, in, out, r, acc, e_xa, e_y, e_gB,
            e_dxa, e_gA, e_dx);

  // the same bits with one thread (each output is summed by one thread, in order)
  int th = omp_get_max_threads();
  omp_set_num_threads(1);
  outs o1 = run_all(x, A, B, dy, v, s, N, in, out, r, acc);
  omp_set_num_threads(th);
  int same = !memcmp(o.xa, o1.xa, sizeof(float) * (size_t)N * r) &&
             !memcmp(o.y, o1.y, sizeof(float) * (size_t)N * out) &&
             !memcmp(o.gB, o1.gB, sizeof(float) * (size_t)out * r) &&
             !memcmp(o.dxa, o1.dxa, sizeof(float) * (size_t)N * r) &&
             !memcmp(o.gA, o1.gA, sizeof(float) * (size_t)r * in) &&
             !memcmp(o.dx, o1.dx, sizeof(float) * (size_t)N * in);
  if (!getenv("LMTUNE_NO_AVX512"))  // OpenBLAS may split its sums by thread
    CHECK_MSG(same, "N=%d in=%d out=%d r=%d: 1 and %d threads differ", N, in, out, r, th);

  // x given in bf16 (the training rows under bf16 compute): the f32 kernels on the widened values, to the bit
  uint16_t *xb = malloc(sizeof(uint16_t) * (size_t)(N * in > 0 ? N * in : 1));
  for (int64_t i = 0; i < (int64_t)N * in; i++) x[i] = lt_bf16_to_f32(xb[i] = lt_f32_to_bf16(x[i]));
  outs ob = run_all(x, A, B, dy, v, s, N, in, out, r, acc);
  float *xa16 = malloc(sizeof(float) * (size_t)N * r), *gA16 = malloc(sizeof(float) * (size_t)r * in);
  for (int64_t i = 0; i < (int64_t)r * in; i++) gA16[i] = -0.5f;
  lt_lora_xa_b16(xa16, xb, A, N, in, r);
  lt_lora_grad_a_b16(gA16, v, xb, N, in, r);
  CHECK_MSG(getenv("LMTUNE_NO_AVX512") || (!memcmp(xa16, ob.xa, sizeof(float) * (size_t)N * r) &&
                                            !memcmp(gA16, ob.gA, sizeof(float) * (size_t)r * in)),
            "N=%d in=%d r=%d: bf16-input xa / gA differ from the f32 kernels on the widened rows", N, in, r);
  double e16 = 0;  // (the fallback loops against OpenBLAS)
  for (int64_t i = 0; i < (int64_t)r * in; i++) e16 = fmax(e16, fabs(gA16[i] - ob.gA[i]) / (fabs(ob.gA[i]) + 1.0));
  for (int64_t i = 0; i < (int64_t)N * r; i++) e16 = fmax(e16, fabs(xa16[i] - ob.xa[i]) / (fabs(ob.xa[i]) + 1.0));
  CHECK_MSG(e16 < 1e-4, "N=%d in=%d r=%d: bf16-input xa / gA off by %g", N, in, r, e16);
  // dy given in bf16 (the gate and up projections' gradients under bf16 compute): the same bits again
  uint16_t *dyb = malloc(sizeof(uint16_t) * (size_t)(N * out > 0 ? N * out : 1));
  for (int64_t i = 0; i < (int64_t)N * out; i++) dy[i] = lt_bf16_to_f32(dyb[i] = lt_f32_to_bf16(dy[i]));
  outs od = run_all(x, A, B, dy, v, s, N, in, out, r, acc);
  float *gB16 = malloc(sizeof(float) * (size_t)out * r), *dxa16 = malloc(sizeof(float) * (size_t)N * r);
  for (int64_t i = 0; i < (int64_t)out * r; i++) gB16[i] = 0.5f;
  lt_lora_up_backward_b16(gB16, dxa16, dyb, v, B, s, N, out, r);
  CHECK_MSG(getenv("LMTUNE_NO_AVX512") || (!memcmp(gB16, od.gB, sizeof(float) * (size_t)out * r) &&
                                            !memcmp(dxa16, od.dxa, sizeof(float) * (size_t)N * r)),
            "N=%d out=%d r=%d: bf16-input gB / dxa differ from the f32 kernels on the widened rows", N, out, r);
  double e17 = 0;
  for (int64_t i = 0; i < (int64_t)out * r; i++) e17 = fmax(e17, fabs(gB16[i] - od.gB[i]) / (fabs(od.gB[i]) + 1.0));
  for (int64_t i = 0; i < (int64_t)N * r; i++) e17 = fmax(e17, fabs(dxa16[i] - od.dxa[i]) / (fabs(od.dxa[i]) + 1.0));
  CHECK_MSG(e17 < 1e-4, "N=%d out=%d r=%d: bf16-input gB / dxa off by %g", N, out, r, e17);
  // gB from bf16 products over pairs of rows (xa's values bf16 too): against a double sum, from 0.5
  {
    float *vr = malloc(sizeof(float) * (size_t)(N * r > 0 ? N * r : 1)), *gb = malloc(sizeof(float) * (size_t)out * r);
    size_t xpb = sizeof(uint32_t) * (size_t)((N + 1) / 2) * (size_t)r;
    uint32_t *xp = malloc(xpb > 0 ? xpb : 4);
    for (int64_t i = 0; i < (int64_t)N * r; i++) vr[i] = lt_bf16_to_f32(lt_f32_to_bf16(v[i]));
    for (int64_t i = 0; i < (int64_t)out * r; i++) gb[i] = 0.5f;
    CHECK(xpb == 0 || lt_lora_grad_b_bf16(gb, dyb, vr, s, N, out, r, xp, xpb - 1) == -1);  // xp too small
    int rc = lt_lora_grad_b_bf16(gb, dyb, vr, s, N, out, r, xp, xpb);
    CHECK_MSG(rc == 0 || (rc == -1 && !lt_cpu_has_avx512bf16()), "N=%d out=%d r=%d: rc %d", N, out, r, rc);
    double eb = 0;
    for (int j = 0; rc == 0 && j < out; j++)
      for (int q = 0; q < r; q++) {
        double ref = 0;
        for (int n = 0; n < N; n++) ref += (double)dy[(int64_t)n * out + j] * vr[(int64_t)n * r + q];
        ref = 0.5 + s * ref;
        eb = fmax(eb, fabs(gb[(int64_t)j * r + q] - ref) / (fabs(ref) + 1.0));
      }
    CHECK_MSG(eb < 1e-5, "N=%d out=%d r=%d: bf16-product gB off by %g", N, out, r, eb);
    // gA the same way (dxa's values bf16 too), from -0.5
    float *ga = malloc(sizeof(float) * (size_t)(r * in > 0 ? r * in : 1));
    for (int64_t i = 0; i < (int64_t)r * in; i++) ga[i] = -0.5f;
    CHECK(xpb == 0 || lt_lora_grad_a_bf16(ga, xb, vr, N, in, r, xp, xpb - 1) == -1);  // xp too small
    rc = lt_lora_grad_a_bf16(ga, xb, vr, N, in, r, xp, xpb);
    CHECK_MSG(rc == 0 || (rc == -1 && !lt_cpu_has_avx512bf16()), "N=%d in=%d r=%d: rc %d", N, in, r, rc);
    double ea = 0;
    for (int q = 0; rc == 0 && q < r; q++)
      for (int k = 0; k < in; k++) {
        double ref = -0.5;
        for (int n = 0; n < N; n++) ref += (double)vr[(int64_t)n * r + q] * x[(int64_t)n * in + k];
        ea = fmax(ea, fabs(ga[(int64_t)q * in + k] - ref) / (fabs(ref) + 1.0));
      }
    CHECK_MSG(ea < 1e-5, "N=%d in=%d r=%d: bf16-product gA off by %g", N, in, r, ea);
    free(ga);
    free(vr);
    free(gb);
    free(xp);
  }
  free_outs(&od);
  free(dyb);
  free(gB16);
  free(dxa16);
  free_outs(&ob);
  free(xb);
  free(xa16);
  free(gA16);
  free_outs(&o);
  free_outs(&o1);
  free(x);
  free(A);
  free(B);
  free(dy);
  free(v);
}

int main(void) {
  static const int shapes[][4] = {
      // N, in, out, r
      {1, 1, 1, 1},      {1, 16, 16, 16},   {2, 17, 33, 3},   {7, 64, 64, 8},      {9, 100, 37, 16},
      {130, 96, 40, 16}, {65, 31, 129, 20}, {33, 200, 5, 64}, {200, 896, 128, 16}, {3, 48, 300, 33},
      {70, 1100, 1030, 20},  // many tiles per group, row blocks with a tail
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int acc = 0; acc < 2; acc++) check_shape(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], acc);

  // dx may be NULL (the first layer's input needs no gradient): gA alone
  {
    uint64_t sd = 5;
    float *x = rnd(40 * 24, &sd), *A = rnd(4 * 24, &sd), *v = rnd(40 * 4, &sd);
    float gA[4 * 24], gA2[4 * 24], dx[40 * 24];
    memset(gA, 0, sizeof gA);
    memset(gA2, 0, sizeof gA2);
    lt_lora_down_backward(gA, NULL, v, x, A, 40, 24, 4, 1);
    lt_lora_down_backward(gA2, dx, v, x, A, 40, 24, 4, 0);
    CHECK(!memcmp(gA, gA2, sizeof gA));
    free(x);
    free(A);
    free(v);
  }
  TEST_MAIN_END();
}
