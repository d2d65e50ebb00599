// safetensors: mmap'd reader (bounds-checked, untrusted input) and atomic writer; HF weight folders.
#ifndef LT_SAFETENSORS_H
#define LT_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "lmtune.h"

#define LT_ST_MAX_DIMS 8

typedef struct lt_st_tensor {
  char *name;
  lt_dtype dtype;
  int ndim;
  int64_t shape[LT_ST_MAX_DIMS];
  int64_t numel;
  const uint8_t *data;  // points into the mapping
  size_t nbytes;
} lt_st_tensor;

typedef struct lt_st_file {
  char *path;
  void *map;           // whole file, read-only mapping
  size_t size;
  int n;               // number of tensors
  lt_st_tensor *t;     // sorted by name
  char *metadata_json; // "__metadata__" object re-serialised, or NULL
} lt_st_file;

size_t lt_dtype_size(lt_dtype t);
// Parse "F32", "BF16", ... ; returns -1 when unknown.
int lt_dtype_from_name(const char *s, lt_dtype *out);

// Open and validate: header length, JSON, dtypes, shapes, offsets inside the data area, no overlaps,
// numel * dtype size == byte length. Errors name the file and tensor.
int lt_st_open(lt_st_file *f, const char *path, lt_err *err);
void lt_st_close(lt_st_file *f);
const lt_st_tensor *lt_st_find(const lt_st_file *f, const char *name);

// Writer: tensors are written in the given order; metadata_json is an object literal such as
// {"format":"pt"} (NULL: {"format":"pt"}). Written atomically (temp file, fsync, rename).
typedef struct lt_st_wtensor {
  const char *name;
  lt_dtype dtype;
  int ndim;
  int64_t shape[LT_ST_MAX_DIMS];
  const void *data;
} lt_st_wtensor;
int lt_st_write(const char *path, const lt_st_wtensor *t, int n, const char *metadata_json, lt_err *err);

// A Hugging Face weight folder: model.safetensors, or model.safetensors.index.json + shards.
typedef struct lt_weights {
  int nfiles;
  lt_st_file *files;
} lt_weights;
int lt_weights_open(lt_weights *w, const char *dir, lt_err *err);
void lt_weights_close(lt_weights *w);
// Find a tensor by name across shards; NULL if absent. *file (optional) receives the shard's path.
const lt_st_tensor *lt_weights_find(const lt_weights *w, const char *name, const char **file);

// Copy/convert a tensor to f32 (F32, F16, BF16, F64 accepted) into dst (numel floats).
int lt_tensor_to_f32(const lt_st_tensor *t, float *dst, lt_err *err);

#endif
