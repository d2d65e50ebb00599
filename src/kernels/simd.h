// Small AVX-512 building blocks shared by the kernels (callers carry the target attribute).
#ifndef LT_SIMD_H
#define LT_SIMD_H
#include <immintrin.h>

// 16 x 16 transpose of 32-bit elements: r[i] (row i) -> r[c] (column c)
static inline __attribute__((always_inline, target("avx512f"))) void lt_transpose16x16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // r[4i + e], 128-bit lane L: rows 4i..4i+3 of column 4L + e
  for (int i = 0; i < 4; i++) {
    r[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int e = 0; e < 4; e++) {
    __m512i s0 = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x88), s1 = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xdd);
    __m512i s2 = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x88), s3 = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xdd);
    t[e] = _mm512_shuffle_i32x4(s0, s2, 0x88);       // column e
    t[8 + e] = _mm512_shuffle_i32x4(s0, s2, 0xdd);   // column 8 + e
    t[4 + e] = _mm512_shuffle_i32x4(s1, s3, 0x88);   // column 4 + e
    t[12 + e] = _mm512_shuffle_i32x4(s1, s3, 0xdd);  // column 12 + e
  }
  for (int i = 0; i < 16; i++) r[i] = t[i];
}

#endif
