// AdamW step with torch.optim.AdamW semantics (single-tensor path): decoupled decay first, bias corrections in
// double with step t >= 1, optional amsgrad (vmax != NULL). Elementwise order follows torch's CPU kernels:
//   w *= 1 - lr*wd ; m += (1-b1)*(g - m) ; v = v*b2 + ((1-b2)*g)*g ; vmax = max(vmax, v)
//   denom = sqrt(v or vmax) / sqrt(1 - b2^t) + eps ; w += (-lr / (1 - b1^t)) * m / denom
// (torch's vectorised lerp may use an FMA for the m update: that differs by at most an ulp.)
#include <math.h>
#include "kernels/kernels.h"

// w, g, m, v, vmax (n) ; step t (1-based)
void lt_adamw_step(float *w, const float *g, float *m, float *v, float *vmax, int64_t n, float lr, float beta1,
                   float beta2, float eps, float weight_decay, int64_t t) {
  double bc1 = 1.0 - pow((double)beta1, (double)t);
  double bc2 = 1.0 - pow((double)beta2, (double)t);
  float decay = (float)(1.0 - (double)lr * (double)weight_decay);
  float a1 = (float)(1.0 - (double)beta1), a2 = (float)(1.0 - (double)beta2);
  float step = (float)(-(double)lr / bc1);
  float bc2s = (float)sqrt(bc2);
  int wd = weight_decay != 0.0f;
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; i++) {
    float wi = w[i], gi = g[i];
    if (wd) wi = wi * decay;
    float mi = m[i] + a1 * (gi - m[i]);
    float vi = v[i] * beta2 + (a2 * gi) * gi;
    m[i] = mi, v[i] = vi;
    float vd = vi;
    if (vmax) {
      vd = vmax[i] > vi ? vmax[i] : vi;
      vmax[i] = vd;
    }
    float denom = sqrtf(vd) / bc2s + eps;
    w[i] = wi + (step * mi) / denom;
  }
}
