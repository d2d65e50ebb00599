// lmtune plan: predicts a training run's speed and peak memory by measuring this machine, not by counting FLOPs.
// Truncated copies of the model (the real config with 1 and 3 decoder layers, random weights, the run's compute
// precision, method, rank and checkpointing) run real training steps at the run's batch shape. Step time, optimizer
// time and workspace grow linearly with the number of layers, so the two sizes give a fixed part (embedding, LM
// head) and a per-layer part, extrapolated to the full depth. Weight memory follows from the checkpoint's stored
// dtype and the views the model makes for the compute and train modes (mapped weights count once their pages are
// touched, as in peak RSS); the runtime's own overhead (BLAS buffers, allocator) is calibrated on the 1-layer copy.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <omp.h>

#include "model/model.h"
#include "train/trainer.h"

#define PLAN_SMALL 1
#define PLAN_LARGE 3

int64_t lt_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (!f) return 0;
  int n = fscanf(f, "%ld %ld", &pages, &resident);
  fclose(f);
  return n == 2 ? (int64_t)resident * sysconf(_SC_PAGESIZE) : 0;
}

static int64_t lora_bytes(const lt_model *m) {
  int64_t b = 0;
  if (m->loras)
    for (int i = 0; i < m->cfg.layers * 7; i++) {
      const lt_lora *l = &m->loras[i];
      if (l->r > 0) b += 4 * (int64_t)l->r * (l->in + l->out) * (int64_t)sizeof(float);  // A, B and their grads
    }
  return b;
}

static int64_t optim_bytes(const lt_model *m, const lt_train_args *a) {
  int64_t n = 0;
  for (int i = 0; i < m->ntrain; i++) n += m->train[i].numel;
  int states = a->optim == LT_OPT_SGD ? (a->momentum > 0 ? 1 : 0) : 2 + (a->amsgrad ? 1 : 0);
  return n * states * (int64_t)sizeof(float);
}

// What the model's views cost for a checkpoint stored at `stored` bytes per element and memory-mapped: the mapped
// pages (all touched at least once), plus the f32 and bf16 copies the modes need, plus gradients.
static int64_t real_bytes(const lt_model *m, int stored) {
  int64_t b = 0;
  int bf16 = m->compute == LT_COMPUTE_BF16;
  for (int i = 0; i < m->nparams; i++) {
    const lt_param *p = &m->params[i];
    int mat = p->ndim == 2, tr = p->g != NULL, want_bf = bf16 && mat && !tr;
    b += p->numel * stored;
    if (!want_bf && !(stored == 4 && !tr)) b += p->numel * 4;  // an f32 copy (unless the F32 mapping serves)
    if (bf16 && mat && (tr || stored != 2)) b += p->numel * 2;  // a bf16 copy (unless the BF16 mapping serves)
    if (tr) b += p->numel * 4;
  }
  return b + lora_bytes(m);
}

// What the truncated (initialised, owned) model really holds.
static int64_t held_bytes(const lt_model *m) {
  int64_t b = 0;
  for (int i = 0; i < m->nparams; i++) {
    const lt_param *p = &m->params[i];
    if (p->owned) b += p->numel * 4;
    if (p->bf_owned) b += p->numel * 2;
    if (p->g) b += p->numel * 4;
  }
  return b + lora_bytes(m);
}

typedef struct {
  double step_s, opt_s;
  int64_t ws, real, held, optim, rss_delta;
} probe;

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

static int run_probe(const lt_train_args *a0, int layers, int B, int T, int timed, int stored, probe *pr,
                     lt_err *err) {
  lt_train_args a = *a0;
  a.adapter_name_or_path[0] = 0;  // a fresh adapter of the configured rank stands in for a saved one
  memset(pr, 0, sizeof *pr);
  int64_t rss0 = lt_rss_bytes();
  lt_model *m = NULL;
  lt_optim *o = NULL;
  int32_t *ids = NULL;
  double st[16], ot[16];
  int rc = -1;
  if (lt_model_init_layers(&m, a.model_name_or_path, layers, a.seed, err) || lt_train_setup(m, &a, err)) goto done;
  lt_optim_config oc = {a.optim, a.adam_beta1, a.adam_beta2, a.adam_epsilon, a.weight_decay, a.amsgrad, a.momentum};
  if (lt_optim_new(&o, m, &oc, err)) goto done;
  ids = lt_alloc(sizeof(int32_t) * (size_t)B * (size_t)T, err);
  if (!ids) goto done;
  for (int64_t i = 0; i < (int64_t)B * T; i++) ids[i] = (int32_t)(lt_rng_u64(a.seed, 77, (uint64_t)i) % (uint64_t)m->cfg.vocab);
  if (timed > 15) timed = 15;
  for (int s = 0; s <= timed; s++) {  // step 0 warms up (first touch of the workspace)
    float loss;
    double t0 = lt_now();
    lt_model_zero_grad(m);
    if (lt_model_loss(m, ids, NULL, ids, B, T, 1, &loss, err)) goto done;
    double t1 = lt_now();
    lt_optim_step(o, 1e-6);
    lt_model_params_updated(m);
    double t2 = lt_now();
    if (s > 0) {
      st[s - 1] = t1 - t0;
      ot[s - 1] = t2 - t1;
    }
  }
  qsort(st, (size_t)timed, sizeof(double), cmp_double);
  qsort(ot, (size_t)timed, sizeof(double), cmp_double);
  pr->step_s = st[timed / 2];
  pr->opt_s = ot[timed / 2];
  pr->ws = m->ws.bytes;
  pr->optim = optim_bytes(m, &a);
  pr->real = real_bytes(m, stored);
  pr->held = held_bytes(m);
  pr->rss_delta = lt_rss_bytes() - rss0;
  rc = 0;
done:
  lt_free(ids);
  lt_optim_free(o);
  lt_model_free(m);
  return rc;
}

// Stored bytes per element of the checkpoint (its first matrix), 4 for a config-only folder (a new f32 model).
static int stored_size(const char *dir, lt_config *cfg, lt_err *err) {
  lt_model *m;
  if (lt_config_load(cfg, dir, err)) return -1;
  char p1[LT_PATH_CAP + 64], p2[LT_PATH_CAP + 64];
  snprintf(p1, sizeof p1, "%s/model.safetensors", dir);
  snprintf(p2, sizeof p2, "%s/model.safetensors.index.json", dir);
  if (!lt_file_exists(p1) && !lt_file_exists(p2)) return 4;
  if (lt_model_load(&m, dir, err)) return -1;  // maps the files and reads headers only
  int s = m->embed->st ? (int)lt_dtype_size(m->embed->st->dtype) : 4;
  lt_model_free(m);
  return s;
}

int lt_plan_measure(const lt_train_args *a, int seq, int64_t rss_base, lt_plan *p, lt_err *err) {
  memset(p, 0, sizeof *p);
  if (seq < 2 || seq > (1 << 20)) return lt_errf(err, "plan: sequence length %d must be in [2, 1048576]", seq);
  lt_config cfg;
  int stored = stored_size(a->model_name_or_path, &cfg, err);
  if (stored < 0) return lt_err_prefix(err, "plan");
  double t0 = lt_now();
  if (rss_base <= 0) rss_base = lt_rss_bytes();
  int B = a->per_device_train_batch_size, L = cfg.layers;
  int small = LT_MIN(PLAN_SMALL, L), large = LT_MIN(PLAN_LARGE, L);
  probe ps, pl;
  if (run_probe(a, small, B, seq, 3, stored, &ps, err)) return lt_err_prefix(err, "plan (%d-layer copy)", small);
  if (large == small) pl = ps;
  else if (run_probe(a, large, B, seq, 3, stored, &pl, err))
    return lt_err_prefix(err, "plan (%d-layer copy)", large);
  // linear in the layer count: v(L) = v(small) + (L - small) * (v(large) - v(small)) / (large - small)
  double k = large > small ? (double)(L - small) / (double)(large - small) : 0.0;
#define EXTRA(f) ((double)ps.f + k * ((double)pl.f - (double)ps.f))
  p->layers = L;
  p->batch = B;
  p->seq = seq;
  p->grad_accum = a->gradient_accumulation_steps;
  p->threads = omp_get_max_threads();
  p->micro_s = EXTRA(step_s);
  p->opt_s = EXTRA(opt_s);
  p->layer_s = large > small ? (pl.step_s - ps.step_s) / (large - small) : 0.0;
  p->fixed_s = ps.step_s - small * p->layer_s;
  p->step_s = p->grad_accum * p->micro_s + p->opt_s;
  p->tokens_per_s = (double)B * seq * p->grad_accum / p->step_s;
  p->mem_weights = EXTRA(real);
  p->mem_optim = EXTRA(optim);
  p->mem_work = EXTRA(ws);
  // runtime overhead seen on the 1-layer copy beyond what it holds (never negative), plus the process so far
  double over = (double)ps.rss_delta - (double)ps.held - (double)ps.optim - (double)ps.ws;
  p->mem_runtime = (double)rss_base + (over > 0 ? over : 0.0);
  p->mem_peak = p->mem_weights + p->mem_optim + p->mem_work + p->mem_runtime;
  p->measure_s = lt_now() - t0;
#undef EXTRA
  if (!(p->step_s > 0) || !isfinite(p->step_s)) return lt_errf(err, "plan: the measured step time is not usable");
  return 0;
}

int64_t lt_plan_steps(const lt_train_args *a, int64_t n_examples) {
  if (a->max_steps > 0) return a->max_steps;
  if (n_examples <= 0) return 0;
  int64_t bs = a->per_device_train_batch_size, ga = a->gradient_accumulation_steps;
  int64_t len_dl = (n_examples + bs - 1) / bs, nupe = LT_MAX(len_dl / ga + (len_dl % ga > 0), 1);
  return (int64_t)ceil(a->num_train_epochs * (double)nupe);
}

static void fmt_dur(char *out, size_t cap, double s) {
  long t = (long)(s + 0.5);
  if (t >= 86400) snprintf(out, cap, "%ldd%02ldh%02ldm", t / 86400, t / 3600 % 24, t / 60 % 60);
  else if (t >= 3600) snprintf(out, cap, "%ldh%02ldm%02lds", t / 3600, t / 60 % 60, t % 60);
  else if (t >= 60) snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
  else snprintf(out, cap, "%.1fs", s);
}

int lt_plan_format(const lt_plan *p, const lt_train_args *a, int64_t steps, char *out, size_t cap) {
  const double G = 1024.0 * 1024.0 * 1024.0;
  char method[320], run[128], dur[32];
  if (a->finetuning_type == LT_FT_LORA) snprintf(method, sizeof method, "LoRA r=%d (%s)", a->lora_rank, a->lora_target);
  else snprintf(method, sizeof method, "%s", a->finetuning_type == LT_FT_FULL ? "full" : "freeze");
  if (steps > 0) {
    fmt_dur(dur, sizeof dur, (double)steps * p->step_s);
    snprintf(run, sizeof run, "%lld optimizer steps -> %s", (long long)steps, dur);
  } else {
    fmt_dur(dur, sizeof dur, 1000.0 * p->step_s);
    snprintf(run, sizeof run, "%s per 1000 optimizer steps (steps unknown: give max_steps or a dataset)", dur);
  }
  int n = snprintf(out, cap,
                   "plan: %d layers, %s, %s, batch %d x %d tokens, gradient accumulation %d, %d threads%s\n"
                   "  speed: %.1f tokens/s, %.3f s per optimizer step (per micro-batch: %.3f s fixed + %.4f s x %d "
                   "layers; optimizer %.3f s)\n"
                   "  run: %s\n"
                   "  peak memory: %.2f GiB = weights %.2f + trainable state & optimizer %.2f + activations & "
                   "workspace %.2f + runtime %.2f\n"
                   "  (measured on %d- and %d-layer copies in %.1f s)\n",
                   p->layers, method, a->bf16 ? "bf16 compute" : "f32 compute", p->batch, p->seq, p->grad_accum,
                   p->threads, a->gradient_checkpointing ? ", gradient checkpointing" : "", p->tokens_per_s,
                   p->step_s, p->fixed_s, p->layer_s, p->layers, p->opt_s, run, p->mem_peak / G, p->mem_weights / G,
                   p->mem_optim / G, p->mem_work / G, p->mem_runtime / G, LT_MIN(PLAN_SMALL, p->layers),
                   LT_MIN(PLAN_LARGE, p->layers), p->measure_s);
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

char *lt_plan_json(const lt_plan *p, int64_t steps) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, "layers", p->layers);
  cJSON_AddNumberToObject(o, "batch", p->batch);
  cJSON_AddNumberToObject(o, "seq", p->seq);
  cJSON_AddNumberToObject(o, "gradient_accumulation_steps", p->grad_accum);
  cJSON_AddNumberToObject(o, "threads", p->threads);
  cJSON_AddNumberToObject(o, "tokens_per_s", p->tokens_per_s);
  cJSON_AddNumberToObject(o, "step_s", p->step_s);
  cJSON_AddNumberToObject(o, "micro_batch_s", p->micro_s);
  cJSON_AddNumberToObject(o, "fixed_s", p->fixed_s);
  cJSON_AddNumberToObject(o, "layer_s", p->layer_s);
  cJSON_AddNumberToObject(o, "optimizer_s", p->opt_s);
  cJSON_AddNumberToObject(o, "steps", (double)steps);
  cJSON_AddNumberToObject(o, "total_s", steps > 0 ? (double)steps * p->step_s : 0.0);
  cJSON_AddNumberToObject(o, "peak_bytes", p->mem_peak);
  cJSON_AddNumberToObject(o, "weights_bytes", p->mem_weights);
  cJSON_AddNumberToObject(o, "optimizer_bytes", p->mem_optim);
  cJSON_AddNumberToObject(o, "workspace_bytes", p->mem_work);
  cJSON_AddNumberToObject(o, "runtime_bytes", p->mem_runtime);
  cJSON_AddNumberToObject(o, "measure_s", p->measure_s);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}
