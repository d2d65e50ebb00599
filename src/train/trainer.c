// The training loop with HF Trainer semantics (transformers 5): micro-batches right-padded to their longest
// example, gradient accumulation where each micro-batch's loss is (sum of its token losses) / (valid label tokens
// of the whole accumulation window), global-norm clipping, the scheduler's lr for the step, logging windows,
// evaluation + early stopping + best model, checkpoints (written under a temp name, renamed when complete) and a
// resume that reproduces an uninterrupted run bit for bit. The arguments are in args.c.
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "data/sft.h"
#include "model/model.h"
#include "report/report.h"

// ======================================================================================== the loop

typedef struct trainer {
  const lt_train_args *a;
  const lt_train_hooks *h;
  lt_model *m;
  lt_optim *opt;
  lt_sched sched;
  const lt_dataset *train, *eval;
  int64_t len_dl, nupe, max_steps;
  int num_epochs, do_eval, eval_steps, save_steps, pad_id, rb;  // rb: this run's batch shape cap
  int eval_epoch, save_epoch;  // eval_strategy / save_strategy "epoch": at the end of each epoch
  lt_trainer_state st;
  double tr_loss, total_loss, last_eval_loss, last_eval_ppl, last_eval_runtime;
  int has_eval;
  int64_t last_eval_step;  // global step of the latest evaluation (-1: none)
  int64_t last_logged, step0, tokens_session, last_saved_step;
  double t0, wall0;
  double log_t;         // time of the previous log entry (tokens/s between entries)
  int64_t log_tokens;    // tokens_session at the previous log entry
  double eval_time;      // seconds spent evaluating since the previous log entry
  char out[LT_PATH_CAP], events_path[LT_PATH_CAP + 300], last_ckpt[LT_PATH_CAP + 64];
  int32_t *perm, *bids, *bmask, *blab;
  size_t bcap;
} trainer;

static void say(const trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const trainer *t, const char *fmt, ...) {
  if (!t->h || !t->h->message) return;
  char buf[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  t->h->message(t->h->ud, buf);
}

static double unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int out_path(const trainer *t, char *buf, size_t cap, const char *name, lt_err *err) {
  if (lt_path_join(buf, cap, t->out, name)) return lt_errf(err, "%s/%s: path too long", t->out, name);
  return 0;
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

// ---- model setup ----

// Split a comma-separated list into trimmed names (in place). Returns the count, -1 when more than cap.
static int split_names(char *buf, char **names, int cap) {
  int n = 0;
  char *save = NULL;
  for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    while (*p == ' ') p++;
    size_t l = strlen(p);
    while (l && p[l - 1] == ' ') p[--l] = 0;
    if (!*p) continue;
    if (n == cap) return -1;
    names[n++] = p;
  }
  return n;
}

// freeze: full fine-tuning restricted, as LLaMA-Factory's freeze tuning, to the parameters whose name contains
// ".{layer}.{module}" for the last N decoder layers (first -N when N < 0) and each of freeze_trainable_modules
// ("all": the whole layer), or one of freeze_extra_modules (modules outside the layers, e.g. embed_tokens, norm;
// matched as a substring of the parameter name, as LLaMA-Factory does).
static int setup_freeze(lt_model *m, const lt_train_args *a, lt_err *err) {
  int n = a->freeze_trainable_layers;
  int L = m->cfg.layers, lo = n > 0 ? L - n : 0, hi = n > 0 ? L : -n;
  if (lo < 0 || hi > L) return lt_errf(err, "freeze_trainable_layers %d: the model has %d layers", n, L);
  char mods_buf[sizeof a->freeze_trainable_modules], extra_buf[sizeof a->freeze_extra_modules];
  snprintf(mods_buf, sizeof mods_buf, "%s", a->freeze_trainable_modules[0] ? a->freeze_trainable_modules : "all");
  snprintf(extra_buf, sizeof extra_buf, "%s", a->freeze_extra_modules);
  char *mods[32], *extra[32];
  int nm = split_names(mods_buf, mods, 32), ne = split_names(extra_buf, extra, 32);
  if (nm <= 0) return lt_errf(err, "freeze_trainable_modules: give \"all\" or module names (at most 32)");
  if (ne < 0) return lt_errf(err, "freeze_extra_modules: at most 32 names");
  if (lt_model_set_train_mode(m, LT_TRAIN_FULL, NULL, err)) return -1;
  // the module names a layer has ("self_attn", "mlp", "input_layernorm", ...) and those outside the layers
  for (int j = 0; j < nm; j++) {
    if (strcmp(mods[j], "all") == 0) continue;
    int found = 0;
    for (int i = 0; i < m->ntrain && !found; i++) {
      int l, off = 0;
      const char *nm_ = m->params[i].name;
      if (sscanf(nm_, "model.layers.%d.%n", &l, &off) == 1 && off > 0) {
        size_t k = strlen(mods[j]);
        found = strncmp(nm_ + off, mods[j], k) == 0 && nm_[off + k] == '.';
      }
    }
    if (!found)
      return lt_errf(err, "freeze_trainable_modules: \"%s\" is not a module of the decoder layers (e.g. self_attn, "
                     "mlp, input_layernorm, post_attention_layernorm, or all)", mods[j]);
  }
  for (int j = 0; j < ne; j++) {
    int found = 0;
    for (int i = 0; i < m->ntrain && !found; i++) {
      const char *nm_ = m->params[i].name;
      if (strncmp(nm_, "model.layers.", 13) == 0) continue;
      const char *last = strrchr(nm_, '.'), *prev = last;
      while (prev > nm_ && prev[-1] != '.') prev--;
      found = last && (size_t)(last - prev) == strlen(extra[j]) && strncmp(prev, extra[j], (size_t)(last - prev)) == 0;
    }
    if (!found)
      return lt_errf(err, "freeze_extra_modules: \"%s\" is not a module outside the decoder layers (e.g. "
                     "embed_tokens, norm, lm_head)", extra[j]);
  }
  int k = 0;
  for (int i = 0; i < m->ntrain; i++) {  // the full-mode registry lists the params in order
    lt_param *p = &m->params[i];
    int keep = 0;
    for (int l = lo; l < hi && !keep; l++)
      for (int j = 0; j < nm && !keep; j++) {
        char pat[128];
        snprintf(pat, sizeof pat, ".%d.%s", l, strcmp(mods[j], "all") == 0 ? "" : mods[j]);
        keep = strstr(p->name, pat) != NULL;
      }
    for (int j = 0; j < ne && !keep; j++) keep = strstr(p->name, extra[j]) != NULL;
    if (keep) {
      m->train[k++] = m->train[i];
    } else {
      lt_free(p->g);
      p->g = NULL;
    }
  }
  m->ntrain = k;
  m->views_ready = 0;  // frozen matrices may now use bf16 views
  return lt_model_prepare(m, err);
}

// A model folder with config.json but no weights (neither model.safetensors nor its sharded index).
static int weightless_model_dir(const char *dir) {
  char cfg[LT_PATH_CAP + 64], one[LT_PATH_CAP + 64], idx[LT_PATH_CAP + 64];
  if (lt_path_join(cfg, sizeof cfg, dir, "config.json") || lt_path_join(one, sizeof one, dir, "model.safetensors") ||
      lt_path_join(idx, sizeof idx, dir, "model.safetensors.index.json"))
    return 0;
  return lt_file_exists(cfg) && !lt_file_exists(one) && !lt_file_exists(idx);
}

static int setup_model(trainer *t, lt_err *err) {
  const lt_train_args *a = t->a;
  if (strcmp(a->stage, "pt") == 0 && weightless_model_dir(a->model_name_or_path)) {
    // Pre-training from scratch: a new model initialised as transformers does, from config.json alone.
    if (a->finetuning_type != LT_FT_FULL)
      return lt_errf(err, "%s has config.json but no weights (model.safetensors): a new model can only be "
                     "pre-trained with finetuning_type: full (%s trains a small part of an existing model)",
                     a->model_name_or_path, a->finetuning_type == LT_FT_LORA ? "lora" : "freeze");
    say(t, "initialising a new model from config.json (seed %llu)", (unsigned long long)a->seed);
    if (lt_model_init(&t->m, a->model_name_or_path, a->seed, err)) return -1;
  } else if (lt_model_load(&t->m, a->model_name_or_path, err)) {
    return -1;
  }
  if (lt_train_setup(t->m, a, err)) return -1;
  lt_model *m = t->m;
  int pad = m->cfg.pad_id;
  t->pad_id = pad >= 0 && pad < m->cfg.vocab ? pad : 0;
  lt_optim_config oc = {a->optim, a->adam_beta1, a->adam_beta2, a->adam_epsilon, a->weight_decay, a->amsgrad,
                        a->momentum};
  return lt_optim_new(&t->opt, m, &oc, err);
}

int lt_train_setup(lt_model *m, const lt_train_args *a, lt_err *err) {
  if (a->bf16 && lt_model_set_compute(m, LT_COMPUTE_BF16, err)) return -1;
  if (lt_model_set_grad_checkpointing(m, a->gradient_checkpointing, err)) return -1;
  if (a->finetuning_type == LT_FT_LORA) {
    if (a->adapter_name_or_path[0]) {
      if (lt_model_load_adapter(m, a->adapter_name_or_path, err)) return -1;
    } else {
      lt_lora_config lc = {0};
      lc.r = a->lora_rank;
      lc.alpha = (float)(a->lora_alpha > 0 ? a->lora_alpha : 2.0 * a->lora_rank);
      lc.dropout = (float)a->lora_dropout;
      lc.use_rslora = a->use_rslora;
      lc.seed = a->seed;
      if (lt_lora_parse_targets(a->lora_target, &lc.targets, err) ||
          lt_model_set_train_mode(m, LT_TRAIN_LORA, &lc, err))
        return -1;
    }
    m->lora_cfg.seed = a->seed;  // the dropout stream
    if (a->additional_target[0] && lt_lora_train_modules(m, a->additional_target, err)) return -1;
  } else if (a->finetuning_type == LT_FT_FULL) {
    if (lt_model_set_train_mode(m, LT_TRAIN_FULL, NULL, err)) return -1;
  } else if (setup_freeze(m, a, err)) {
    return -1;
  }
  if (m->ntrain == 0) return lt_errf(err, "nothing to train");
  return 0;
}

// Overwrite the trainable tensors with those of a safetensors file (a checkpoint's adapter or model).
static int restore_trainables(lt_model *m, const char *path, lt_err *err) {
  lt_st_file f;
  if (lt_st_open(&f, path, err)) return -1;
  int rc = 0;
  for (int i = 0; i < m->ntrain && rc == 0; i++) {
    const lt_trainable *tr = &m->train[i];
    const lt_st_tensor *st = lt_st_find(&f, tr->name);
    if (!st && strncmp(tr->name, "base_model.", 11) != 0) {  // a module saved whole beside a LoRA adapter
      char key[200];
      snprintf(key, sizeof key, "base_model.model.%s", tr->name);
      st = lt_st_find(&f, key);
    }
    if (!st || st->numel != tr->numel)
      rc = lt_errf(err, "%s: tensor \"%s\" is %s (the checkpoint was made with other LoRA/fine-tuning settings)",
                   path, tr->name, st ? "of another size" : "missing");
    else if (st->dtype == LT_DTYPE_F32)
      memcpy(tr->w, st->data, (size_t)tr->numel * sizeof(float));
    else
      rc = lt_tensor_to_f32(st, tr->w, err);
  }
  lt_st_close(&f);
  return rc;
}

// ---- batches ----

static int reserve_batch(trainer *t, size_t n, lt_err *err) {
  if (n <= t->bcap) return 0;
  free(t->bids), free(t->bmask), free(t->blab);
  t->bids = malloc(n * sizeof(int32_t));
  t->bmask = malloc(n * sizeof(int32_t));
  t->blab = malloc(n * sizeof(int32_t));
  t->bcap = n;
  if (!t->bids || !t->bmask || !t->blab) {
    t->bcap = 0;
    return lt_errf(err, "out of memory for a batch of %zu tokens", n);
  }
  return 0;
}

// Right-pad examples ex[0..B) to the longest: pad id, attention 0, label -100. *tokens = attended tokens.
static int build_batch(trainer *t, const lt_example *const *ex, int B, int *T_out, int64_t *tokens, lt_err *err) {
  int T = 0;
  for (int b = 0; b < B; b++) T = LT_MAX(T, ex[b]->len);
  if (reserve_batch(t, (size_t)B * (size_t)T, err)) return -1;
  int64_t tok = 0;
  for (int b = 0; b < B; b++) {
    const lt_example *e = ex[b];
    for (int i = 0; i < T; i++) {
      size_t k = (size_t)b * T + (size_t)i;
      int in = i < e->len;
      t->bids[k] = in ? e->ids[i] : t->pad_id;
      t->blab[k] = in ? e->labels[i] : -100;
      t->bmask[k] = in ? (e->attn ? e->attn[i] : 1) : 0;
      tok += t->bmask[k];
    }
  }
  *T_out = T;
  *tokens = tok;
  return 0;
}

static const lt_example *train_example(const trainer *t, int64_t idx) { return &t->train->ex[t->perm[idx]]; }

// ---- logging ----

static int emit_log(trainer *t, cJSON *entry, lt_err *err) {
  cJSON_AddNumberToObject(entry, "step", (double)t->st.global_step);
  if (t->h && t->h->log) {
    char *s = cJSON_PrintUnformatted(entry);
    if (s) t->h->log(t->h->ud, s);
    free(s);
  }
  cJSON_AddItemToArray(t->st.log_history, entry);
  // the live logs, rewritten atomically while the history is small (always at checkpoints and at the end)
  if (cJSON_GetArraySize(t->st.log_history) <= 2000) {
    char p[LT_PATH_CAP + 64];
    if (out_path(t, p, sizeof p, "metrics.jsonl", err) || lt_metrics_write(t->st.log_history, p, err)) return -1;
    if (t->a->report_to_tensorboard && lt_tfevents_write(t->st.log_history, t->events_path, t->wall0, err)) return -1;
  }
  return 0;
}

static cJSON *new_entry(lt_err *err) {
  cJSON *e = cJSON_CreateObject();
  if (!e) lt_errf(err, "out of memory");
  return e;
}

// ---- evaluation ----

// eval_loss as transformers averages it: the mean over eval batches of each batch's mean token loss
static int evaluate(trainer *t, lt_err *err) {
  const lt_dataset *ev = t->eval;
  int bs = t->a->per_device_eval_batch_size;
  double t_start = lt_now(), sum = 0;
  int nb = 0, nfinite = 0;
  const lt_example **ex = malloc(sizeof(*ex) * (size_t)bs);
  if (!ex) return lt_errf(err, "out of memory");
  for (int i0 = 0; i0 < ev->n; i0 += bs) {
    int B = LT_MIN(bs, ev->n - i0), T;
    int64_t tok;
    for (int b = 0; b < B; b++) ex[b] = &ev->ex[i0 + b];
    double ls;
    int nv;
    if (build_batch(t, ex, B, &T, &tok, err) ||
        lt_model_loss_sum(t->m, t->bids, t->bmask, t->blab, B, T, 0, 1.0, &ls, &nv, err)) {
      free(ex);
      return lt_err_prefix(err, "evaluation batch %d", nb);
    }
    nb++;
    if (nv > 0 && isfinite(ls)) {
      sum += (double)(float)(ls / nv);
      nfinite++;
    }
  }
  free(ex);
  double rt = lt_now() - t_start;
  t->eval_time += rt;
  t->last_eval_loss = nfinite ? sum / nfinite : NAN;
  t->last_eval_ppl = exp(t->last_eval_loss);
  t->last_eval_runtime = rt;
  t->has_eval = 1;
  t->last_eval_step = t->st.global_step;
  cJSON *e = new_entry(err);
  if (!e) return -1;
  cJSON_AddNumberToObject(e, "eval_loss", t->last_eval_loss);
  cJSON_AddNumberToObject(e, "eval_perplexity", t->last_eval_ppl);
  cJSON_AddNumberToObject(e, "eval_runtime", round(rt * 1e4) / 1e4);
  if (rt > 0) {
    cJSON_AddNumberToObject(e, "eval_samples_per_second", round(ev->n / rt * 1e3) / 1e3);
    cJSON_AddNumberToObject(e, "eval_steps_per_second", round(nb / rt * 1e3) / 1e3);
  }
  cJSON_AddNumberToObject(e, "epoch", t->st.epoch);
  return emit_log(t, e, err);
}

// ---- checkpoints ----

static int write_resume_state(trainer *t, const char *dir, lt_err *err) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return lt_errf(err, "out of memory");
  cJSON_AddNumberToObject(o, "format", 1);
  cJSON_AddNumberToObject(o, "global_step", (double)t->st.global_step);
  cJSON_AddNumberToObject(o, "optimizer_steps", (double)lt_optim_steps(t->opt));
  cJSON_AddNumberToObject(o, "dropout_counter", (double)t->m->step);
  cJSON_AddNumberToObject(o, "tr_loss", t->tr_loss);
  cJSON_AddNumberToObject(o, "total_loss", t->total_loss);
  cJSON_AddNumberToObject(o, "last_logged", (double)t->last_logged);
  cJSON *sc = cJSON_AddObjectToObject(o, "scheduler");
  cJSON_AddStringToObject(sc, "type", lt_sched_name(t->sched.type));
  cJSON_AddNumberToObject(sc, "last_epoch", (double)t->st.global_step);
  cJSON_AddNumberToObject(sc, "lr", t->sched.lr);
  cJSON_AddNumberToObject(sc, "warmup_steps", (double)t->sched.warmup_steps);
  cJSON_AddNumberToObject(sc, "total_steps", (double)t->sched.total_steps);
  cJSON *d = cJSON_AddObjectToObject(o, "data");
  cJSON_AddNumberToObject(d, "epoch", (double)(t->st.global_step / t->nupe));
  cJSON_AddNumberToObject(d, "micro_batches_done_in_epoch",
                          (double)((t->st.global_step % t->nupe) * t->a->gradient_accumulation_steps));
  char seed[32];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)t->a->seed);
  cJSON_AddStringToObject(d, "shuffle_seed", seed);
  cJSON_AddBoolToObject(d, "disable_shuffling", t->a->disable_shuffling);
  cJSON_AddNumberToObject(d, "n_train", t->train->n);
  cJSON_AddNumberToObject(d, "batch_size", t->a->per_device_train_batch_size);
  cJSON_AddNumberToObject(d, "gradient_accumulation_steps", t->a->gradient_accumulation_steps);
  const char *slash = strrchr(t->events_path, '/');
  cJSON_AddStringToObject(o, "events_file", slash ? slash + 1 : t->events_path);
  cJSON_AddNumberToObject(o, "wall_time0", t->wall0);
  char *text = cJSON_Print(o);
  cJSON_Delete(o);
  char p[LT_PATH_CAP + 128];
  if (!text) return lt_errf(err, "out of memory");
  int rc = lt_path_join(p, sizeof p, dir, "lmtune_state.json") ? lt_errf(err, "%s: path too long", dir)
                                                                : lt_write_file_atomic(p, text, strlen(text), err);
  free(text);
  return rc;
}

static int save_weights(trainer *t, const char *dir, int final, lt_err *err) {
  if (t->a->finetuning_type == LT_FT_LORA) return lt_model_save_adapter(t->m, dir, t->a->model_name_or_path, err);
  int dt = final && t->a->bf16 ? LT_DTYPE_BF16 : LT_DTYPE_F32;
  return lt_model_save_pretrained(t->m, dir, dt, err);
}

static void ckpt_name(char *buf, size_t cap, const char *out, int64_t step) {
  snprintf(buf, cap, "%s/checkpoint-%lld", out, (long long)step);
}

static int save_checkpoint(trainer *t, lt_err *err) {
  char dir[LT_PATH_CAP + 64], tmp[LT_PATH_CAP + 128], p[LT_PATH_CAP + 200];
  ckpt_name(dir, sizeof dir, t->out, t->st.global_step);
  snprintf(tmp, sizeof tmp, "%s/.checkpoint-%lld.tmp-%ld", t->out, (long long)t->st.global_step, (long)getpid());
  if (lt_remove_tree(tmp, err) || lt_mkdirs(tmp, err)) return -1;
  // the best checkpoint as transformers records it (this one counts as existing)
  if (t->st.has_best) {
    char best[LT_PATH_CAP + 64];
    ckpt_name(best, sizeof best, t->out, t->st.best_global_step);
    struct stat sb;
    if (t->st.best_global_step == t->st.global_step || (stat(best, &sb) == 0 && S_ISDIR(sb.st_mode)))
      snprintf(t->st.best_model_checkpoint, sizeof t->st.best_model_checkpoint, "%s", best);
  }
  int rc = -1;
  if (save_weights(t, tmp, 0, err)) goto fail;
  if (lt_path_join(p, sizeof p, tmp, "optimizer.safetensors") || lt_optim_save(t->opt, t->m, p, err)) goto fail;
  if (lt_path_join(p, sizeof p, tmp, "trainer_state.json") || lt_state_write(&t->st, p, err)) goto fail;
  if (write_resume_state(t, tmp, err)) goto fail;  // last: marks the checkpoint complete
  if (lt_remove_tree(dir, err)) goto fail;
  if (rename(tmp, dir) != 0) {
    lt_errf(err, "%s: cannot rename into place: %s", dir, strerror(errno));
    goto fail;
  }
  fsync_dir(t->out);
  snprintf(t->last_ckpt, sizeof t->last_ckpt, "%s", dir);
  t->last_saved_step = t->st.global_step;
  // live logs in step with the checkpoint
  if (out_path(t, p, sizeof p, "metrics.jsonl", err) || lt_metrics_write(t->st.log_history, p, err)) return -1;
  if (t->a->report_to_tensorboard && lt_tfevents_write(t->st.log_history, t->events_path, t->wall0, err)) return -1;
  return lt_checkpoint_rotate(t->out, t->a->save_total_limit, t->st.best_model_checkpoint, err);
fail:
  lt_err_prefix(err, "saving checkpoint %s", dir);
  lt_err tmp_err;
  lt_remove_tree(tmp, &tmp_err);
  return rc;
}

static double num_or(const cJSON *o, const char *k, double d) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : d;
}

static int load_checkpoint(trainer *t, const char *dir, lt_err *err) {
  char p[LT_PATH_CAP + 200];
  char *text;
  size_t len;
  if (lt_path_join(p, sizeof p, dir, "lmtune_state.json")) return lt_errf(err, "%s: path too long", dir);
  if (!lt_file_exists(p))
    return lt_errf(err, "%s is not a complete lmtune checkpoint (no lmtune_state.json)", dir);
  if (lt_read_file(p, &text, &len, err)) return -1;
  cJSON *o = cJSON_ParseWithLength(text, len);
  free(text);
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return lt_errf(err, "%s: not valid JSON", p);
  }
  int rc = -1;
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
  int n_train = (int)num_or(d, "n_train", -1), bs = (int)num_or(d, "batch_size", -1),
      ga = (int)num_or(d, "gradient_accumulation_steps", -1);
  if (n_train != t->train->n || bs != t->a->per_device_train_batch_size || ga != t->a->gradient_accumulation_steps) {
    lt_errf(err, "%s: the checkpoint was made with %d training examples, batch size %d and gradient accumulation %d; "
            "this run has %d, %d and %d, so it cannot continue the same run", dir, n_train, bs, ga, t->train->n,
            t->a->per_device_train_batch_size, t->a->gradient_accumulation_steps);
    goto done;
  }
  const cJSON *seed = cJSON_GetObjectItemCaseSensitive(d, "shuffle_seed");
  char want[32];
  snprintf(want, sizeof want, "%llu", (unsigned long long)t->a->seed);
  if (!cJSON_IsString(seed) || strcmp(seed->valuestring, want) != 0 ||
      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "disable_shuffling")) != !!t->a->disable_shuffling) {
    lt_errf(err, "%s: the checkpoint was made with another seed or shuffling setting", dir);
    goto done;
  }
  int64_t gs = (int64_t)num_or(o, "global_step", -1);
  // weights, optimizer, trainer state
  if (lt_path_join(p, sizeof p, dir,
                   t->a->finetuning_type == LT_FT_LORA ? "adapter_model.safetensors" : "model.safetensors") ||
      restore_trainables(t->m, p, err))
    goto done;
  if (lt_path_join(p, sizeof p, dir, "optimizer.safetensors") || lt_optim_load(t->opt, t->m, p, err)) goto done;
  lt_trainer_state st;
  if (lt_path_join(p, sizeof p, dir, "trainer_state.json") || lt_state_read(&st, p, err)) goto done;
  if (st.global_step != gs || lt_optim_steps(t->opt) != (int64_t)num_or(o, "optimizer_steps", -1)) {
    lt_state_free(&st);
    lt_errf(err, "%s: trainer_state.json, lmtune_state.json and the optimizer disagree on the step", dir);
    goto done;
  }
  cJSON_Delete(t->st.log_history);
  t->st.log_history = st.log_history;
  t->st.global_step = gs;
  t->st.epoch = st.epoch;
  t->st.num_input_tokens_seen = st.num_input_tokens_seen;
  t->st.has_best = st.has_best;
  t->st.best_metric = st.best_metric;
  t->st.best_global_step = st.best_global_step;
  snprintf(t->st.best_model_checkpoint, sizeof t->st.best_model_checkpoint, "%s", st.best_model_checkpoint);
  t->st.es_counter = st.es_counter;
  t->m->step = (uint64_t)num_or(o, "dropout_counter", 0);
  t->tr_loss = num_or(o, "tr_loss", 0);
  t->total_loss = num_or(o, "total_loss", 0);
  t->last_logged = (int64_t)num_or(o, "last_logged", (double)gs);
  t->wall0 = num_or(o, "wall_time0", t->wall0);
  const cJSON *ef = cJSON_GetObjectItemCaseSensitive(o, "events_file");
  if (cJSON_IsString(ef) && !strchr(ef->valuestring, '/') && ef->valuestring[0] != '.') {
    char runs[LT_PATH_CAP + 16];
    snprintf(runs, sizeof runs, "%s/runs", t->out);
    snprintf(t->events_path, sizeof t->events_path, "%s/%s", runs, ef->valuestring);
  }
  snprintf(t->last_ckpt, sizeof t->last_ckpt, "%s", dir);
  t->last_saved_step = gs;
  rc = 0;
done:
  cJSON_Delete(o);
  return rc;
}

// ---- one optimizer step ----

// Runs micro-batches [mb0, mb0 + nb) of the epoch's order; returns the step's loss (mean over the window).
static int train_step(trainer *t, int64_t mb0, int nb, double *step_loss, double *grad_norm, int64_t *tokens,
                      lt_err *err) {
  const lt_train_args *a = t->a;
  int bs = a->per_device_train_batch_size;
  int64_t n = t->train->n;
  // num_items_in_batch: valid shifted labels over the whole accumulation window
  int64_t items = 0;
  for (int64_t i = mb0 * bs; i < LT_MIN((mb0 + nb) * bs, n); i++) items += lt_example_n_targets(train_example(t, i));
  lt_model_zero_grad(t->m);
  const lt_example *ex[1024];
  const lt_example **exp_ = bs <= 1024 ? ex : malloc(sizeof(*exp_) * (size_t)bs);
  if (!exp_) return lt_errf(err, "out of memory");
  double loss = 0;
  *tokens = 0;
  int rc = 0;
  for (int k = 0; k < nb && rc == 0; k++) {
    int64_t i0 = (mb0 + k) * bs;
    int B = (int)LT_MIN((int64_t)bs, n - i0), T;
    for (int b = 0; b < B; b++) exp_[b] = train_example(t, i0 + b);
    int64_t tok;
    double sum = 0;
    if (build_batch(t, exp_, B, &T, &tok, err)) {
      rc = -1;
      break;
    }
    *tokens += tok;
    if (items == 0) {  // nothing to learn in this window: no gradient
      t->m->step++;
      continue;
    }
    if (lt_model_loss_sum(t->m, t->bids, t->bmask, t->blab, B, T, 1, (double)items, &sum, NULL, err)) {
      rc = lt_err_prefix(err, "step %lld, micro-batch %d (examples from line %d)", (long long)t->st.global_step + 1, k,
                         exp_[0]->line);
      break;
    }
    float mb_loss = (float)(sum / (double)items);  // what transformers' training_step returns
    if (!isfinite(mb_loss)) {
      rc = lt_errf(err, "step %lld: the loss is %s (micro-batch %d, examples from line %d of %s)",
                   (long long)t->st.global_step + 1, isnan(mb_loss) ? "NaN" : "infinite", k, exp_[0]->line,
                   t->train->source[0] ? t->train->source : "the data");
      break;
    }
    loss += mb_loss;
  }
  if (exp_ != ex) free(exp_);
  if (rc) return rc;
  *grad_norm = lt_clip_grad_norm(t->m, a->max_grad_norm);
  if (!isfinite(*grad_norm))
    return lt_errf(err, "step %lld: the gradient norm is %s", (long long)t->st.global_step + 1,
                   isnan(*grad_norm) ? "NaN" : "infinite");
  *step_loss = loss;
  return 0;
}

// ---- output directory ----

static int dir_nonempty(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  closedir(d);
  return n > 0;
}

// Remove what an earlier run left: the completion marker, checkpoints, live logs; and stale temp checkpoints.
static int is_atomic_leftover(const char *name) {  // "<file>.tmp.<pid>" from a write that was killed
  const char *t = strstr(name, ".tmp.");
  if (!t || !t[5]) return 0;
  for (const char *p = t + 5; *p; p++)
    if (*p < '0' || *p > '9') return 0;
  return 1;
}

static int clean_output_dir(const char *dir, int all, lt_err *err) {
  char runs[LT_PATH_CAP + 16];
  snprintf(runs, sizeof runs, "%s/runs", dir);
  DIR *r = opendir(runs);
  if (r) {
    struct dirent *e;
    while ((e = readdir(r)))
      if (is_atomic_leftover(e->d_name)) {
        char p[LT_PATH_CAP + 300];
        if (lt_path_join(p, sizeof p, runs, e->d_name) == 0) unlink(p);
      }
    closedir(r);
  }
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) && rc == 0) {
    // the completion marker goes first in every case: it comes back only when this run finishes
    int stale = strncmp(e->d_name, ".checkpoint-", 12) == 0 || strcmp(e->d_name, "all_results.json") == 0 ||
                is_atomic_leftover(e->d_name);
    int old = all && (strncmp(e->d_name, "checkpoint-", 11) == 0 || strcmp(e->d_name, "runs") == 0 ||
                      strcmp(e->d_name, "all_results.json") == 0 || strcmp(e->d_name, "train_results.json") == 0 ||
                      strcmp(e->d_name, "eval_results.json") == 0 || strcmp(e->d_name, "metrics.jsonl") == 0 ||
                      strcmp(e->d_name, "trainer_state.json") == 0 || strcmp(e->d_name, "report.html") == 0);
    if (!stale && !old) continue;
    char p[LT_PATH_CAP + 300];
    if (lt_path_join(p, sizeof p, dir, e->d_name) == 0) rc = lt_remove_tree(p, err);
  }
  closedir(d);
  return rc;
}

static int write_json_file(const char *path, cJSON *o, lt_err *err) {
  char *s = cJSON_Print(o);
  if (!s) return lt_errf(err, "%s: out of memory", path);
  size_t n = strlen(s);
  char *s2 = realloc(s, n + 2);
  if (!s2) {
    free(s);
    return lt_errf(err, "%s: out of memory", path);
  }
  s2[n] = '\n';
  int rc = lt_write_file_atomic(path, s2, n + 1, err);
  free(s2);
  return rc;
}

// Final outputs; all_results.json is written last and marks a finished run.
static int write_final(trainer *t, cJSON *train_metrics, lt_err *err) {
  char p[LT_PATH_CAP + 64];
  const lt_train_args *a = t->a;
  if (save_weights(t, t->out, 1, err)) return -1;
  if (out_path(t, p, sizeof p, "trainer_state.json", err) || lt_state_write(&t->st, p, err)) return -1;
  if (out_path(t, p, sizeof p, "metrics.jsonl", err) || lt_metrics_write(t->st.log_history, p, err)) return -1;
  if (a->report_to_tensorboard && lt_tfevents_write(t->st.log_history, t->events_path, t->wall0, err)) return -1;
  if (a->plot_loss && (out_path(t, p, sizeof p, "training_loss.svg", err) ||
                       lt_plot_loss_svg(t->st.log_history, p, "training loss", err)))
    return -1;
  char *yaml = lt_train_args_yaml(a);
  if (!yaml) return lt_errf(err, "out of memory");
  int rc = out_path(t, p, sizeof p, "training_args.yaml", err) || lt_write_file_atomic(p, yaml, strlen(yaml), err);
  free(yaml);
  if (rc) return -1;
  static const char *const tk[] = {"epoch", "total_flos", "train_loss", "train_runtime", "train_samples_per_second",
                                   "train_steps_per_second"};
  cJSON *tr = cJSON_CreateObject(), *all = cJSON_CreateObject();
  if (!tr || !all) {
    cJSON_Delete(tr), cJSON_Delete(all);
    return lt_errf(err, "out of memory");
  }
  for (int i = 0; i < 6; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(train_metrics, tk[i]);
    if (v) {
      cJSON_AddItemToObject(tr, tk[i], cJSON_Duplicate(v, 1));
      cJSON_AddItemToObject(all, tk[i], cJSON_Duplicate(v, 1));
    }
  }
  rc = out_path(t, p, sizeof p, "train_results.json", err) || write_json_file(p, tr, err);
  if (!rc && t->has_eval) {
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "epoch", t->st.epoch);
    cJSON_AddNumberToObject(ev, "eval_loss", t->last_eval_loss);
    cJSON_AddNumberToObject(ev, "eval_perplexity", t->last_eval_ppl);
    cJSON_AddNumberToObject(ev, "eval_runtime", round(t->last_eval_runtime * 1e4) / 1e4);
    cJSON_AddNumberToObject(all, "eval_loss", t->last_eval_loss);
    cJSON_AddNumberToObject(all, "eval_perplexity", t->last_eval_ppl);
    rc = out_path(t, p, sizeof p, "eval_results.json", err) || write_json_file(p, ev, err);
    cJSON_Delete(ev);
  }
  if (!rc) rc = out_path(t, p, sizeof p, "all_results.json", err) || write_json_file(p, all, err);
  cJSON_Delete(tr);
  cJSON_Delete(all);
  return rc ? -1 : 0;
}

// Conversations (Alpaca / ShareGPT / OpenAI messages) through the chat template and tokenizer (stage sft).
static int read_sft(const lt_train_args *a, const char *path, int vocab, int max_samples, lt_dataset *out, trainer *t,
                    lt_err *err) {
  lt_sft_opts so = {a->cutoff_len, a->train_on_prompt, max_samples, a->skip_bad_records};
  lt_sft_stats ss;
  if (lt_data_read_sft(path, a->model_name_or_path, a->template_name[0] ? a->template_name : NULL, &so, vocab, out,
                       &ss, err))
    return -1;
  say(t, "%s: %d conversations -> %d examples with the %s chat template", path, ss.n_records, out->n,
      a->template_name[0] ? a->template_name : "model's");
  if (ss.n_skipped)
    say(t, "warning: %s: skipped %d bad record%s (the first: %s)", path, ss.n_skipped, ss.n_skipped == 1 ? "" : "s",
        ss.first_bad);
  if (ss.n_truncated)
    say(t, "warning: %s: %d example%s longer than cutoff_len %d were truncated", path, ss.n_truncated,
        ss.n_truncated == 1 ? "" : "s", a->cutoff_len);
  if (ss.n_no_eos)
    say(t, "warning: %s: %d response%s end without the tokenizer's EOS token: the model will not learn to stop "
        "(check the template)", path, ss.n_no_eos, ss.n_no_eos == 1 ? "" : "s");
  return 0;
}

static int load_data(const lt_train_args *a, int vocab, lt_dataset *train, lt_dataset *eval, trainer *t,
                     lt_err *err) {
  if (a->dataset[0] && strcmp(a->stage, "sft") == 0) {
    int pre = lt_data_is_pretok(a->dataset, err);
    if (pre < 0) return -1;
    if (!pre) {
      lt_dataset all = {0};
      if (read_sft(a, a->dataset, vocab, a->max_samples, &all, t, err)) {
        lt_dataset_free(&all);
        return -1;
      }
      if (a->eval_dataset[0]) {
        if (read_sft(a, a->eval_dataset, vocab, 0, eval, t, err)) {
          lt_dataset_free(&all);
          return -1;
        }
        *train = all;
        return 0;
      }
      if (a->val_size > 0) {
        int rc = lt_dataset_split(&all, a->val_size, a->seed, train, eval, err);
        if (rc) lt_dataset_free(&all);
        return rc;
      }
      *train = all;
      return 0;
    }
  }
  int pack = a->packing >= 0 ? a->packing : strcmp(a->stage, "pt") == 0 && a->cutoff_len > 0;
  if (pack && a->cutoff_len <= 0) return lt_errf(err, "packing needs cutoff_len > 0 (the block size)");
  lt_pretok_opts o = {pack ? 0 : a->cutoff_len, a->max_samples, a->skip_bad_records, vocab, a->model_name_or_path};
  lt_data_stats st;
  lt_dataset all = {0};
  if (!a->dataset[0])
    return lt_errf(err, "dataset is required (a .jsonl file of {\"input_ids\": [...]} or {\"text\": ...} records)");
  if (lt_data_read_pretok(a->dataset, &o, &all, &st, err)) {
    lt_dataset_free(&all);
    return -1;
  }
  if (pack) {
    int n0 = all.n;
    if (lt_dataset_pack(&all, a->cutoff_len, lt_pretok_text_bos(a->model_name_or_path), err)) {
      lt_dataset_free(&all);
      return lt_err_prefix(err, "%s", a->dataset);
    }
    say(t, "packed %d examples into %d blocks of %d tokens", n0, all.n, a->cutoff_len);
  }
  if (st.n_skipped)
    say(t, "warning: %s: skipped %d bad record%s of %d (the first: %s)", a->dataset, st.n_skipped,
        st.n_skipped == 1 ? "" : "s", st.n_records, st.first_bad);
  if (st.n_truncated)
    say(t, "warning: %s: %d example%s longer than cutoff_len %d were truncated", a->dataset, st.n_truncated,
        st.n_truncated == 1 ? "" : "s", a->cutoff_len);
  if (st.n_no_target)
    say(t, "warning: %s: %d example%s have no label tokens and add nothing to the loss", a->dataset, st.n_no_target,
        st.n_no_target == 1 ? "" : "s");
  if (a->eval_dataset[0]) {
    lt_pretok_opts oe = o;
    oe.max_samples = 0;
    if (lt_data_read_pretok(a->eval_dataset, &oe, eval, &st, err)) {
      lt_dataset_free(&all);
      return -1;
    }
    if (st.n_skipped) say(t, "warning: %s: skipped %d bad records", a->eval_dataset, st.n_skipped);
    *train = all;
    return 0;
  }
  if (a->val_size > 0) {
    if (lt_dataset_split(&all, a->val_size, a->seed, train, eval, err)) {
      lt_dataset_free(&all);
      return -1;
    }
    return 0;
  }
  *train = all;
  return 0;
}

int lt_train(const lt_train_args *a, const lt_dataset *train_in, const lt_dataset *eval_in,
             const lt_train_hooks *hooks, volatile sig_atomic_t *stop, lt_train_result *res, lt_err *err) {
  memset(res, 0, sizeof *res);
  if (lt_train_args_check(a, err)) return -1;
  trainer T_, *t = &T_;
  memset(t, 0, sizeof *t);
  t->a = a;
  t->h = hooks;
  t->last_saved_step = -1;
  t->last_eval_step = -1;
  lt_dataset own_train = {0}, own_eval = {0};
  int rc = -1, created_dir = 0;
  cJSON *train_metrics = NULL;
  if (strlen(a->output_dir) >= sizeof t->out) return lt_errf(err, "output_dir is too long");
  snprintf(t->out, sizeof t->out, "%s", a->output_dir);
  for (size_t n = strlen(t->out); n > 1 && t->out[n - 1] == '/'; n--) t->out[n - 1] = 0;
  if (a->threads > 0) omp_set_num_threads(a->threads);

  // 1. the output directory (checked before any work)
  int resume = a->resume_from_checkpoint[0] != 0;
  struct stat sb;
  int existed = stat(t->out, &sb) == 0;
  if (existed && !S_ISDIR(sb.st_mode)) return lt_errf(err, "output_dir %s exists and is not a directory", t->out);
  if (existed && dir_nonempty(t->out) && !resume && !a->overwrite_output_dir)
    return lt_errf(err, "output_dir %s already exists and is not empty; set overwrite_output_dir: true to train over "
                   "it, or resume_from_checkpoint: true to continue its latest checkpoint", t->out);
  char ckpt[LT_PATH_CAP + 64] = "";
  if (resume) {
    if (strcmp(a->resume_from_checkpoint, "true") == 0) {
      if (lt_checkpoint_latest(t->out, ckpt, sizeof ckpt) < 0)
        return lt_errf(err, "resume_from_checkpoint: no complete checkpoint in %s", t->out);
    } else {
      snprintf(ckpt, sizeof ckpt, "%s", a->resume_from_checkpoint);
      if (stat(ckpt, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lt_errf(err, "resume_from_checkpoint: %s is not a directory", ckpt);
    }
  }

  // 2. model, data
  int64_t rss_start = lt_rss_bytes();
  if (setup_model(t, err)) goto done;
  if (train_in) {
    t->train = train_in;
    t->eval = eval_in;
  } else {
    if (load_data(a, t->m->cfg.vocab, &own_train, &own_eval, t, err)) goto done;
    t->train = &own_train;
    t->eval = own_eval.n ? &own_eval : NULL;
  }
  if (t->train->n == 0) {
    lt_errf(err, "no training examples");
    goto done;
  }
  for (int i = 0; i < t->train->n; i++)
    for (int k = 0; k < t->train->ex[i].len; k++) {
      const lt_example *e = &t->train->ex[i];
      if (e->ids[k] < 0 || e->ids[k] >= t->m->cfg.vocab || (e->labels[k] != -100 && (e->labels[k] < 0 ||
                                                                                      e->labels[k] >= t->m->cfg.vocab))) {
        lt_errf(err, "training example %d (line %d): position %d (id %d, label %d) is outside the vocabulary "
                "[0, %d)", i, e->line, k, e->ids[k], e->labels[k], t->m->cfg.vocab);
        goto done;
      }
    }

  t->do_eval = t->eval && t->eval->n > 0 && a->eval_strategy != LT_STRATEGY_NO;
  t->eval_epoch = a->eval_strategy == LT_STRATEGY_EPOCH;
  t->save_epoch = a->save_strategy == LT_STRATEGY_EPOCH;
  t->eval_steps = a->eval_steps > 0 ? a->eval_steps : a->logging_steps;  // as transformers: eval_steps <- logging
  t->save_steps = a->save_strategy == LT_STRATEGY_STEPS ? a->save_steps : 0;
  if ((a->early_stopping_patience > 0 || a->load_best_model_at_end) && !t->do_eval) {
    lt_errf(err, "early_stopping_patience and load_best_model_at_end need evaluation data (eval_dataset or val_size)");
    goto done;
  }

  // 3. the schedule, as transformers' set_initial_training_values
  int bs = a->per_device_train_batch_size, ga = a->gradient_accumulation_steps;
  t->len_dl = (t->train->n + bs - 1) / bs;
  t->nupe = LT_MAX(t->len_dl / ga + (t->len_dl % ga > 0), 1);
  if (a->max_steps > 0) {
    t->max_steps = a->max_steps;
    t->num_epochs = (int)(t->max_steps / t->nupe + (t->max_steps % t->nupe > 0));
  } else {
    t->max_steps = (int64_t)ceil(a->num_train_epochs * (double)t->nupe);
    t->num_epochs = (int)ceil(a->num_train_epochs);
  }
  int64_t warm = a->warmup_steps > 0 ? a->warmup_steps : lt_sched_warmup_from_ratio(t->max_steps, a->warmup_ratio);
  lt_sched_init(&t->sched, a->lr_scheduler_type, a->learning_rate, warm, t->max_steps);
  t->perm = malloc(sizeof(int32_t) * (size_t)t->train->n);
  t->st.log_history = cJSON_CreateArray();
  if (!t->perm || !t->st.log_history) {
    lt_errf(err, "out of memory");
    goto done;
  }
  if (a->plan) {  // lmtune plan's prediction for this run: the speed at its batches' mean padded length, the memory
                  // at the longest
    lt_plan_shape shape;
    lt_plan pl;
    lt_err perr = {"the plan text is too long"};
    char txt[2048];
    if (lt_plan_shape_of(a, t->train, t->max_steps, &shape, &perr) == 0 &&
        lt_plan_measure_shape(a, &shape, rss_start, &pl, &perr) == 0 &&
        lt_plan_format(&pl, a, t->max_steps, txt, sizeof txt) == 0) {
      size_t n = strlen(txt);
      if (n && txt[n - 1] == '\n') txt[n - 1] = 0;  // say() ends the line
      say(t, "%s", txt);
    } else {
      say(t, "warning: no plan: %s", perr.msg);
    }
  }
  t->st.max_steps = t->max_steps;
  t->st.logging_steps = a->logging_steps;
  t->st.eval_steps = t->eval_steps;
  t->st.save_steps = t->save_steps;
  t->st.train_batch_size = bs;
  t->st.num_train_epochs = t->num_epochs;
  t->st.es_patience = a->early_stopping_patience;
  t->st.es_threshold = a->early_stopping_threshold;
  t->wall0 = unix_now();

  // 4. output directory, resume
  if (!existed) {
    if (lt_mkdirs(t->out, err)) goto done;
    created_dir = 1;
  }
  if (clean_output_dir(t->out, !resume && a->overwrite_output_dir, err)) goto done;
  char runs[LT_PATH_CAP + 16], ev_name[256];
  snprintf(runs, sizeof runs, "%s/runs", t->out);
  lt_tfevents_name(ev_name, sizeof ev_name, t->wall0);
  snprintf(t->events_path, sizeof t->events_path, "%s/%s", runs, ev_name);
  if (resume) {
    if (load_checkpoint(t, ckpt, err)) goto done;
    say(t, "resuming from %s at step %lld of %lld", ckpt, (long long)t->st.global_step, (long long)t->max_steps);
    char p[LT_PATH_CAP + 64];  // the live logs as of the checkpoint
    if (out_path(t, p, sizeof p, "metrics.jsonl", err) || lt_metrics_write(t->st.log_history, p, err)) goto done;
  }
  if (a->report_to_tensorboard &&
      (lt_mkdirs(runs, err) || (resume && lt_tfevents_write(t->st.log_history, t->events_path, t->wall0, err))))
    goto done;
  t->last_logged = resume ? t->last_logged : 0;
  t->step0 = t->st.global_step;
  t->t0 = lt_now();
  t->log_t = t->t0;

  // 5. the loop
  int64_t epochs_trained = t->st.global_step / t->nupe, skip_updates = t->st.global_step % t->nupe;
  int stop_training = t->st.global_step >= t->max_steps, interrupted = 0;
  double lr_used = 0, gnorm = 0, step_loss = 0;
  for (int64_t epoch = epochs_trained; epoch < t->num_epochs && !stop_training; epoch++) {
    if (a->disable_shuffling) {
      for (int i = 0; i < t->train->n; i++) t->perm[i] = i;
    } else {
      lt_shuffle_perm(t->perm, t->train->n, a->seed, (uint64_t)epoch);
    }
    int64_t remainder = t->len_dl % ga ? t->len_dl % ga : ga;
    for (int64_t u = epoch == epochs_trained ? skip_updates : 0; u < t->nupe && !stop_training; u++) {
      int nb = (int)(u != t->nupe - 1 ? ga : remainder);
      int64_t mb0 = u * ga, tokens = 0;
      if (train_step(t, mb0, nb, &step_loss, &gnorm, &tokens, err)) {
        if (t->last_ckpt[0]) lt_err_prefix(err, "stopped; the last good checkpoint is %s", t->last_ckpt);
        else lt_err_prefix(err, "stopped before any checkpoint was saved");
        goto done;
      }
      lr_used = lt_sched_lr(&t->sched, t->st.global_step);  // the lr of this step; logged as transformers does
      lt_optim_step(t->opt, lr_used);
      lt_model_params_updated(t->m);
      t->tr_loss += step_loss;
      t->tokens_session += tokens;
      t->st.num_input_tokens_seen += tokens;
      t->st.global_step++;
      t->st.epoch = (double)epoch + (double)(mb0 + nb) / (double)t->len_dl;
      int64_t gs = t->st.global_step;
      int should_log = gs % a->logging_steps == 0 || (gs == 1 && a->logging_first_step);
      int end_epoch = u == t->nupe - 1;
      int should_eval = t->do_eval && (t->eval_epoch ? end_epoch : gs % t->eval_steps == 0);
      int should_save = t->save_epoch ? end_epoch : t->save_steps > 0 && gs % t->save_steps == 0;
      if (gs >= t->max_steps) {
        stop_training = 1;
        if (t->do_eval) should_eval = 1;
        if (t->save_steps > 0 || t->save_epoch) should_save = 1;
      }
      if (hooks && hooks->progress) {
        double el = lt_now() - t->t0;
        int64_t done_steps = gs - t->step0;
        lt_train_progress pg = {gs, t->max_steps, t->st.epoch, step_loss, lr_used, gnorm,
                                el > 0 ? (double)t->tokens_session / el : 0, el,
                                done_steps > 0 ? el / (double)done_steps * (double)(t->max_steps - gs) : 0};
        hooks->progress(hooks->ud, &pg);
      }
      if (should_log && gs > t->last_logged) {
        cJSON *e = new_entry(err);
        if (!e) goto done;
        cJSON_AddNumberToObject(e, "loss", t->tr_loss / (double)(gs - t->last_logged));
        cJSON_AddNumberToObject(e, "grad_norm", gnorm);
        cJSON_AddNumberToObject(e, "learning_rate", lr_used);
        cJSON_AddNumberToObject(e, "epoch", t->st.epoch);
        double now = lt_now(), dt = now - t->log_t - t->eval_time;  // training time only
        if (dt > 0)
          cJSON_AddNumberToObject(e, "tokens_per_second",
                                  round((double)(t->tokens_session - t->log_tokens) / dt * 10) / 10);
        cJSON_AddNumberToObject(e, "num_input_tokens_seen", (double)t->st.num_input_tokens_seen);
        t->log_t = now;
        t->log_tokens = t->tokens_session;
        t->eval_time = 0;
        t->total_loss += t->tr_loss;
        t->tr_loss = 0;
        t->last_logged = gs;
        if (emit_log(t, e, err)) goto done;
      }
      if (should_eval) {
        if (evaluate(t, err)) goto done;
        // early stopping compares with the best so far (before it is updated), as EarlyStoppingCallback
        if (a->early_stopping_patience > 0) {
          double v = t->last_eval_loss;
          if (!t->st.has_best || (v < t->st.best_metric && fabs(v - t->st.best_metric) > a->early_stopping_threshold))
            t->st.es_counter = 0;
          else
            t->st.es_counter++;
          if (t->st.es_counter >= a->early_stopping_patience) {
            stop_training = 1;
            res->early_stopped = 1;
            say(t, "early stopping at step %lld: eval_loss did not improve for %d evaluations", (long long)gs,
                t->st.es_counter);
          }
        }
        if (!t->st.has_best || t->last_eval_loss < t->st.best_metric) {
          t->st.has_best = 1;
          t->st.best_metric = t->last_eval_loss;
          if (t->save_steps > 0 || t->save_epoch) t->st.best_global_step = gs;
        }
      }
      if (stop && *stop && !stop_training) interrupted = 1;
      t->st.should_training_stop = stop_training;
      if (should_save || interrupted) {
        if (save_checkpoint(t, err)) goto done;
      }
      if (interrupted) {
        say(t, "interrupted at step %lld; checkpoint saved to %s (resume with resume_from_checkpoint: true)",
            (long long)gs, t->last_ckpt);
        res->interrupted = 1;
        break;
      }
    }
    if (interrupted) break;
  }
  res->global_step = t->st.global_step;
  res->max_steps = t->max_steps;
  res->epoch = t->st.epoch;
  snprintf(res->checkpoint, sizeof res->checkpoint, "%.4150s", t->last_ckpt);
  if (interrupted) {
    rc = 0;
    goto done;
  }

  // 6. the end: train metrics, best model, final outputs
  {
    t->total_loss += t->tr_loss;
    int64_t steps = t->st.global_step - t->step0;
    double train_loss = t->total_loss / fmax((double)steps, 0.001), rt = lt_now() - t->t0;
    // transformers: num_train_samples (the whole schedule) * the share of steps run in this call
    double n_samples = a->max_steps > 0 ? (double)a->max_steps * bs * ga : (double)t->train->n * a->num_train_epochs;
    n_samples = n_samples * (double)steps / (double)LT_MAX(t->max_steps, 1);
    train_metrics = cJSON_CreateObject();
    if (!train_metrics) {
      lt_errf(err, "out of memory");
      goto done;
    }
    cJSON_AddNumberToObject(train_metrics, "train_runtime", round(rt * 1e4) / 1e4);
    if (rt > 0) {
      cJSON_AddNumberToObject(train_metrics, "train_samples_per_second", round(n_samples / rt * 1e3) / 1e3);
      cJSON_AddNumberToObject(train_metrics, "train_steps_per_second", round((double)steps / rt * 1e3) / 1e3);
    }
    cJSON_AddNumberToObject(train_metrics, "total_flos", 0);
    cJSON_AddNumberToObject(train_metrics, "train_loss", train_loss);
    cJSON_AddNumberToObject(train_metrics, "epoch", t->st.epoch);
    res->train_loss = train_loss;
    cJSON *e = cJSON_Duplicate(train_metrics, 1);
    if (!e) {
      lt_errf(err, "out of memory");
      goto done;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(e, "epoch");
    cJSON_AddNumberToObject(e, "epoch", t->st.epoch);
    if (emit_log(t, e, err)) goto done;
    if (a->load_best_model_at_end && t->st.best_model_checkpoint[0]) {
      char p[LT_PATH_CAP + 200];
      if (lt_path_join(p, sizeof p, t->st.best_model_checkpoint,
                       a->finetuning_type == LT_FT_LORA ? "adapter_model.safetensors" : "model.safetensors") ||
          restore_trainables(t->m, p, err)) {
        lt_err_prefix(err, "load_best_model_at_end");
        goto done;
      }
      say(t, "loaded the best model from %s (eval_loss %g)", t->st.best_model_checkpoint, t->st.best_metric);
    }
    // a last evaluation when the final step had none (LLaMA-Factory's do_eval after training)
    if (t->do_eval && t->last_eval_step != t->st.global_step && evaluate(t, err)) goto done;
    if (write_final(t, train_metrics, err)) goto done;
    res->completed = 1;
    lt_err rerr;  // the report is a view of the files above: a failure is a warning, the run is done
    if (lt_report_write(t->out, NULL, &rerr)) say(t, "warning: no report.html: %s", rerr.msg);
    else say(t, "report: %s/report.html", t->out);
  }
  rc = 0;
done:
  if (rc && created_dir && !t->last_ckpt[0]) {  // nothing worth keeping: leave no half-made output directory
    lt_err e2;
    lt_remove_tree(t->out, &e2);
  }
  cJSON_Delete(train_metrics);
  lt_state_free(&t->st);
  free(t->perm), free(t->bids), free(t->bmask), free(t->blab);
  lt_optim_free(t->opt);
  lt_model_free(t->m);
  lt_dataset_free(&own_train);
  lt_dataset_free(&own_eval);
  return rc;
}
