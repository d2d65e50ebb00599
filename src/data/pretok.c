// Pre-tokenized JSONL training data: {"input_ids": [...], "labels": [...], "attention_mask": [...]} per line.
// Every bad record is an error naming the file, the line and the field (or a counted warning with skip_bad).
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "data/data.h"
#include "tokenizer/tokenizer.h"

// The tokenizer for text records, loaded on the first one.
typedef struct text_ctx {
  lt_tokenizer *tok;
  int32_t bos, eos;
  int tried;
  char load_err[600];
} text_ctx;

static int32_t added_bos(const lt_tokenizer *t) {  // the tokenizer adds a bos with add_special_tokens
  int32_t *ids = NULL;
  int n = 0;
  lt_err e;
  int32_t b = lt_tokenizer_bos_id(t), r = -1;
  if (b >= 0 && lt_tokenizer_encode(t, "", 0, 1, &ids, &n, &e) == 0 && n > 0 && ids[0] == b) r = b;
  free(ids);
  return r;
}

int32_t lt_pretok_text_bos(const char *tokenizer_path) {
  lt_tokenizer *t;
  lt_err e;
  if (!tokenizer_path || lt_tokenizer_load(&t, tokenizer_path, &e)) return -1;
  int32_t b = added_bos(t);
  lt_tokenizer_free(t);
  return b;
}

static int text_ctx_load(text_ctx *c, const char *path) {
  if (c->tried) return c->tok ? 0 : -1;
  c->tried = 1;
  lt_err e;
  if (lt_tokenizer_load(&c->tok, path, &e)) {
    snprintf(c->load_err, sizeof c->load_err, "%.500s", e.msg);
    c->tok = NULL;
    return -1;
  }
  c->bos = added_bos(c->tok);
  c->eos = lt_tokenizer_eos_id(c->tok);
  if (c->eos < 0) {
    snprintf(c->load_err, sizeof c->load_err, "the tokenizer in %s has no eos token to end text records", path);
    lt_tokenizer_free(c->tok);
    c->tok = NULL;
    return -1;
  }
  return 0;
}

int lt_dataset_add(lt_dataset *d, const int32_t *ids, const int32_t *labels, const int32_t *attn, int len, int line,
                   lt_err *err) {
  if (len <= 0) return lt_errf(err, "an example needs at least one token");
  if (d->n == d->cap) {
    int cap = d->cap ? d->cap * 2 : 64;
    if (cap <= d->cap) return lt_errf(err, "too many examples");
    lt_example *ex = realloc(d->ex, sizeof(lt_example) * (size_t)cap);
    if (!ex) return lt_errf(err, "out of memory growing the dataset to %d examples", cap);
    d->ex = ex;
    d->cap = cap;
  }
  lt_example *e = &d->ex[d->n];
  memset(e, 0, sizeof *e);
  size_t bytes = sizeof(int32_t) * (size_t)len;
  e->ids = malloc(bytes);
  e->labels = malloc(bytes);
  e->attn = attn ? malloc(bytes) : NULL;
  if (!e->ids || !e->labels || (attn && !e->attn)) {
    free(e->ids);
    free(e->labels);
    free(e->attn);
    return lt_errf(err, "out of memory for an example of %d tokens", len);
  }
  memcpy(e->ids, ids, bytes);
  memcpy(e->labels, labels ? labels : ids, bytes);
  if (attn) memcpy(e->attn, attn, bytes);
  e->len = len;
  e->line = line;
  d->n++;
  return 0;
}

void lt_dataset_free(lt_dataset *d) {
  if (!d) return;
  for (int i = 0; i < d->n; i++) {
    free(d->ex[i].ids);
    free(d->ex[i].labels);
    free(d->ex[i].attn);
  }
  free(d->ex);
  d->ex = NULL;
  d->n = d->cap = 0;
}

int64_t lt_example_n_targets(const lt_example *e) {
  int64_t n = 0;
  for (int i = 1; i < e->len; i++) n += e->labels[i] != -100;
  return n;
}

// Byte offset of the first invalid UTF-8 sequence in s[0..n), or -1.
static long utf8_invalid_at(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int k;
    unsigned min;
    if ((c & 0xe0) == 0xc0) k = 1, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0) k = 2, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0) k = 3, min = 0x10000, c &= 0x07;
    else return (long)i;
    for (int j = 1; j <= k; j++) {
      if (i + (size_t)j >= n || (s[i + j] & 0xc0) != 0x80) return (long)i;
      c = (c << 6) | (s[i + j] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return (long)i;
    i += (size_t)k + 1;
  }
  return -1;
}

// Integer array field -> v (len entries). lo/hi bound the values; allow_m100: -100 is also allowed.
static int int_array(const cJSON *a, const char *field, int32_t **v, int *len, long lo, long hi, int allow_m100,
                     char *msg, size_t cap) {
  *v = NULL;
  *len = 0;
  if (!cJSON_IsArray(a)) {
    snprintf(msg, cap, "field \"%s\" must be an array of integers", field);
    return -1;
  }
  int n = cJSON_GetArraySize(a);
  if (n == 0) {
    snprintf(msg, cap, "field \"%s\" is empty", field);
    return -1;
  }
  int32_t *out = malloc(sizeof(int32_t) * (size_t)n);
  if (!out) {
    snprintf(msg, cap, "out of memory");
    return -1;
  }
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) {
    double x = cJSON_IsNumber(e) ? e->valuedouble : NAN;
    if (!cJSON_IsNumber(e) || x != floor(x) || !((x >= (double)lo && x <= (double)hi) || (allow_m100 && x == -100))) {
      if (!cJSON_IsNumber(e) || x != floor(x))
        snprintf(msg, cap, "field \"%s\"[%d] is not an integer", field, i);
      else
        snprintf(msg, cap, "field \"%s\"[%d] = %.0f is outside [%ld, %ld]%s", field, i, x, lo, hi,
                 allow_m100 ? " (or -100)" : "");
      free(out);
      return -1;
    }
    out[i++] = (int32_t)x;
  }
  *v = out;
  *len = n;
  return 0;
}

// Tokenize one plain-text document as LLaMA-Factory's pre-training does: [bos] + tokens + eos (labels = ids).
// On failure fills msg ("field \"text\": ...") and returns -1; *fatal when the tokenizer itself is unusable.
static int text_ids(text_ctx *tc, const lt_pretok_opts *o, const char *s, size_t n, int32_t **out, int *nout,
                    char *msg, size_t cap, lt_err *err, int *fatal) {
  *out = NULL;
  *nout = 0;
  if (!o->tokenizer_path) {
    snprintf(msg, cap, "field \"text\": plain-text records need a tokenizer (tokenizer.json in the model folder)");
    return -1;
  }
  if (text_ctx_load(tc, o->tokenizer_path)) {
    snprintf(msg, cap, "field \"text\": %.500s", tc->load_err);
    *fatal = 1;
    lt_errf(err, "field \"text\": %s", tc->load_err);
    return -1;
  }
  int32_t *tids = NULL;
  int nt = 0;
  lt_err e2;
  if (lt_tokenizer_encode(tc->tok, s, n, 0, &tids, &nt, &e2)) {
    snprintf(msg, cap, "field \"text\": %.500s", e2.msg);
    return -1;
  }
  int pre = tc->bos >= 0;
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)(nt + 2));
  if (!ids) {
    free(tids);
    snprintf(msg, cap, "out of memory");
    return -1;
  }
  if (pre) ids[0] = tc->bos;
  if (nt) memcpy(ids + pre, tids, sizeof(int32_t) * (size_t)nt);
  free(tids);
  int nid = nt + pre + 1;
  ids[nid - 1] = tc->eos;
  long vmax = o->vocab > 0 ? o->vocab - 1 : INT32_MAX;
  for (int i = 0; i < nid; i++)
    if (ids[i] < 0 || ids[i] > vmax) {
      snprintf(msg, cap, "field \"text\": token id %d is outside the model's vocabulary", ids[i]);
      free(ids);
      return -1;
    }
  *out = ids;
  *nout = nid;
  return 0;
}

// Parse one record into the dataset; on a bad record fill msg and return -1 (dataset untouched).
static int parse_record(const char *line, size_t n, int lineno, const lt_pretok_opts *o, text_ctx *tc,
                        lt_dataset *out, lt_data_stats *st, char *msg, size_t cap, lt_err *err, int *fatal) {
  *fatal = 0;
  long bad = utf8_invalid_at((const unsigned char *)line, n);
  if (bad >= 0) {
    snprintf(msg, cap, "invalid UTF-8 byte 0x%02x at column %ld", (unsigned char)line[bad], bad + 1);
    return -1;
  }
  cJSON *root = cJSON_ParseWithLength(line, n);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    long col = at && at >= line && at <= line + n ? (long)(at - line) + 1 : 0;
    snprintf(msg, cap, "not valid JSON (near column %ld)", col);
    return -1;
  }
  int rc = -1;
  int32_t *ids = NULL, *labels = NULL, *attn = NULL;
  int nid = 0, nl = 0, na = 0;
  long vmax = o->vocab > 0 ? o->vocab - 1 : INT32_MAX;
  if (!cJSON_IsObject(root)) {
    snprintf(msg, cap, "a record must be a JSON object");
    goto done;
  }
  const cJSON *jid = cJSON_GetObjectItemCaseSensitive(root, "input_ids");
  const cJSON *jt = cJSON_GetObjectItemCaseSensitive(root, "text");
  if (!jid && jt) {  // plain text: [bos] + tokens + eos, labels = ids
    if (!cJSON_IsString(jt)) {
      snprintf(msg, cap, "field \"text\" must be a string");
      goto done;
    }
    if (text_ids(tc, o, jt->valuestring, strlen(jt->valuestring), &ids, &nid, msg, cap, err, fatal)) goto done;
  } else if (!jid) {
    snprintf(msg, cap, "missing field \"input_ids\"");
    goto done;
  } else if (int_array(jid, "input_ids", &ids, &nid, 0, vmax, 0, msg, cap)) {
    goto done;
  }
  const cJSON *jl = cJSON_GetObjectItemCaseSensitive(root, "labels");
  if (jl && !cJSON_IsNull(jl)) {
    if (int_array(jl, "labels", &labels, &nl, 0, vmax, 1, msg, cap)) goto done;
    if (nl != nid) {
      snprintf(msg, cap, "field \"labels\" has %d entries but \"input_ids\" has %d", nl, nid);
      goto done;
    }
  }
  const cJSON *ja = cJSON_GetObjectItemCaseSensitive(root, "attention_mask");
  if (ja && !cJSON_IsNull(ja)) {
    if (int_array(ja, "attention_mask", &attn, &na, 0, 1, 0, msg, cap)) goto done;
    if (na != nid) {
      snprintf(msg, cap, "field \"attention_mask\" has %d entries but \"input_ids\" has %d", na, nid);
      goto done;
    }
  }
  int len = nid;
  if (o->cutoff_len > 0 && len > o->cutoff_len) {
    len = o->cutoff_len;
    st->n_truncated++;
  }
  if (lt_dataset_add(out, ids, labels, attn, len, lineno, err)) {
    *fatal = 1;
    goto done;
  }
  if (lt_example_n_targets(&out->ex[out->n - 1]) == 0) st->n_no_target++;
  rc = 0;
done:
  free(ids);
  free(labels);
  free(attn);
  cJSON_Delete(root);
  return rc;
}

// One JSONL file, or a .txt file read as one record per non-blank line (LLaMA-Factory's text datasets).
static int read_lines(const char *path, const lt_pretok_opts *o, lt_dataset *out, lt_data_stats *st, lt_err *err) {
  size_t pl = strlen(path);
  int plain = pl >= 4 && strcmp(path + pl - 4, ".txt") == 0;
  char *text;
  size_t len;
  if (lt_read_file(path, &text, &len, err)) return -1;
  size_t pos = 0;
  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) pos = 3;  // UTF-8 byte-order mark
  int lineno = 0, rc = 0, n0 = out->n;
  char msg[600];
  text_ctx tc;
  memset(&tc, 0, sizeof tc);
  while (pos < len) {
    if (o->max_samples > 0 && out->n - n0 >= o->max_samples) break;
    size_t e = pos;
    while (e < len && text[e] != '\n') e++;
    size_t n = e - pos;
    lineno++;
    if (n && text[pos + n - 1] == '\r') n--;
    int blank = 1;
    for (size_t i = 0; i < n && blank; i++) blank = text[pos + i] == ' ' || text[pos + i] == '\t';
    if (!blank) {
      st->n_records++;
      int fatal = 0, bad = 0;
      if (memchr(text + pos, 0, n)) {
        snprintf(msg, sizeof msg, "contains a NUL byte");
        bad = 1;
      } else if (plain) {
        int32_t *ids = NULL;
        int nid = 0;
        bad = text_ids(&tc, o, text + pos, n, &ids, &nid, msg, sizeof msg, err, &fatal) != 0;
        if (!bad) {
          if (o->cutoff_len > 0 && nid > o->cutoff_len) {
            nid = o->cutoff_len;
            st->n_truncated++;
          }
          if (lt_dataset_add(out, ids, NULL, NULL, nid, lineno, err)) fatal = 1;
        }
        free(ids);
      } else {
        bad = parse_record(text + pos, n, lineno, o, &tc, out, st, msg, sizeof msg, err, &fatal) != 0;
      }
      if (fatal) {
        rc = lt_err_prefix(err, "%s:%d", path, lineno);
        break;
      }
      if (bad) {
        if (!o->skip_bad) {
          rc = lt_errf(err, "%s:%d: %s (--skip_bad_records skips bad records with a warning)", path, lineno, msg);
          break;
        }
        if (st->n_skipped++ == 0) snprintf(st->first_bad, sizeof st->first_bad, "%s:%d: %s", path, lineno, msg);
      }
    }
    pos = e + 1;
  }
  free(text);
  lt_tokenizer_free(tc.tok);
  if (rc == 0 && out->n == n0) {
    if (st->n_skipped)
      rc = lt_errf(err, "%s: no usable records (%d bad records skipped; the first: %s)", path, st->n_skipped,
                   st->first_bad);
    else
      rc = lt_errf(err, "%s: no records (the file is empty)", path);
  }
  return rc;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// A directory: each *.txt file (sorted by name) is one document.
static int read_dir(const char *dir, const lt_pretok_opts *o, lt_dataset *out, lt_data_stats *st, lt_err *err) {
  DIR *d = opendir(dir);
  if (!d) return lt_errf(err, "%s: cannot open the directory: %s", dir, strerror(errno));
  char **names = NULL;
  int n = 0, cap = 0, rc = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (de->d_name[0] == '.' || l < 5 || strcmp(de->d_name + l - 4, ".txt")) continue;
    if (n == cap) {
      int nc = cap ? cap * 2 : 64;
      char **nn = realloc(names, sizeof(char *) * (size_t)nc);
      if (!nn) {
        rc = lt_errf(err, "out of memory listing %s", dir);
        break;
      }
      names = nn;
      cap = nc;
    }
    if (!(names[n] = strdup(de->d_name))) {
      rc = lt_errf(err, "out of memory listing %s", dir);
      break;
    }
    n++;
  }
  closedir(d);
  if (n) qsort(names, (size_t)n, sizeof *names, name_cmp);
  text_ctx tc;
  memset(&tc, 0, sizeof tc);
  int n0 = out->n;
  char path[4096], msg[600];
  for (int i = 0; i < n && rc == 0; i++) {
    if (o->max_samples > 0 && out->n - n0 >= o->max_samples) break;
    if (lt_path_join(path, sizeof path, dir, names[i])) {
      rc = lt_errf(err, "%s/%s: path too long", dir, names[i]);
      break;
    }
    char *text;
    size_t len;
    if (lt_read_file(path, &text, &len, err)) {
      rc = -1;
      break;
    }
    st->n_records++;
    size_t p0 = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    int32_t *ids = NULL;
    int nid = 0, fatal = 0, bad = 0;
    long inv = utf8_invalid_at((const unsigned char *)text + p0, len - p0);
    if (inv >= 0) {
      snprintf(msg, sizeof msg, "invalid UTF-8 byte 0x%02x at byte %ld", (unsigned char)text[p0 + inv], inv + 1);
      bad = 1;
    } else if (memchr(text + p0, 0, len - p0)) {
      snprintf(msg, sizeof msg, "contains a NUL byte");
      bad = 1;
    } else {
      bad = text_ids(&tc, o, text + p0, len - p0, &ids, &nid, msg, sizeof msg, err, &fatal) != 0;
    }
    free(text);
    if (fatal) {
      rc = lt_err_prefix(err, "%s", path);
    } else if (bad) {
      if (!o->skip_bad)
        rc = lt_errf(err, "%s: %s (--skip_bad_records skips bad records with a warning)", path, msg);
      else if (st->n_skipped++ == 0)
        snprintf(st->first_bad, sizeof st->first_bad, "%.300s: %.400s", path, msg);
    } else if (nid > 0) {
      if (o->cutoff_len > 0 && nid > o->cutoff_len) {
        nid = o->cutoff_len;
        st->n_truncated++;
      }
      if (lt_dataset_add(out, ids, NULL, NULL, nid, 0, err)) rc = -1;
    }
    free(ids);
  }
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  lt_tokenizer_free(tc.tok);
  if (rc == 0 && out->n == n0) {
    if (st->n_skipped)
      rc = lt_errf(err, "%s: no usable documents (%d bad skipped; the first: %s)", dir, st->n_skipped, st->first_bad);
    else
      rc = lt_errf(err, "%s: no *.txt documents in the directory", dir);
  }
  return rc;
}

static int read_one(const char *path, const lt_pretok_opts *o, lt_dataset *out, lt_data_stats *st, lt_err *err) {
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return read_dir(path, o, out, st, err);
  return read_lines(path, o, out, st, err);
}

int lt_data_read_pretok(const char *path, const lt_pretok_opts *o, lt_dataset *out, lt_data_stats *st, lt_err *err) {
  memset(st, 0, sizeof *st);
  snprintf(out->source, sizeof out->source, "%s", path);
  struct stat sb;
  if (!strchr(path, ',') || stat(path, &sb) == 0) return read_one(path, o, out, st, err);
  // "a,b,c" (LLaMA-Factory's dataset lists): read each in turn; max_samples applies to each
  char *list = strdup(path);
  if (!list) return lt_errf(err, "out of memory");
  int rc = 0;
  char *save = NULL;
  for (char *p = strtok_r(list, ",", &save); p && rc == 0; p = strtok_r(NULL, ",", &save)) {
    while (*p == ' ') p++;
    if (!*p) continue;
    lt_data_stats s1;
    memset(&s1, 0, sizeof s1);
    rc = read_one(p, o, out, &s1, err);
    st->n_records += s1.n_records;
    st->n_truncated += s1.n_truncated;
    st->n_no_target += s1.n_no_target;
    if (s1.n_skipped && !st->n_skipped) memcpy(st->first_bad, s1.first_bad, sizeof st->first_bad);
    st->n_skipped += s1.n_skipped;
  }
  free(list);
  return rc;
}

void lt_shuffle_perm(int32_t *perm, int n, uint64_t seed, uint64_t epoch) {
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    uint64_t r = lt_rng_u64(seed, 0x5e1f000000ull + epoch, (uint64_t)i);
    int j = (int)(r % (uint64_t)(i + 1));
    int32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

int lt_dataset_split(lt_dataset *all, double val_size, uint64_t seed, lt_dataset *train, lt_dataset *eval,
                     lt_err *err) {
  memset(train, 0, sizeof *train);
  memset(eval, 0, sizeof *eval);
  int n = all->n;
  if (!(val_size > 0)) return lt_errf(err, "val_size %g must be positive", val_size);
  long n_eval = val_size < 1 ? lround(val_size * n) : (long)val_size;
  if (val_size >= 1 && val_size != floor(val_size))
    return lt_errf(err, "val_size %g: give a fraction in (0, 1) or a whole number of examples", val_size);
  if (n_eval < 1 || n_eval >= n)
    return lt_errf(err, "val_size %g leaves %ld evaluation and %ld training examples out of %d; both need at least one",
                   val_size, n_eval, n - n_eval, n);
  int32_t *perm = malloc(sizeof(int32_t) * (size_t)n);
  train->ex = malloc(sizeof(lt_example) * (size_t)(n - n_eval));
  eval->ex = malloc(sizeof(lt_example) * (size_t)n_eval);
  if (!perm || !train->ex || !eval->ex) {
    free(perm);
    free(train->ex);
    free(eval->ex);
    train->ex = eval->ex = NULL;
    return lt_errf(err, "out of memory splitting %d examples", n);
  }
  lt_shuffle_perm(perm, n, seed, 0xe7a1ull);
  // the first n_eval of the permutation evaluate; the training set keeps the file order of the rest
  char *is_eval = calloc((size_t)n, 1);
  if (!is_eval) {
    free(perm);
    free(train->ex);
    free(eval->ex);
    train->ex = eval->ex = NULL;
    return lt_errf(err, "out of memory splitting %d examples", n);
  }
  for (long i = 0; i < n_eval; i++) is_eval[perm[i]] = 1;
  for (int i = 0; i < n; i++) {
    if (is_eval[i]) eval->ex[eval->n++] = all->ex[i];
    else train->ex[train->n++] = all->ex[i];
  }
  train->cap = train->n;
  eval->cap = eval->n;
  snprintf(train->source, sizeof train->source, "%s", all->source);
  snprintf(eval->source, sizeof eval->source, "%s", all->source);
  free(is_eval);
  free(perm);
  free(all->ex);
  all->ex = NULL;
  all->n = all->cap = 0;
  return 0;
}

int lt_dataset_pack(lt_dataset *d, int block, int32_t bos, lt_err *err) {
  if (block <= 0) return lt_errf(err, "packing needs cutoff_len > 0 (the block size)");
  int64_t total = 0;
  for (int i = 0; i < d->n; i++) total += d->ex[i].len;
  int64_t nb = total / block;
  if (nb == 0)
    return lt_errf(err, "packing: the data has %lld tokens, fewer than one block of cutoff_len %d", (long long)total,
                   block);
  if (nb > 1 << 30) return lt_errf(err, "packing: too many blocks");
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)total), *lab = malloc(sizeof(int32_t) * (size_t)total);
  if (!ids || !lab) {
    free(ids);
    free(lab);
    return lt_errf(err, "out of memory packing %lld tokens", (long long)total);
  }
  int64_t k = 0;
  for (int i = 0; i < d->n; i++) {
    memcpy(ids + k, d->ex[i].ids, sizeof(int32_t) * (size_t)d->ex[i].len);
    memcpy(lab + k, d->ex[i].labels, sizeof(int32_t) * (size_t)d->ex[i].len);
    k += d->ex[i].len;
  }
  lt_dataset packed = {0};
  snprintf(packed.source, sizeof packed.source, "%s", d->source);
  int rc = 0;
  for (int64_t b = 0; b < nb && rc == 0; b++) {
    int32_t *bi = ids + b * block, *bl = lab + b * block;
    if (bos >= 0) bi[0] = bos;
    rc = lt_dataset_add(&packed, bi, bl, NULL, block, 0, err);
  }
  free(ids);
  free(lab);
  if (rc) {
    lt_dataset_free(&packed);
    return -1;
  }
  lt_dataset_free(d);
  *d = packed;
  return 0;
}
