// The `lmtune data mail` set builder (see mail.h): files read and parsed in parallel, deduplicated in
// argument/file order, split per (label, path) stratum with a seeded shuffle, written as train/val/test JSON
// arrays and stats.json (atomically). Parsing one message is mail.c.
#include "data/mail.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/core.h"
#include "data/data.h"

static int is_wsp(char c) { return c == ' ' || c == '\t'; }

int lt_mail_parse_split(const char *s, double r[3], lt_err *err) {
  const char *p = s;
  for (int k = 0; k < 3; k++) {
    char *end;
    errno = 0;
    r[k] = strtod(p, &end);
    if (errno || end == p || !isfinite(r[k]) || r[k] < 0 || (k < 2 ? *end != ',' : *end != 0))
      return lt_errf(err,
                     "--split \"%s\": expected three comma-separated ratios train,val,test, each >= 0 and "
                     "summing to 1 (e.g. 0.8,0.1,0.1)",
                     s);
    p = end + 1;
  }
  double sum = r[0] + r[1] + r[2];
  if (fabs(sum - 1.0) > 1e-6)
    return lt_errf(err, "--split \"%s\": the ratios sum to %g, they must sum to 1 (e.g. 0.8,0.1,0.1)", s, sum);
  return 0;
}

void lt_mail_split_counts(int n, const double r[3], int c[3]) {
  int val = (int)floor(n * r[1] + 0.5), test = (int)floor(n * r[2] + 0.5);
  if (n >= 3) {
    if (r[1] > 0 && val < 1) val = 1;
    if (r[2] > 0 && test < 1) test = 1;
  }
  if (test > n) test = n;
  if (val > n - test) val = n - test;
  c[0] = n - val - test;
  c[1] = val;
  c[2] = test;
}

enum { ST_KEPT, ST_DUP, ST_SKIPPED };
static const char *const split_names[3] = {"train", "val", "test"};
static const char *const body_names[3] = {"none", "plain", "html"};

typedef struct item {
  int src;
  char *path;
  lt_mail m;     // only kept for the dump
  char *input;   // the full record input (NULL when skipped)
  size_t input_len;
  uint64_t hash;
  int status, split, dup_of, body_kind, defects, oom;
  char reason[256];
} item;

typedef struct item_list {
  item *v;
  int n, cap;
} item_list;

static int add_item(item_list *l, int src, const char *path, lt_err *err) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 256;
    item *v = realloc(l->v, sizeof *v * (size_t)cap);
    if (!v) return lt_errf(err, "out of memory listing mail files");
    l->v = v;
    l->cap = cap;
  }
  item *it = &l->v[l->n];
  memset(it, 0, sizeof *it);
  it->src = src;
  it->path = strdup(path);
  if (!it->path) return lt_errf(err, "out of memory listing mail files");
  l->n++;
  return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int ends_with(const char *s, const char *suf) {
  size_t n = strlen(s), k = strlen(suf);
  return n >= k && !strcmp(s + n - k, suf);
}

// A source's files in name order: the file itself, or a folder's regular files except *.json and hidden ones.
static int list_source(const lt_mail_source *s, int si, item_list *l, lt_err *err) {
  struct stat st;
  if (stat(s->path, &st) != 0)
    return lt_errf(err, "%s=%s: %s: %s (give a mail file or a folder of them)", s->label, s->path, s->path,
                   strerror(errno));
  if (S_ISREG(st.st_mode)) return add_item(l, si, s->path, err);
  if (!S_ISDIR(st.st_mode)) return lt_errf(err, "%s=%s: not a file or a folder", s->label, s->path);
  DIR *d = opendir(s->path);
  if (!d) return lt_errf(err, "%s=%s: cannot read the folder: %s", s->label, s->path, strerror(errno));
  char **names = NULL;
  int n = 0, cap = 0, rc = 0;
  struct dirent *de;
  char full[4096];
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.' || ends_with(de->d_name, ".json")) continue;
    if (lt_path_join(full, sizeof full, s->path, de->d_name) || stat(full, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 256;
      char **nn = realloc(names, sizeof *nn * (size_t)cap);
      if (!nn) {
        rc = lt_errf(err, "out of memory listing %s", s->path);
        break;
      }
      names = nn;
    }
    if (!(names[n] = strdup(de->d_name))) {
      rc = lt_errf(err, "out of memory listing %s", s->path);
      break;
    }
    n++;
  }
  closedir(d);
  if (!rc) {
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (int i = 0; i < n && !rc; i++) {
      if (lt_path_join(full, sizeof full, s->path, names[i]))
        rc = lt_errf(err, "%s/%s: path too long", s->path, names[i]);
      else
        rc = add_item(l, si, full, err);
    }
    if (!rc && n == 0)
      rc = lt_errf(err, "%s=%s: no mail files in the folder (*.json and hidden files are skipped)", s->label,
                   s->path);
  }
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  return h;
}

static void process_item(item *it, int keep_mail) {
  char *data = NULL;
  size_t len = 0;
  lt_err e;
  if (lt_read_file(it->path, &data, &len, &e)) {
    it->status = ST_SKIPPED;
    snprintf(it->reason, sizeof it->reason, "unreadable: %.200s", e.msg);
    return;
  }
  size_t k = 0;
  while (k < len && (is_wsp(data[k]) || data[k] == '\n' || data[k] == '\r')) k++;
  if (k == len) {
    it->status = ST_SKIPPED;
    snprintf(it->reason, sizeof it->reason, "%s", len ? "only whitespace" : "empty file");
    free(data);
    return;
  }
  if (lt_mail_parse(data, len, &it->m, &e) || !(it->input = lt_mail_record_input(&it->m, &e))) {
    it->oom = 1;
    free(data);
    return;
  }
  free(data);
  it->input_len = strlen(it->input);
  it->body_kind = it->m.body_kind;
  it->defects = it->m.defects;
  it->hash = fnv1a(it->input, it->input_len);
  if (!strcmp(it->input, "From: \nSubject: ")) {
    it->status = ST_SKIPPED;
    snprintf(it->reason, sizeof it->reason, "no sender, subject or text recoverable");
  }
  if (!keep_mail) lt_mail_free(&it->m);
}

static void items_free(item_list *l) {
  for (int i = 0; i < l->n; i++) {
    free(l->v[i].path);
    free(l->v[i].input);
    lt_mail_free(&l->v[i].m);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

// One split as a JSON array, one record per line.
static int write_split(const char *path, item_list *l, const int32_t *idx, int n, const lt_mail_source *src,
                       const char *instruction, int max_chars, lt_err *err) {
  lt_atomic_file af;
  if (lt_atomic_open(&af, path, err)) return -1;
  fputs(n ? "[\n" : "[", af.fp);
  for (int k = 0; k < n; k++) {
    item *it = &l->v[idx[k]];
    size_t tl = lt_mail_truncate_len(it->input, it->input_len, max_chars);
    char saved = it->input[tl];
    it->input[tl] = 0;
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "instruction", instruction) &&
             cJSON_AddStringToObject(o, "input", it->input) &&
             cJSON_AddStringToObject(o, "output", src[it->src].label);
    it->input[tl] = saved;
    char *js = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!js) {
      lt_atomic_abort(&af);
      return lt_errf(err, "%s: out of memory writing record %d", path, k);
    }
    fputs(js, af.fp);
    fputs(k + 1 < n ? ",\n" : "\n", af.fp);
    cJSON_free(js);
  }
  fputs("]\n", af.fp);
  return lt_atomic_commit(&af, err);
}

static int write_dump(const char *path, item_list *l, const lt_mail_source *src, lt_err *err) {
  lt_atomic_file af;
  if (lt_atomic_open(&af, path, err)) return -1;
  static const char *const status_names[3] = {"kept", "duplicate", "skipped"};
  for (int i = 0; i < l->n; i++) {
    item *it = &l->v[i];
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "file", it->path) &&
             cJSON_AddStringToObject(o, "label", src[it->src].label) &&
             cJSON_AddNumberToObject(o, "stratum", it->src) &&
             cJSON_AddStringToObject(o, "status", status_names[it->status]);
    if (ok && it->status == ST_KEPT) ok = cJSON_AddStringToObject(o, "split", split_names[it->split]) != NULL;
    if (ok && it->status == ST_DUP) ok = cJSON_AddStringToObject(o, "duplicate_of", l->v[it->dup_of].path) != NULL;
    if (ok && it->status == ST_SKIPPED) ok = cJSON_AddStringToObject(o, "reason", it->reason) != NULL;
    if (ok && it->input)
      ok = cJSON_AddStringToObject(o, "subject", it->m.subject ? it->m.subject : "") &&
           cJSON_AddStringToObject(o, "from", it->m.from ? it->m.from : "") &&
           cJSON_AddStringToObject(o, "body", it->m.body ? it->m.body : "") &&
           cJSON_AddStringToObject(o, "body_kind", body_names[it->body_kind]) &&
           cJSON_AddNumberToObject(o, "defects", it->defects) && cJSON_AddStringToObject(o, "input", it->input);
    char *js = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!js) {
      lt_atomic_abort(&af);
      return lt_errf(err, "%s: out of memory writing the dump", path);
    }
    fputs(js, af.fp);
    fputc('\n', af.fp);
    cJSON_free(js);
  }
  return lt_atomic_commit(&af, err);
}

static cJSON *stratum_json(const lt_mail_stratum *s) {
  cJSON *o = cJSON_CreateObject(), *b = cJSON_CreateObject();
  if (!o || !b) {
    cJSON_Delete(o);
    cJSON_Delete(b);
    return NULL;
  }
  cJSON_AddStringToObject(o, "label", s->label);
  cJSON_AddStringToObject(o, "path", s->path);
  cJSON_AddNumberToObject(o, "files", s->files);
  cJSON_AddNumberToObject(o, "skipped", s->skipped);
  cJSON_AddNumberToObject(o, "duplicates", s->duplicates);
  cJSON_AddNumberToObject(o, "kept", s->kept);
  for (int k = 0; k < 3; k++) cJSON_AddNumberToObject(o, split_names[k], s->split[k]);
  cJSON_AddNumberToObject(o, "defective", s->defective);
  cJSON_AddNumberToObject(o, "truncated", s->truncated);
  for (int k = 0; k < 3; k++) cJSON_AddNumberToObject(b, body_names[k], s->body[k]);
  cJSON_AddItemToObject(o, "body", b);
  return o;
}

static int write_stats(const char *path, const lt_mail_stats *st, const lt_mail_opts *o, const char *instruction,
                       lt_err *err) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return lt_errf(err, "%s: out of memory", path);
  cJSON_AddNumberToObject(root, "seed", (double)o->seed);
  cJSON *ratios = cJSON_AddArrayToObject(root, "split_ratios");
  for (int k = 0; k < 3 && ratios; k++) cJSON_AddItemToArray(ratios, cJSON_CreateNumber(o->split[k]));
  cJSON_AddNumberToObject(root, "max_chars", o->max_chars);
  cJSON_AddStringToObject(root, "instruction", instruction);
  cJSON_AddNumberToObject(root, "files", st->files);
  cJSON_AddNumberToObject(root, "kept", st->kept);
  cJSON_AddNumberToObject(root, "duplicates_removed", st->duplicates);
  cJSON_AddNumberToObject(root, "skipped", st->skipped);
  cJSON_AddNumberToObject(root, "defective", st->defective);
  cJSON_AddNumberToObject(root, "truncated", st->truncated);
  cJSON *sk = cJSON_AddArrayToObject(root, "skipped_files");
  for (int i = 0; i < st->n_skipped_names && sk; i++) {
    cJSON *e = cJSON_CreateObject();
    if (!e) break;
    cJSON_AddStringToObject(e, "file", st->skipped_names[i]);
    cJSON_AddStringToObject(e, "reason", st->skipped_reasons[i]);
    cJSON_AddItemToArray(sk, e);
  }
  cJSON *splits = cJSON_AddObjectToObject(root, "splits");
  for (int k = 0; k < 3 && splits; k++) {
    cJSON *sp = cJSON_AddObjectToObject(splits, split_names[k]);
    if (!sp) break;
    cJSON_AddNumberToObject(sp, "total", st->split[k]);
    cJSON *labels = cJSON_AddObjectToObject(sp, "labels");
    cJSON *strata = cJSON_AddObjectToObject(sp, "strata");
    for (int i = 0; i < st->n_strata && labels && strata; i++) {
      const lt_mail_stratum *s = &st->strata[i];
      int first = 1;
      for (int j = 0; j < i; j++) first &= strcmp(st->strata[j].label, s->label) != 0;
      if (first) {
        int c = 0;
        for (int j = i; j < st->n_strata; j++)
          if (!strcmp(st->strata[j].label, s->label)) c += st->strata[j].split[k];
        cJSON_AddNumberToObject(labels, s->label, c);
      }
      char key[8192];
      snprintf(key, sizeof key, "%s=%s", s->label, s->path);
      cJSON_AddNumberToObject(strata, key, s->split[k]);
    }
  }
  cJSON *strata = cJSON_AddArrayToObject(root, "strata");
  for (int i = 0; i < st->n_strata && strata; i++) cJSON_AddItemToArray(strata, stratum_json(&st->strata[i]));
  char *js = cJSON_Print(root);
  cJSON_Delete(root);
  if (!js) return lt_errf(err, "%s: out of memory", path);
  int rc = lt_write_file_atomic(path, js, strlen(js), err);
  cJSON_free(js);
  return rc;
}

void lt_mail_stats_free(lt_mail_stats *st) {
  if (!st) return;
  for (int i = 0; i < st->n_skipped_names; i++) {
    free(st->skipped_names[i]);
    free(st->skipped_reasons[i]);
  }
  free(st->skipped_names);
  free(st->skipped_reasons);
  free(st->strata);
  memset(st, 0, sizeof *st);
}

int lt_mail_build_set(const lt_mail_source *src, int n_src, const lt_mail_opts *o, const char *out_dir,
                      lt_mail_stats *st, lt_err *err) {
  memset(st, 0, sizeof *st);
  if (n_src <= 0) return lt_errf(err, "no sources: give LABEL=PATH arguments (e.g. spam=DIR ham=DIR)");
  for (int i = 0; i < n_src; i++) {
    if (!src[i].label || !*src[i].label || !src[i].path || !*src[i].path)
      return lt_errf(err, "source %d: LABEL=PATH needs a label and a path", i + 1);
    for (int j = 0; j < i; j++)
      if (!strcmp(src[i].label, src[j].label) && !strcmp(src[i].path, src[j].path))
        return lt_errf(err, "%s=%s is given twice", src[i].label, src[i].path);
  }
  const char *instruction = o->instruction ? o->instruction : LT_MAIL_DEFAULT_INSTRUCTION;
  const double *r = o->split;
  if (!(isfinite(r[0]) && isfinite(r[1]) && isfinite(r[2]) && r[0] >= 0 && r[1] >= 0 && r[2] >= 0 &&
        fabs(r[0] + r[1] + r[2] - 1.0) <= 1e-6))
    return lt_errf(err, "split ratios %g,%g,%g: each must be >= 0 and they must sum to 1", r[0], r[1], r[2]);
  st->strata = calloc((size_t)n_src, sizeof *st->strata);
  if (!st->strata) return lt_errf(err, "out of memory");
  st->n_strata = n_src;
  item_list l = {0};
  int rc = 0;
  for (int i = 0; i < n_src && !rc; i++) {
    st->strata[i].label = src[i].label;
    st->strata[i].path = src[i].path;
    rc = list_source(&src[i], i, &l, err);
  }
  // read and parse (independent per file; the results do not depend on the thread count)
  int keep_mail = o->dump_path != NULL;
  if (!rc) {
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < l.n; i++) process_item(&l.v[i], keep_mail);
    for (int i = 0; i < l.n && !rc; i++)
      if (l.v[i].oom) rc = lt_errf(err, "%s: out of memory parsing the message", l.v[i].path);
  }
  // deduplicate: the first of identical inputs (argument order, then file name order) is kept
  size_t cap = 16;
  int32_t *tab = NULL;
  if (!rc) {
    while (cap < (size_t)l.n * 2) cap *= 2;
    tab = malloc(sizeof *tab * cap);
    if (!tab) rc = lt_errf(err, "out of memory deduplicating %d messages", l.n);
  }
  if (!rc) {
    for (size_t k = 0; k < cap; k++) tab[k] = -1;
    for (int i = 0; i < l.n; i++) {
      item *it = &l.v[i];
      if (it->status == ST_SKIPPED) continue;
      size_t slot = (size_t)it->hash & (cap - 1);
      while (tab[slot] >= 0) {
        item *o2 = &l.v[tab[slot]];
        if (o2->hash == it->hash && o2->input_len == it->input_len && !memcmp(o2->input, it->input, it->input_len)) {
          it->status = ST_DUP;
          it->dup_of = tab[slot];
          break;
        }
        slot = (slot + 1) & (cap - 1);
      }
      if (it->status == ST_KEPT) tab[slot] = i;
    }
  }
  free(tab);
  // split each stratum
  int32_t *idx = NULL, *perm = NULL, *order = NULL;
  if (!rc) {
    idx = malloc(sizeof *idx * (size_t)(l.n + 1));
    perm = malloc(sizeof *perm * (size_t)(l.n + 1));
    order = malloc(sizeof *order * (size_t)(l.n + 1));
    if (!idx || !perm || !order) rc = lt_errf(err, "out of memory splitting %d messages", l.n);
  }
  for (int s = 0; s < n_src && !rc; s++) {
    lt_mail_stratum *ss = &st->strata[s];
    int n = 0;
    for (int i = 0; i < l.n; i++) {
      item *it = &l.v[i];
      if (it->src != s) continue;
      ss->files++;
      if (it->status == ST_SKIPPED) {
        ss->skipped++;
        continue;
      }
      if (it->status == ST_DUP) {
        ss->duplicates++;
        continue;
      }
      idx[n++] = i;
      ss->body[it->body_kind]++;
      if (it->defects) ss->defective++;
      if (lt_mail_truncate_len(it->input, it->input_len, o->max_chars) < it->input_len) ss->truncated++;
    }
    ss->kept = n;
    int c[3];
    lt_mail_split_counts(n, r, c);
    lt_shuffle_perm(perm, n, o->seed, (uint64_t)s);
    for (int k = 0; k < n; k++) l.v[idx[perm[k]]].split = k < c[0] ? 0 : k < c[0] + c[1] ? 1 : 2;
    for (int k = 0; k < 3; k++) ss->split[k] = c[k];
    st->files += ss->files;
    st->skipped += ss->skipped;
    st->duplicates += ss->duplicates;
    st->kept += ss->kept;
    st->defective += ss->defective;
    st->truncated += ss->truncated;
    for (int k = 0; k < 3; k++) st->split[k] += c[k];
  }
  if (!rc && st->skipped) {
    st->skipped_names = calloc((size_t)st->skipped, sizeof(char *));
    st->skipped_reasons = calloc((size_t)st->skipped, sizeof(char *));
    if (!st->skipped_names || !st->skipped_reasons) rc = lt_errf(err, "out of memory");
    for (int i = 0; i < l.n && !rc; i++) {
      if (l.v[i].status != ST_SKIPPED) continue;
      int k = st->n_skipped_names;
      st->skipped_names[k] = strdup(l.v[i].path);
      st->skipped_reasons[k] = strdup(l.v[i].reason);
      st->n_skipped_names++;
      if (!st->skipped_names[k] || !st->skipped_reasons[k]) rc = lt_errf(err, "out of memory");
    }
  }
  if (!rc && st->kept == 0)
    rc = lt_errf(err, "no messages: all %d files were empty or unreadable (first: %s)", st->files,
                 st->n_skipped_names ? st->skipped_names[0] : "-");
  if (!rc) rc = lt_mkdirs(out_dir, err);
  // each split in a seeded order (strata mixed)
  for (int k = 0; k < 3 && !rc; k++) {
    int n = 0;
    for (int i = 0; i < l.n; i++)
      if (l.v[i].status == ST_KEPT && l.v[i].split == k) idx[n++] = i;
    lt_shuffle_perm(perm, n, o->seed, 0x5b117ull + (uint64_t)k);
    for (int i = 0; i < n; i++) order[i] = idx[perm[i]];
    char path[4096];
    char fname[32];
    snprintf(fname, sizeof fname, "%s.json", split_names[k]);
    if (lt_path_join(path, sizeof path, out_dir, fname))
      rc = lt_errf(err, "%s: path too long", out_dir);
    else
      rc = write_split(path, &l, order, n, src, instruction, o->max_chars, err);
  }
  if (!rc) {
    char path[4096];
    if (lt_path_join(path, sizeof path, out_dir, "stats.json"))
      rc = lt_errf(err, "%s: path too long", out_dir);
    else
      rc = write_stats(path, st, o, instruction, err);
  }
  if (!rc && o->dump_path) rc = write_dump(o->dump_path, &l, src, err);
  free(idx);
  free(perm);
  free(order);
  items_free(&l);
  return rc;
}
