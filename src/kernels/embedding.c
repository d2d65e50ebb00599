// Token embedding lookup and its scatter-add backward.
#include <string.h>
#include "kernels/kernels.h"

// ids (N), wte (V,C) -> out (N,C)
void lt_embedding_forward(float *out, const int32_t *ids, const float *wte, int N, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > (1 << 16))
  for (int n = 0; n < N; n++) memcpy(out + (int64_t)n * C, wte + (int64_t)ids[n] * C, (size_t)C * sizeof(float));
}

// dout (N,C) -> dwte (V,C) += scatter. Threads split the columns, so repeated ids never race and the
// summation order (row order) is fixed.
void lt_embedding_backward(float *dwte, const float *dout, const int32_t *ids, int N, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > (1 << 16))
  for (int c0 = 0; c0 < C; c0 += 128) {
    int c1 = c0 + 128 < C ? c0 + 128 : C;
    for (int n = 0; n < N; n++) {
      float *d = dwte + (int64_t)ids[n] * C;
      const float *s = dout + (int64_t)n * C;
      for (int c = c0; c < c1; c++) d[c] += s[c];
    }
  }
}
