// Private helpers of src/eval: strict UTF-8 decoding and Python's notion of whitespace.
#ifndef LT_EVAL_TEXT_H
#define LT_EVAL_TEXT_H
#include <stddef.h>
#include <stdint.h>

// Decode one code point of s[0..len) (len >= 1). Returns its byte length, or 0 if the bytes are not valid UTF-8
// as Python's strict codec sees it (overlong forms, surrogates and values above U+10FFFF are invalid).
static inline size_t lt_utf8_next(const unsigned char *s, size_t len, uint32_t *cp) {
  unsigned c = s[0];
  if (c < 0x80) { *cp = c; return 1; }
  size_t n;
  uint32_t v, min;
  if (c >= 0xC2 && c <= 0xDF) { n = 2; v = c & 0x1F; min = 0x80; }
  else if (c >= 0xE0 && c <= 0xEF) { n = 3; v = c & 0x0F; min = 0x800; }
  else if (c >= 0xF0 && c <= 0xF4) { n = 4; v = c & 0x07; min = 0x10000; }
  else return 0;
  if (len < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

// Python's str.isspace(), which str.split(), str.strip() and str.rstrip() use.
static inline int lt_py_isspace(uint32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// 0 when s[0..len) is valid UTF-8, else the byte offset + 1 of the first bad sequence.
static inline size_t lt_utf8_check(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    uint32_t cp = 0;
    size_t k = lt_utf8_next(u + i, len - i, &cp);
    if (!k) return i + 1;
    i += k;
  }
  return 0;
}

#endif
