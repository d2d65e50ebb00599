// core: errors, allocation, files, npy, rng, half-precision conversion, clock.
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int lt_errf(lt_err *err, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return -1;
}

int lt_err_prefix(lt_err *err, const char *fmt, ...) {
  if (!err) return -1;
  char prefix[512], old[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  size_t pl = strlen(prefix);
  if (pl > sizeof err->msg - 3) pl = sizeof err->msg - 3;
  memcpy(err->msg, prefix, pl);
  memcpy(err->msg + pl, ": ", 2);
  size_t room = sizeof err->msg - pl - 3, ol = strnlen(old, sizeof old - 1);
  if (ol > room) ol = room;
  memcpy(err->msg + pl + 2, old, ol);
  err->msg[pl + 2 + ol] = 0;
  return -1;
}

#define LT_HUGE_PAGE ((size_t)2 << 20)
#define LT_HUGE_MIN ((size_t)8 << 20)

void *lt_alloc(size_t n, lt_err *err) {
  if (n == 0) n = 1;
  size_t rounded = (n + 63) & ~(size_t)63;
  if (rounded < n) {
    lt_errf(err, "allocation of %zu bytes overflows", n);
    return NULL;
  }
  void *p;
#ifdef MADV_HUGEPAGE
  // Large buffers (the training workspace, packed weights) in 2 MB pages where the kernel offers them (transparent huge
  // pages in "madvise" mode): the memory-bound passes walk many rows far apart, and 4 KB pages cost them a TLB
  // miss per row (measured ~25% on the SwiGLU and LoRA-gradient passes at 2048 tokens).
  // Only when rounding up to whole huge pages adds at most 1/32: a 2 MB page is resident as a whole.
  size_t huge = (rounded + LT_HUGE_PAGE - 1) & ~(size_t)(LT_HUGE_PAGE - 1);
  if (rounded >= LT_HUGE_MIN && huge >= rounded && huge - rounded <= rounded / 32) {
    rounded = huge;
    p = aligned_alloc(LT_HUGE_PAGE, rounded);
    if (p) (void)madvise(p, rounded, MADV_HUGEPAGE);  // advice only: 4 KB pages if refused
  } else
#endif
    p = aligned_alloc(64, rounded);
  if (!p) {
    lt_errf(err, "out of memory allocating %zu bytes", n);
    return NULL;
  }
  memset(p, 0, rounded);
  return p;
}

void lt_free(void *p) { free(p); }

void lt_drop_mapped_pages(const void *p, size_t n) {
  long ps = sysconf(_SC_PAGESIZE);
  if (ps <= 0 || !p) return;
  uintptr_t mask = ~(uintptr_t)(ps - 1);
  uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & mask, e = ((uintptr_t)p + n) & mask;
  if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);  // advice: nothing is lost if refused
}

int lt_read_file(const char *path, char **data, size_t *len, lt_err *err) {
  *data = NULL;
  *len = 0;
  FILE *fp = fopen(path, "rb");
  if (!fp) return lt_errf(err, "%s: cannot open: %s", path, strerror(errno));
  if (fseek(fp, 0, SEEK_END) != 0) {
    fclose(fp);
    return lt_errf(err, "%s: cannot seek: %s", path, strerror(errno));
  }
  long sz = ftell(fp);
  if (sz < 0) {
    fclose(fp);
    return lt_errf(err, "%s: cannot tell size: %s", path, strerror(errno));
  }
  rewind(fp);
  char *buf = lt_alloc((size_t)sz + 1, err);
  if (!buf) {
    fclose(fp);
    return lt_err_prefix(err, "%s", path);
  }
  if (sz > 0 && fread(buf, 1, (size_t)sz, fp) != (size_t)sz) {
    fclose(fp);
    free(buf);
    return lt_errf(err, "%s: short read", path);
  }
  fclose(fp);
  buf[sz] = 0;
  *data = buf;
  *len = (size_t)sz;
  return 0;
}

int lt_atomic_open(lt_atomic_file *af, const char *path, lt_err *err) {
  memset(af, 0, sizeof *af);
  if (strlen(path) >= sizeof af->path) return lt_errf(err, "%s: path too long", path);
  strcpy(af->path, path);
  snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
  af->fp = fopen(af->tmp, "wb");
  if (!af->fp) return lt_errf(err, "%s: cannot create: %s", af->tmp, strerror(errno));
  return 0;
}

void lt_atomic_abort(lt_atomic_file *af) {
  if (af->fp) fclose(af->fp);
  af->fp = NULL;
  if (af->tmp[0]) unlink(af->tmp);
}

int lt_atomic_commit(lt_atomic_file *af, lt_err *err) {
  if (!af->fp) return lt_errf(err, "%s: not open", af->path);
  int bad = ferror(af->fp);
  if (fflush(af->fp) != 0) bad = 1;
  if (!bad && fsync(fileno(af->fp)) != 0) bad = 1;
  int saved = errno;
  if (fclose(af->fp) != 0) bad = 1;
  af->fp = NULL;
  if (bad) {
    unlink(af->tmp);
    return lt_errf(err, "%s: write failed: %s", af->path, strerror(saved ? saved : EIO));
  }
  if (rename(af->tmp, af->path) != 0) {
    saved = errno;
    unlink(af->tmp);
    return lt_errf(err, "%s: cannot rename into place: %s", af->path, strerror(saved));
  }
  return 0;
}

int lt_write_file_atomic(const char *path, const void *data, size_t len, lt_err *err) {
  lt_atomic_file af;
  if (lt_atomic_open(&af, path, err)) return -1;
  if (len && fwrite(data, 1, len, af.fp) != len) {
    lt_atomic_abort(&af);
    return lt_errf(err, "%s: write failed: %s", path, strerror(errno));
  }
  return lt_atomic_commit(&af, err);
}

int lt_path_join(char *out, size_t cap, const char *dir, const char *name) {
  int n = snprintf(out, cap, "%s/%s", dir, name);
  return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

int lt_mkdirs(const char *dir, lt_err *err) {
  char buf[4096];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof buf) return lt_errf(err, "%s: bad directory path", dir);
  memcpy(buf, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    char c = buf[i];
    buf[i] = 0;
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return lt_errf(err, "%s: cannot create: %s", buf, strerror(errno));
    buf[i] = c;
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return lt_errf(err, "%s: exists and is not a directory", dir);
  return 0;
}

int lt_copy_file(const char *src, const char *dst, lt_err *err) {
  char *data;
  size_t len;
  if (lt_read_file(src, &data, &len, err)) return -1;
  int rc = lt_write_file_atomic(dst, data, len, err);
  free(data);
  return rc;
}

int lt_file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int lt_npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim, lt_err *err) {
  char dict[256];
  int off = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    off += snprintf(dict + off, sizeof dict - (size_t)off, "%lld,%s", (long long)shape[i],
                    (i + 1 < ndim) ? " " : "");
    n *= shape[i];
  }
  off += snprintf(dict + off, sizeof dict - (size_t)off, "), }");
  // header: magic(6) + version(2) + len(2) + dict padded with spaces, ending in '\n', total multiple of 64
  size_t total = 10 + (size_t)off + 1;
  size_t padded = (total + 63) / 64 * 64;
  char header[320];
  memcpy(header, "\x93NUMPY\x01\x00", 8);
  uint16_t hl = (uint16_t)(padded - 10);
  header[8] = (char)(hl & 0xff);
  header[9] = (char)(hl >> 8);
  memcpy(header + 10, dict, (size_t)off);
  memset(header + 10 + off, ' ', padded - 10 - (size_t)off - 1);
  header[padded - 1] = '\n';
  lt_atomic_file af;
  if (lt_atomic_open(&af, path, err)) return -1;
  if (fwrite(header, 1, padded, af.fp) != padded ||
      (n && fwrite(data, sizeof(float), (size_t)n, af.fp) != (size_t)n)) {
    lt_atomic_abort(&af);
    return lt_errf(err, "%s: write failed", path);
  }
  return lt_atomic_commit(&af, err);
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t lt_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter) {
  return splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ counter);
}

float lt_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
  return (float)(lt_rng_u64(seed, stream, counter) >> 40) * (1.0f / 16777216.0f);
}

uint16_t lt_f32_to_bf16(float f) {
  union { float f; uint32_t u; } v = {f};
  if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
  return (uint16_t)((v.u + rounding) >> 16);
}

float lt_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        exp--;
      }
      mant &= 0x3ff;
      u = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  union { uint32_t u; float f; } v = {u};
  return v.f;
}

uint16_t lt_f32_to_f16(float f) {
  union { float f; uint32_t u; } v = {f};
  uint32_t x = v.u, sign = (x >> 16) & 0x8000;
  int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
  if (exp >= 31) return (uint16_t)(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return (uint16_t)sign;
    mant |= 0x800000;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t half = 1u << (shift - 1), rest = mant & ((1u << shift) - 1);
    uint32_t r = mant >> shift;
    if (rest > half || (rest == half && (r & 1))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = ((uint32_t)exp << 10) | (mant >> 13), rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (r & 1))) r++;
  return (uint16_t)(sign | r);
}

double lt_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
