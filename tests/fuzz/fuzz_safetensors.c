/* libFuzzer harness for the safetensors reader (not built by default).
 *
 * Build and run (from the repository root, clang with libFuzzer):
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *     tests/fuzz/fuzz_safetensors.c src/io/safetensors.c src/core/core.c -lcjson -lm -o build/fuzz_safetensors
 *   mkdir -p build/fuzz-corpus && ./build/fuzz_safetensors -max_total_time=60 -max_len=4096 build/fuzz-corpus
 * Seed the corpus with any small .safetensors files (e.g. those the unit test leaves in build/tmp/safetensors).
 *
 * Replay crashing inputs without clang (a plain main over the files given):
 *   gcc -g -std=c11 -D_GNU_SOURCE -DLT_FUZZ_STANDALONE -fsanitize=address,undefined -Iinclude -Isrc \
 *     tests/fuzz/fuzz_safetensors.c src/io/safetensors.c src/core/core.c -lcjson -lm -o build/fuzz_replay
 *   ./build/fuzz_replay crash-*
 *
 * Each input is written to a memfd and opened through /proc/self/fd/N, so the real open/fstat/mmap path runs.
 * When the file opens, the invariants callers rely on are checked (abort on violation): names sorted and
 * unique, lt_st_find finds each tensor, every tensor's bytes inside the mapping and equal to numel * dtype
 * size, and float tensors convert. When it fails, the message must name the file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"

#define FUZZ_ASSERT(c)                                                              \
  do {                                                                              \
    if (!(c)) {                                                                     \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);    \
      abort();                                                                      \
    }                                                                               \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    ssize_t w = write(fd, data + done, size - done);
    if (w <= 0) {
      close(fd);
      return 0;
    }
    done += (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

  lt_st_file f;
  lt_err err;
  err.msg[0] = 0;
  if (lt_st_open(&f, path, &err) == 0) {
    const uint8_t *lo = f.map, *hi = lo + f.size;
    FUZZ_ASSERT(f.size == size);
    for (int i = 0; i < f.n; i++) {
      const lt_st_tensor *t = &f.t[i];
      FUZZ_ASSERT(t->name != NULL);
      if (i) FUZZ_ASSERT(strcmp(f.t[i - 1].name, t->name) < 0);
      FUZZ_ASSERT(lt_st_find(&f, t->name) == t);
      FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= LT_ST_MAX_DIMS);
      FUZZ_ASSERT(t->numel >= 0);
      FUZZ_ASSERT(t->nbytes == (size_t)t->numel * lt_dtype_size(t->dtype));
      FUZZ_ASSERT(t->data >= lo + 8 && t->data <= hi && t->nbytes <= (size_t)(hi - t->data));
      if (t->numel > 0 && t->numel <= (1 << 16) &&
          (t->dtype == LT_DTYPE_F32 || t->dtype == LT_DTYPE_F16 || t->dtype == LT_DTYPE_BF16 ||
           t->dtype == LT_DTYPE_F64)) {
        float *dst = malloc((size_t)t->numel * sizeof(float));
        if (dst) {
          FUZZ_ASSERT(lt_tensor_to_f32(t, dst, &err) == 0);
          free(dst);
        }
      }
    }
    FUZZ_ASSERT(lt_st_find(&f, "\x01not-a-tensor") == NULL);
    lt_st_close(&f);
  } else {
    FUZZ_ASSERT(strstr(err.msg, path) != NULL);
    FUZZ_ASSERT(f.map == NULL && f.t == NULL && f.n == 0 && f.path == NULL && f.metadata_json == NULL);
  }
  lt_st_close(&f);  // second close on the zeroed struct is a no-op
  close(fd);
  return 0;
}

#ifdef LT_FUZZ_STANDALONE
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    char *buf;
    size_t len;
    lt_err err;
    if (lt_read_file(argv[i], &buf, &len, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    lt_free(buf);
    fprintf(stderr, "%s: ok\n", argv[i]);
  }
  return 0;
}
#endif
