// Rotary position embedding, rotate_half convention (pairs (i, i + D/2)), angles as transformers computes them:
// angle = (float)pos * inv_freq[i] in f32, then cosf / sinf of that float.
#include <math.h>
#include "kernels/kernels.h"
#include "kernels/vexp.h"

#define LT_ROPE_BLK 64  // cos/sin computed once per (row, block of frequencies) and reused across heads

// x1[i], x2[i] <- x1 cs - x2 sn, x2 cs + x1 sn for i < ni (the transpose when neg: x1 cs + x2 sn, x2 cs - x1 sn,
// the bits of the same loop on -sn): the portable loop's products and sums, 16 lanes at a time
static LT_TARGET_AVX512 void rot16(float *x1, float *x2, const float *cs, const float *sn, int ni, int neg) {
  for (int i = 0; i < ni; i += 16) {
    __mmask16 m = ni - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (ni - i)) - 1u);
    __m512 a = _mm512_maskz_loadu_ps(m, x1 + i), b = _mm512_maskz_loadu_ps(m, x2 + i);
    __m512 c = _mm512_maskz_loadu_ps(m, cs + i), s = _mm512_maskz_loadu_ps(m, sn + i);
    __m512 ac = _mm512_mul_ps(a, c), bs = _mm512_mul_ps(b, s), bc = _mm512_mul_ps(b, c), as = _mm512_mul_ps(a, s);
    _mm512_mask_storeu_ps(x1 + i, m, neg ? _mm512_add_ps(ac, bs) : _mm512_sub_ps(ac, bs));
    _mm512_mask_storeu_ps(x2 + i, m, neg ? _mm512_sub_ps(bc, as) : _mm512_add_ps(bc, as));
  }
}

// the angles' cosines and sines of one row at position p for frequencies i0..i0+ni
static void row_cs(float *cs, float *sn, int32_t p, const float *inv_freq, int i0, int ni) {
  for (int i = 0; i < ni; i++) {
    float a = (float)p * inv_freq[i0 + i];
    cs[i] = cosf(a);
    sn[i] = sinf(a);
  }
}

// dir = +1: forward rotation; dir = -1: its transpose (backward). The cosines and sines from tab (lt_rope_table) when
// given, else from pos and inv_freq, per row and block of frequencies.
static void rope_apply(float *x, const float *tab, const int32_t *pos, const float *inv_freq, int N, int nh, int D,
                       int dir) {
  int half = D / 2, avx = lt_cpu_has_avx512(), neg = dir < 0;
#pragma omp parallel for schedule(dynamic, 8) if ((int64_t)N * nh * D > (1 << 15))
  for (int n = 0; n < N; n++) {
    float cb[LT_ROPE_BLK], sb[LT_ROPE_BLK];
    for (int i0 = 0; i0 < half; i0 += LT_ROPE_BLK) {
      int ni = half - i0 < LT_ROPE_BLK ? half - i0 : LT_ROPE_BLK;
      const float *cs = cb, *sn = sb;
      if (tab) {
        cs = tab + (int64_t)n * half + i0;
        sn = cs + (int64_t)N * half;
      } else {
        row_cs(cb, sb, pos[n], inv_freq, i0, ni);
      }
      for (int h = 0; h < nh; h++) {
        float *x1 = x + ((int64_t)n * nh + h) * D + i0, *x2 = x1 + half;
        if (avx) {
          rot16(x1, x2, cs, sn, ni, neg);
          continue;
        }
        for (int i = 0; i < ni; i++) {
          float a = x1[i], b = x2[i], s = neg ? -sn[i] : sn[i];
          x1[i] = a * cs[i] - b * s;  // q*cos + rotate_half(q)*sin, first half: -x2
          x2[i] = b * cs[i] + a * s;  // second half: +x1
        }
      }
    }
  }
}

void lt_rope_table(float *tab, const int32_t *pos, const float *inv_freq, int N, int D) {
  int half = D / 2;
  for (int n = 0; n < N; n++) row_cs(tab + (int64_t)n * half, tab + (int64_t)(N + n) * half, pos[n], inv_freq, 0, half);
}

// x (N, nh, D) rotated in place at positions pos (N)
void lt_rope_forward(float *x, const int32_t *pos, const float *inv_freq, int N, int nh, int D) {
  rope_apply(x, NULL, pos, inv_freq, N, nh, D, +1);
}

// dx (N, nh, D) in place: the transpose rotation turns dy into dx
void lt_rope_backward(float *dx, const int32_t *pos, const float *inv_freq, int N, int nh, int D) {
  rope_apply(dx, NULL, pos, inv_freq, N, nh, D, -1);
}

void lt_rope_forward_tab(float *x, const float *tab, int N, int nh, int D) {
  rope_apply(x, tab, NULL, NULL, N, nh, D, +1);
}

void lt_rope_backward_tab(float *dx, const float *tab, int N, int nh, int D) {
  rope_apply(dx, tab, NULL, NULL, N, nh, D, -1);
}
