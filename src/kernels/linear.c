// Linear layer on OpenBLAS sgemm. Outside an OpenMP region sgemm uses all threads; inside one it runs single-threaded.
#include <cblas.h>
#include <string.h>
#include "kernels/kernels.h"

// x (N,C), w (OC,C), b (OC) or NULL -> y (N,OC) = x w^T + b (y += ... when accumulate)
void lt_linear_forward(float *y, const float *x, const float *w, const float *b, int N, int C, int OC, int accumulate) {
  if (N <= 0 || OC <= 0) return;
  if (C <= 0) {
    if (!accumulate) memset(y, 0, (size_t)N * (size_t)OC * sizeof(float));
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, x, C, w, C, accumulate ? 1.0f : 0.0f, y, OC);
  }
  if (b) lt_add_bias(y, b, N, OC);
}

// dy (N,OC) -> dx (N,C) += dy w ; dw (OC,C) += dy^T x ; db (OC) += sum_n dy
void lt_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int N, int C,
                        int OC) {
  if (N <= 0 || OC <= 0) return;
  if (C > 0) {
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dy, OC, w, C, 1.0f, dx, C);
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dy, OC, x, C, 1.0f, dw, C);
  }
  if (db) {
    // Column sums in a fixed order (deterministic); threads split the columns.
#pragma omp parallel for schedule(static) if ((int64_t)N * OC > (1 << 16))
    for (int o0 = 0; o0 < OC; o0 += 256) {
      int o1 = o0 + 256 < OC ? o0 + 256 : OC;
      for (int n = 0; n < N; n++) {
        const float *r = dy + (int64_t)n * OC;
        for (int o = o0; o < o1; o++) db[o] += r[o];
      }
    }
  }
}
