// lmtune plan: predicts a training run's speed and peak memory by measuring this machine, not by counting FLOPs.
// A truncated copy of the model (the real config with 3 decoder layers, random weights, the run's compute precision,
// method, rank and checkpointing) runs real training steps at the run's batch shape, alternately through its first
// layer only and through all 3 (see `probe`). Step time and workspace grow linearly with the number of layers, so the
// two sizes give a fixed part (embedding, LM head) and a per-layer part, extrapolated to the full depth; the
// optimizer's share (clipping, AdamW, zeroing, bf16 copies) scales with the trainable values. Weight memory follows
// from the checkpoint's stored dtype and the views the model makes for the compute and train modes (mapped weights
// count once their pages are touched, as in peak RSS); the runtime's own overhead (BLAS buffers, allocator) is
// calibrated on the copy. With the run's data known (lmtune train), the speed is measured at its micro-batches' mean
// padded length and the workspace sized for the longest; tokens/s counts non-padding tokens, as the trainer logs.
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
#define PLAN_MAX_STEPS 15  // timed turns at most
#define PLAN_MIN_S 0.4     // seconds of timed turns at least (within PLAN_MAX_STEPS)

int64_t lt_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (!f) return 0;
  int n = fscanf(f, "%ld %ld", &pages, &resident);
  fclose(f);
  return n == 2 ? (int64_t)resident * sysconf(_SC_PAGESIZE) : 0;
}

// Whether a tensor (by its HF / PEFT name) belongs to the first `layers` decoder layers or sits outside the layers.
static int in_first(const char *name, int layers) {
  const char *p = strstr(name, "layers.");
  return !p || atoi(p + 7) < layers;
}

static int64_t lora_bytes(const lt_model *m, int layers) {
  int64_t b = 0;
  if (m->loras)
    for (int i = 0; i < layers * 7; i++) {
      const lt_lora *l = &m->loras[i];
      if (l->r > 0) b += 4 * (int64_t)l->r * (l->in + l->out) * (int64_t)sizeof(float);  // A, B and their grads
    }
  return b;
}

static int64_t train_numel(const lt_model *m, int layers) {
  int64_t n = 0;
  for (int i = 0; i < m->ntrain; i++)
    if (in_first(m->train[i].name, layers)) n += m->train[i].numel;
  return n;
}

static int64_t optim_bytes(const lt_model *m, const lt_train_args *a, int layers) {
  int64_t n = train_numel(m, layers);
  int states = a->optim == LT_OPT_SGD ? (a->momentum > 0 ? 1 : 0) : 2 + (a->amsgrad ? 1 : 0);
  return n * states * (int64_t)sizeof(float);
}

// which of a layer's projections p is the matrix of (LT_Q..LT_DOWN), or -1
static int proj_of(const lt_model *m, const lt_param *p) {
  for (int l = 0; l < m->cfg.layers; l++)
    for (int j = 0; j < 7; j++)
      if (m->layer[l].proj[j].w == p) return j;
  return -1;
}

// What the model's views cost for a checkpoint stored at `stored` bytes per element and memory-mapped: the mapped
// pages (all touched at least once), plus the f32 and bf16 copies the modes need, plus gradients.
static int64_t real_bytes(const lt_model *m, int stored, int layers, int64_t rows) {
  int64_t b = 0;
  int bf16 = m->compute == LT_COMPUTE_BF16;
  for (int i = 0; i < m->nparams; i++) {
    const lt_param *p = &m->params[i];
    if (!in_first(p->name, layers)) continue;
    int mat = p->ndim == 2, tr = p->g != NULL, want_bf = bf16 && mat && !tr;
    b += p->numel * stored;
    if (!want_bf && !(stored == 4 && !tr)) b += p->numel * 4;  // an f32 copy (unless the F32 mapping serves)
    if (bf16 && mat && (tr || stored != 2)) b += p->numel * 2;  // a bf16 copy (unless the BF16 mapping serves)
    if (tr) b += p->numel * 4;
    // packed once for training (forward.c): the LM head in both forms, the layers' matrices in the NN form and the
    // NT form too where lt_model_pack_nt says so; a packed matrix served by the BF16 mapping leaves memory
    int head = p == m->lm_head, proj = proj_of(m, p);
    if ((head || proj >= 0) && want_bf && lt_cpu_has_avx512bf16()) {
      int N = (int)p->shape[0], K = (int)p->shape[1];
      int nt = head || lt_model_pack_nt(m, rows, proj);
      b += (int64_t)lt_bf16_prepack_bytes(K, N) + (nt ? (int64_t)lt_bf16_prepack_bytes(N, K) : 0);
      if (stored == 2) b -= p->numel * 2;
    }
  }
  return b + lora_bytes(m, layers);
}

// What the truncated (initialised, owned) model really holds.
static int64_t held_bytes(const lt_model *m) {
  int64_t b = 0;
  for (int i = 0; i < m->nparams; i++) {
    const lt_param *p = &m->params[i];
    if (p->owned) b += p->numel * 4;
    if (p->bf_owned) b += p->numel * 2;
    if (p->g) b += p->numel * 4;
    if (p->pk_nt) b += (int64_t)lt_bf16_prepack_bytes((int)p->shape[0], (int)p->shape[1]);
    if (p->pk_nn) b += (int64_t)lt_bf16_prepack_bytes((int)p->shape[1], (int)p->shape[0]);
  }
  return b + lora_bytes(m, m->cfg.layers);
}

// The measurement runs on one truncated copy with PLAN_LARGE layers; a step of its first PLAN_SMALL layers alone (the
// layer count lowered for that step: the embedding, final norm and LM head run as in a PLAN_SMALL-layer model) takes
// turns with a step of all of them, so that a change in the machine's load (other processes come and go) falls on
// both sizes and cancels in their difference. One copy also keeps the plan's own memory below the run's.
typedef struct {
  lt_train_args a;
  lt_model *m;
  lt_optim *o;
  int32_t *ids;
  int nsz, sz[3];                                 // the sizes run (layer counts, increasing; the last is the copy's)
  int n;                                          // timed turns so far
  double st[3][PLAN_MAX_STEPS], ot[PLAN_MAX_STEPS];  // loss + backward at each size; optimizer
  int64_t rss_delta;                              // what the copy added to the process after its warm-up
} probe;

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

static double median(const double *v, int n) {
  double s[PLAN_MAX_STEPS];
  memcpy(s, v, sizeof(double) * (size_t)n);
  qsort(s, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static double minimum(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++) m = LT_MIN(m, v[i]);
  return m;
}

// Loss + backward of the first `layers` layers (the copy's count restored after), timed into *t.
static int probe_loss(probe *pr, int layers, int B, int T, double *t, lt_err *err) {
  lt_model *m = pr->m;
  int all = m->cfg.layers;
  float loss;
  double t0 = lt_now();
  m->cfg.layers = layers;
  int rc = lt_model_loss(m, pr->ids, NULL, pr->ids, B, T, 1, &loss, err);
  m->cfg.layers = all;
  *t = lt_now() - t0;
  return rc ? lt_err_prefix(err, "plan (%d-layer copy)", layers) : 0;
}

// What the trainer does per optimizer step besides the micro-batches, all of it in proportion to the trainable
// values: clip the gradient norm, step, zero the gradients, refresh the bf16 copies of trained matrices.
static int probe_update(probe *pr, double *t, lt_err *err) {
  double t0 = lt_now();
  lt_clip_grad_norm(pr->m, pr->a.max_grad_norm);
  lt_optim_step(pr->o, 1e-6);
  lt_model_params_updated(pr->m);
  lt_model_zero_grad(pr->m);
  int rc = lt_model_prepare(pr->m, err);
  *t = lt_now() - t0;
  return rc ? lt_err_prefix(err, "plan") : 0;
}

// The copy (random weights, the run's modes; `a` as set up for it), warmed up at every size (first touch of the
// workspace, optimizer state and BLAS buffers).
static int probe_open(probe *pr, const lt_train_args *a0, int nsz, const int *sz, int B, int T, lt_err *err) {
  memset(pr, 0, sizeof *pr);
  pr->a = *a0;
  pr->nsz = nsz;
  memcpy(pr->sz, sz, sizeof(int) * (size_t)nsz);
  int large = sz[nsz - 1];
  int64_t rss0 = lt_rss_bytes();
  const lt_train_args *a = &pr->a;
  if (lt_model_init_layers(&pr->m, a->model_name_or_path, large, a->seed, err) || lt_train_setup(pr->m, a, err))
    return lt_err_prefix(err, "plan (%d-layer copy)", large);
  lt_optim_config oc = {a->optim, a->adam_beta1, a->adam_beta2, a->adam_epsilon, a->weight_decay, a->amsgrad,
                        a->momentum};
  if (lt_optim_new(&pr->o, pr->m, &oc, err)) return lt_err_prefix(err, "plan (%d-layer copy)", large);
  pr->ids = lt_alloc(sizeof(int32_t) * (size_t)B * (size_t)T, err);
  if (!pr->ids) return lt_err_prefix(err, "plan (%d-layer copy)", large);
  for (int64_t i = 0; i < (int64_t)B * T; i++)
    pr->ids[i] = (int32_t)(lt_rng_u64(a->seed, 77, (uint64_t)i) % (uint64_t)pr->m->cfg.vocab);
  double t;
  if (probe_loss(pr, large, B, T, &t, err) || probe_update(pr, &t, err)) return -1;
  for (int j = 0; j + 1 < nsz; j++)
    if (probe_loss(pr, sz[j], B, T, &t, err)) return -1;
  pr->rss_delta = lt_rss_bytes() - rss0;
  return 0;
}

// One turn: loss + backward at each size, then the optimizer step.
static int probe_turn(probe *pr, int B, int T, lt_err *err) {
  int i = pr->n;
  if (i >= PLAN_MAX_STEPS) return 0;
  for (int j = 0; j < pr->nsz; j++)
    if (probe_loss(pr, pr->sz[j], B, T, &pr->st[j][i], err)) return -1;
  if (probe_update(pr, &pr->ot[i], err)) return -1;
  pr->n++;
  return 0;
}

// Workspace bytes of the first `layers` layers at B x T (sized, never touched; freed again).
static int ws_bytes(lt_model *m, int layers, int B, int T, int64_t *bytes, lt_err *err) {
  int all = m->cfg.layers;
  lt_ws_free(&m->ws);
  m->cfg.layers = layers;
  int rc = lt_ws_reserve(m, B, T, err);
  *bytes = m->ws.bytes;
  lt_ws_free(&m->ws);
  m->cfg.layers = all;
  return rc;
}

static void probe_close(probe *pr) {
  lt_free(pr->ids);
  lt_optim_free(pr->o);
  lt_model_free(pr->m);
  memset(pr, 0, sizeof *pr);
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
  lt_plan_shape s = {seq, seq, 0};
  return lt_plan_measure_shape(a, &s, rss_base, p, err);
}

int lt_plan_measure_shape(const lt_train_args *a, const lt_plan_shape *sh, int64_t rss_base, lt_plan *p,
                          lt_err *err) {
  memset(p, 0, sizeof *p);
  int seq = sh->seq, seq_max = LT_MAX(sh->seq, sh->seq_max);
  if (seq < 2 || seq_max > (1 << 20))
    return lt_errf(err, "plan: sequence length %d must be in [2, 1048576]", seq < 2 ? seq : seq_max);
  lt_config cfg;
  int stored = stored_size(a->model_name_or_path, &cfg, err);
  if (stored < 0) return lt_err_prefix(err, "plan");
  double t0 = lt_now();
  if (rss_base <= 0) rss_base = lt_rss_bytes();
  int B = a->per_device_train_batch_size, L = cfg.layers;
  // The copy: min(3, L) layers. Freeze tuning with frozen and trained layers both in the run gives the copy two frozen
  // layers and one trained, run at 1, 2 and 3 layers: a frozen layer costs the 2 - 1 difference, a trained one the
  // 3 - 2. Otherwise all layers cost the same: sizes 1 and 3. A copy of the whole depth is the run's model itself.
  lt_train_args ca = *a;
  ca.adapter_name_or_path[0] = 0;  // a fresh adapter of the configured rank stands in for a saved one
  int large = LT_MIN(PLAN_LARGE, L), ntr = L, mixed = 0;
  if (a->finetuning_type == LT_FT_FREEZE) {
    ntr = abs(a->freeze_trainable_layers);
    if (ntr > L) return lt_errf(err, "plan: freeze_trainable_layers %d: the model has %d layers",
                                a->freeze_trainable_layers, L);
    mixed = ntr < L && large < L;
    ca.freeze_trainable_layers = mixed ? 1 : a->freeze_trainable_layers;
  }
  int sz[3] = {LT_MIN(PLAN_SMALL, L), 2, large}, nsz = mixed ? 3 : (large > sz[0] ? 2 : 1);
  if (nsz == 2) sz[1] = large;
  probe pr;
  int rc = probe_open(&pr, &ca, nsz, sz, B, seq, err);
  // At least 3 turns and PLAN_MIN_S in all; a layer costs the median of the turns' differences between sizes, per
  // layer. A layer must cost time: when the load moved so much that it seems not to, more turns, then the fastest
  // steps (other work only ever adds time to a step).
  double lay[2] = {0, 0}, total = 0;  // per layer: frozen (or any) and trained
  for (int pass = 0; rc == 0 && pass < 2; pass++) {
    for (int turn = 0; rc == 0 && pr.n < PLAN_MAX_STEPS && (turn < 3 || total < PLAN_MIN_S * (pass + 1)); turn++) {
      double t = lt_now();
      rc = probe_turn(&pr, B, seq, err);
      total += lt_now() - t;
    }
    if (rc || nsz == 1) break;
    int ok = 1, last = pass == 1 || pr.n == PLAN_MAX_STEPS;
    for (int j = 0; j + 1 < nsz; j++) {
      double d[PLAN_MAX_STEPS], w = pr.sz[j + 1] - pr.sz[j];
      for (int i = 0; i < pr.n; i++) d[i] = pr.st[j + 1][i] - pr.st[j][i];
      lay[j] = median(d, pr.n) / w;
      if (lay[j] <= 0 && last) lay[j] = (minimum(pr.st[j + 1], pr.n) - minimum(pr.st[j], pr.n)) / w;
      if (lay[j] <= 0) ok = 0;
      if (lay[j] <= 0 && last)
        rc = lt_errf(err, "plan: %d layers measured no slower than %d (%.3f s vs %.3f s per step): this machine is "
                     "too busy to measure", pr.sz[j + 1], pr.sz[j], median(pr.st[j + 1], pr.n),
                     median(pr.st[j], pr.n));
    }
    if (ok || rc) break;
  }
  if (!mixed) lay[1] = lay[0];
  // per-size memory: the workspace at the timed and the longest shape, the weights' views, the trainable values
  double ws[3], wsx[3], real[3], optim[3], ntrain[3], t_small = 0, opt_s = 0;
  for (int j = 0; rc == 0 && j < nsz; j++) {
    int64_t b1 = 0, b2 = 0;
    rc = ws_bytes(pr.m, pr.sz[j], B, seq, &b1, err) || ws_bytes(pr.m, pr.sz[j], B, seq_max, &b2, err) ? -1 : 0;
    ws[j] = (double)b1;
    wsx[j] = (double)b2;
    real[j] = (double)real_bytes(pr.m, stored, pr.sz[j], (int64_t)B * seq_max);
    optim[j] = (double)optim_bytes(pr.m, &pr.a, pr.sz[j]);
    ntrain[j] = (double)train_numel(pr.m, pr.sz[j]);
  }
  if (rc) {
    probe_close(&pr);
    return -1;
  }
  t_small = median(pr.st[0], pr.n);
  opt_s = median(pr.ot, pr.n);
  double held = (double)held_bytes(pr.m), rss_delta = (double)pr.rss_delta;
  probe_close(&pr);
  // v(L) = v(1) + (frozen layers beyond the first) x v_frozen + (trained layers) x v_trained for mixed freeze
  // tuning, else v(1) + (L - 1) x (v(large) - v(1)) / (large - 1); exactly v(L) when the copy has every layer
  int n0 = sz[0], top = nsz - 1;
  double kf = mixed ? (double)(L - ntr - n0) : 0, kt = mixed ? (double)ntr : (nsz > 1 ? (double)(L - n0) : 0);
#define EXTRA(v)                                                                                                      \
  (mixed ? (v)[0] + kf * ((v)[1] - (v)[0]) + kt * ((v)[2] - (v)[1])                                                   \
         : (v)[0] + (nsz > 1 ? kt * ((v)[top] - (v)[0]) / (double)(sz[top] - n0) : 0.0))
  p->layers = L;
  p->batch = B;
  p->seq = seq;
  p->seq_max = seq_max;
  p->grad_accum = a->gradient_accumulation_steps;
  p->threads = omp_get_max_threads();
  // The embedding and LM head cost time too: noise that makes the fixed part negative overstates the slope.
  if (lay[0] > t_small / n0) lay[0] = t_small / n0;
  if (!mixed) lay[1] = lay[0];
  double fixed = t_small - n0 * lay[0];
  p->micro_s = fixed + (L - (mixed ? ntr : 0)) * lay[0] + (mixed ? ntr : 0) * lay[1];
  p->fixed_s = fixed;
  p->layer_s = (p->micro_s - fixed) / L;  // mean over the layers
  // the optimizer runs over the copy's trainable values: as many more as the full model has
  p->opt_s = ntrain[top] > 0 ? opt_s * EXTRA(ntrain) / ntrain[top] : opt_s;
  p->step_s = p->grad_accum * p->micro_s + p->opt_s;
  p->tokens_micro = sh->tokens > 0 ? sh->tokens : (double)B * seq;
  p->tokens_per_s = p->tokens_micro * p->grad_accum / p->step_s;
  p->mem_weights = EXTRA(real);
  p->mem_optim = EXTRA(optim);
  p->mem_work = EXTRA(wsx);
  // runtime overhead seen on the copy beyond what it holds (never negative), plus the process so far
  double over = rss_delta - held - optim[top] - ws[top];
  p->mem_runtime = (double)rss_base + (over > 0 ? over : 0.0);
  p->mem_peak = p->mem_weights + p->mem_optim + p->mem_work + p->mem_runtime;
  p->measure_s = lt_now() - t0;
#undef EXTRA
  if (!(p->step_s > 0) || !isfinite(p->step_s)) return lt_errf(err, "plan: the measured step time is not usable");
  return 0;
}

int lt_plan_shape_of(const lt_train_args *a, const lt_dataset *d, int64_t max_steps, lt_plan_shape *s, lt_err *err) {
  memset(s, 0, sizeof *s);
  if (!d || d->n <= 0) return lt_errf(err, "plan: no training examples");
  int64_t n = d->n, bs = a->per_device_train_batch_size, ga = a->gradient_accumulation_steps;
  int64_t len_dl = (n + bs - 1) / bs, nmb = len_dl;
  if (max_steps > 0 && max_steps * ga < len_dl) nmb = max_steps * ga;  // a part of the first epoch
  int32_t *perm = lt_alloc(sizeof(int32_t) * (size_t)n, err);
  if (!perm) return lt_err_prefix(err, "plan");
  if (a->disable_shuffling)
    for (int i = 0; i < d->n; i++) perm[i] = i;
  else
    lt_shuffle_perm(perm, d->n, a->seed, 0);  // the trainer's order of the first epoch
  double padded = 0, tokens = 0;
  int longest = 0;
  for (int64_t k = 0; k < nmb; k++) {
    int64_t i0 = k * bs, i1 = LT_MIN(i0 + bs, n);
    int T = 0;
    for (int64_t i = i0; i < i1; i++) {
      const lt_example *e = &d->ex[perm[i]];
      T = LT_MAX(T, e->len);
      if (!e->attn) tokens += e->len;
      else
        for (int j = 0; j < e->len; j++) tokens += e->attn[j] != 0;
    }
    padded += (double)(i1 - i0) * T;
    longest = LT_MAX(longest, T);
  }
  lt_free(perm);
  if (nmb == len_dl)  // later epochs batch other examples together: any example can be in the longest batch
    for (int i = 0; i < d->n; i++) longest = LT_MAX(longest, d->ex[i].len);
  s->seq = LT_MAX((int)ceil(padded / ((double)nmb * (double)bs)), 2);
  s->seq_max = LT_MAX(longest, s->seq);
  s->tokens = tokens / (double)nmb;
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
  char method[320], run[128], dur[32], shape[160];
  if (a->finetuning_type == LT_FT_LORA) snprintf(method, sizeof method, "LoRA r=%d (%s)", a->lora_rank, a->lora_target);
  else snprintf(method, sizeof method, "%s", a->finetuning_type == LT_FT_FULL ? "full" : "freeze");
  if (steps > 0) {
    fmt_dur(dur, sizeof dur, (double)steps * p->step_s);
    snprintf(run, sizeof run, "%lld optimizer steps -> %s", (long long)steps, dur);
  } else {
    fmt_dur(dur, sizeof dur, 1000.0 * p->step_s);
    snprintf(run, sizeof run, "%s per 1000 optimizer steps (steps unknown: give max_steps or a dataset)", dur);
  }
  if (p->seq_max != p->seq || fabs(p->tokens_micro - (double)p->batch * p->seq) > 0.5)
    snprintf(shape, sizeof shape, "batch %d x %d tokens (mean padded length, longest %d; %.0f non-padding tokens)",
             p->batch, p->seq, p->seq_max, p->tokens_micro);
  else
    snprintf(shape, sizeof shape, "batch %d x %d tokens", p->batch, p->seq);
  int n = snprintf(out, cap,
                   "plan: %d layers, %s, %s, %s, gradient accumulation %d, %d threads%s\n"
                   "  speed: %.1f tokens/s, %.3f s per optimizer step (per micro-batch: %.3f s fixed + %.4f s x %d "
                   "layers; optimizer %.3f s)\n"
                   "  run: %s\n"
                   "  peak memory: %.2f GiB = weights %.2f + trainable state & optimizer %.2f + activations & "
                   "workspace %.2f + runtime %.2f\n"
                   "  (measured on a %d-layer copy of the model in %.1f s)\n",
                   p->layers, method, a->bf16 ? "bf16 compute" : "f32 compute", shape, p->grad_accum,
                   p->threads, a->gradient_checkpointing ? ", gradient checkpointing" : "", p->tokens_per_s,
                   p->step_s, p->fixed_s, p->layer_s, p->layers, p->opt_s, run, p->mem_peak / G, p->mem_weights / G,
                   p->mem_optim / G, p->mem_work / G, p->mem_runtime / G, LT_MIN(PLAN_LARGE, p->layers),
                   p->measure_s);
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

char *lt_plan_json(const lt_plan *p, int64_t steps) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, "layers", p->layers);
  cJSON_AddNumberToObject(o, "batch", p->batch);
  cJSON_AddNumberToObject(o, "seq", p->seq);
  cJSON_AddNumberToObject(o, "seq_max", p->seq_max);
  cJSON_AddNumberToObject(o, "tokens_per_micro_batch", p->tokens_micro);
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
