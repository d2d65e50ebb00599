// GEMM throughput on the training workload's shapes: lmtune bf16 (NT forward, NN input-gradient) vs OpenBLAS
// sgemm, and the machine's bf16 dot-product peak from a register-resident vdpbf16ps loop. Prints GFLOP/s.
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "kernels/gemm.h"

__attribute__((target("avx512f,avx512bf16"))) static double peak_bf16(void) {
  double t0 = lt_now();
  long iters = 10000000;
  float sink = 0;
#pragma omp parallel reduction(+ : sink)
  {
    __m512 a[24];  // enough independent sums to cover the instruction's latency (12 measured ~10% low on Zen 4)
    for (int i = 0; i < 24; i++) a[i] = _mm512_set1_ps((float)i);
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x3f803f80);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
      for (int i = 0; i < 24; i++) a[i] = _mm512_dpbf16_ps(a[i], x, y);
    }
    for (int i = 0; i < 24; i++) sink += _mm512_reduce_add_ps(a[i]);
  }
  double dt = lt_now() - t0;
  if (sink == 1.2345f) printf(" ");
  return (double)omp_get_max_threads() * iters * 24 * 64 / dt / 1e9;
}

int main(int argc, char **argv) {
  static const int shapes[][3] = {{512, 896, 896}, {512, 128, 896}, {512, 4864, 896}, {512, 896, 4864}};
  int threads = omp_get_max_threads();
  if (argc > 1 && strcmp(argv[1], "--peak") == 0) {  // the peak alone, for bench/run.sh's ceiling line
    double best = 0;  // the best of five short loops (a neighbour's burst lowers single ones)
    for (int i = 0; i < 5 && lt_cpu_has_avx512bf16(); i++) {
      double p = peak_bf16();
      if (p > best) best = p;
    }
    if (best > 0) printf("peak_bf16_gflops %.1f\n", best);
    return 0;
  }
  printf("threads %d, avx512bf16 %s\n", threads, lt_cpu_has_avx512bf16() ? "yes" : "no");
  if (lt_cpu_has_avx512bf16()) printf("bf16 dot-product peak (register-resident): %.0f GFLOP/s\n", peak_bf16());
  printf("%-18s %12s %12s %12s\n", "M x N x K", "sgemm", "bf16 NT", "bf16 NN");
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
    float *x = malloc(sizeof(float) * (size_t)M * K), *y = malloc(sizeof(float) * (size_t)M * N);
    float *wf = malloc(sizeof(float) * (size_t)N * K);
    uint16_t *w = malloc(sizeof(uint16_t) * (size_t)N * K);
    for (long i = 0; i < (long)M * K; i++) x[i] = (float)(i % 13) * 0.01f;
    for (long i = 0; i < (long)N * K; i++) wf[i] = (float)(i % 7) * 0.01f, w[i] = lt_f32_to_bf16(wf[i]);
    int64_t mk = (int64_t)M * (((K > N ? K : N) + 1) & ~1);
    lt_gemm_scratch gs = {aligned_alloc(64, (lt_gemm_bf16_scratch(mk, threads) + 63) & ~(size_t)63), mk, threads};
    void *scratch = gs.buf;
    double flop = 2.0 * M * N * K, r[3];
    for (int v = 0; v < 3; v++) {
      double best = 1e9;
      for (int rep = 0; rep < 5; rep++) {
        double t0 = lt_now();
        if (v == 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, x, K, wf, K, 0, y, N);
        if (v == 1) lt_gemm_bf16_nt(y, x, w, M, N, K, 0, &gs);
        if (v == 2) lt_gemm_bf16_nn(y, x, w, M, N, K, 0, &gs);  // w as (K, N)
        double dt = lt_now() - t0;
        if (dt < best) best = dt;
      }
      r[v] = flop / best / 1e9;
    }
    char name[32];
    snprintf(name, sizeof name, "%dx%dx%d", M, N, K);
    printf("%-18s %12.0f %12.0f %12.0f\n", name, r[0], r[1], r[2]);
    free(x), free(y), free(wf), free(w), free(scratch);
  }
  return 0;
}
