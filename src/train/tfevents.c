// TensorBoard event files written by hand: TFRecord framing (length, masked CRC32C of the length, data, masked
// CRC32C of the data) around Event protobufs {wall_time = 1 (double), step = 2 (int64), file_version = 3 (string) |
// summary = 5 (Summary {value = 1: Value {tag = 1 (string), simple_value = 2 (float)}})}.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "train/trainer.h"

uint32_t lt_crc32c(const void *data, size_t n) {
  const uint8_t *p = data;
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  return crc ^ 0xffffffffu;
}

uint32_t lt_tf_masked_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

static void put_u32(uint8_t *o, uint32_t v) {
  for (int i = 0; i < 4; i++) o[i] = (uint8_t)(v >> (8 * i));
}

size_t lt_tfrecord_frame(uint8_t *out, const void *data, size_t n) {
  uint64_t len = n;
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)(len >> (8 * i));
  put_u32(out + 8, lt_tf_masked_crc(lt_crc32c(out, 8)));
  memcpy(out + 12, data, n);
  put_u32(out + 12 + n, lt_tf_masked_crc(lt_crc32c(data, n)));
  return n + 16;
}

static size_t varint(uint8_t *o, uint64_t v) {
  size_t n = 0;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    o[n++] = (uint8_t)(b | (v ? 0x80 : 0));
  } while (v);
  return n;
}

size_t lt_tf_event_encode(uint8_t *out, double wall_time, int64_t step, const char *tag, float value) {
  size_t n = 0;
  out[n++] = 0x09;  // field 1, fixed64
  memcpy(out + n, &wall_time, 8);  // little-endian hosts (x86-64, aarch64)
  n += 8;
  out[n++] = 0x10;  // field 2, varint
  n += varint(out + n, (uint64_t)step);
  if (!tag) {
    static const char ver[] = "brain.Event:2";
    out[n++] = 0x1a;  // field 3, length-delimited
    n += varint(out + n, sizeof ver - 1);
    memcpy(out + n, ver, sizeof ver - 1);
    return n + sizeof ver - 1;
  }
  size_t tl = strlen(tag);
  if (tl > 200) tl = 200;
  uint8_t val[256];
  size_t vn = 0;
  val[vn++] = 0x0a;  // Value.tag
  vn += varint(val + vn, tl);
  memcpy(val + vn, tag, tl);
  vn += tl;
  val[vn++] = 0x15;  // Value.simple_value, fixed32
  memcpy(val + vn, &value, 4);
  vn += 4;
  uint8_t sum[280];
  size_t sn = 0;
  sum[sn++] = 0x0a;  // Summary.value
  sn += varint(sum + sn, vn);
  memcpy(sum + sn, val, vn);
  sn += vn;
  out[n++] = 0x2a;  // Event.summary
  n += varint(out + n, sn);
  memcpy(out + n, sum, sn);
  return n + sn;
}

void lt_tfevents_name(char *out, size_t cap, double unix_time) {
  char host[128] = "localhost";
  if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = 0;
  for (char *p = host; *p; p++)
    if (*p == '/') *p = '_';
  snprintf(out, cap, "events.out.tfevents.%lld.%s", (long long)unix_time, host);
}

// As transformers' TensorBoardCallback (rewrite_logs): eval_x -> eval/x, everything else -> train/x.
static void tb_tag(char *out, size_t cap, const char *key) {
  if (strncmp(key, "eval_", 5) == 0) snprintf(out, cap, "eval/%s", key + 5);
  else snprintf(out, cap, "train/%s", key);
}

int lt_tfevents_write(const cJSON *log_history, const char *path, double wall_time0, lt_err *err) {
  lt_atomic_file af;
  if (lt_atomic_open(&af, path, err)) return -1;
  uint8_t ev[512], rec[600];
  size_t n = lt_tf_event_encode(ev, wall_time0, 0, NULL, 0.0f);
  size_t rn = lt_tfrecord_frame(rec, ev, n);
  int bad = fwrite(rec, 1, rn, af.fp) != rn;
  const cJSON *entry;
  cJSON_ArrayForEach(entry, log_history) {
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(entry, "step");
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(entry, "_wall_time");
    int64_t step = cJSON_IsNumber(js) ? (int64_t)js->valuedouble : 0;
    double wt = cJSON_IsNumber(jt) ? jt->valuedouble : wall_time0;
    const cJSON *kv;
    cJSON_ArrayForEach(kv, entry) {
      if (!cJSON_IsNumber(kv) || !kv->string || strcmp(kv->string, "step") == 0 || kv->string[0] == '_') continue;
      char tag[160];
      tb_tag(tag, sizeof tag, kv->string);
      n = lt_tf_event_encode(ev, wt, step, tag, (float)kv->valuedouble);
      rn = lt_tfrecord_frame(rec, ev, n);
      if (fwrite(rec, 1, rn, af.fp) != rn) bad = 1;
    }
  }
  if (bad) {
    lt_atomic_abort(&af);
    return lt_errf(err, "%s: write failed", path);
  }
  return lt_atomic_commit(&af, err);
}
