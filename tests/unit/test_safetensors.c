// safetensors reader/writer: round trip, exact header bytes, conversions, a table of malformed files crafted
// byte by byte, every truncation of a valid file, seeded corruptions, and sharded weight folders.
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "test.h"

#define CHECK_HAS(msg, sub)                                                                   \
  CHECK_MSG((sub) == NULL || strstr((msg), (sub)) != NULL, "message \"%s\" lacks \"%s\"", (msg), \
            (sub) ? (sub) : "")

static void mkdir_ok(const char *path) {
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "mkdir %s: %s\n", path, strerror(errno));
    exit(2);
  }
}

static void join(char *out, size_t cap, const char *a, const char *b) {
  if (lt_path_join(out, cap, a, b)) {
    fprintf(stderr, "path too long: %s/%s\n", a, b);
    exit(2);
  }
}

static void write_bytes(const char *path, const void *data, size_t len) {
  unlink(path);  // a fresh inode is much cheaper than O_TRUNC on some filesystems
  FILE *fp = fopen(path, "wb");
  if (!fp || (len && fwrite(data, 1, len, fp) != len) || fclose(fp) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
}

static uint8_t *read_bytes(const char *path, size_t *len) {
  char *data;
  lt_err err;
  if (lt_read_file(path, &data, len, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    exit(2);
  }
  return (uint8_t *)data;
}

// 8-byte little-endian length hl, then hdr_len bytes of hdr, then data_len zero bytes.
static void write_st_raw(const char *path, uint64_t hl, const char *hdr, size_t hdr_len, size_t data_len) {
  size_t total = 8 + hdr_len + data_len;
  uint8_t *buf = calloc(total, 1);
  if (!buf) exit(2);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hl >> (8 * i));
  memcpy(buf + 8, hdr, hdr_len);
  write_bytes(path, buf, total);
  free(buf);
}

static int is_zeroed_file(const lt_st_file *f) {
  return f->path == NULL && f->map == NULL && f->size == 0 && f->n == 0 && f->t == NULL &&
         f->metadata_json == NULL;
}

// Open must fail with a message naming the file and containing want1/want2; the struct is left zeroed.
static void expect_open_fail(const char *path, const char *label, const char *want1, const char *want2) {
  lt_st_file f;
  lt_err err;
  err.msg[0] = 0;
  int rc = lt_st_open(&f, path, &err);
  CHECK_MSG(rc == -1, "%s: open succeeded", label);
  if (rc == 0) {
    lt_st_close(&f);
    return;
  }
  CHECK_MSG(strstr(err.msg, path) != NULL, "%s: message \"%s\" does not name the file", label, err.msg);
  CHECK_MSG(!want1 || strstr(err.msg, want1), "%s: message \"%s\" lacks \"%s\"", label, err.msg, want1);
  CHECK_MSG(!want2 || strstr(err.msg, want2), "%s: message \"%s\" lacks \"%s\"", label, err.msg, want2);
  CHECK_MSG(is_zeroed_file(&f), "%s: struct not zeroed after failure", label);
  lt_st_close(&f);  // safe on the zeroed struct
  lt_st_close(&f);
}

static uint32_t f32_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}

// ---------------------------------------------------------------------------------------------------------

static void test_dtypes(void) {
  static const char *names[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"};
  static const size_t sizes[] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1};
  for (int i = 0; i < 10; i++) {
    lt_dtype t = LT_DTYPE_COUNT;
    CHECK(lt_dtype_from_name(names[i], &t) == 0);
    CHECK_MSG(strcmp(lt_dtype_name(t), names[i]) == 0, "%s", names[i]);
    CHECK_MSG(lt_dtype_size(t) == sizes[i], "%s size %zu", names[i], lt_dtype_size(t));
  }
  lt_dtype t = LT_DTYPE_F32;
  CHECK(lt_dtype_from_name("f32", &t) == -1);
  CHECK(lt_dtype_from_name("F8_E4M3", &t) == -1);
  CHECK(lt_dtype_from_name("", &t) == -1);
  CHECK(lt_dtype_from_name(NULL, &t) == -1);
  CHECK(t == LT_DTYPE_F32);
  CHECK(lt_dtype_size(LT_DTYPE_COUNT) == 0);
  CHECK(lt_dtype_size(LT_DTYPE_BF16) == 2);
  CHECK(strcmp(lt_dtype_name(LT_DTYPE_COUNT), "unknown") == 0);
}

// Builds the reference file used by the round-trip and truncation tests.
static const float k_f32[6] = {1.0f, -2.0f, 3.5f, 0.0f, 1e-3f, -1e30f};
static const uint16_t k_bf16[4] = {0x3F80, 0xC000, 0x4049, 0x0000};
static const float k_bf16_f[4] = {1.0f, -2.0f, 3.140625f, 0.0f};
static const uint16_t k_f16[5] = {0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001};
static const float k_f16_f[5] = {1.0f, -2.0f, 0.333251953125f, 65504.0f, 5.960464477539063e-08f};
static const int64_t k_i64[3] = {-1, 0, (int64_t)1 << 40};
static const double k_f64[1] = {2.5};

static int write_reference(const char *path, lt_err *err) {
  lt_st_wtensor t[6] = {
      {.name = "w.f32", .dtype = LT_DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = k_f32},
      {.name = "w.bf16", .dtype = LT_DTYPE_BF16, .ndim = 1, .shape = {4}, .data = k_bf16},
      {.name = "ids", .dtype = LT_DTYPE_I64, .ndim = 1, .shape = {3}, .data = k_i64},
      {.name = "empty", .dtype = LT_DTYPE_F32, .ndim = 2, .shape = {0, 4}, .data = NULL},
      {.name = "w.f16", .dtype = LT_DTYPE_F16, .ndim = 1, .shape = {5}, .data = k_f16},
      {.name = "scalar", .dtype = LT_DTYPE_F64, .ndim = 0, .data = k_f64},
  };
  return lt_st_write(path, t, 6, NULL, err);
}

static void test_roundtrip(const char *dir) {
  char path[4096];
  join(path, sizeof path, dir, "ref.safetensors");
  lt_err err;
  int rc = write_reference(path, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;

  // Exact bytes: length field, header text, padding, contiguous data in the given order.
  size_t len;
  uint8_t *raw = read_bytes(path, &len);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
  CHECK_MSG((8 + hl) % 8 == 0, "data area starts at %llu", (unsigned long long)(8 + hl));
  const char *want =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"w.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
      "\"w.bf16\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
      "\"ids\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[32,56]},"
      "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[56,56]},"
      "\"w.f16\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[56,66]},"
      "\"scalar\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[66,74]}}";
  size_t wl = strlen(want);
  CHECK_MSG(hl >= wl && hl < wl + 8, "header length %llu for %zu bytes of JSON", (unsigned long long)hl, wl);
  CHECK(len == 8 + hl + 74);
  if (hl >= wl && len >= 8 + hl) {
    CHECK_MSG(memcmp(raw + 8, want, wl) == 0, "header is %.*s", (int)hl, (const char *)raw + 8);
    for (size_t i = wl; i < hl; i++) CHECK(raw[8 + i] == ' ');
  }
  if (len == 8 + hl + 74) {
    const uint8_t *d = raw + 8 + hl;
    CHECK(memcmp(d, k_f32, 24) == 0);
    CHECK(memcmp(d + 24, k_bf16, 8) == 0);
    CHECK(memcmp(d + 32, k_i64, 24) == 0);
    CHECK(memcmp(d + 56, k_f16, 10) == 0);
    CHECK(memcmp(d + 66, k_f64, 8) == 0);
  }
  free(raw);

  lt_st_file f;
  rc = lt_st_open(&f, path, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  CHECK(strcmp(f.path, path) == 0);
  CHECK(f.size == len);
  CHECK(f.n == 6);
  CHECK(f.metadata_json && strcmp(f.metadata_json, "{\"format\":\"pt\"}") == 0);
  static const char *sorted[6] = {"empty", "ids", "scalar", "w.bf16", "w.f16", "w.f32"};
  for (int i = 0; i < 6 && i < f.n; i++) {
    CHECK_MSG(strcmp(f.t[i].name, sorted[i]) == 0, "t[%d] = %s", i, f.t[i].name);
    CHECK(lt_st_find(&f, sorted[i]) == &f.t[i]);
  }
  CHECK(lt_st_find(&f, "w") == NULL);
  CHECK(lt_st_find(&f, "") == NULL);
  CHECK(lt_st_find(&f, "zzz") == NULL);
  CHECK(lt_st_find(&f, "a") == NULL);
  CHECK(lt_st_find(NULL, "ids") == NULL);
  const uint8_t *area = (const uint8_t *)f.map + 8 + hl;

  const lt_st_tensor *t = lt_st_find(&f, "w.f32");
  CHECK(t && t->dtype == LT_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
        t->numel == 6 && t->nbytes == 24 && t->data == area);
  float out[8];
  if (t) {
    CHECK(memcmp(t->data, k_f32, 24) == 0);
    memset(out, 0, sizeof out);
    CHECK(lt_tensor_to_f32(t, out, &err) == 0);
    for (int i = 0; i < 6; i++) CHECK_MSG(f32_bits(out[i]) == f32_bits(k_f32[i]), "f32[%d] = %g", i, out[i]);
  }
  t = lt_st_find(&f, "w.bf16");
  CHECK(t && t->dtype == LT_DTYPE_BF16 && t->ndim == 1 && t->shape[0] == 4 && t->numel == 4 && t->nbytes == 8 &&
        t->data == area + 24);
  if (t) {
    CHECK(lt_tensor_to_f32(t, out, &err) == 0);
    for (int i = 0; i < 4; i++) CHECK_MSG(out[i] == k_bf16_f[i], "bf16[%d] = %.9g", i, out[i]);
  }
  t = lt_st_find(&f, "ids");
  CHECK(t && t->dtype == LT_DTYPE_I64 && t->ndim == 1 && t->shape[0] == 3 && t->numel == 3 && t->nbytes == 24 &&
        t->data == area + 32);
  if (t) {
    CHECK(memcmp(t->data, k_i64, 24) == 0);
    err.msg[0] = 0;
    CHECK(lt_tensor_to_f32(t, out, &err) == -1);
    CHECK_HAS(err.msg, "'ids'");
    CHECK_HAS(err.msg, "I64");
  }
  t = lt_st_find(&f, "empty");
  CHECK(t && t->dtype == LT_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 4 && t->numel == 0 &&
        t->nbytes == 0 && t->data == area + 56);
  if (t) CHECK(lt_tensor_to_f32(t, out, &err) == 0);
  t = lt_st_find(&f, "w.f16");
  CHECK(t && t->dtype == LT_DTYPE_F16 && t->ndim == 1 && t->shape[0] == 5 && t->numel == 5 && t->nbytes == 10 &&
        t->data == area + 56);
  if (t) {
    CHECK(lt_tensor_to_f32(t, out, &err) == 0);
    for (int i = 0; i < 5; i++) CHECK_MSG(out[i] == k_f16_f[i], "f16[%d] = %.9g", i, out[i]);
  }
  t = lt_st_find(&f, "scalar");
  CHECK(t && t->dtype == LT_DTYPE_F64 && t->ndim == 0 && t->numel == 1 && t->nbytes == 8 && t->data == area + 66);
  if (t) {
    CHECK(lt_tensor_to_f32(t, out, &err) == 0);
    CHECK(out[0] == 2.5f);
  }
  lt_st_close(&f);
  CHECK(is_zeroed_file(&f));
  lt_st_close(&f);

  // Custom metadata and awkward names survive the round trip; non-float conversions are refused.
  join(path, sizeof path, dir, "meta.safetensors");
  const uint8_t u8[3] = {7, 8, 9};
  lt_st_wtensor w[2] = {
      {.name = "we\"ird\\na\tme", .dtype = LT_DTYPE_U8, .ndim = 1, .shape = {3}, .data = u8},
      {.name = "b", .dtype = LT_DTYPE_BOOL, .ndim = 3, .shape = {1, 1, 1}, .data = u8},
  };
  rc = lt_st_write(path, w, 2, " { \"format\" : \"pt\", \"note\": \"a \\\"q\\\"\" } ", &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  rc = lt_st_open(&f, path, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    CHECK(f.n == 2);
    CHECK_MSG(f.metadata_json && strcmp(f.metadata_json, "{\"format\":\"pt\",\"note\":\"a \\\"q\\\"\"}") == 0,
              "%s", f.metadata_json ? f.metadata_json : "(null)");
    t = lt_st_find(&f, "we\"ird\\na\tme");
    CHECK(t && t->dtype == LT_DTYPE_U8 && t->nbytes == 3 && memcmp(t->data, u8, 3) == 0);
    if (t) {
      CHECK(lt_tensor_to_f32(t, out, &err) == -1);
      CHECK_HAS(err.msg, "U8");
    }
    t = lt_st_find(&f, "b");
    CHECK(t && t->dtype == LT_DTYPE_BOOL && t->ndim == 3 && t->numel == 1 && t->nbytes == 1 && t->data[0] == 7);
    lt_st_close(&f);
  }

  // No tensors at all: a header with only metadata.
  join(path, sizeof path, dir, "none.safetensors");
  rc = lt_st_write(path, NULL, 0, "{}", &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  rc = lt_st_open(&f, path, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    CHECK(f.n == 0 && f.size == 32 && f.metadata_json && strcmp(f.metadata_json, "{}") == 0);
    CHECK(lt_st_find(&f, "x") == NULL);
    lt_st_close(&f);
  }
}

static void test_conversions(void) {
  lt_err err;
  float out[6];
  // bf16/f16 bit patterns from unaligned storage (offset 1 in a byte buffer).
  uint8_t buf[1 + 6 * 8];
  const uint16_t bf[6] = {0x3F80, 0xBF80, 0x4049, 0x7F80, 0x0001, 0x8000};
  const float bf_f[6] = {1.0f, -1.0f, 3.140625f, INFINITY, 9.18354961579912e-41f, -0.0f};
  memcpy(buf + 1, bf, sizeof bf);
  lt_st_tensor t = {.name = "x", .dtype = LT_DTYPE_BF16, .ndim = 1, .shape = {6}, .numel = 6, .data = buf + 1,
                    .nbytes = 12};
  CHECK(lt_tensor_to_f32(&t, out, &err) == 0);
  for (int i = 0; i < 6; i++) CHECK_MSG(f32_bits(out[i]) == f32_bits(bf_f[i]), "bf16 %04x -> %g", bf[i], out[i]);

  const uint16_t hf[6] = {0x3C00, 0xBC00, 0x3555, 0x7BFF, 0x0001, 0xFC00};
  const float hf_f[6] = {1.0f, -1.0f, 0.333251953125f, 65504.0f, 5.960464477539063e-08f, -INFINITY};
  memcpy(buf + 1, hf, sizeof hf);
  t.dtype = LT_DTYPE_F16;
  CHECK(lt_tensor_to_f32(&t, out, &err) == 0);
  for (int i = 0; i < 6; i++) CHECK_MSG(f32_bits(out[i]) == f32_bits(hf_f[i]), "f16 %04x -> %g", hf[i], out[i]);
  uint16_t nan16 = 0x7E00;
  memcpy(buf + 1, &nan16, 2);
  t.numel = 1;
  CHECK(lt_tensor_to_f32(&t, out, &err) == 0);
  CHECK(isnan(out[0]));

  const double dv[3] = {0.1, -1e10, 1e300};
  memcpy(buf + 1, dv, sizeof dv);
  t.dtype = LT_DTYPE_F64;
  t.numel = 3;
  t.nbytes = 24;
  CHECK(lt_tensor_to_f32(&t, out, &err) == 0);
  CHECK(out[0] == 0.1f && out[1] == -1e10f && isinf(out[2]));

  const float fv[3] = {1.5f, -0.0f, 3e38f};
  memcpy(buf + 1, fv, sizeof fv);
  t.dtype = LT_DTYPE_F32;
  t.nbytes = 12;
  CHECK(lt_tensor_to_f32(&t, out, &err) == 0);
  for (int i = 0; i < 3; i++) CHECK(f32_bits(out[i]) == f32_bits(fv[i]));

  // A tensor whose byte count cannot hold its elements is refused rather than over-read.
  t.nbytes = 8;
  CHECK(lt_tensor_to_f32(&t, out, &err) == -1);
  t.nbytes = 12;
  static const lt_dtype bad[] = {LT_DTYPE_I32, LT_DTYPE_I16, LT_DTYPE_I8, LT_DTYPE_BOOL};
  for (int i = 0; i < 4; i++) {
    t.dtype = bad[i];
    err.msg[0] = 0;
    CHECK(lt_tensor_to_f32(&t, out, &err) == -1);
    CHECK_HAS(err.msg, "'x'");
    CHECK_HAS(err.msg, lt_dtype_name(bad[i]));
  }
  CHECK(lt_tensor_to_f32(NULL, out, &err) == -1);
}

static void test_writer_errors(const char *dir) {
  char path[4096];
  join(path, sizeof path, dir, "werr.safetensors");
  unlink(path);
  const float d[4] = {1, 2, 3, 4};
  lt_err err;
  struct {
    const char *label;
    lt_st_wtensor t[2];
    int n;
    const char *meta;
    const char *want;
  } cases[] = {
      {"NULL name", {{.name = NULL, .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {4}, .data = d}}, 1, NULL, "no name"},
      {"duplicate",
       {{.name = "a", .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {4}, .data = d},
        {.name = "a", .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {2}, .data = d}},
       2, NULL, "duplicate tensor name 'a'"},
      {"ndim 9", {{.name = "a", .dtype = LT_DTYPE_F32, .ndim = 9, .data = d}}, 1, NULL, "ndim 9"},
      {"ndim -1", {{.name = "a", .dtype = LT_DTYPE_F32, .ndim = -1, .data = d}}, 1, NULL, "ndim -1"},
      {"negative dim", {{.name = "a", .dtype = LT_DTYPE_F32, .ndim = 2, .shape = {2, -1}, .data = d}}, 1, NULL,
       "invalid size -1"},
      {"overflow",
       {{.name = "a", .dtype = LT_DTYPE_F32, .ndim = 3, .shape = {1LL << 30, 1LL << 30, 1LL << 30}, .data = d}}, 1,
       NULL, "overflows"},
      {"wraps to zero",
       {{.name = "a", .dtype = LT_DTYPE_U8, .ndim = 2, .shape = {1LL << 32, 1LL << 32}, .data = d}}, 1, NULL,
       "overflows"},
      {"bad dtype", {{.name = "a", .dtype = LT_DTYPE_COUNT, .ndim = 1, .shape = {1}, .data = d}}, 1, NULL,
       "invalid dtype"},
      {"NULL data", {{.name = "a", .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {4}, .data = NULL}}, 1, NULL,
       "NULL data"},
      {"reserved", {{.name = "__metadata__", .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {1}, .data = d}}, 1, NULL,
       "reserved"},
      {"meta array", {{.name = "a", .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {1}, .data = d}}, 1, "[1]",
       "metadata"},
      {"meta number", {{.name = "a", .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {1}, .data = d}}, 1, "{\"a\":1}",
       "metadata entry 'a'"},
      {"meta junk", {{.name = "a", .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {1}, .data = d}}, 1, "{} x",
       "metadata"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    err.msg[0] = 0;
    int rc = lt_st_write(path, cases[i].t, cases[i].n, cases[i].meta, &err);
    CHECK_MSG(rc == -1, "%s: write succeeded", cases[i].label);
    CHECK_MSG(strstr(err.msg, path) != NULL, "%s: \"%s\" does not name the file", cases[i].label, err.msg);
    CHECK_MSG(strstr(err.msg, cases[i].want) != NULL, "%s: \"%s\" lacks \"%s\"", cases[i].label, err.msg,
              cases[i].want);
    CHECK_MSG(!lt_file_exists(path), "%s: a file was left behind", cases[i].label);
  }
  CHECK(lt_st_write(path, NULL, 1, NULL, &err) == -1);
  CHECK(lt_st_write(path, NULL, -1, NULL, &err) == -1);
  CHECK(!lt_file_exists(path));

  char bad[4096];
  join(bad, sizeof bad, dir, "no/such/dir/x.safetensors");
  lt_st_wtensor ok = {.name = "a", .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {4}, .data = d};
  CHECK(lt_st_write(bad, &ok, 1, NULL, &err) == -1);
  CHECK_HAS(err.msg, "cannot create");

  // Overwriting an existing file replaces it whole.
  CHECK(lt_st_write(path, &ok, 1, NULL, &err) == 0);
  ok.shape[0] = 2;
  CHECK(lt_st_write(path, &ok, 1, NULL, &err) == 0);
  lt_st_file f;
  if (lt_st_open(&f, path, &err) == 0) {
    CHECK(f.n == 1 && f.t[0].numel == 2 && f.t[0].nbytes == 8);
    lt_st_close(&f);
  } else {
    CHECK_MSG(0, "%s", err.msg);
  }
}

typedef struct bad_case {
  const char *label;
  const char *hdr;
  long long hl;  // -1: strlen(hdr)
  size_t data;   // zero bytes after the header
  const char *want1, *want2;
} bad_case;

#define T_F32_4 "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"

static const bad_case k_bad[] = {
    {"length over limit", "{}", 200000000, 0, "exceeds the 100000000-byte limit", NULL},
    {"length u64 max", "{}", -2, 0, "exceeds", NULL},
    {"length past end", "{}", 12, 0, "header length 12 runs past the end", NULL},
    {"length past end by one", "{}  ", 5, 0, "runs past the end", NULL},
    {"empty header", "", -1, 0, "not valid JSON", NULL},
    {"not json", "{not json}", -1, 0, "not valid JSON", NULL},
    {"unterminated", "{\"a\":{\"dtype\":\"F32\"", -1, 0, "not valid JSON", NULL},
    {"truncated json", "{\"a\":", -1, 0, "not valid JSON", NULL},
    {"array header", "[1,2]", -1, 0, "not a JSON object", NULL},
    {"string header", "\"abc\"", -1, 0, "not a JSON object", NULL},
    {"null header", "null", -1, 0, "not a JSON object", NULL},
    {"trailing data", "{} x", -1, 0, "trailing data", NULL},
    {"two objects", "{}{}", -1, 0, "trailing data", NULL},
    {"entry number", "{\"a\":5}", -1, 0, "tensor 'a'", "not a JSON object"},
    {"entry array", "{\"model.x\":[1]}", -1, 0, "tensor 'model.x'", "not a JSON object"},
    {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'", "missing \"dtype\""},
    {"dtype number", "{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'",
     "\"dtype\" is not a string"},
    {"dtype unknown", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", -1, 1,
     "tensor 'a': unknown dtype \"F8_E4M3\"", "F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL"},
    {"dtype lowercase", "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4,
     "unknown dtype \"f32\"", NULL},
    {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'",
     "missing \"shape\""},
    {"shape string", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'",
     "\"shape\" is not an array"},
    {"shape object", "{\"a\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'",
     "\"shape\" is not an array"},
    {"nine dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", -1, 4,
     "tensor 'a'", "9 dimensions"},
    {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'",
     "shape[1] = -1 is negative"},
    {"fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'",
     "shape[0] = 1.5 is not an integer"},
    {"string dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'",
     "shape[0] = \"2\" is not a number"},
    {"null dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'",
     "is not a number"},
    {"huge dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'",
     "is too large"},
    {"inf dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e999],\"data_offsets\":[0,4]}}", -1, 4, "tensor 'a'",
     "shape[0]"},
    {"numel overflow 2^64",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", -1, 4,
     "tensor 'a'", "element count overflows"},
    {"numel over int64", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,2147483648],\"data_offsets\":[0,4]}}", -1,
     4, "tensor 'a'", "element count overflows"},
    {"numel wraps to zero", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", -1,
     0, "tensor 'a'", "element count overflows"},
    {"zero dim with huge others", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,8]}}",
     -1, 8, "tensor 'a'", "shape [4294967296, 4294967296, 0] of F64 needs 0"},
    {"bytes overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[67108864,67108864,1024],\"data_offsets\":[0,4]}}",
     -1, 4, "tensor 'a'", "byte size overflows"},
    {"missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", -1, 4, "tensor 'a'",
     "missing \"data_offsets\""},
    {"offsets one", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", -1, 4, "tensor 'a'",
     "not an array of 2 integers"},
    {"offsets three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", -1, 8, "tensor 'a'",
     "not an array of 2 integers"},
    {"offsets string", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", -1, 4, "tensor 'a'",
     "not an array of 2 integers"},
    {"offset fractional", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", -1, 8,
     "tensor 'a'", "data_offsets[1] = 4.5 is not an integer"},
    {"offset negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", -1, 4, "tensor 'a'",
     "data_offsets[0] = -4 is negative"},
    {"offset string", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", -1, 4, "tensor 'a'",
     "data_offsets[1] = \"4\" is not a number"},
    {"offset huge", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551616,4]}}", -1, 4,
     "tensor 'a'", "data_offsets[0]"},
    {"begin after end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", -1, 8, "tensor 'a'",
     "data_offsets [8, 4]: begin is after end"},
    {"end past data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, 8, "tensor 'a'",
     "data_offsets [0, 16] extend past the end of the data area (8 bytes)"},
    {"empty past data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}}", -1, 8, "tensor 'a'",
     "extend past the end"},
    {"byte mismatch",
     "{\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,12]}}", -1, 12,
     "tensor 'model.norm.weight': data_offsets [0, 12] hold 12 bytes but shape [4] of BF16 needs 8", NULL},
    {"byte mismatch 2d", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", -1, 24,
     "hold 20 bytes but shape [2, 3] of F32 needs 24", NULL},
    {"zero elements with bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,4]}}", -1, 4,
     "needs 0", NULL},
    {"overlap",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     -1, 12, "tensors 'a' [0, 8] and 'b' [4, 12] overlap", NULL},
    {"overlap contained",
     "{\"big\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
     "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[10,12]},"
     "\"small\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
     -1, 16, "overlap", "'big'"},
    {"same range", "{\"a\":" T_F32_4 ",\"b\":" T_F32_4 "}", -1, 4, "overlap", NULL},
    {"duplicate names",
     "{\"a\":" T_F32_4 ",\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8,
     "duplicate tensor name 'a'", NULL},
    {"metadata string", "{\"__metadata__\":\"x\",\"a\":" T_F32_4 "}", -1, 4, "\"__metadata__\" is not a JSON object",
     NULL},
    {"metadata number value", "{\"__metadata__\":{\"format\":\"pt\",\"k\":1}}", -1, 0,
     "\"__metadata__\" entry 'k' is not a string", NULL},
    {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", -1, 0, "duplicate \"__metadata__\"", NULL},
    {"second entry bad", "{\"a\":" T_F32_4 ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,9]}}",
     -1, 9, "tensor 'b'", "hold 5 bytes"},
};

static void test_malformed(const char *dir) {
  char path[4096];
  join(path, sizeof path, dir, "bad.safetensors");
  for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
    const bad_case *c = &k_bad[i];
    size_t hdr_len = strlen(c->hdr);
    uint64_t hl = c->hl == -1 ? strlen(c->hdr) : c->hl == -2 ? UINT64_MAX : (uint64_t)c->hl;
    write_st_raw(path, hl, c->hdr, hdr_len, c->data);
    expect_open_fail(path, c->label, c->want1, c->want2);
  }

  // A NUL byte inside the declared header.
  write_st_raw(path, 5, "{}\0  ", 5, 0);
  expect_open_fail(path, "NUL in header", "NUL byte at offset 2", NULL);
  write_st_raw(path, 4, "{\0}\0", 4, 0);
  expect_open_fail(path, "NUL inside braces", "NUL byte at offset 1", NULL);

  // Files shorter than the length field.
  write_bytes(path, "", 0);
  expect_open_fail(path, "empty file", "0 bytes, shorter than the 8-byte", NULL);
  write_bytes(path, "\x02\0\0\0\0\0\0", 7);
  expect_open_fail(path, "7-byte file", "7 bytes", NULL);

  // Deep nesting must be refused by the parser, not overflow the stack.
  size_t depth = 20000;
  char *deep = malloc(2 * depth + 1);
  if (!deep) exit(2);
  memset(deep, '[', depth);
  memset(deep + depth, ']', depth);
  deep[2 * depth] = 0;
  write_st_raw(path, 2 * depth, deep, 2 * depth, 0);
  expect_open_fail(path, "deep nesting", "not valid JSON", NULL);
  free(deep);

  // Not a regular file, missing file.
  expect_open_fail(dir, "directory", "not a regular file", NULL);
  char missing[4096];
  join(missing, sizeof missing, dir, "missing.safetensors");
  expect_open_fail(missing, "missing", "cannot open", NULL);

  lt_err err;
  lt_st_file f;
  CHECK(lt_st_open(&f, NULL, &err) == -1);
  CHECK(is_zeroed_file(&f));
  CHECK(lt_st_open(NULL, path, &err) == -1);
  lt_st_close(NULL);
}

typedef struct good_case {
  const char *label;
  const char *hdr;
  size_t data;
  int n;
} good_case;

static void test_valid_edge_cases(const char *dir) {
  char path[4096];
  join(path, sizeof path, dir, "edge.safetensors");
  static const good_case good[] = {
      {"empty object", "{}", 0, 0},
      {"padded with spaces", "{\"a\":" T_F32_4 "}       ", 4, 1},
      {"whitespace and newlines", " \n{ \"a\" : " T_F32_4 " }\r\n\t ", 4, 1},
      {"zero-element tensor inside another's range",
       "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
       "\"z\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[4,4]}}",
       8, 2},
      {"zero-element at end", "{\"z\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, 1},
      {"scalar", "{\"s\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, 1},
      {"eight dims", "{\"a\":{\"dtype\":\"I16\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,4]}}", 4, 1},
      {"gap and trailing bytes", "{\"a\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[4,6]}}", 16, 1},
      {"adjacent, unordered",
       "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},\"a\":" T_F32_4 "}", 8, 2},
      {"extra keys ignored", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":[1]}}", 4, 1},
      {"integral float offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0.0,4e0]}}", 4, 1},
      {"metadata only", "{\"__metadata__\":{\"format\":\"pt\"}}", 0, 0},
  };
  lt_err err;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    write_st_raw(path, strlen(good[i].hdr), good[i].hdr, strlen(good[i].hdr), good[i].data);
    lt_st_file f;
    int rc = lt_st_open(&f, path, &err);
    CHECK_MSG(rc == 0, "%s: %s", good[i].label, err.msg);
    if (rc == 0) {
      CHECK_MSG(f.n == good[i].n, "%s: n = %d", good[i].label, f.n);
      lt_st_close(&f);
    }
  }

  // An F32 tensor at an odd file offset converts through memcpy (UBSan would flag a misaligned load).
  const char *hdr = "{\"pad\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                    "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},"
                    "\"h\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[9,11]}} ";
  size_t hl = strlen(hdr);
  uint8_t buf[512];
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, hdr, hl);
  const float wv[2] = {0.25f, -7.0f};
  const uint16_t hv = 0x4049;
  buf[8 + hl] = 0xAB;
  memcpy(buf + 8 + hl + 1, wv, 8);
  memcpy(buf + 8 + hl + 9, &hv, 2);
  write_bytes(path, buf, 8 + hl + 11);
  lt_st_file f;
  int rc = lt_st_open(&f, path, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    const lt_st_tensor *t = lt_st_find(&f, "w");
    float out[2] = {0, 0};
    CHECK(t && ((uintptr_t)t->data % 4) != 0);
    CHECK(t && lt_tensor_to_f32(t, out, &err) == 0 && out[0] == 0.25f && out[1] == -7.0f);
    t = lt_st_find(&f, "h");
    CHECK(t && lt_tensor_to_f32(t, out, &err) == 0 && out[0] == 3.140625f);
    t = lt_st_find(&f, "pad");
    CHECK(t && t->data[0] == 0xAB);
    lt_st_close(&f);
  }
}

// Every proper prefix of a valid file is rejected; seeded byte corruptions never crash and anything that
// still opens has all tensors inside the mapping.
static void test_truncation_and_corruption(const char *dir) {
  char ref[4096], path[4096];
  join(ref, sizeof ref, dir, "ref.safetensors");
  join(path, sizeof path, dir, "cut.safetensors");
  lt_err err;
  if (write_reference(ref, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  size_t len;
  uint8_t *raw = read_bytes(ref, &len);
  int failed_ok = 0;
  for (size_t cut = 0; cut < len; cut++) {
    write_bytes(path, raw, cut);
    lt_st_file f;
    err.msg[0] = 0;
    int rc = lt_st_open(&f, path, &err);
    if (rc == 0) lt_st_close(&f);
    if (rc == -1 && strstr(err.msg, path) && is_zeroed_file(&f)) failed_ok++;
    else CHECK_MSG(0, "truncation to %zu of %zu bytes: rc %d, \"%s\"", cut, len, rc, err.msg);
  }
  CHECK(failed_ok == (int)len);

  uint64_t s = 0x9E3779B97F4A7C15ull;
  uint8_t *mut = malloc(len);
  if (!mut) exit(2);
  static const uint8_t interesting[] = {'"', '{', '}', '[', ']', ',', ':', '-', '0', '9', '.', 'e', ' ', 0, 0xff};
  int opened = 0;
  for (int iter = 0; iter < 3000; iter++) {
    memcpy(mut, raw, len);
    int nmut = 1 + iter % 4;
    for (int k = 0; k < nmut; k++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      size_t pos = (size_t)(s >> 33) % len;
      uint8_t v = (s >> 20) & 1 ? interesting[(s >> 24) % sizeof interesting] : (uint8_t)(s >> 40);
      mut[pos] = v;
    }
    write_bytes(path, mut, len);
    lt_st_file f;
    if (lt_st_open(&f, path, &err) == 0) {
      opened++;
      const uint8_t *lo = (const uint8_t *)f.map, *hi = lo + f.size;
      for (int i = 0; i < f.n; i++) {
        const lt_st_tensor *t = &f.t[i];
        CHECK_MSG(t->data >= lo + 8 && t->data <= hi && t->nbytes <= (size_t)(hi - t->data),
                  "corruption %d: tensor '%s' outside the mapping", iter, t->name);
        CHECK(t->nbytes == (size_t)t->numel * lt_dtype_size(t->dtype));
        if (i) CHECK(strcmp(f.t[i - 1].name, t->name) < 0);
      }
      lt_st_close(&f);
    } else {
      CHECK_MSG(strstr(err.msg, path) != NULL, "corruption %d: \"%s\"", iter, err.msg);
    }
  }
  CHECK(opened > 0);  // some corruptions only touch data bytes or padding
  free(mut);
  free(raw);
}

static void write_shard(const char *dir, const char *name, const char *const *tnames, int n) {
  char path[4096];
  join(path, sizeof path, dir, name);
  static const float v[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  lt_st_wtensor t[4];
  for (int i = 0; i < n; i++)
    t[i] = (lt_st_wtensor){.name = tnames[i], .dtype = LT_DTYPE_F32, .ndim = 1, .shape = {i + 1}, .data = v};
  lt_err err;
  if (lt_st_write(path, t, n, NULL, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    exit(2);
  }
}

static void write_index(const char *dir, const char *json) {
  char path[4096];
  join(path, sizeof path, dir, "model.safetensors.index.json");
  write_bytes(path, json, strlen(json));
}

#define S1 "model-00001-of-00002.safetensors"
#define S2 "model-00002-of-00002.safetensors"

static void expect_weights_fail(const char *dir, const char *label, const char *want1, const char *want2) {
  lt_weights w;
  lt_err err;
  err.msg[0] = 0;
  int rc = lt_weights_open(&w, dir, &err);
  CHECK_MSG(rc == -1, "%s: open succeeded", label);
  if (rc == 0) {
    lt_weights_close(&w);
    return;
  }
  CHECK_MSG(strstr(err.msg, dir) != NULL, "%s: \"%s\" does not name the folder", label, err.msg);
  CHECK_MSG(!want1 || strstr(err.msg, want1), "%s: \"%s\" lacks \"%s\"", label, err.msg, want1);
  CHECK_MSG(!want2 || strstr(err.msg, want2), "%s: \"%s\" lacks \"%s\"", label, err.msg, want2);
  CHECK_MSG(w.nfiles == 0 && w.files == NULL, "%s: weights not reset", label);
  lt_weights_close(&w);
}

static void test_weights(const char *base) {
  char dir[4096], path[4096];
  join(dir, sizeof dir, base, "sharded");
  mkdir_ok(dir);
  static const char *const t1[] = {"model.b", "model.a"};
  static const char *const t2[] = {"lm_head.weight"};
  write_shard(dir, S1, t1, 2);
  write_shard(dir, S2, t2, 1);
  const char *good_index = "{\"metadata\":{\"total_size\":16},\"weight_map\":{\"model.a\":\"" S1
                           "\",\"model.b\":\"" S1 "\",\"lm_head.weight\":\"" S2 "\"}}";
  write_index(dir, good_index);

  lt_weights w;
  lt_err err;
  int rc = lt_weights_open(&w, dir, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    CHECK(w.nfiles == 2);
    const char *file = NULL;
    const lt_st_tensor *t = lt_weights_find(&w, "lm_head.weight", &file);
    char want[4096];
    join(want, sizeof want, dir, S2);
    CHECK(t && t->numel == 1 && file && strcmp(file, want) == 0);
    join(want, sizeof want, dir, S1);
    t = lt_weights_find(&w, "model.a", &file);
    CHECK(t && t->numel == 2 && file && strcmp(file, want) == 0);
    float out[2];
    CHECK(t && lt_tensor_to_f32(t, out, &err) == 0 && out[0] == 1.0f && out[1] == 2.0f);
    t = lt_weights_find(&w, "model.b", NULL);
    CHECK(t && t->numel == 1);
    file = "unchanged";
    CHECK(lt_weights_find(&w, "model.c", &file) == NULL && strcmp(file, "unchanged") == 0);
    lt_weights_close(&w);
    CHECK(w.nfiles == 0 && w.files == NULL);
    lt_weights_close(&w);
  }

  write_index(dir, "{\"weight_map\":{\"model.a\":\"" S1 "\",\"model.d\":\"" S1 "\",\"lm_head.weight\":\"" S2 "\"}}");
  expect_weights_fail(dir, "tensor missing from shard", "tensor 'model.d'", "shard '" S1 "' but that shard does not");
  write_index(dir, "{\"weight_map\":{\"model.a\":\"" S1 "\",\"lm_head.weight\":\"model-00003-of-00003.safetensors\"}}");
  expect_weights_fail(dir, "missing shard", "model-00003-of-00003.safetensors", "cannot open");
  write_index(dir, "{\"weight_map\":{\"model.a\":\"../" S1 "\"}}");
  expect_weights_fail(dir, "parent shard", "shard '../" S1 "'", "not a plain file name");
  write_index(dir, "{\"weight_map\":{\"model.a\":\"sub/" S1 "\"}}");
  expect_weights_fail(dir, "subdir shard", "tensor 'model.a'", "not a plain file name");
  write_index(dir, "{\"weight_map\":{\"model.a\":\"\"}}");
  expect_weights_fail(dir, "empty shard name", "not a plain file name", NULL);
  write_index(dir, "{\"weight_map\":{\"model.a\":1}}");
  expect_weights_fail(dir, "numeric shard", "tensor 'model.a'", "not a string");
  write_index(dir, "{\"metadata\":{}}");
  expect_weights_fail(dir, "no weight_map", "missing \"weight_map\"", NULL);
  write_index(dir, "{\"weight_map\":[]}");
  expect_weights_fail(dir, "weight_map array", "not a JSON object", NULL);
  write_index(dir, "{\"weight_map\":{}}");
  expect_weights_fail(dir, "empty weight_map", "empty", NULL);
  write_index(dir, "{\"weight_map\":");
  expect_weights_fail(dir, "index not JSON", "model.safetensors.index.json: not a valid JSON object", NULL);

  // A tensor stored in two shards is ambiguous.
  static const char *const t2dup[] = {"lm_head.weight", "model.a"};
  write_shard(dir, S2, t2dup, 2);
  write_index(dir, good_index);
  expect_weights_fail(dir, "tensor in two shards", "tensor 'model.a' is present in both", NULL);

  // A corrupt shard: the error names the index, the shard and the problem.
  join(path, sizeof path, dir, S2);
  write_bytes(path, "\x10\0\0\0\0\0\0\0{", 9);
  expect_weights_fail(dir, "corrupt shard", "shard '" S2 "'", "runs past the end");

  // Single-file folder, and an empty one.
  char single[4096];
  join(single, sizeof single, base, "single");
  mkdir_ok(single);
  join(path, sizeof path, single, "model.safetensors.index.json");
  unlink(path);
  join(path, sizeof path, single, "model.safetensors");
  unlink(path);
  expect_weights_fail(single, "empty folder", "no model.safetensors or model.safetensors.index.json", NULL);
  write_shard(single, "model.safetensors", t1, 2);
  rc = lt_weights_open(&w, single, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    const char *file = NULL;
    CHECK(w.nfiles == 1);
    CHECK(lt_weights_find(&w, "model.b", &file) != NULL && file && strcmp(file, path) == 0);
    CHECK(lt_weights_find(&w, "lm_head.weight", NULL) == NULL);
    lt_weights_close(&w);
  }
  write_bytes(path, "\x02\0\0\0\0\0\0\0[]", 10);
  expect_weights_fail(single, "corrupt single file", "not a JSON object", NULL);
  CHECK(lt_weights_open(&w, NULL, &err) == -1);
  lt_weights_close(NULL);
}

int main(void) {
  char dir[4096];
  mkdir_ok(LT_TMPDIR);
  join(dir, sizeof dir, LT_TMPDIR, "safetensors");
  mkdir_ok(dir);
  test_dtypes();
  test_roundtrip(dir);
  test_conversions();
  test_writer_errors(dir);
  test_malformed(dir);
  test_valid_edge_cases(dir);
  test_truncation_and_corruption(dir);
  test_weights(dir);
  TEST_MAIN_END();
}
