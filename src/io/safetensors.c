// safetensors: mmap'd reader (bounds-checked, untrusted input) and atomic writer; HF weight folders.
//
// File layout: u64 little-endian header length N, N bytes of JSON object, then the data area. Every tensor
// entry is {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} with offsets relative to the data
// area; "__metadata__" is an optional object of strings. The reader treats the file as hostile: every length,
// offset and count is checked before use, and the JSON is parsed by cJSON from a NUL-terminated copy.
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (tensor data is little-endian)"
#endif

#define ST_MAX_HEADER 100000000ull            // same limit as the reference (Rust) implementation
#define ST_MAX_JSON_INT 9007199254740992.0    // 2^53: larger integers are not exact in a double
#define ST_SUPPORTED "F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL"
#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_SINGLE_NAME "model.safetensors"

// ---------------------------------------------------------------------------------------------------------
// dtypes

size_t lt_dtype_size(lt_dtype t) {
  switch (t) {
    case LT_DTYPE_F64: case LT_DTYPE_I64: return 8;
    case LT_DTYPE_F32: case LT_DTYPE_I32: return 4;
    case LT_DTYPE_F16: case LT_DTYPE_BF16: case LT_DTYPE_I16: return 2;
    case LT_DTYPE_I8: case LT_DTYPE_U8: case LT_DTYPE_BOOL: return 1;
    default: return 0;
  }
}

const char *lt_dtype_name(lt_dtype t) {
  switch (t) {
    case LT_DTYPE_F32: return "F32";
    case LT_DTYPE_F16: return "F16";
    case LT_DTYPE_BF16: return "BF16";
    case LT_DTYPE_F64: return "F64";
    case LT_DTYPE_I64: return "I64";
    case LT_DTYPE_I32: return "I32";
    case LT_DTYPE_I16: return "I16";
    case LT_DTYPE_I8: return "I8";
    case LT_DTYPE_U8: return "U8";
    case LT_DTYPE_BOOL: return "BOOL";
    default: return "unknown";
  }
}

int lt_dtype_from_name(const char *s, lt_dtype *out) {
  if (!s) return -1;
  for (int i = 0; i < LT_DTYPE_COUNT; i++) {
    if (strcmp(s, lt_dtype_name((lt_dtype)i)) == 0) {
      if (out) *out = (lt_dtype)i;
      return 0;
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------------------
// helpers

enum { JU_OK = 0, JU_NOT_NUMBER, JU_NOT_INTEGER, JU_NEGATIVE, JU_TOO_LARGE };

// A JSON value as a non-negative integer that a double holds exactly.
static int json_u64(const cJSON *v, uint64_t *out) {
  if (!v || !cJSON_IsNumber(v)) return JU_NOT_NUMBER;
  double d = v->valuedouble;
  if (!isfinite(d) || d != floor(d)) return JU_NOT_INTEGER;
  if (d < 0) return JU_NEGATIVE;
  if (d > ST_MAX_JSON_INT) return JU_TOO_LARGE;
  *out = (uint64_t)d;
  return JU_OK;
}

static const char *json_u64_problem(int rc) {
  switch (rc) {
    case JU_NOT_NUMBER: return "is not a number";
    case JU_NOT_INTEGER: return "is not an integer";
    case JU_NEGATIVE: return "is negative";
    default: return "is too large";
  }
}

// Short printable rendering of a JSON number for error messages.
static void json_num_str(char *buf, size_t cap, const cJSON *v) {
  if (v && cJSON_IsNumber(v)) snprintf(buf, cap, "%.17g", v->valuedouble);
  else if (v && cJSON_IsString(v)) snprintf(buf, cap, "\"%.40s\"", v->valuestring);
  else snprintf(buf, cap, "(not a number)");
}

static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
  size_t off = 0;
  int n = snprintf(buf, cap, "[");
  if (n > 0) off = (size_t)n;
  for (int i = 0; i < ndim && off < cap; i++) {
    n = snprintf(buf + off, cap - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < 0) break;
    off += (size_t)n;
  }
  if (off < cap) snprintf(buf + off, cap - off, "]");
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// reader

typedef struct st_range {
  uint64_t begin, end;
  const char *name;
} st_range;

static int cmp_tensor_name(const void *a, const void *b) {
  return strcmp(((const lt_st_tensor *)a)->name, ((const lt_st_tensor *)b)->name);
}

static int cmp_range(const void *a, const void *b) {
  const st_range *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

// Validate one tensor entry and fill *t (name excepted). range receives the data offsets.
static int st_parse_entry(const char *P, const char *name, const cJSON *e, uint64_t data_len,
                          const uint8_t *data_area, lt_st_tensor *t, st_range *range, lt_err *err) {
  if (!cJSON_IsObject(e)) return lt_errf(err, "%s: tensor '%s': entry is not a JSON object", P, name);

  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  if (!jd) return lt_errf(err, "%s: tensor '%s': missing \"dtype\"", P, name);
  if (!cJSON_IsString(jd) || !jd->valuestring)
    return lt_errf(err, "%s: tensor '%s': \"dtype\" is not a string", P, name);
  if (lt_dtype_from_name(jd->valuestring, &t->dtype))
    return lt_errf(err, "%s: tensor '%s': unknown dtype \"%.40s\" (supported: " ST_SUPPORTED ")", P, name,
                   jd->valuestring);

  const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
  if (!js) return lt_errf(err, "%s: tensor '%s': missing \"shape\"", P, name);
  if (!cJSON_IsArray(js)) return lt_errf(err, "%s: tensor '%s': \"shape\" is not an array", P, name);
  int nd = 0;
  uint64_t numel = 1;
  int overflow = 0, has_zero = 0;
  for (const cJSON *d = js->child; d; d = d->next) {
    if (nd >= LT_ST_MAX_DIMS)
      return lt_errf(err, "%s: tensor '%s': shape has %d dimensions, more than the supported %d", P, name,
                     cJSON_GetArraySize(js), LT_ST_MAX_DIMS);
    uint64_t v = 0;
    int rc = json_u64(d, &v);
    if (rc) {
      char num[64];
      json_num_str(num, sizeof num, d);
      return lt_errf(err, "%s: tensor '%s': shape[%d] = %s %s", P, name, nd, num, json_u64_problem(rc));
    }
    t->shape[nd++] = (int64_t)v;
    if (v == 0) has_zero = 1;
    if (__builtin_mul_overflow(numel, v, &numel)) overflow = 1;
  }
  t->ndim = nd;
  char shp[256];
  shape_str(shp, sizeof shp, t->shape, nd);
  // A zero dimension makes the product 0 whatever the others are (a wrapped product is not enough).
  if (has_zero) {
    overflow = 0;
    numel = 0;
  }
  if (overflow || numel > (uint64_t)INT64_MAX)
    return lt_errf(err, "%s: tensor '%s': shape %s: element count overflows", P, name, shp);
  t->numel = (int64_t)numel;
  size_t es = lt_dtype_size(t->dtype);
  uint64_t need;
  if (__builtin_mul_overflow(numel, (uint64_t)es, &need) || need > (uint64_t)SIZE_MAX)
    return lt_errf(err, "%s: tensor '%s': shape %s of %s: byte size overflows", P, name, shp,
                   lt_dtype_name(t->dtype));

  const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!jo) return lt_errf(err, "%s: tensor '%s': missing \"data_offsets\"", P, name);
  if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
    return lt_errf(err, "%s: tensor '%s': \"data_offsets\" is not an array of 2 integers", P, name);
  uint64_t off[2] = {0, 0};
  const cJSON *o = jo->child;
  for (int i = 0; i < 2 && o; i++, o = o->next) {
    int rc = json_u64(o, &off[i]);
    if (rc) {
      char num[64];
      json_num_str(num, sizeof num, o);
      return lt_errf(err, "%s: tensor '%s': data_offsets[%d] = %s %s", P, name, i, num, json_u64_problem(rc));
    }
  }
  if (off[0] > off[1])
    return lt_errf(err, "%s: tensor '%s': data_offsets [%llu, %llu]: begin is after end", P, name,
                   (unsigned long long)off[0], (unsigned long long)off[1]);
  if (off[1] > data_len)
    return lt_errf(err, "%s: tensor '%s': data_offsets [%llu, %llu] extend past the end of the data area (%llu bytes)",
                   P, name, (unsigned long long)off[0], (unsigned long long)off[1], (unsigned long long)data_len);
  if (off[1] - off[0] != need)
    return lt_errf(err, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape %s of %s needs %llu",
                   P, name, (unsigned long long)off[0], (unsigned long long)off[1],
                   (unsigned long long)(off[1] - off[0]), shp, lt_dtype_name(t->dtype), (unsigned long long)need);
  t->data = data_area + off[0];
  t->nbytes = (size_t)need;
  range->name = t->name;
  range->begin = off[0];
  range->end = off[1];
  return 0;
}

static int st_check_metadata(const char *P, const cJSON *m, lt_err *err) {
  if (!cJSON_IsObject(m)) return lt_errf(err, "%s: \"__metadata__\" is not a JSON object", P);
  for (const cJSON *c = m->child; c; c = c->next)
    if (!cJSON_IsString(c))
      return lt_errf(err, "%s: \"__metadata__\" entry '%s' is not a string", P, c->string ? c->string : "");
  return 0;
}

// Parse and validate the mapped file; fills f->t, f->n, f->metadata_json. The caller cleans up on error.
static int st_parse(lt_st_file *f, lt_err *err) {
  const char *P = f->path;
  const uint8_t *m = f->map;
  size_t size = f->size;
  uint64_t hl = le64(m);
  if (hl > ST_MAX_HEADER)
    return lt_errf(err, "%s: header length %llu exceeds the %llu-byte limit", P, (unsigned long long)hl,
                   (unsigned long long)ST_MAX_HEADER);
  if (hl > size - 8)
    return lt_errf(err, "%s: header length %llu runs past the end of the file (%zu bytes after the length field)",
                   P, (unsigned long long)hl, size - 8);
  const char *h = (const char *)m + 8;
  const char *nul = memchr(h, 0, (size_t)hl);
  if (nul) return lt_errf(err, "%s: header contains a NUL byte at offset %zu", P, (size_t)(nul - h));
  const uint8_t *data_area = m + 8 + hl;
  uint64_t data_len = size - 8 - hl;

  char *buf = malloc((size_t)hl + 1);
  if (!buf) return lt_errf(err, "%s: out of memory reading a %llu-byte header", P, (unsigned long long)hl);
  memcpy(buf, h, (size_t)hl);
  buf[hl] = 0;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(buf, &end, 0);
  int rc = -1;
  st_range *ranges = NULL;
  if (!root) {
    size_t pos = (end && end >= buf && end <= buf + hl) ? (size_t)(end - buf) : 0;
    lt_errf(err, "%s: header is not valid JSON (error near byte %zu of %llu)", P, pos, (unsigned long long)hl);
    goto done;
  }
  for (const char *q = end; q && q < buf + hl; q++) {
    if (!is_json_space(*q)) {
      lt_errf(err, "%s: header has trailing data after the JSON value at byte %zu", P, (size_t)(q - buf));
      goto done;
    }
  }
  if (!cJSON_IsObject(root)) {
    lt_errf(err, "%s: header is not a JSON object", P);
    goto done;
  }

  int count = 0, have_meta = 0;
  for (const cJSON *c = root->child; c; c = c->next) {
    if (!c->string) {
      lt_errf(err, "%s: header entry without a name", P);
      goto done;
    }
    if (strcmp(c->string, "__metadata__") == 0) {
      if (have_meta) {
        lt_errf(err, "%s: duplicate \"__metadata__\"", P);
        goto done;
      }
      have_meta = 1;
      if (st_check_metadata(P, c, err)) goto done;
      char *s = cJSON_PrintUnformatted(c);
      if (!s) {
        lt_errf(err, "%s: out of memory", P);
        goto done;
      }
      f->metadata_json = dup_str(s);
      cJSON_free(s);
      if (!f->metadata_json) {
        lt_errf(err, "%s: out of memory", P);
        goto done;
      }
    } else {
      count++;
    }
  }

  f->t = calloc(count ? (size_t)count : 1, sizeof *f->t);
  ranges = calloc(count ? (size_t)count : 1, sizeof *ranges);
  if (!f->t || !ranges) {
    lt_errf(err, "%s: out of memory for %d tensors", P, count);
    goto done;
  }
  for (const cJSON *c = root->child; c; c = c->next) {
    if (strcmp(c->string, "__metadata__") == 0) continue;
    lt_st_tensor *t = &f->t[f->n];
    t->name = dup_str(c->string);
    if (!t->name) {
      lt_errf(err, "%s: out of memory", P);
      goto done;
    }
    f->n++;  // counted from here on, so lt_st_close frees the name on any later error
    if (st_parse_entry(P, t->name, c, data_len, data_area, t, &ranges[f->n - 1], err)) goto done;
  }

  qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_tensor_name);
  for (int i = 1; i < f->n; i++) {
    if (strcmp(f->t[i - 1].name, f->t[i].name) == 0) {
      lt_errf(err, "%s: duplicate tensor name '%s'", P, f->t[i].name);
      goto done;
    }
  }
  // Names in ranges point at the tensors' name strings, which qsort above did not move.
  qsort(ranges, (size_t)f->n, sizeof *ranges, cmp_range);
  {
    const st_range *prev = NULL;
    for (int i = 0; i < f->n; i++) {
      const st_range *r = &ranges[i];
      if (r->begin == r->end) continue;  // empty tensors occupy no bytes
      if (prev && r->begin < prev->end) {
        lt_errf(err, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", P, prev->name,
                (unsigned long long)prev->begin, (unsigned long long)prev->end, r->name,
                (unsigned long long)r->begin, (unsigned long long)r->end);
        goto done;
      }
      if (!prev || r->end > prev->end) prev = r;
    }
  }
  rc = 0;
done:
  free(ranges);
  cJSON_Delete(root);
  free(buf);
  return rc;
}

int lt_st_open(lt_st_file *f, const char *path, lt_err *err) {
  if (!f) return lt_errf(err, "lt_st_open: NULL file");
  memset(f, 0, sizeof *f);
  if (!path) return lt_errf(err, "lt_st_open: NULL path");
  f->path = dup_str(path);
  if (!f->path) return lt_errf(err, "%s: out of memory", path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    lt_errf(err, "%s: cannot open: %s", path, strerror(errno));
    lt_st_close(f);
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    lt_errf(err, "%s: cannot stat: %s", path, strerror(errno));
    close(fd);
    lt_st_close(f);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    lt_errf(err, "%s: not a regular file", path);
    close(fd);
    lt_st_close(f);
    return -1;
  }
  if (st.st_size < 8) {
    lt_errf(err, "%s: file is %lld bytes, shorter than the 8-byte header length field", path,
            (long long)st.st_size);
    close(fd);
    lt_st_close(f);
    return -1;
  }
  if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
    lt_errf(err, "%s: file too large to map", path);
    close(fd);
    lt_st_close(f);
    return -1;
  }
  size_t size = (size_t)st.st_size;
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int saved = errno;
  close(fd);
  if (map == MAP_FAILED) {
    lt_errf(err, "%s: cannot mmap %zu bytes: %s", path, size, strerror(saved));
    lt_st_close(f);
    return -1;
  }
  f->map = map;
  f->size = size;
  if (st_parse(f, err)) {
    lt_st_close(f);
    return -1;
  }
  return 0;
}

void lt_st_close(lt_st_file *f) {
  if (!f) return;
  if (f->t) {
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
  }
  if (f->map && f->map != MAP_FAILED) munmap(f->map, f->size);
  free(f->metadata_json);
  free(f->path);
  memset(f, 0, sizeof *f);
}

const lt_st_tensor *lt_st_find(const lt_st_file *f, const char *name) {
  if (!f || !f->t || !name) return NULL;
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(f->t[mid].name, name);
    if (c == 0) return &f->t[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return NULL;
}

// ---------------------------------------------------------------------------------------------------------
// writer

typedef struct st_buf {
  char *p;
  size_t len, cap;
  int oom;
} st_buf;

static void sb_put(st_buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
      if (cap > SIZE_MAX / 2) {
        b->oom = 1;
        return;
      }
      cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void sb_str(st_buf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(st_buf *b, unsigned long long v) {
  char tmp[32];
  int n = snprintf(tmp, sizeof tmp, "%llu", v);
  sb_put(b, tmp, (size_t)n);
}

// JSON string literal (quotes included). Bytes >= 0x80 pass through (names are expected to be UTF-8).
static void sb_json_string(st_buf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\') {
      char e[2] = {'\\', (char)*c};
      sb_put(b, e, 2);
    } else if (*c < 0x20) {
      char e[8];
      snprintf(e, sizeof e, "\\u%04x", *c);
      sb_put(b, e, 6);
    } else {
      sb_put(b, (const char *)c, 1);
    }
  }
  sb_put(b, "\"", 1);
}

typedef struct st_wref {
  const char *name;
  int idx;
} st_wref;

static int cmp_wref(const void *a, const void *b) {
  return strcmp(((const st_wref *)a)->name, ((const st_wref *)b)->name);
}

int lt_st_write(const char *path, const lt_st_wtensor *t, int n, const char *metadata_json, lt_err *err) {
  if (!path) return lt_errf(err, "lt_st_write: NULL path");
  if (n < 0) return lt_errf(err, "%s: negative tensor count %d", path, n);
  if (n > 0 && !t) return lt_errf(err, "%s: NULL tensor array for %d tensors", path, n);

  // Validate the tensors and compute byte sizes.
  size_t *nbytes = calloc(n ? (size_t)n : 1, sizeof *nbytes);
  st_wref *refs = calloc(n ? (size_t)n : 1, sizeof *refs);
  cJSON *meta = NULL;
  char *meta_str = NULL;
  st_buf hb = {0};
  int rc = -1;
  if (!nbytes || !refs) {
    lt_errf(err, "%s: out of memory", path);
    goto done;
  }
  for (int i = 0; i < n; i++) {
    const lt_st_wtensor *w = &t[i];
    if (!w->name) {
      lt_errf(err, "%s: tensor %d has no name", path, i);
      goto done;
    }
    if (strcmp(w->name, "__metadata__") == 0) {
      lt_errf(err, "%s: tensor %d: the name '__metadata__' is reserved", path, i);
      goto done;
    }
    if ((int)w->dtype < 0 || w->dtype >= LT_DTYPE_COUNT) {
      lt_errf(err, "%s: tensor '%s': invalid dtype %d", path, w->name, (int)w->dtype);
      goto done;
    }
    if (w->ndim < 0 || w->ndim > LT_ST_MAX_DIMS) {
      lt_errf(err, "%s: tensor '%s': ndim %d is outside 0..%d", path, w->name, w->ndim, LT_ST_MAX_DIMS);
      goto done;
    }
    uint64_t numel = 1;
    int overflow = 0, has_zero = 0;
    for (int d = 0; d < w->ndim; d++) {
      if (w->shape[d] < 0 || (double)w->shape[d] > ST_MAX_JSON_INT) {
        lt_errf(err, "%s: tensor '%s': dimension %d has invalid size %lld", path, w->name, d,
                (long long)w->shape[d]);
        goto done;
      }
      if (w->shape[d] == 0) has_zero = 1;
      if (__builtin_mul_overflow(numel, (uint64_t)w->shape[d], &numel)) overflow = 1;
    }
    if (has_zero) {
      overflow = 0;
      numel = 0;
    }
    uint64_t nb;
    if (overflow || numel > (uint64_t)INT64_MAX ||
        __builtin_mul_overflow(numel, (uint64_t)lt_dtype_size(w->dtype), &nb) || nb > (uint64_t)SIZE_MAX) {
      lt_errf(err, "%s: tensor '%s': byte size overflows", path, w->name);
      goto done;
    }
    if (nb > 0 && !w->data) {
      lt_errf(err, "%s: tensor '%s': NULL data for %llu bytes", path, w->name, (unsigned long long)nb);
      goto done;
    }
    nbytes[i] = (size_t)nb;
    refs[i].name = w->name;
    refs[i].idx = i;
  }
  qsort(refs, (size_t)n, sizeof *refs, cmp_wref);
  for (int i = 1; i < n; i++) {
    if (strcmp(refs[i - 1].name, refs[i].name) == 0) {
      lt_errf(err, "%s: duplicate tensor name '%s' (tensors %d and %d)", path, refs[i].name,
              LT_MIN(refs[i - 1].idx, refs[i].idx), LT_MAX(refs[i - 1].idx, refs[i].idx));
      goto done;
    }
  }

  // Metadata: an object of strings, re-serialised compactly.
  {
    const char *ms = metadata_json ? metadata_json : "{\"format\":\"pt\"}";
    meta = cJSON_ParseWithOpts(ms, NULL, 1);
    if (!meta || !cJSON_IsObject(meta)) {
      lt_errf(err, "%s: metadata is not a JSON object: %.200s", path, ms);
      goto done;
    }
    for (const cJSON *c = meta->child; c; c = c->next) {
      if (!cJSON_IsString(c)) {
        lt_errf(err, "%s: metadata entry '%s' is not a string", path, c->string ? c->string : "");
        goto done;
      }
    }
    meta_str = cJSON_PrintUnformatted(meta);
    if (!meta_str) {
      lt_errf(err, "%s: out of memory", path);
      goto done;
    }
  }

  // Header JSON, then spaces so the data area starts at a multiple of 8.
  sb_str(&hb, "{\"__metadata__\":");
  sb_str(&hb, meta_str);
  {
    unsigned long long off = 0;
    for (int i = 0; i < n; i++) {
      const lt_st_wtensor *w = &t[i];
      sb_str(&hb, ",");
      sb_json_string(&hb, w->name);
      sb_str(&hb, ":{\"dtype\":\"");
      sb_str(&hb, lt_dtype_name(w->dtype));
      sb_str(&hb, "\",\"shape\":[");
      for (int d = 0; d < w->ndim; d++) {
        if (d) sb_str(&hb, ",");
        sb_u64(&hb, (unsigned long long)w->shape[d]);
      }
      sb_str(&hb, "],\"data_offsets\":[");
      sb_u64(&hb, off);
      sb_str(&hb, ",");
      if (__builtin_add_overflow(off, (unsigned long long)nbytes[i], &off)) {
        lt_errf(err, "%s: total data size overflows", path);
        goto done;
      }
      sb_u64(&hb, off);
      sb_str(&hb, "]}");
    }
  }
  sb_str(&hb, "}");
  while (!hb.oom && hb.len % 8 != 0) sb_str(&hb, " ");
  if (hb.oom) {
    lt_errf(err, "%s: out of memory building the header", path);
    goto done;
  }
  if (hb.len > ST_MAX_HEADER) {
    lt_errf(err, "%s: header of %zu bytes exceeds the %llu-byte limit", path, hb.len,
            (unsigned long long)ST_MAX_HEADER);
    goto done;
  }

  {
    uint8_t lenb[8];
    uint64_t hl = hb.len;
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(hl >> (8 * i));
    lt_atomic_file af;
    if (lt_atomic_open(&af, path, err)) goto done;
    int bad = fwrite(lenb, 1, 8, af.fp) != 8 || fwrite(hb.p, 1, hb.len, af.fp) != hb.len;
    for (int i = 0; i < n && !bad; i++)
      if (nbytes[i] && fwrite(t[i].data, 1, nbytes[i], af.fp) != nbytes[i]) bad = 1;
    if (bad) {
      int saved = errno;
      lt_atomic_abort(&af);
      lt_errf(err, "%s: write failed: %s", path, strerror(saved ? saved : EIO));
      goto done;
    }
    if (lt_atomic_commit(&af, err)) goto done;
  }
  rc = 0;
done:
  free(hb.p);
  if (meta_str) cJSON_free(meta_str);
  cJSON_Delete(meta);
  free(refs);
  free(nbytes);
  return rc;
}

// ---------------------------------------------------------------------------------------------------------
// Hugging Face weight folders

void lt_weights_close(lt_weights *w) {
  if (!w) return;
  if (w->files) {
    for (int i = 0; i < w->nfiles; i++) lt_st_close(&w->files[i]);
    free(w->files);
  }
  memset(w, 0, sizeof *w);
}

static int shard_name_ok(const char *s) {
  return s[0] && !strchr(s, '/') && !strchr(s, '\\') && !strstr(s, "..");
}

// Reject a tensor stored in more than one file: lookups would silently depend on file order.
static int weights_check_unique(const lt_weights *w, const char *where, lt_err *err) {
  for (int i = 0; i < w->nfiles; i++)
    for (int k = 0; k < w->files[i].n; k++)
      for (int j = i + 1; j < w->nfiles; j++)
        if (lt_st_find(&w->files[j], w->files[i].t[k].name))
          return lt_errf(err, "%s: tensor '%s' is present in both %s and %s", where, w->files[i].t[k].name,
                         w->files[i].path, w->files[j].path);
  return 0;
}

static int weights_open_index(lt_weights *w, const char *dir, const char *ipath, lt_err *err) {
  char *text = NULL;
  size_t len = 0;
  cJSON *root = NULL;
  const char **shards = NULL;
  int nshards = 0, rc = -1;
  if (lt_read_file(ipath, &text, &len, err)) return -1;
  root = cJSON_ParseWithOpts(text, NULL, 1);
  if (!root || !cJSON_IsObject(root)) {
    lt_errf(err, "%s: not a valid JSON object", ipath);
    goto done;
  }
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!map) {
    lt_errf(err, "%s: missing \"weight_map\"", ipath);
    goto done;
  }
  if (!cJSON_IsObject(map)) {
    lt_errf(err, "%s: \"weight_map\" is not a JSON object", ipath);
    goto done;
  }
  int nmap = cJSON_GetArraySize(map);
  if (nmap <= 0) {
    lt_errf(err, "%s: \"weight_map\" is empty", ipath);
    goto done;
  }
  shards = calloc((size_t)nmap, sizeof *shards);
  if (!shards) {
    lt_errf(err, "%s: out of memory", ipath);
    goto done;
  }
  for (const cJSON *e = map->child; e; e = e->next) {
    const char *tname = e->string ? e->string : "";
    if (!cJSON_IsString(e) || !e->valuestring) {
      lt_errf(err, "%s: tensor '%s': shard file name is not a string", ipath, tname);
      goto done;
    }
    if (!shard_name_ok(e->valuestring)) {
      lt_errf(err, "%s: tensor '%s': shard '%s' is not a plain file name in the model folder", ipath, tname,
              e->valuestring);
      goto done;
    }
    int k = 0;
    while (k < nshards && strcmp(shards[k], e->valuestring) != 0) k++;
    if (k == nshards) shards[nshards++] = e->valuestring;
  }
  w->files = calloc((size_t)nshards, sizeof *w->files);
  if (!w->files) {
    lt_errf(err, "%s: out of memory", ipath);
    goto done;
  }
  for (int k = 0; k < nshards; k++) {
    char spath[4096];
    if (lt_path_join(spath, sizeof spath, dir, shards[k])) {
      lt_errf(err, "%s: shard path too long: %s", ipath, shards[k]);
      goto done;
    }
    if (lt_st_open(&w->files[k], spath, err)) {
      lt_err_prefix(err, "%s: shard '%s'", ipath, shards[k]);
      goto done;
    }
    w->nfiles = k + 1;
  }
  for (const cJSON *e = map->child; e; e = e->next) {
    int k = 0;
    while (k < nshards && strcmp(shards[k], e->valuestring) != 0) k++;
    if (k == nshards || !lt_st_find(&w->files[k], e->string)) {
      lt_errf(err, "%s: tensor '%s' is mapped to shard '%s' but that shard does not contain it", ipath,
              e->string, e->valuestring);
      goto done;
    }
  }
  if (weights_check_unique(w, ipath, err)) goto done;
  rc = 0;
done:
  free(shards);
  cJSON_Delete(root);
  free(text);
  return rc;
}

int lt_weights_open(lt_weights *w, const char *dir, lt_err *err) {
  if (!w) return lt_errf(err, "lt_weights_open: NULL weights");
  memset(w, 0, sizeof *w);
  if (!dir) return lt_errf(err, "lt_weights_open: NULL directory");
  char ipath[4096], spath[4096];
  if (lt_path_join(ipath, sizeof ipath, dir, ST_INDEX_NAME) ||
      lt_path_join(spath, sizeof spath, dir, ST_SINGLE_NAME))
    return lt_errf(err, "%s: path too long", dir);
  if (lt_file_exists(ipath)) {
    if (weights_open_index(w, dir, ipath, err)) {
      lt_weights_close(w);
      return -1;
    }
    return 0;
  }
  if (lt_file_exists(spath)) {
    w->files = calloc(1, sizeof *w->files);
    if (!w->files) return lt_errf(err, "%s: out of memory", spath);
    if (lt_st_open(&w->files[0], spath, err)) {
      lt_weights_close(w);
      return -1;
    }
    w->nfiles = 1;
    return 0;
  }
  return lt_errf(err, "%s: no " ST_SINGLE_NAME " or " ST_INDEX_NAME, dir);
}

const lt_st_tensor *lt_weights_find(const lt_weights *w, const char *name, const char **file) {
  if (!w || !name) return NULL;
  for (int i = 0; i < w->nfiles; i++) {
    const lt_st_tensor *t = lt_st_find(&w->files[i], name);
    if (t) {
      if (file) *file = w->files[i].path;
      return t;
    }
  }
  return NULL;
}

// ---------------------------------------------------------------------------------------------------------
// conversion

int lt_tensor_to_f32(const lt_st_tensor *t, float *dst, lt_err *err) {
  if (!t) return lt_errf(err, "lt_tensor_to_f32: NULL tensor");
  const char *name = t->name ? t->name : "";
  if (t->numel < 0) return lt_errf(err, "tensor '%s': negative element count", name);
  size_t n = (size_t)t->numel;
  if (n == 0) return 0;
  size_t es = lt_dtype_size(t->dtype);
  if (es == 0 || t->nbytes / es < n)
    return lt_errf(err, "tensor '%s': %zu bytes cannot hold %zu elements of %s", name, t->nbytes, n,
                   lt_dtype_name(t->dtype));
  if (!t->data || !dst) return lt_errf(err, "tensor '%s': NULL data or destination", name);
  const uint8_t *p = t->data;
  switch (t->dtype) {
    case LT_DTYPE_F32:
      memcpy(dst, p, n * sizeof(float));
      return 0;
    case LT_DTYPE_BF16:
      for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = lt_bf16_to_f32(h);
      }
      return 0;
    case LT_DTYPE_F16:
      for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = lt_f16_to_f32(h);
      }
      return 0;
    case LT_DTYPE_F64:
      for (size_t i = 0; i < n; i++) {
        double d;
        memcpy(&d, p + 8 * i, 8);
        dst[i] = (float)d;
      }
      return 0;
    default:
      return lt_errf(err, "tensor '%s': cannot convert dtype %s to F32 (supported: F32 F16 BF16 F64)", name,
                     lt_dtype_name(t->dtype));
  }
}
