// RMSNorm as transformers LlamaRMSNorm: y = w * (x * rsqrt(mean(x^2) + eps)), f32 with a double sum of squares.
#include <math.h>
#include "kernels/kernels.h"

#define LT_RMS_PAR (1 << 15)

// x (N,C), w (C) -> y (N,C), rstd (N)
void lt_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > LT_RMS_PAR)
  for (int n = 0; n < N; n++) {
    const float *xr = x + (int64_t)n * C;
    float *yr = y + (int64_t)n * C;
    double ss = 0.0;
    for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
    float var = (float)(ss / C);
    float r = 1.0f / sqrtf(var + eps);  // torch.rsqrt on CPU is 1/sqrt
    for (int c = 0; c < C; c++) yr[c] = w[c] * (xr[c] * r);
    if (rstd) rstd[n] = r;
  }
}

// dy (N,C) -> dx (N,C) += r*w*dy - r^3/C * x * sum(dy*w*x) ; dw (C) += sum_n dy * x * r
void lt_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd, int N,
                         int C) {
  if (dx) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > LT_RMS_PAR)
    for (int n = 0; n < N; n++) {
      const float *xr = x + (int64_t)n * C, *dyr = dy + (int64_t)n * C;
      float *dxr = dx + (int64_t)n * C;
      float r = rstd[n];
      double dot = 0.0;
      for (int c = 0; c < C; c++) dot += (double)dyr[c] * w[c] * xr[c];
      float k = (float)(dot * r * r * r / C);
      for (int c = 0; c < C; c++) dxr[c] += r * (w[c] * dyr[c]) - k * xr[c];
    }
  }
  if (dw) {
    // Threads split the columns; each column sums rows in order (deterministic).
#pragma omp parallel for schedule(static) if ((int64_t)N * C > LT_RMS_PAR)
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
