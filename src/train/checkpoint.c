// Checkpoint pieces: optimizer state as safetensors, finding the latest complete checkpoint, rotation
// (save_total_limit), and removing directories we created.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "train/trainer.h"

static const char *const suffix[3] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};

int lt_optim_save(lt_optim *o, lt_model *m, const char *path, lt_err *err) {
  int n = m->ntrain;
  lt_st_wtensor *t = lt_alloc(sizeof(lt_st_wtensor) * (size_t)(3 * n + 1), err);
  char *names = lt_alloc((size_t)(3 * n + 1) * 200, err);
  int k = 0, rc = -1;
  if (!t || !names) goto done;
  for (int i = 0; i < n; i++) {
    float *buf[3];
    int64_t numel;
    lt_optim_state(o, i, &buf[0], &buf[1], &buf[2], &numel);
    int sgd = buf[1] == NULL;  // SGD keeps only the momentum buffer
    for (int j = 0; j < 3; j++) {
      if (!buf[j]) continue;
      char *nm = names + (size_t)k * 200;
      snprintf(nm, 200, "%s.%s", m->train[i].name, sgd ? "momentum_buffer" : suffix[j]);
      t[k++] = (lt_st_wtensor){nm, LT_DTYPE_F32, 2, {m->train[i].shape[0], m->train[i].shape[1]}, buf[j]};
    }
  }
  char meta[160];
  snprintf(meta, sizeof meta, "{\"format\":\"lmtune-optimizer\",\"step\":\"%lld\",\"tensors\":\"%d\"}",
           (long long)lt_optim_steps(o), n);
  rc = lt_st_write(path, t, k, meta, err);
done:
  lt_free(t);
  lt_free(names);
  return rc;
}

int lt_optim_load(lt_optim *o, lt_model *m, const char *path, lt_err *err) {
  lt_st_file f;
  if (lt_st_open(&f, path, err)) return -1;
  int rc = -1;
  cJSON *meta = f.metadata_json ? cJSON_Parse(f.metadata_json) : NULL;
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(meta, "step");
  if (!cJSON_IsString(js)) {
    lt_errf(err, "%s: no optimizer step in the metadata", path);
    goto done;
  }
  char *end;
  long long steps = strtoll(js->valuestring, &end, 10);
  if (*end || steps < 0) {
    lt_errf(err, "%s: bad optimizer step \"%s\"", path, js->valuestring);
    goto done;
  }
  int used = 0;
  for (int i = 0; i < m->ntrain; i++) {
    float *buf[3];
    int64_t numel;
    lt_optim_state(o, i, &buf[0], &buf[1], &buf[2], &numel);
    int sgd = buf[1] == NULL;
    for (int j = 0; j < 3; j++) {
      if (!buf[j]) continue;
      char nm[200];
      snprintf(nm, sizeof nm, "%s.%s", m->train[i].name, sgd ? "momentum_buffer" : suffix[j]);
      const lt_st_tensor *t = lt_st_find(&f, nm);
      if (!t || t->dtype != LT_DTYPE_F32 || t->numel != numel) {
        lt_errf(err, "%s: optimizer tensor \"%s\" is %s (the checkpoint does not match this run's trainable "
                "parameters or optimizer)", path, nm, t ? "the wrong dtype or size" : "missing");
        goto done;
      }
      memcpy(buf[j], t->data, (size_t)numel * sizeof(float));
      used++;
    }
  }
  if (used != f.n) {
    lt_errf(err, "%s: holds %d tensors, this run's optimizer has %d (different trainable parameters or optimizer)",
            path, f.n, used);
    goto done;
  }
  lt_optim_set_steps(o, steps);
  rc = 0;
done:
  cJSON_Delete(meta);
  lt_st_close(&f);
  return rc;
}

// "checkpoint-N" -> N (complete directories only: the rename happens when every file is written), else -1
static int64_t ckpt_step(const char *name) {
  if (strncmp(name, "checkpoint-", 11) != 0 || !name[11]) return -1;
  int64_t v = 0;
  for (const char *p = name + 11; *p; p++) {
    if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10) return -1;
    v = v * 10 + (*p - '0');
  }
  return v;
}

int64_t lt_checkpoint_latest(const char *output_dir, char *path, size_t cap) {
  DIR *d = opendir(output_dir);
  if (!d) return -1;
  int64_t best = -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    int64_t s = ckpt_step(e->d_name);
    if (s < 0) continue;
    char p[LT_PATH_CAP + 64], st[LT_PATH_CAP + 128];
    if (lt_path_join(p, sizeof p, output_dir, e->d_name) || lt_path_join(st, sizeof st, p, "lmtune_state.json"))
      continue;
    if (s > best && lt_file_exists(st)) {
      best = s;
      if (path) snprintf(path, cap, "%s", p);
    }
  }
  closedir(d);
  return best;
}

int lt_remove_tree(const char *path, lt_err *err) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : lt_errf(err, "%s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (!d) return lt_errf(err, "%s: cannot open: %s", path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && rc == 0) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char p[LT_PATH_CAP + 512];
      if (lt_path_join(p, sizeof p, path, e->d_name)) rc = lt_errf(err, "%s: path too long", path);
      else rc = lt_remove_tree(p, err);
    }
    closedir(d);
    if (rc) return rc;
    if (rmdir(path) != 0) return lt_errf(err, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
  }
  if (unlink(path) != 0) return lt_errf(err, "%s: cannot remove: %s", path, strerror(errno));
  return 0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int lt_checkpoint_rotate(const char *output_dir, int limit, const char *protect, lt_err *err) {
  if (limit <= 0) return 0;
  DIR *d = opendir(output_dir);
  if (!d) return 0;
  int n = 0, cap = 16;
  int64_t *steps = malloc(sizeof(int64_t) * (size_t)cap);
  if (!steps) {
    closedir(d);
    return lt_errf(err, "out of memory");
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    int64_t s = ckpt_step(e->d_name);
    if (s < 0) continue;
    if (n == cap) {
      int64_t *ns = realloc(steps, sizeof(int64_t) * (size_t)(cap *= 2));
      if (!ns) {
        free(steps);
        closedir(d);
        return lt_errf(err, "out of memory");
      }
      steps = ns;
    }
    steps[n++] = s;
  }
  closedir(d);
  qsort(steps, (size_t)n, sizeof *steps, cmp_i64);
  // as transformers' rotate_checkpoints: the newest and the best are protected
  int64_t prot = -1;
  if (protect && *protect) {
    const char *base = strrchr(protect, '/');
    prot = ckpt_step(base ? base + 1 : protect);
  }
  int n_prot = 1 + (prot >= 0 && n > 0 && prot != steps[n - 1]);
  int keep = LT_MAX(limit, n_prot), remaining = n, rc = 0;
  for (int i = 0; i < n && remaining > keep && rc == 0; i++) {
    if (i == n - 1 || steps[i] == prot) continue;
    char p[LT_PATH_CAP + 64], name[48];
    snprintf(name, sizeof name, "checkpoint-%lld", (long long)steps[i]);
    if (lt_path_join(p, sizeof p, output_dir, name)) continue;
    rc = lt_remove_tree(p, err);
    remaining--;
  }
  free(steps);
  return rc;
}
