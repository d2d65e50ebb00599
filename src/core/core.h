// core: error values, checked allocation, files (atomic writes), json helpers, npy, rng.
#ifndef LT_CORE_H
#define LT_CORE_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "lmtune.h"

#define LT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LT_MAX(a, b) ((a) > (b) ? (a) : (b))

// Fill err with a formatted message; returns -1 so callers can `return lt_errf(...)`.
int lt_errf(lt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Prefix an existing message ("context: old message").
int lt_err_prefix(lt_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Checked allocation: on failure fill err and return NULL. 64-byte aligned, zeroed.
void *lt_alloc(size_t n, lt_err *err);
void lt_free(void *p);
// Pages wholly inside [p, p + n) of a read-only private file mapping leave memory (the next access reads them from
// the file again). For mapped weights whose packed copy serves every product.
void lt_drop_mapped_pages(const void *p, size_t n);

// Carve 64-byte-aligned pieces from one block: a first pass with base == NULL only sums the size (off), a second
// pass over the real block hands out the same pieces.
typedef struct lt_carver { char *base; size_t off; } lt_carver;
static inline void *lt_carve(lt_carver *cv, size_t bytes) {
  size_t start = (cv->off + 63) & ~(size_t)63;
  cv->off = start + bytes;
  return cv->base ? cv->base + start : NULL;
}

// Whole-file read (NUL-terminated; *len excludes the NUL).
int lt_read_file(const char *path, char **data, size_t *len, lt_err *err);
// Write to path.tmp.<pid>, fsync, rename. Never leaves a half-written file at path.
int lt_write_file_atomic(const char *path, const void *data, size_t len, lt_err *err);
// Streaming variant: open a temp file, write with fwrite, commit (fsync + rename) or abort.
typedef struct { FILE *fp; char path[4096]; char tmp[4200]; } lt_atomic_file;
int lt_atomic_open(lt_atomic_file *af, const char *path, lt_err *err);
int lt_atomic_commit(lt_atomic_file *af, lt_err *err);
void lt_atomic_abort(lt_atomic_file *af);

int lt_path_join(char *out, size_t cap, const char *dir, const char *name);
// mkdir -p (mode 0755); an existing directory is fine.
int lt_mkdirs(const char *dir, lt_err *err);
// Copy a file atomically (temp + fsync + rename).
int lt_copy_file(const char *src, const char *dst, lt_err *err);
int lt_file_exists(const char *path);


// Counter-based RNG (splitmix64 over a key): the same (seed, stream, counter) always gives the same value.
uint64_t lt_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);
float lt_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);  // [0,1)

// bf16/f16 conversion.
static inline float lt_bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v; v.u = (uint32_t)h << 16; return v.f;
}
uint16_t lt_f32_to_bf16(float f);  // round to nearest even, NaN kept
float lt_f16_to_f32(uint16_t h);
uint16_t lt_f32_to_f16(float f);

// Monotonic seconds.
double lt_now(void);

// Growable NUL-terminated text buffer (zero-initialise). An allocation failure sets oom and later appends are
// dropped: check oom once at the end.
typedef struct lt_sbuf {
  char *p;
  size_t n, cap;
  int oom;
} lt_sbuf;
void lt_sbuf_free(lt_sbuf *b);
int lt_sbuf_reserve(lt_sbuf *b, size_t extra);  // room for extra more bytes + NUL; -1 (and oom) on failure
void lt_sbuf_put(lt_sbuf *b, const void *s, size_t n);
void lt_sbuf_puts(lt_sbuf *b, const char *s);
void lt_sbuf_printf(lt_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
