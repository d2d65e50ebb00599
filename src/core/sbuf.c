// lt_sbuf: a growable text buffer with sticky out-of-memory (see core.h).
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

void lt_sbuf_free(lt_sbuf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

int lt_sbuf_reserve(lt_sbuf *b, size_t extra) {
  if (b->oom) return -1;
  if (extra >= SIZE_MAX / 2 - b->n) {
    b->oom = 1;
    return -1;
  }
  size_t need = b->n + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

void lt_sbuf_put(lt_sbuf *b, const void *s, size_t n) {
  if (lt_sbuf_reserve(b, n)) return;
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

void lt_sbuf_puts(lt_sbuf *b, const char *s) { lt_sbuf_put(b, s, strlen(s)); }

void lt_sbuf_printf(lt_sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->oom = 1;
    return;
  }
  if ((size_t)n < sizeof small) {
    lt_sbuf_put(b, small, (size_t)n);
    return;
  }
  if (lt_sbuf_reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)n;
}
