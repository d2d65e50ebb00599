// AdamW step with torch.optim.AdamW semantics (single-tensor path): decoupled decay first, bias corrections in
// double with step t >= 1, optional amsgrad (vmax != NULL). Elementwise order follows torch's CPU kernels:
//   w *= 1 - lr*wd ; m += (1-b1)*(g - m) ; v = v*b2 + ((1-b2)*g)*g ; vmax = max(vmax, v)
//   denom = sqrt(v or vmax) / sqrt(1 - b2^t) + eps ; w += (-lr / (1 - b1^t)) * m / denom
// (torch's vectorised lerp may use an FMA for the m update: that differs by at most an ulp.)
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels.h"
#include "kernels/vexp.h"

// One element, the order above; every operation is a single correctly rounded one (no fused multiply-add), so the
// AVX-512 body below gives the same bits.
static inline void adamw_one(float *w, const float *g, float *m, float *v, float *vmax, int64_t i, float decay,
                             int wd, float a1, float a2, float beta2, float bc2s, float eps, float step) {
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

// Elements [i0, i0 + 16 * nv) sixteen at a time; max(vmax, v) as the ternary above takes it (v when either is NaN).
LT_TARGET_AVX512 static void adamw_avx512(float *w, const float *g, float *m, float *v, float *vmax, int64_t i0,
                                          int64_t nv, float decay, int wd, float a1, float a2, float beta2,
                                          float bc2s, float eps, float step) {
  const __m512 vdec = _mm512_set1_ps(decay), va1 = _mm512_set1_ps(a1), va2 = _mm512_set1_ps(a2);
  const __m512 vb2 = _mm512_set1_ps(beta2), vbc = _mm512_set1_ps(bc2s), veps = _mm512_set1_ps(eps);
  const __m512 vst = _mm512_set1_ps(step);
  for (int64_t b = 0; b < nv; b++) {
    int64_t i = i0 + 16 * b;
    __m512 wi = _mm512_loadu_ps(w + i), gi = _mm512_loadu_ps(g + i), mo = _mm512_loadu_ps(m + i);
    if (wd) wi = _mm512_mul_ps(wi, vdec);
    __m512 mi = _mm512_add_ps(mo, _mm512_mul_ps(va1, _mm512_sub_ps(gi, mo)));
    __m512 vi = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(v + i), vb2), _mm512_mul_ps(_mm512_mul_ps(va2, gi), gi));
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    __m512 vd = vi;
    if (vmax) {
      vd = _mm512_max_ps(_mm512_loadu_ps(vmax + i), vi);
      _mm512_storeu_ps(vmax + i, vd);
    }
    __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vd), vbc), veps);
    _mm512_storeu_ps(w + i, _mm512_add_ps(wi, _mm512_div_ps(_mm512_mul_ps(vst, mi), denom)));
  }
}

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
  if (lt_cpu_has_avx512()) {  // blocks of 1024 elements per thread, the tail element by element
    int64_t nb = n / 1024;
#pragma omp parallel for schedule(static) if (n > LT_ADAMW_PAR)
    for (int64_t b = 0; b < nb; b++)
      adamw_avx512(w, g, m, v, vmax, b * 1024, 64, decay, wd, a1, a2, beta2, bc2s, eps, step);
    int64_t i = nb * 1024;
    adamw_avx512(w, g, m, v, vmax, i, (n - i) / 16, decay, wd, a1, a2, beta2, bc2s, eps, step);
    for (i += (n - i) / 16 * 16; i < n; i++) adamw_one(w, g, m, v, vmax, i, decay, wd, a1, a2, beta2, bc2s, eps, step);
    return;
  }
#pragma omp parallel for schedule(static) if (n > LT_ADAMW_PAR)
  for (int64_t i = 0; i < n; i++) adamw_one(w, g, m, v, vmax, i, decay, wd, a1, a2, beta2, bc2s, eps, step);
}
