// lmtune report: one self-contained HTML page (inline CSS + SVG, no scripts, no external resources) and the same
// figures as SVG files, from the files a training run and evaluations leave in a run directory. Every string from
// a file is escaped; numbers that are NaN/inf (or NaN/Infinity tokens as Python's json writes them) are skipped.
#include "report/report.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "report/svgchart.h"
#include "train/trainer.h"

#define MAX_EVAL_FILES 64
#define MAX_CM_LABELS 200   // larger label sets get no heat map (a warning says so)
#define MAX_TABLE_ROWS 500

typedef struct { double *x, *y; int n, cap; } series;

typedef struct {
  char name[256];
  cJSON *root;
} eval_file;

typedef struct {
  const char *dir;
  lt_report_info *info;
  int oom;
  cJSON *state, *results, *adapter, *jsonl_hist;
  const cJSON *hist;  // log history: trainer_state.json's, else metrics.jsonl's
  lt_train_args *args;
  eval_file evals[MAX_EVAL_FILES];
  int n_evals;
  int n_read, n_cm, cm_index;  // files read; confusion matrices in all (names the figures); the next one's number
  char files_read[1024];
} report;

// ---- warnings and small helpers ----

static void warn(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(report *r, const char *fmt, ...) {
  lt_report_info *in = r->info;
  size_t n = strlen(in->warnings);
  if (n + 2 >= sizeof in->warnings) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(in->warnings + n, sizeof in->warnings - n - 1, fmt, ap);
  va_end(ap);
  n = strlen(in->warnings);
  in->warnings[n] = '\n';
  in->warnings[n + 1] = 0;
  in->n_warnings++;
}

static void note_read(report *r, const char *name) {
  size_t n = strlen(r->files_read);
  snprintf(r->files_read + n, sizeof r->files_read - n, "%s%s", n ? ", " : "", name);
  r->n_read++;
}

static int push(series *s, double x, double y) {
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    double *nx = realloc(s->x, sizeof(double) * (size_t)cap);
    if (!nx) return -1;
    s->x = nx;
    double *ny = realloc(s->y, sizeof(double) * (size_t)cap);
    if (!ny) return -1;
    s->y = ny;
    s->cap = cap;
  }
  s->x[s->n] = x;
  s->y[s->n++] = y;
  return 0;
}

static void series_free(series *s) {
  free(s->x);
  free(s->y);
  memset(s, 0, sizeof *s);
}

static const cJSON *get(const cJSON *o, const char *key) { return o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL; }

// A finite number member, else NAN.
static double num(const cJSON *o, const char *key) {
  const cJSON *v = get(o, key);
  return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *key) {
  const cJSON *v = get(o, key);
  return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

// (step, value of the first key present) for every history entry with a finite step; null or non-numeric values
// become NaN (skipped when drawn).
static int history_series(const cJSON *hist, const char *const *keys, series *s) {
  const cJSON *e;
  cJSON_ArrayForEach(e, hist) {
    double step = num(e, "step");
    if (!cJSON_IsObject(e) || !isfinite(step)) continue;
    for (const char *const *k = keys; *k; k++) {
      const cJSON *v = get(e, *k);
      if (!v) continue;
      if (push(s, step, cJSON_IsNumber(v) ? v->valuedouble : NAN)) return -1;
      break;
    }
  }
  return 0;
}

// ---- reading files ----

// JSON as Python's json module writes it may hold NaN, Infinity and -Infinity; outside strings they become null.
static char *nan_to_null(const char *s, size_t n, size_t *out_n) {
  char *o = malloc(2 * n + 1);
  if (!o) return NULL;
  size_t k = 0;
  int in_str = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      o[k++] = c;
      if (c == '\\' && i + 1 < n) o[k++] = s[++i];
      else if (c == '"') in_str = 0;
      continue;
    }
    size_t skip = 0;
    if (c == '"') in_str = 1;
    else if (c == 'N' && n - i >= 3 && memcmp(s + i, "NaN", 3) == 0) skip = 3;
    else if (c == 'I' && n - i >= 8 && memcmp(s + i, "Infinity", 8) == 0) skip = 8;
    else if (c == '-' && n - i >= 9 && memcmp(s + i, "-Infinity", 9) == 0) skip = 9;
    if (skip) {
      memcpy(o + k, "null", 4);
      k += 4;
      i += skip - 1;
    } else {
      o[k++] = c;
    }
  }
  o[k] = 0;
  *out_n = k;
  return o;
}

// Parse JSON text; on failure why says where (line) and what.
static cJSON *parse_json(const char *text, size_t len, char *why, size_t cap) {
  size_t n;
  char *clean = nan_to_null(text, len, &n);
  if (!clean) {
    snprintf(why, cap, "out of memory");
    return NULL;
  }
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(clean, n, &end, 0);
  if (root) {
    // trailing garbage after the value
    while (end && end < clean + n && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) end++;
    if (end && end < clean + n) {
      cJSON_Delete(root);
      root = NULL;
    }
  }
  if (!root) {
    int line = 1;
    size_t at = end && end >= clean && end <= clean + n ? (size_t)(end - clean) : 0;
    for (size_t i = 0; i < at; i++) line += clean[i] == '\n';
    snprintf(why, cap, "not valid JSON (line %d)", line);
  }
  free(clean);
  return root;
}

static int join(report *r, char *out, size_t cap, const char *name) {
  if (lt_path_join(out, cap, r->dir, name)) {
    warn(r, "%s: path too long", name);
    return -1;
  }
  return 0;
}

// 1: read, 0: no such file, -1: present but unreadable or not JSON (a warning says why).
static int read_json(report *r, const char *name, cJSON **out) {
  *out = NULL;
  char p[LT_PATH_CAP + 300];
  if (join(r, p, sizeof p, name)) return -1;
  if (!lt_file_exists(p)) return 0;
  char *text;
  size_t len;
  lt_err e;
  if (lt_read_file(p, &text, &len, &e)) {
    warn(r, "%s", e.msg);
    return -1;
  }
  char why[128];
  *out = parse_json(text, len, why, sizeof why);
  free(text);
  if (!*out) {
    warn(r, "%s: %s; skipped", name, why);
    return -1;
  }
  note_read(r, name);
  return 1;
}

// metrics.jsonl: one log entry per line.
static int read_jsonl(report *r, const char *name, cJSON **out) {
  *out = NULL;
  char p[LT_PATH_CAP + 300];
  if (join(r, p, sizeof p, name)) return -1;
  if (!lt_file_exists(p)) return 0;
  char *text;
  size_t len;
  lt_err e;
  if (lt_read_file(p, &text, &len, &e)) {
    warn(r, "%s", e.msg);
    return -1;
  }
  cJSON *arr = cJSON_CreateArray();
  if (!arr) {
    free(text);
    r->oom = 1;
    return -1;
  }
  int line = 0, bad = 0, first_bad = 0;
  for (size_t i = 0; i < len;) {
    size_t j = i;
    while (j < len && text[j] != '\n') j++;
    line++;
    size_t k = i;
    while (k < j && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r')) k++;
    if (k < j) {
      char why[128];
      cJSON *o = parse_json(text + i, j - i, why, sizeof why);
      if (cJSON_IsObject(o)) {
        cJSON_AddItemToArray(arr, o);
      } else {
        cJSON_Delete(o);
        if (!bad++) first_bad = line;
      }
    }
    i = j + 1;
  }
  free(text);
  if (bad) warn(r, "%s: %d line%s not a JSON object (first: line %d); skipped", name, bad, bad == 1 ? " is" : "s are",
                first_bad);
  note_read(r, name);
  *out = arr;
  return 1;
}

static void read_inputs(report *r) {
  cJSON *st;
  if (read_json(r, "trainer_state.json", &st) > 0) {
    const cJSON *lh = get(st, "log_history");
    if (!cJSON_IsObject(st)) {
      warn(r, "trainer_state.json: not a JSON object; skipped");
      cJSON_Delete(st);
      st = NULL;
    } else if (!cJSON_IsArray(lh)) {
      warn(r, "trainer_state.json: \"log_history\" is missing or not an array; the curves come from metrics.jsonl");
    } else {
      r->hist = lh;
    }
    r->state = st;
  }
  if (!r->hist && read_jsonl(r, "metrics.jsonl", &r->jsonl_hist) > 0) r->hist = r->jsonl_hist;
  if (read_json(r, "all_results.json", &r->results) > 0 && !cJSON_IsObject(r->results)) {
    warn(r, "all_results.json: not a JSON object; skipped");
    cJSON_Delete(r->results);
    r->results = NULL;
  }
  if (read_json(r, "adapter_config.json", &r->adapter) > 0 && !cJSON_IsObject(r->adapter)) {
    warn(r, "adapter_config.json: not a JSON object; skipped");
    cJSON_Delete(r->adapter);
    r->adapter = NULL;
  }
  char p[LT_PATH_CAP + 300];
  if (!join(r, p, sizeof p, "training_args.yaml") && lt_file_exists(p)) {
    lt_err e;
    r->args = lt_alloc(sizeof *r->args, &e);
    if (!r->args) {
      r->oom = 1;
    } else {
      lt_train_args_default(r->args);
      if (lt_train_args_load_yaml(r->args, p, &e)) {
        warn(r, "training_args.yaml: %s; the run settings are not shown", e.msg);
        lt_free(r->args);
        r->args = NULL;
      } else {
        note_read(r, "training_args.yaml");
      }
    }
  }
  // eval_results*.json, in name order
  DIR *d = opendir(r->dir);
  if (!d) return;
  struct dirent *de;
  char names[MAX_EVAL_FILES][256];
  int n = 0, more = 0;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len < 17 || len >= 256 || strncmp(de->d_name, "eval_results", 12) != 0 ||
        strcmp(de->d_name + len - 5, ".json") != 0)
      continue;
    if (n == MAX_EVAL_FILES) {
      more++;
      continue;
    }
    memcpy(names[n++], de->d_name, len + 1);
  }
  closedir(d);
  if (more) warn(r, "more than %d eval_results*.json files; %d not shown", MAX_EVAL_FILES, more);
  qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
  for (int i = 0; i < n; i++) {
    cJSON *root;
    if (read_json(r, names[i], &root) <= 0) continue;
    if (!cJSON_IsObject(root)) {
      warn(r, "%s: not a JSON object; skipped", names[i]);
      cJSON_Delete(root);
      continue;
    }
    eval_file *ef = &r->evals[r->n_evals++];
    memcpy(ef->name, names[i], sizeof ef->name);
    ef->root = root;
  }
}

// ---- HTML pieces ----

static void esc(lt_sbuf *b, const char *s) { lt_sbuf_escape(b, s, 0); }

static void kv_row(lt_sbuf *b, const char *key, const char *value) {
  lt_sbuf_puts(b, "<tr><th scope=\"row\">");
  esc(b, key);
  lt_sbuf_puts(b, "</th><td>");
  esc(b, value);
  lt_sbuf_puts(b, "</td></tr>\n");
}

static void fmt_duration(char *out, size_t cap, double s) {
  if (s < 60) snprintf(out, cap, "%.2f s", s);
  else if (s < 3600) snprintf(out, cap, "%d min %02d s", (int)(s / 60), (int)fmod(s, 60));
  else snprintf(out, cap, "%d h %02d min", (int)(s / 3600), (int)fmod(s / 60, 60));
}

// The last finite value of a series and the smallest (with its x).
static int last_finite(const series *s, double *v) {
  for (int i = s->n - 1; i >= 0; i--)
    if (isfinite(s->y[i])) return *v = s->y[i], 1;
  return 0;
}

static int min_finite(const series *s, double *v, double *at) {
  int found = 0;
  for (int i = 0; i < s->n; i++)
    if (isfinite(s->y[i]) && (!found || s->y[i] < *v)) *v = s->y[i], *at = s->x[i], found = 1;
  return found;
}

static const char *ft_name(lt_finetune_type t) {
  return t == LT_FT_LORA ? "LoRA" : t == LT_FT_FULL ? "full" : "freeze";
}

// The last history entry holding key (the final train metrics), else NULL.
static const cJSON *last_with(const cJSON *hist, const char *key) {
  const cJSON *found = NULL, *e;
  cJSON_ArrayForEach(e, hist) if (cJSON_IsObject(e) && get(e, key)) found = e;
  return found;
}

static void summary(report *r, lt_sbuf *b, const series *loss, const series *eval, const series *tps) {
  const lt_train_args *a = r->args;
  const cJSON *fin = r->hist ? last_with(r->hist, "train_runtime") : NULL, *res = r->results ? r->results : fin;
  char v[LT_PATH_CAP + 256], t[64], t2[64];
  lt_sbuf_puts(b, "<section id=\"summary\">\n<h2>Run summary</h2>\n<table class=\"kv\">\n<tbody>\n");
  const char *model = a ? a->model_name_or_path : str(r->adapter, "base_model_name_or_path");
  for (int i = 0; !model && i < r->n_evals; i++) model = str(r->evals[i].root, "model");
  if (model && *model) kv_row(b, "Model", model);
  if (a) {
    snprintf(v, sizeof v, "%s, %s fine-tuning", a->stage, ft_name(a->finetuning_type));
    kv_row(b, "Stage", v);
    if (a->finetuning_type == LT_FT_LORA) {
      double alpha = a->lora_alpha > 0 ? a->lora_alpha : 2.0 * a->lora_rank;
      snprintf(v, sizeof v, "r = %d, alpha = %g%s, dropout = %g, targets: %s%s%s", a->lora_rank, alpha,
               a->lora_alpha > 0 ? "" : " (2r, the default)", a->lora_dropout, a->lora_target,
               a->use_rslora ? ", rsLoRA" : "", a->adapter_name_or_path[0] ? ", started from " : "");
      if (a->adapter_name_or_path[0]) snprintf(v + strlen(v), sizeof v - strlen(v), "%.4000s", a->adapter_name_or_path);
      kv_row(b, "LoRA", v);
    } else if (a->finetuning_type == LT_FT_FREEZE) {
      snprintf(v, sizeof v, "%d trainable layers (%s)", abs(a->freeze_trainable_layers),
               a->freeze_trainable_layers >= 0 ? "the last" : "the first");
      kv_row(b, "Freeze", v);
    }
    if (a->dataset[0]) kv_row(b, "Dataset", a->dataset);
    if (a->eval_dataset[0]) kv_row(b, "Validation set", a->eval_dataset);
    else if (a->val_size > 0) {
      if (a->val_size < 1) snprintf(v, sizeof v, "%g of the dataset", a->val_size);
      else snprintf(v, sizeof v, "%g examples of the dataset", a->val_size);
      kv_row(b, "Validation set", v);
    }
    lt_svg_fmt_num(t, sizeof t, a->learning_rate, 4);
    snprintf(v, sizeof v, "%s, %s schedule", t, lt_sched_name(a->lr_scheduler_type));
    if (a->warmup_steps > 0) snprintf(v + strlen(v), sizeof v - strlen(v), ", %lld warmup steps",
                                      (long long)a->warmup_steps);
    else if (a->warmup_ratio > 0) snprintf(v + strlen(v), sizeof v - strlen(v), ", warmup ratio %g", a->warmup_ratio);
    snprintf(v + strlen(v), sizeof v - strlen(v), ", %s", a->optim == LT_OPT_SGD ? "SGD" : "AdamW");
    kv_row(b, "Learning rate", v);
    snprintf(v, sizeof v, "%d per device x %d accumulation steps%s", a->per_device_train_batch_size,
             a->gradient_accumulation_steps, a->bf16 ? ", bf16" : "");
    kv_row(b, "Batch", v);
  } else if (r->adapter) {
    const cJSON *tm = get(r->adapter, "target_modules"), *list = cJSON_IsArray(tm) ? tm : NULL, *x;
    char targets[512] = "";
    if (cJSON_IsString(tm)) snprintf(targets, sizeof targets, "%s", tm->valuestring);
    cJSON_ArrayForEach(x, list) if (cJSON_IsString(x)) {
      size_t n = strlen(targets);
      snprintf(targets + n, sizeof targets - n, "%s%s", n ? "," : "", x->valuestring);
    }
    double rk = num(r->adapter, "r"), al = num(r->adapter, "lora_alpha");
    if (isfinite(rk)) {
      snprintf(v, sizeof v, "r = %g, alpha = %g, targets: %s (adapter_config.json)", rk, al, targets);
      kv_row(b, "LoRA", v);
    }
  }
  double gs = num(r->state, "global_step"), ms = num(r->state, "max_steps"), ep = num(r->state, "epoch");
  double ne = num(r->state, "num_train_epochs");
  if (!isfinite(gs) && loss->n) gs = loss->x[loss->n - 1];
  if (!isfinite(ep)) ep = num(res, "epoch");
  if (isfinite(gs)) {
    snprintf(v, sizeof v, "%.0f", gs);
    if (isfinite(ms) && ms > 0) snprintf(v + strlen(v), sizeof v - strlen(v), " of %.0f", ms);
    kv_row(b, "Optimizer steps", v);
  }
  if (isfinite(ep)) {
    snprintf(v, sizeof v, "%.2f", ep);
    if (isfinite(ne) && ne > 0) snprintf(v + strlen(v), sizeof v - strlen(v), " of %g", ne);
    kv_row(b, "Epochs", v);
  }
  double rt = num(res, "train_runtime");
  if (isfinite(rt)) {
    fmt_duration(v, sizeof v, rt);
    kv_row(b, "Runtime", v);
  }
  double tok = num(r->state, "num_input_tokens_seen"), tp = num(res, "train_tokens_per_second"), mean_tp;
  if (isfinite(tok) && tok > 0) {
    lt_svg_fmt_num(v, sizeof v, tok, 6);
    kv_row(b, "Input tokens seen", v);
  }
  if (isfinite(tp)) {
    lt_svg_fmt_num(v, sizeof v, tp, 4);
    kv_row(b, "Tokens/s", v);
  } else {
    double sum = 0;
    int cnt = 0;
    for (int i = 0; i < tps->n; i++)
      if (isfinite(tps->y[i])) sum += tps->y[i], cnt++;
    if (cnt) {
      mean_tp = sum / cnt;
      lt_svg_fmt_num(t, sizeof t, mean_tp, 4);
      snprintf(v, sizeof v, "%s (mean of %d logged values)", t, cnt);
      kv_row(b, "Tokens/s", v);
    } else if (isfinite(tok) && tok > 0 && isfinite(rt) && rt > 0) {
      lt_svg_fmt_num(t, sizeof t, tok / rt, 4);
      snprintf(v, sizeof v, "%s (input tokens seen / runtime)", t);
      kv_row(b, "Tokens/s", v);
    }
  }
  double sps = num(res, "train_samples_per_second"), stps = num(res, "train_steps_per_second");
  if (isfinite(sps) || isfinite(stps)) {
    lt_svg_fmt_num(t, sizeof t, sps, 4);
    lt_svg_fmt_num(t2, sizeof t2, stps, 4);
    snprintf(v, sizeof v, "%s samples/s, %s steps/s", isfinite(sps) ? t : "?", isfinite(stps) ? t2 : "?");
    kv_row(b, "Speed", v);
  }
  double x = NAN, at = NAN;
  if (last_finite(loss, &x)) {
    snprintf(v, sizeof v, "%.4f", x);
    kv_row(b, "Final train loss (last logged)", v);
  }
  double tl = num(res, "train_loss");
  if (isfinite(tl)) {
    snprintf(v, sizeof v, "%.4f", tl);
    kv_row(b, "Mean train loss", v);
  }
  if (min_finite(eval, &x, &at)) {
    snprintf(v, sizeof v, "%.4f (step %.0f)", x, at);
    kv_row(b, "Best validation loss", v);
  }
  double el = num(res, "eval_loss"), ep2 = num(res, "eval_perplexity");
  if (!isfinite(el)) last_finite(eval, &el);
  if (isfinite(el)) {
    snprintf(v, sizeof v, "%.4f", el);
    if (isfinite(ep2)) {
      lt_svg_fmt_num(t, sizeof t, ep2, 5);
      snprintf(v + strlen(v), sizeof v - strlen(v), " (perplexity %s)", t);
    }
    kv_row(b, "Final validation loss", v);
  }
  const char *best = str(r->state, "best_model_checkpoint");
  if (best && *best) kv_row(b, "Best checkpoint", best);
  lt_sbuf_puts(b, "</tbody>\n</table>\n</section>\n");
}

// ---- figures ----

static void add_figure_name(report *r, const char *name) {
  lt_report_info *in = r->info;
  if (in->n_figures < LT_REPORT_MAX_FIGURES) snprintf(in->figures[in->n_figures++], sizeof in->figures[0], "%s", name);
}

// Write svg (one <svg> element) as RUN_DIR/name with the XML declaration, and inline it in the page.
static int emit_figure(report *r, lt_sbuf *page, const lt_sbuf *svg, const char *name, const char *cls,
                       lt_err *err) {
  if (svg->oom) return lt_errf(err, "%s: out of memory", name);
  char p[LT_PATH_CAP + 300];
  if (lt_path_join(p, sizeof p, r->dir, name)) return lt_errf(err, "%s/%s: path too long", r->dir, name);
  lt_atomic_file af;
  if (lt_atomic_open(&af, p, err)) return -1;
  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", af.fp);
  fwrite(svg->p, 1, svg->n, af.fp);
  if (lt_atomic_commit(&af, err)) return -1;
  add_figure_name(r, name);
  lt_sbuf_printf(page, "<figure class=\"%s\">\n", cls);
  lt_sbuf_put(page, svg->p, svg->n);
  lt_sbuf_puts(page, "<figcaption>");
  esc(page, name);
  lt_sbuf_puts(page, "</figcaption>\n</figure>\n");
  return 0;
}

static int line_figure(report *r, lt_sbuf *page, const char *name, const char *title, const char *ylabel,
                       const lt_svg_series *s, int ns, lt_err *err) {
  lt_sbuf svg = {0};
  lt_svg_chart c = {title, "step", ylabel, 0, 0, 1, s, ns};
  lt_svg_line_chart(&svg, &c, 0);
  int rc = emit_figure(r, page, &svg, name, "chart", err);
  lt_sbuf_free(&svg);
  return rc;
}

int lt_report_loss_svg(const cJSON *log_history, const char *title, int standalone, lt_sbuf *out, lt_err *err) {
  static const char *const kl[] = {"loss", NULL}, *const ke[] = {"eval_loss", NULL};
  series tr = {0}, ev = {0};
  int rc = -1;
  if (history_series(log_history, kl, &tr) || history_series(log_history, ke, &ev)) {
    lt_errf(err, "out of memory");
    goto done;
  }
  lt_svg_series s[2] = {{"train loss", tr.x, tr.y, tr.n, "#1f77b4", LT_SVG_LINE},
                        {"validation loss", ev.x, ev.y, ev.n, "#ff7f0e", LT_SVG_LINE | LT_SVG_MARKERS}};
  lt_svg_chart c = {title ? title : "loss", "step", "loss", 0, 0, 1, s, ev.n ? 2 : 1};
  lt_svg_line_chart(out, &c, standalone);
  rc = out->oom ? lt_errf(err, "out of memory") : 0;
done:
  series_free(&tr);
  series_free(&ev);
  return rc;
}

static int curves(report *r, lt_sbuf *page, int n_loss, const series *lr, const series *tps, lt_err *err) {
  if (!r->hist || (!n_loss && !lr->n && !tps->n)) return 0;
  lt_sbuf_puts(page, "<section id=\"curves\">\n<h2>Training curves</h2>\n<div class=\"figs\">\n");
  if (n_loss) {
    lt_sbuf svg = {0};
    int e = lt_report_loss_svg(r->hist, "loss", 0, &svg, err) || emit_figure(r, page, &svg, "loss.svg", "chart", err);
    lt_sbuf_free(&svg);
    if (e) return -1;
  }
  lt_svg_series sl = {"learning rate", lr->x, lr->y, lr->n, "#2ca02c", LT_SVG_LINE};
  if (lr->n && line_figure(r, page, "lr.svg", "learning rate", "learning rate", &sl, 1, err)) return -1;
  lt_svg_series st = {"tokens/s", tps->x, tps->y, tps->n, "#9467bd", LT_SVG_LINE};
  if (tps->n && line_figure(r, page, "throughput.svg", "throughput", "tokens/s", &st, 1, err)) return -1;
  lt_sbuf_puts(page, "</div>\n</section>\n");
  return 0;
}

// ---- evaluation tables ----

typedef struct {
  const char *name, *adapter;
  const cJSON *metrics;
} eval_run;

static void num_cell(lt_sbuf *b, const cJSON *v) {
  char t[64];
  if (cJSON_IsNumber(v)) {
    lt_svg_fmt_num(t, sizeof t, v->valuedouble, 4);
    lt_sbuf_printf(b, "<td class=\"num\">%s</td>", t);
  } else if (cJSON_IsString(v)) {
    lt_sbuf_puts(b, "<td>");
    lt_sbuf_escape(b, v->valuestring, 200);
    lt_sbuf_puts(b, "</td>");
  } else if (cJSON_IsBool(v)) {
    lt_sbuf_printf(b, "<td>%s</td>", cJSON_IsTrue(v) ? "true" : "false");
  } else {
    lt_sbuf_puts(b, "<td class=\"num\">\xE2\x80\x93</td>");  // U+2013: absent or null
  }
}

// Keys of the members of objs[0..n) accepted by want(), in first-appearance order (at most cap).
static int union_keys(const cJSON *const *objs, int n, int (*want)(const cJSON *), const char **keys, int cap) {
  int k = 0;
  for (int i = 0; i < n; i++) {
    const cJSON *m;
    cJSON_ArrayForEach(m, objs[i]) {
      if (!m->string || !want(m)) continue;
      int seen = 0;
      for (int j = 0; j < k && !seen; j++) seen = strcmp(keys[j], m->string) == 0;
      if (!seen && k < cap) keys[k++] = m->string;
    }
  }
  return k;
}

static int is_scalar(const cJSON *m) {
  return cJSON_IsNumber(m) || cJSON_IsNull(m) || cJSON_IsString(m) || cJSON_IsBool(m);
}
static int is_table(const cJSON *m) {  // an object of objects (per_class, per_subject)
  if (!cJSON_IsObject(m) || !m->child) return 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, m) if (!cJSON_IsObject(x)) return 0;
  return 1;
}

static void run_header(lt_sbuf *b, const eval_run *run, int colspan) {
  if (colspan > 1) lt_sbuf_printf(b, "<th scope=\"colgroup\" colspan=\"%d\">", colspan);
  else lt_sbuf_puts(b, "<th scope=\"col\">");
  esc(b, run->name);
  if (run->adapter) {
    lt_sbuf_puts(b, "<br><span class=\"adapter\">");
    lt_sbuf_escape(b, run->adapter, 120);
    lt_sbuf_puts(b, "</span>");
  }
  lt_sbuf_puts(b, "</th>");
}

// The scalar metrics: one row per metric, one column per run (+ the difference of two runs).
static void metric_table(lt_sbuf *b, const eval_run *runs, int nr) {
  const cJSON *objs[64];
  const char *keys[MAX_TABLE_ROWS];
  for (int i = 0; i < nr; i++) objs[i] = runs[i].metrics;
  int nk = union_keys(objs, nr, is_scalar, keys, MAX_TABLE_ROWS);
  if (!nk) return;
  lt_sbuf_puts(b, "<table class=\"metrics\">\n<thead><tr><th scope=\"col\">metric</th>");
  for (int i = 0; i < nr; i++) run_header(b, &runs[i], 1);
  if (nr == 2) lt_sbuf_puts(b, "<th scope=\"col\">\xCE\x94</th>");  // U+0394
  lt_sbuf_puts(b, "</tr></thead>\n<tbody>\n");
  for (int k = 0; k < nk; k++) {
    lt_sbuf_puts(b, "<tr><th scope=\"row\">");
    esc(b, keys[k]);
    lt_sbuf_puts(b, "</th>");
    for (int i = 0; i < nr; i++) num_cell(b, get(runs[i].metrics, keys[k]));
    if (nr == 2) {
      double a = num(runs[0].metrics, keys[k]), c = num(runs[1].metrics, keys[k]);
      char t[64] = "\xE2\x80\x93";  // U+2013 when either value is missing
      if (isfinite(a) && isfinite(c)) lt_svg_fmt_num(t, sizeof t, c - a, 4);
      lt_sbuf_printf(b, "<td class=\"num delta\">%s%s</td>", isfinite(a) && isfinite(c) && c > a ? "+" : "", t);
    }
    lt_sbuf_puts(b, "</tr>\n");
  }
  lt_sbuf_puts(b, "</tbody>\n</table>\n");
}

// An object of objects (per_class: {"spam": {"precision", ...}}): one row per name, per run a group of columns.
static void sub_table(lt_sbuf *b, const char *key, const eval_run *runs, int nr) {
  const cJSON *tabs[64], *rows_src[64];
  int nt = 0;
  for (int i = 0; i < nr; i++) {
    const cJSON *t = get(runs[i].metrics, key);
    tabs[i] = is_table(t) ? t : NULL;
    if (tabs[i]) rows_src[nt++] = tabs[i];
  }
  const char *rows[MAX_TABLE_ROWS], *cols[32];
  int nrow = union_keys(rows_src, nt, cJSON_IsObject, rows, MAX_TABLE_ROWS);
  // the fields: the union over every row of every run
  int ncol = 0;
  for (int i = 0; i < nt; i++) {
    const cJSON *row;
    cJSON_ArrayForEach(row, rows_src[i]) {
      const cJSON *one[1] = {row};
      const char *add[32];
      int na = union_keys(one, 1, is_scalar, add, 32);
      for (int a = 0; a < na; a++) {
        int seen = 0;
        for (int j = 0; j < ncol && !seen; j++) seen = strcmp(cols[j], add[a]) == 0;
        if (!seen && ncol < 32) cols[ncol++] = add[a];
      }
    }
  }
  if (!nrow || !ncol) return;
  lt_sbuf_puts(b, "<h3>");
  esc(b, key);
  lt_sbuf_puts(b, "</h3>\n<table class=\"metrics sub\">\n<thead><tr><th scope=\"col\" rowspan=\"2\">");
  lt_sbuf_puts(b, strcmp(key, "per_class") == 0 ? "class" : strcmp(key, "per_subject") == 0 ? "subject" : "name");
  lt_sbuf_puts(b, "</th>");
  for (int i = 0; i < nr; i++) run_header(b, &runs[i], ncol);
  lt_sbuf_puts(b, "</tr>\n<tr>");
  for (int i = 0; i < nr; i++)
    for (int c = 0; c < ncol; c++) {
      lt_sbuf_puts(b, "<th scope=\"col\">");
      esc(b, cols[c]);
      lt_sbuf_puts(b, "</th>");
    }
  lt_sbuf_puts(b, "</tr></thead>\n<tbody>\n");
  for (int k = 0; k < nrow; k++) {
    lt_sbuf_puts(b, "<tr><th scope=\"row\">");
    lt_sbuf_escape(b, rows[k], 80);
    lt_sbuf_puts(b, "</th>");
    for (int i = 0; i < nr; i++) {
      const cJSON *row = tabs[i] ? get(tabs[i], rows[k]) : NULL;
      for (int c = 0; c < ncol; c++) num_cell(b, get(row, cols[c]));
    }
    lt_sbuf_puts(b, "</tr>\n");
  }
  lt_sbuf_puts(b, "</tbody>\n</table>\n");
}

typedef struct {
  int n;
  const char **labels;
  double *values;
} conf_matrix;

// {"labels": [n strings], "matrix": [n rows of n numbers]} (null cells allowed). 0 ok; -1 with why.
static int cm_read(const cJSON *cm, conf_matrix *out, char *why, size_t cap) {
  memset(out, 0, sizeof *out);
  const cJSON *lab = get(cm, "labels"), *mat = get(cm, "matrix");
  if (!cJSON_IsObject(cm) || !cJSON_IsArray(lab) || !cJSON_IsArray(mat))
    return snprintf(why, cap, "needs \"labels\" (array) and \"matrix\" (array of rows)"), -1;
  int n = cJSON_GetArraySize(lab);
  if (n < 1 || n > MAX_CM_LABELS)
    return snprintf(why, cap, "%d labels (a heat map is drawn for 1 to %d)", n, MAX_CM_LABELS), -1;
  if (cJSON_GetArraySize(mat) != n)
    return snprintf(why, cap, "\"matrix\" has %d rows for %d labels", cJSON_GetArraySize(mat), n), -1;
  out->labels = calloc((size_t)n, sizeof *out->labels);
  out->values = calloc((size_t)n * (size_t)n, sizeof *out->values);
  if (!out->labels || !out->values) {
    free(out->labels), free(out->values);
    return snprintf(why, cap, "out of memory"), -1;
  }
  int i = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, lab) {
    if (!cJSON_IsString(x)) {
      snprintf(why, cap, "labels[%d] is not a string", i);
      goto bad;
    }
    out->labels[i++] = x->valuestring;
  }
  i = 0;
  cJSON_ArrayForEach(x, mat) {
    if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != n) {
      snprintf(why, cap, "matrix[%d] is not an array of %d numbers", i, n);
      goto bad;
    }
    int j = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, x) {
      if (!cJSON_IsNumber(c) && !cJSON_IsNull(c)) {
        snprintf(why, cap, "matrix[%d][%d] is not a number", i, j);
        goto bad;
      }
      out->values[(size_t)i * (size_t)n + (size_t)j++] = cJSON_IsNumber(c) ? c->valuedouble : NAN;
    }
    i++;
  }
  out->n = n;
  return 0;
bad:
  free(out->labels), free(out->values);
  memset(out, 0, sizeof *out);
  return -1;
}

// "base run" -> "base_run" for figure file names
static void safe_name(char *out, size_t cap, const char *s) {
  size_t k = 0;
  for (const char *p = s; *p && k + 1 < cap && k < 40; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    out[k++] = ok ? c : '_';
  }
  out[k] = 0;
}

static int conf_figures(report *r, lt_sbuf *page, const eval_file *ef, const eval_run *runs, int nr, lt_err *err) {
  int opened = 0;
  for (int i = 0; i < nr; i++) {
    const cJSON *cm = get(runs[i].metrics, "confusion_matrix");
    if (!cm) continue;
    conf_matrix m;
    char why[160];
    if (cm_read(cm, &m, why, sizeof why)) {
      warn(r, "%s: runs[%d].metrics.confusion_matrix: %s; no heat map", ef->name, i, why);
      continue;
    }
    if (!opened) lt_sbuf_puts(page, "<h3>Confusion matrices</h3>\n<div class=\"figs\">\n");
    opened = 1;
    char name[128], sn[48], title[320];
    safe_name(sn, sizeof sn, runs[i].name);
    r->cm_index++;
    if (r->n_cm == 1) snprintf(name, sizeof name, "confusion_matrix.svg");
    else snprintf(name, sizeof name, "confusion_matrix_%d_%s.svg", r->cm_index, sn);
    snprintf(title, sizeof title, "confusion matrix: %.250s", runs[i].name);
    lt_svg_heatmap h = {title, "predicted", "gold", m.n, m.labels, m.values};
    lt_sbuf svg = {0};
    lt_svg_heatmap_draw(&svg, &h, 0);
    int rc = emit_figure(r, page, &svg, name, "heatmap", err);
    lt_sbuf_free(&svg);
    free(m.labels), free(m.values);
    if (rc) return -1;
  }
  if (opened) lt_sbuf_puts(page, "</div>\n");
  return 0;
}

// Files without "runs" (the trainer's own eval_results.json, Hugging Face style): their scalar members.
static void flat_eval(lt_sbuf *b, const eval_file *ef) {
  lt_sbuf_puts(b, "<section class=\"eval\">\n<h2>Evaluation at the end of training <span class=\"file\">");
  esc(b, ef->name);
  lt_sbuf_puts(b, "</span></h2>\n<table class=\"metrics\">\n<tbody>\n");
  const cJSON *m;
  int k = 0;
  cJSON_ArrayForEach(m, ef->root) {
    if (!m->string || !is_scalar(m) || k++ >= MAX_TABLE_ROWS) continue;
    lt_sbuf_puts(b, "<tr><th scope=\"row\">");
    esc(b, m->string);
    lt_sbuf_puts(b, "</th>");
    num_cell(b, m);
    lt_sbuf_puts(b, "</tr>\n");
  }
  lt_sbuf_puts(b, "</tbody>\n</table>\n</section>\n");
}

static int eval_section(report *r, lt_sbuf *b, const eval_file *ef, lt_err *err) {
  const cJSON *root = ef->root, *runs_j = get(root, "runs");
  if (!runs_j) {
    flat_eval(b, ef);
    return 0;
  }
  if (!cJSON_IsArray(runs_j)) {
    warn(r, "%s: \"runs\" is not an array; skipped", ef->name);
    return 0;
  }
  eval_run runs[64];
  char names[64][32];
  int nr = 0, i = 0;
  const cJSON *run;
  cJSON_ArrayForEach(run, runs_j) {
    const cJSON *m = get(run, "metrics");
    if (nr == 64) {
      warn(r, "%s: more than 64 runs; the rest are not shown", ef->name);
      break;
    }
    if (!cJSON_IsObject(run) || !cJSON_IsObject(m)) {
      warn(r, "%s: runs[%d]: not an object with a \"metrics\" object; skipped", ef->name, i++);
      continue;
    }
    snprintf(names[nr], sizeof names[nr], "run %d", i + 1);
    runs[nr].name = str(run, "name") ? str(run, "name") : names[nr];
    runs[nr].adapter = str(run, "adapter");
    runs[nr].metrics = m;
    nr++, i++;
  }
  const char *task = str(root, "task");
  lt_sbuf_puts(b, "<section class=\"eval\">\n<h2>Evaluation: ");
  lt_sbuf_escape(b, task ? task : "results", 80);
  lt_sbuf_puts(b, " <span class=\"file\">");
  esc(b, ef->name);
  lt_sbuf_puts(b, "</span></h2>\n<table class=\"kv\">\n<tbody>\n");
  static const char *const meta[] = {"dataset", "model"};
  for (int k = 0; k < 2; k++)
    if (str(root, meta[k])) kv_row(b, meta[k], str(root, meta[k]));
  char v[64];
  double ne = num(root, "n_examples"), sec = num(root, "seconds");
  if (isfinite(ne)) {
    lt_svg_fmt_num(v, sizeof v, ne, 6);
    kv_row(b, "examples", v);
  }
  if (isfinite(sec)) {
    fmt_duration(v, sizeof v, sec);
    kv_row(b, "time", v);
  }
  lt_sbuf_puts(b, "</tbody>\n</table>\n");
  if (nr) {
    metric_table(b, runs, nr);
    const cJSON *objs[64];
    const char *keys[32];
    for (int k = 0; k < nr; k++) objs[k] = runs[k].metrics;
    int nk = union_keys(objs, nr, is_table, keys, 32);
    for (int k = 0; k < nk; k++)
      if (strcmp(keys[k], "confusion_matrix") != 0) sub_table(b, keys[k], runs, nr);
    if (conf_figures(r, b, ef, runs, nr, err)) return -1;
  } else {
    lt_sbuf_puts(b, "<p>No runs.</p>\n");
  }
  lt_sbuf_puts(b, "</section>\n");
  return 0;
}

static int count_cms(const report *r) {
  int n = 0;
  for (int f = 0; f < r->n_evals; f++) {
    const cJSON *runs = get(r->evals[f].root, "runs"), *run;
    if (!cJSON_IsArray(runs)) continue;
    cJSON_ArrayForEach(run, runs) {
      conf_matrix m;
      char why[160];
      if (!cm_read(get(get(run, "metrics"), "confusion_matrix"), &m, why, sizeof why)) n++;
      free(m.labels), free(m.values);
    }
  }
  return n;
}

// ---- the page ----

static const char CSS[] =
    "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,\"DejaVu Sans\",sans-serif;margin:0 auto;"
    "max-width:1200px;padding:16px 24px 40px;color:#222;background:#fafafa;line-height:1.4}\n"
    "h1{font-size:1.6em;margin:.3em 0 .1em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:4px;"
    "margin-top:1.8em}h3{font-size:1.05em;margin:1.2em 0 .4em}\n"
    ".path{color:#555;font-family:ui-monospace,monospace;word-break:break-all;margin:0}\n"
    ".file{color:#777;font-weight:normal;font-size:.8em;font-family:ui-monospace,monospace}\n"
    ".adapter{color:#777;font-weight:normal;font-size:.8em;word-break:break-all}\n"
    "table{border-collapse:collapse;margin:8px 0;background:#fff}\n"
    "th,td{border:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}\n"
    "thead th{background:#f0f3f7}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "table.kv th{background:#f3f3f3;font-weight:600;min-width:13em}table.kv td{word-break:break-word}\n"
    ".figs{display:flex;flex-wrap:wrap;gap:14px}\n"
    "figure{margin:0;background:#fff;border:1px solid #e3e3e3;max-width:100%}\n"
    "figure svg{display:block;max-width:100%;height:auto}\n"
    "figcaption{font-size:.8em;color:#777;padding:2px 8px;font-family:ui-monospace,monospace}\n"
    ".warnings{background:#fff4e5;border:1px solid #f0b36b;padding:4px 16px;margin:12px 0}\n"
    ".warnings h2{border:0;margin:.4em 0;font-size:1.1em}\n"
    "footer{color:#777;font-size:.85em;margin-top:2.5em;border-top:1px solid #ddd;padding-top:8px}\n";

static void run_title(const char *dir, char *out, size_t cap) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--;
  size_t s = n;
  while (s > 0 && dir[s - 1] != '/') s--;
  snprintf(out, cap, "%.*s", (int)(n - s), dir + s);
  if (!out[0]) snprintf(out, cap, "%s", dir);
}

static void report_free(report *r) {
  cJSON_Delete(r->state);
  cJSON_Delete(r->results);
  cJSON_Delete(r->adapter);
  cJSON_Delete(r->jsonl_hist);
  lt_free(r->args);
  for (int i = 0; i < r->n_evals; i++) cJSON_Delete(r->evals[i].root);
}

int lt_report_write_info(const char *run_dir, const char *out_html, lt_report_info *info, lt_err *err) {
  lt_report_info local;
  lt_report_info *in = info ? info : &local;
  memset(in, 0, sizeof *in);
  if (!run_dir || !*run_dir) return lt_errf(err, "report: no run directory given");
  struct stat sb;
  if (stat(run_dir, &sb) != 0) return lt_errf(err, "%s: cannot open: %s", run_dir, strerror(errno));
  if (!S_ISDIR(sb.st_mode)) return lt_errf(err, "%s: not a directory (give the run's output_dir)", run_dir);
  char html_path[sizeof in->html];
  if (out_html ? snprintf(html_path, sizeof html_path, "%s", out_html) >= (int)sizeof html_path
               : lt_path_join(html_path, sizeof html_path, run_dir, "report.html"))
    return lt_errf(err, "%s: path too long", out_html ? out_html : run_dir);

  report r;
  memset(&r, 0, sizeof r);
  r.dir = run_dir;
  r.info = in;
  read_inputs(&r);
  series lr = {0}, tps = {0}, loss = {0}, ev = {0};
  lt_sbuf body = {0}, page = {0};
  int rc = -1;
  static const char *const klr[] = {"learning_rate", NULL}, *const ktp[] = {"tokens_per_second",
                                                                             "train_tokens_per_second", NULL};
  static const char *const kl[] = {"loss", NULL}, *const ke[] = {"eval_loss", NULL};
  if (r.oom || (r.hist && (history_series(r.hist, klr, &lr) || history_series(r.hist, ktp, &tps) ||
                           history_series(r.hist, kl, &loss) || history_series(r.hist, ke, &ev)))) {
    lt_errf(err, "%s: out of memory", run_dir);
    goto done;
  }
  if (r.n_read == 0) {
    if (in->n_warnings) {
      char first[512];
      snprintf(first, sizeof first, "%.*s", (int)strcspn(in->warnings, "\n"), in->warnings);
      lt_errf(err, "%s: nothing to report: %s", run_dir, first);
    } else {
      lt_errf(err, "%s: nothing to report: no trainer_state.json, metrics.jsonl, all_results.json, "
              "training_args.yaml, adapter_config.json or eval_results*.json here (run lmtune train or lmtune eval "
              "with this output directory first)", run_dir);
    }
    goto done;
  }
  r.n_cm = count_cms(&r);
  int training = r.args || r.state || r.results || r.hist || r.adapter;
  if (training) summary(&r, &body, &loss, &ev, &tps);
  if (curves(&r, &body, loss.n + ev.n, &lr, &tps, err)) goto done;
  for (int i = 0; i < r.n_evals; i++)
    if (eval_section(&r, &body, &r.evals[i], err)) goto done;

  char title[256];
  run_title(run_dir, title, sizeof title);
  lt_sbuf_puts(&page, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               "<meta name=\"generator\" content=\"lmtune " LMTUNE_VERSION "\">\n<title>lmtune report: ");
  esc(&page, title);
  lt_sbuf_printf(&page, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<header>\n<h1>%s: ", CSS,
                 training ? "Training report" : "Evaluation report");
  esc(&page, title);
  lt_sbuf_puts(&page, "</h1>\n<p class=\"path\">");
  esc(&page, run_dir);
  lt_sbuf_puts(&page, "</p>\n</header>\n<main>\n");
  if (in->n_warnings) {
    lt_sbuf_puts(&page, "<div class=\"warnings\" role=\"alert\">\n<h2>Warnings</h2>\n<ul>\n");
    for (const char *p = in->warnings; *p;) {
      size_t n = strcspn(p, "\n");
      char line[1200];
      snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), p);
      lt_sbuf_puts(&page, "<li>");
      esc(&page, line);
      lt_sbuf_puts(&page, "</li>\n");
      p += n + (p[n] == '\n');
    }
    lt_sbuf_puts(&page, "</ul>\n</div>\n");
  }
  if (body.oom) {
    lt_errf(err, "%s: out of memory", run_dir);
    goto done;
  }
  if (body.n) lt_sbuf_put(&page, body.p, body.n);
  lt_sbuf_puts(&page, "</main>\n<footer>Made by lmtune " LMTUNE_VERSION " from ");
  esc(&page, r.files_read);
  lt_sbuf_puts(&page, ".</footer>\n</body>\n</html>\n");
  if (page.oom) {
    lt_errf(err, "%s: out of memory", run_dir);
    goto done;
  }
  if (lt_write_file_atomic(html_path, page.p, page.n, err)) goto done;
  snprintf(in->html, sizeof in->html, "%s", html_path);
  rc = 0;
done:
  series_free(&lr);
  series_free(&tps);
  series_free(&loss);
  series_free(&ev);
  lt_sbuf_free(&body);
  lt_sbuf_free(&page);
  report_free(&r);
  return rc;
}

int lt_report_write(const char *run_dir, const char *out_html, lt_err *err) {
  return lt_report_write_info(run_dir, out_html, NULL, err);
}
