// Rotary position embedding, rotate_half convention (pairs (i, i + D/2)), angles as transformers computes them:
// angle = (float)pos * inv_freq[i] in f32, then cosf / sinf of that float.
#include <math.h>
#include "kernels/kernels.h"
#include "kernels/vexp.h"

#define LT_ROPE_BLK 64  // cos/sin computed once per (row, block of frequencies) and reused across heads

// x1[i], x2[i] <- x1 cs - x2 sn, x2 cs + x1 sn for i < ni: the portable loop's products and sums, 16 lanes at a time
static LT_TARGET_AVX512 void rot16(float *x1, float *x2, const float *cs, const float *sn, int ni) {
  for (int i = 0; i < ni; i += 16) {
    __mmask16 m = ni - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (ni - i)) - 1u);
    __m512 a = _mm512_maskz_loadu_ps(m, x1 + i), b = _mm512_maskz_loadu_ps(m, x2 + i);
    __m512 c = _mm512_maskz_loadu_ps(m, cs + i), s = _mm512_maskz_loadu_ps(m, sn + i);
    _mm512_mask_storeu_ps(x1 + i, m, _mm512_sub_ps(_mm512_mul_ps(a, c), _mm512_mul_ps(b, s)));
    _mm512_mask_storeu_ps(x2 + i, m, _mm512_add_ps(_mm512_mul_ps(b, c), _mm512_mul_ps(a, s)));
  }
}

// dir = +1: forward rotation; dir = -1: its transpose (backward).
static void rope_apply(float *x, const int32_t *pos, const float *inv_freq, int N, int nh, int D, int dir) {
  int half = D / 2, avx = lt_cpu_has_avx512();
#pragma omp parallel for schedule(dynamic, 8) if ((int64_t)N * nh * D > (1 << 15))
  for (int n = 0; n < N; n++) {
    float cs[LT_ROPE_BLK], sn[LT_ROPE_BLK];
    float p = (float)pos[n];
    for (int i0 = 0; i0 < half; i0 += LT_ROPE_BLK) {
      int ni = half - i0 < LT_ROPE_BLK ? half - i0 : LT_ROPE_BLK;
      for (int i = 0; i < ni; i++) {
        float a = p * inv_freq[i0 + i];
        cs[i] = cosf(a);
        sn[i] = dir > 0 ? sinf(a) : -sinf(a);
      }
      for (int h = 0; h < nh; h++) {
        float *x1 = x + ((int64_t)n * nh + h) * D + i0, *x2 = x1 + half;
        if (avx) {
          rot16(x1, x2, cs, sn, ni);
          continue;
        }
        for (int i = 0; i < ni; i++) {
          float a = x1[i], b = x2[i];
          x1[i] = a * cs[i] - b * sn[i];  // q*cos + rotate_half(q)*sin, first half: -x2
          x2[i] = b * cs[i] + a * sn[i];  // second half: +x1
        }
      }
    }
  }
}

// x (N, nh, D) rotated in place at positions pos (N)
void lt_rope_forward(float *x, const int32_t *pos, const float *inv_freq, int N, int nh, int D) {
  rope_apply(x, pos, inv_freq, N, nh, D, +1);
}

// dx (N, nh, D) in place: the transpose rotation turns dy into dx
void lt_rope_backward(float *dx, const int32_t *pos, const float *inv_freq, int N, int nh, int D) {
  rope_apply(dx, pos, inv_freq, N, nh, D, -1);
}
