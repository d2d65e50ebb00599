// SwiGLU gate: h = silu(g) * u, silu(g) = g / (1 + exp(-g)) as torch computes it.
#include <math.h>
#include "kernels/kernels.h"

#define LT_SWIGLU_PAR (1 << 14)

// g (n), u (n) -> h (n)
void lt_swiglu_forward(float *h, const float *g, const float *u, int n) {
#pragma omp parallel for schedule(static) if (n > LT_SWIGLU_PAR)
  for (int i = 0; i < n; i++) {
    float x = g[i];
    h[i] = (x / (1.0f + expf(-x))) * u[i];
  }
}

// dh (n) -> dg (n) += dh * u * sig * (1 + g * (1 - sig)) ; du (n) += dh * silu(g)
void lt_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int n) {
#pragma omp parallel for schedule(static) if (n > LT_SWIGLU_PAR)
  for (int i = 0; i < n; i++) {
    float x = g[i];
    float sig = 1.0f / (1.0f + expf(-x));
    if (dg) dg[i] += dh[i] * u[i] * (sig * (1.0f + x * (1.0f - sig)));
    if (du) du[i] += dh[i] * (x / (1.0f + expf(-x)));
  }
}
