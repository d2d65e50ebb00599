// tokenizer_config.json reader (special tokens, add_bos/add_eos, model_max_length, chat templates), following
// how transformers' from_pretrained finds chat templates: tokenizer_config.json "chat_template" (a string or a
// list of {"name", "template"}), overridden by chat_template.jinja + additional_chat_templates/*.jinja.
#include "tokenizer/tokconfig.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"

static char *dup_str(const char *s, lt_err *err) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (!d) {
    lt_errf(err, "out of memory copying a %zu-byte string", n);
    return NULL;
  }
  memcpy(d, s, n + 1);
  return d;
}

// A special token written as "..." or {"content": "...", ...}; null/absent leaves *out NULL.
static int get_token(const cJSON *root, const char *key, char **out, const char *file, lt_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!v || cJSON_IsNull(v)) return 0;
  if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
  if (!cJSON_IsString(v)) return lt_errf(err, "%s: \"%s\" must be a string or an object with a \"content\" string", file, key);
  *out = dup_str(v->valuestring, err);
  return *out ? 0 : -1;
}

static int get_bool(const cJSON *root, const char *key, int *out, const char *file, lt_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  *out = -1;
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsBool(v)) return lt_errf(err, "%s: \"%s\" must be true or false", file, key);
  *out = cJSON_IsTrue(v) ? 1 : 0;
  return 0;
}

static void clear_templates(lt_tokconfig *c) {
  for (int i = 0; i < c->n_templates; i++) {
    free(c->template_name[i]);
    free(c->template_src[i]);
    c->template_name[i] = c->template_src[i] = NULL;
  }
  c->n_templates = 0;
}

// Adds (or replaces, by name) a template; takes ownership of src.
static int add_template(lt_tokconfig *c, const char *name, char *src, const char *file, lt_err *err) {
  for (int i = 0; i < c->n_templates; i++)
    if (strcmp(c->template_name[i], name) == 0) {
      free(c->template_src[i]);
      c->template_src[i] = src;
      return 0;
    }
  if (c->n_templates >= LT_MAX_TEMPLATES) {
    free(src);
    return lt_errf(err, "%s: more than %d chat templates", file, LT_MAX_TEMPLATES);
  }
  char *n = dup_str(name, err);
  if (!n) {
    free(src);
    return -1;
  }
  c->template_name[c->n_templates] = n;
  c->template_src[c->n_templates] = src;
  c->n_templates++;
  return 0;
}

static int parse_templates(lt_tokconfig *c, const cJSON *v, const char *file, lt_err *err) {
  if (!v || cJSON_IsNull(v)) return 0;
  if (cJSON_IsString(v)) {
    char *s = dup_str(v->valuestring, err);
    return s ? add_template(c, "default", s, file, err) : -1;
  }
  if (!cJSON_IsArray(v)) return lt_errf(err, "%s: \"chat_template\" must be a string or a list of {name, template}", file);
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "template");
    if (!cJSON_IsString(n) || !cJSON_IsString(t))
      return lt_errf(err, "%s: each \"chat_template\" list entry needs \"name\" and \"template\" strings", file);
    char *s = dup_str(t->valuestring, err);
    if (!s || add_template(c, n->valuestring, s, file, err)) return -1;
  }
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// additional_chat_templates/NAME.jinja (in name order, so the result does not depend on readdir order).
static int load_extra_templates(lt_tokconfig *c, const char *dir, lt_err *err) {
  char tdir[4096], path[4400];
  if (lt_path_join(tdir, sizeof tdir, dir, "additional_chat_templates")) return lt_errf(err, "%s: path too long", dir);
  DIR *d = opendir(tdir);
  if (!d) return 0;
  char *names[LT_MAX_TEMPLATES + 1];
  int n = 0, rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l <= 6 || strcmp(e->d_name + l - 6, ".jinja") != 0) continue;
    if (n > LT_MAX_TEMPLATES) {
      rc = lt_errf(err, "%s: more than %d chat templates", tdir, LT_MAX_TEMPLATES);
      break;
    }
    if (!(names[n] = dup_str(e->d_name, err))) {
      rc = -1;
      break;
    }
    n++;
  }
  closedir(d);
  if (!rc) qsort(names, (size_t)n, sizeof names[0], cmp_str);
  for (int i = 0; i < n && !rc; i++) {
    char *src;
    size_t len;
    if (lt_path_join(path, sizeof path, tdir, names[i])) {
      rc = lt_errf(err, "%s: path too long", tdir);
      break;
    }
    if (lt_read_file(path, &src, &len, err)) {
      rc = -1;
      break;
    }
    names[i][strlen(names[i]) - 6] = 0;
    rc = add_template(c, names[i], src, path, err);
  }
  for (int i = 0; i < n; i++) free(names[i]);
  return rc;
}

static int load_json_file(const char *path, cJSON **out, lt_err *err) {
  char *text;
  size_t len;
  *out = NULL;
  if (lt_read_file(path, &text, &len, err)) return -1;
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  if (!root) return lt_errf(err, "%s: invalid JSON", path);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return lt_errf(err, "%s: expected a JSON object", path);
  }
  *out = root;
  return 0;
}

static int load_into(lt_tokconfig *c, const char *dir, lt_err *err) {
  char path[4400];
  if (lt_path_join(path, sizeof path, dir, "tokenizer_config.json")) return lt_errf(err, "%s: path too long", dir);
  if (lt_file_exists(path)) {
    cJSON *root;
    if (load_json_file(path, &root, err)) return -1;
    int rc = get_token(root, "bos_token", &c->bos_token, path, err) ||
             get_token(root, "eos_token", &c->eos_token, path, err) ||
             get_token(root, "pad_token", &c->pad_token, path, err) ||
             get_token(root, "unk_token", &c->unk_token, path, err) ||
             get_token(root, "sep_token", &c->sep_token, path, err) ||
             get_token(root, "cls_token", &c->cls_token, path, err) ||
             get_token(root, "mask_token", &c->mask_token, path, err) ||
             get_bool(root, "add_bos_token", &c->add_bos_token, path, err) ||
             get_bool(root, "add_eos_token", &c->add_eos_token, path, err);
    if (!rc) {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "tokenizer_class");
      if (cJSON_IsString(v) && !(c->tokenizer_class = dup_str(v->valuestring, err))) rc = -1;
      v = cJSON_GetObjectItemCaseSensitive(root, "model_max_length");
      if (!rc && v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v)) rc = lt_errf(err, "%s: \"model_max_length\" must be a number", path);
        else c->model_max_length = v->valuedouble;
      }
    }
    if (!rc) rc = parse_templates(c, cJSON_GetObjectItemCaseSensitive(root, "chat_template"), path, err);
    cJSON_Delete(root);
    if (rc) return -1;
  }
  // chat_template.jinja and additional_chat_templates/ replace the config's templates (transformers passes them
  // as the chat_template init argument, which wins over the config entry).
  char jpath[4400];
  if (lt_path_join(jpath, sizeof jpath, dir, "chat_template.jinja")) return lt_errf(err, "%s: path too long", dir);
  lt_tokconfig files;
  memset(&files, 0, sizeof files);
  int rc = 0;
  if (lt_file_exists(jpath)) {
    char *src;
    size_t len;
    rc = lt_read_file(jpath, &src, &len, err) || add_template(&files, "default", src, jpath, err);
  }
  if (!rc) rc = load_extra_templates(&files, dir, err);
  if (rc) {
    clear_templates(&files);
    return -1;
  }
  if (files.n_templates) {
    clear_templates(c);
    memcpy(c->template_name, files.template_name, sizeof files.template_name);
    memcpy(c->template_src, files.template_src, sizeof files.template_src);
    c->n_templates = files.n_templates;
  }
  if (c->n_templates == 0) {
    // Legacy processor file: {"chat_template": "..."}.
    if (lt_path_join(jpath, sizeof jpath, dir, "chat_template.json")) return lt_errf(err, "%s: path too long", dir);
    if (lt_file_exists(jpath)) {
      cJSON *root;
      if (load_json_file(jpath, &root, err)) return -1;
      rc = parse_templates(c, cJSON_GetObjectItemCaseSensitive(root, "chat_template"), jpath, err);
      cJSON_Delete(root);
      if (rc) return -1;
    }
  }
  return 0;
}

int lt_tokconfig_load(lt_tokconfig *c, const char *path, lt_err *err) {
  memset(c, 0, sizeof *c);
  c->add_bos_token = c->add_eos_token = -1;
  struct stat st;
  if (stat(path, &st) != 0) return lt_errf(err, "%s: no such file or folder", path);
  char dir[4096];
  if (S_ISDIR(st.st_mode)) {
    if (strlen(path) >= sizeof dir) return lt_errf(err, "%s: path too long", path);
    strcpy(dir, path);
  } else {
    const char *slash = strrchr(path, '/');
    if (!slash) {
      strcpy(dir, ".");
    } else {
      size_t n = (size_t)(slash - path);
      if (n >= sizeof dir) return lt_errf(err, "%s: path too long", path);
      if (n == 0) n = 1;  // "/tokenizer.json"
      memcpy(dir, path, n);
      dir[n] = 0;
    }
  }
  if (load_into(c, dir, err)) {
    lt_tokconfig_free(c);
    c->add_bos_token = c->add_eos_token = -1;
    return -1;
  }
  return 0;
}

void lt_tokconfig_free(lt_tokconfig *c) {
  if (!c) return;
  free(c->bos_token);
  free(c->eos_token);
  free(c->pad_token);
  free(c->unk_token);
  free(c->sep_token);
  free(c->cls_token);
  free(c->mask_token);
  free(c->tokenizer_class);
  clear_templates(c);
  memset(c, 0, sizeof *c);
}

const char *lt_tokconfig_template(const lt_tokconfig *c, const char *name) {
  if (name) {
    for (int i = 0; i < c->n_templates; i++)
      if (strcmp(c->template_name[i], name) == 0) return c->template_src[i];
    return NULL;
  }
  for (int i = 0; i < c->n_templates; i++)
    if (strcmp(c->template_name[i], "default") == 0) return c->template_src[i];
  return c->n_templates == 1 ? c->template_src[0] : NULL;
}
