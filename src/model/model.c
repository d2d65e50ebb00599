// model: load a Hugging Face folder into lt_model (weights as mmap views), train modes, registry, info.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/model.h"

static const char *const proj_names[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                          "mlp.down_proj"};

const char *lt_proj_name(int id) { return proj_names[id]; }

// A weight of a freshly initialised model (lt_model_init): no stored tensor, owned zeroed f32 storage.
static int fresh_param(lt_param *p, const char *name, int64_t d0, int64_t d1, lt_err *err) {
  int nd = d1 > 0 ? 2 : 1;
  snprintf(p->name, sizeof p->name, "%s", name);
  p->ndim = nd;
  p->shape[0] = d0;
  p->shape[1] = nd == 2 ? d1 : 1;
  p->numel = d0 * (nd == 2 ? d1 : 1);
  p->dtype = LT_DTYPE_F32;
  p->st = NULL;
  p->w = lt_alloc((size_t)p->numel * sizeof(float), err);
  if (!p->w) return lt_err_prefix(err, "%s", name);
  p->owned = 1;
  return 0;
}

// Bind param p to tensor `name`, checking shape; optional tensors may be absent (returns 1). Without checkpoint
// files (lt_model_init) every weight is created instead.
static int bind(lt_model *m, lt_param *p, const char *name, int64_t d0, int64_t d1, int optional, lt_err *err) {
  if (m->weights.nfiles == 0) return fresh_param(p, name, d0, d1, err);
  const char *file = NULL;
  const lt_st_tensor *t = lt_weights_find(&m->weights, name, &file);
  if (!t) {
    if (optional) return 1;
    return lt_errf(err, "%s: tensor \"%s\" is missing from the checkpoint", m->dir, name);
  }
  int nd = d1 > 0 ? 2 : 1;
  if (t->ndim != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1)) {
    char got[96] = "";
    int off = 0;
    for (int i = 0; i < t->ndim && off < 80; i++)
      off += snprintf(got + off, sizeof got - (size_t)off, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (nd == 2)
      return lt_errf(err, "%s: tensor \"%s\" has shape [%s], expected [%lld, %lld] from config.json", file, name, got,
                     (long long)d0, (long long)d1);
    return lt_errf(err, "%s: tensor \"%s\" has shape [%s], expected [%lld] from config.json", file, name, got,
                   (long long)d0);
  }
  if (t->dtype != LT_DTYPE_F32 && t->dtype != LT_DTYPE_BF16 && t->dtype != LT_DTYPE_F16)
    return lt_errf(err, "%s: tensor \"%s\" has dtype %s; supported: F32, BF16, F16", file, name,
                   lt_dtype_name(t->dtype));
  snprintf(p->name, sizeof p->name, "%s", name);
  p->ndim = nd;
  p->shape[0] = d0;
  p->shape[1] = nd == 2 ? d1 : 1;
  p->numel = d0 * (nd == 2 ? d1 : 1);
  p->dtype = t->dtype;
  p->st = t;
  if (t->dtype == LT_DTYPE_F32 && ((uintptr_t)t->data % sizeof(float)) == 0)
    p->w = (float *)(uintptr_t)t->data;  // view into the read-only mapping; never written
  if (t->dtype == LT_DTYPE_BF16 && ((uintptr_t)t->data % sizeof(uint16_t)) == 0)
    p->bf = (const uint16_t *)(const void *)t->data;
  return 0;
}

void lt_param_unpack(lt_param *p) {
  lt_free(p->pk_nt);
  lt_free(p->pk_nn);
  p->pk_nt = p->pk_nn = NULL;
}

// The NN packed form of a frozen bf16 matrix (lt_bf16_prepack), and the NT form too when nt: made once, for the
// products of every training step. A mapped matrix leaves memory afterwards (no product reads it again; the LM
// head's embedding lookups read back the few rows they need).
static int param_pack(lt_param *p, int nt, lt_err *err) {
  if (p->pk_nn && (!nt || p->pk_nt)) return 0;
  if (!p->bf || p->g || p->ndim != 2) return lt_errf(err, "%s: only a frozen bf16 matrix can be pre-packed", p->name);
  int N = (int)p->shape[0], K = (int)p->shape[1];
  size_t bnt = nt ? lt_bf16_prepack_bytes(N, K) : 0, bnn = lt_bf16_prepack_bytes(K, N);
  lt_param_unpack(p);
  p->pk_nn = lt_alloc(bnn, err);
  if (p->pk_nn && nt) p->pk_nt = lt_alloc(bnt, err);
  if (!p->pk_nn || (nt && !p->pk_nt)) {
    lt_param_unpack(p);
    return lt_err_prefix(err, "packed copies of %s (%.0f MB)", p->name, (double)(bnt + bnn) / 1e6);
  }
  if (nt) lt_bf16_prepack(p->pk_nt, p->bf, N, K, 0);
  lt_bf16_prepack(p->pk_nn, p->bf, K, N, 1);
  if (!p->bf_owned) lt_drop_mapped_pages(p->bf, (size_t)p->numel * sizeof(uint16_t));
  return 0;
}

int lt_param_pack(lt_param *p, lt_err *err) { return param_pack(p, 1, err); }

// The layers' matrices: the NT panels are built from the NN form (lt_gemm_nt_out.pkt) unless lt_model_pack_nt.
int lt_param_pack_nn(lt_param *p, lt_err *err) { return param_pack(p, 0, err); }

int lt_model_pack_nt(const lt_model *m, int64_t rows, int j) {
  return !m->grad_ckpt && (rows <= LT_PACK_NT_ROWS || (j != LT_GATE && j != LT_UP));
}

// bf16 copies of trainable matrices (bf16 compute): products use them as autocast uses its per-step casts.
static void refresh_shadows(lt_model *m) {
  for (int i = 0; i < m->nparams; i++) {
    lt_param *p = &m->params[i];
    if (!p->bf_shadow) continue;
    lt_f32_to_bf16_n((uint16_t *)p->bf, p->w, p->numel);
  }
  m->bf_stale = 0;
}

void lt_model_params_updated(lt_model *m) { m->bf_stale = 1; }

// Views the current compute and train modes need: f32 for norms and biases, trainable weights and f32 compute;
// bf16 for frozen matrices under bf16 compute, plus bf16 copies of trainable matrices (refreshed after updates).
// Conversions of frozen weights happen once; mapped views cost nothing.
int lt_model_prepare(lt_model *m, lt_err *err) {
  if (m->views_ready) {
    if (m->bf_stale) refresh_shadows(m);
    return 0;
  }
  for (int i = 0; i < m->nparams; i++) {
    lt_param *p = &m->params[i];
    int shadow = m->compute == LT_COMPUTE_BF16 && p->ndim == 2 && p->g;
    int want_bf = m->compute == LT_COMPUTE_BF16 && p->ndim == 2 && !p->g;
    int want_f32 = !want_bf;
    if (!want_bf) lt_param_unpack(p);  // trained or f32 compute now: the packed panels would be stale or unused
    if (!shadow && p->bf_shadow) {  // no longer trained in bf16: drop the copy
      lt_free((void *)p->bf);
      p->bf = NULL;
      p->bf_owned = p->bf_shadow = 0;
    }
    if (!p->w && !p->st) return lt_errf(err, "%s: weight \"%s\" has no values", m->dir, p->name);
    if (want_f32 && !p->w) {
      p->w = lt_alloc((size_t)p->numel * sizeof(float), err);
      if (!p->w) return lt_err_prefix(err, "%s", p->name);
      p->owned = 1;
      if (lt_tensor_to_f32(p->st, p->w, err)) return lt_err_prefix(err, "%s", m->dir);
    }
    if (shadow) {
      if (!p->bf_shadow) {
        if (p->bf_owned) lt_free((void *)p->bf);
        p->bf = lt_alloc((size_t)p->numel * sizeof(uint16_t), err);
        if (!p->bf) return lt_err_prefix(err, "bf16 copy of %s", p->name);
        p->bf_owned = p->bf_shadow = 1;
      }
      continue;
    }
    if (want_bf && !p->bf) {
      uint16_t *b = lt_alloc((size_t)p->numel * sizeof(uint16_t), err);
      if (!b) return lt_err_prefix(err, "%s", p->name);
      p->bf = b;
      p->bf_owned = 1;
      if (p->w) {
        for (int64_t k = 0; k < p->numel; k++) b[k] = lt_f32_to_bf16(p->w[k]);
      } else {
        float row[1024];
        for (int64_t k0 = 0; k0 < p->numel; k0 += 1024) {
          int64_t n = LT_MIN(1024, p->numel - k0);
          lt_st_tensor part = *p->st;
          part.data += (size_t)k0 * lt_dtype_size(part.dtype);
          part.numel = n;
          part.nbytes = (size_t)n * lt_dtype_size(part.dtype);
          if (lt_tensor_to_f32(&part, row, err)) return lt_err_prefix(err, "%s", m->dir);
          for (int64_t k = 0; k < n; k++) b[k0 + k] = lt_f32_to_bf16(row[k]);
        }
      }
    }
  }
  refresh_shadows(m);
  m->views_ready = 1;
  return 0;
}

int lt_model_set_compute(lt_model *m, lt_compute c, lt_err *err) {
  if (c != LT_COMPUTE_F32 && c != LT_COMPUTE_BF16) return lt_errf(err, "unknown compute precision %d", (int)c);
  if (c != m->compute) {
    m->compute = c;
    m->views_ready = 0;
    lt_ws_free(&m->ws);
  }
  return lt_model_prepare(m, err);
}

int lt_model_set_grad_checkpointing(lt_model *m, int on, lt_err *err) {
  (void)err;
  if (!!on != m->grad_ckpt) {
    m->grad_ckpt = !!on;
    lt_ws_free(&m->ws);
  }
  return 0;
}

static int load_weights(lt_model *m, lt_err *err) {
  const lt_config *c = &m->cfg;
  int C = c->hidden, HD = c->heads * c->head_dim, KVD = c->kv_heads * c->head_dim, F = c->ffn;
  int per_layer = 2 + 2 + 14;  // norms, q/k norms, 7 weights + 7 biases
  m->params = lt_alloc(sizeof(lt_param) * (size_t)(3 + per_layer * c->layers), err);
  m->layer = lt_alloc(sizeof(lt_layer) * (size_t)c->layers, err);
  if (!m->params || !m->layer) return -1;
  int n = 0;
  char name[160];
  m->embed = &m->params[n++];
  if (bind(m, m->embed, "model.embed_tokens.weight", c->vocab, C, 0, err)) return -1;
  for (int l = 0; l < c->layers; l++) {
    lt_layer *L = &m->layer[l];
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    L->ln1 = &m->params[n++];
    if (bind(m, L->ln1, name, C, 0, 0, err)) return -1;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
    L->ln2 = &m->params[n++];
    if (bind(m, L->ln2, name, C, 0, 0, err)) return -1;
    if (c->qk_norm) {
      snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", l);
      L->qn = &m->params[n++];
      if (bind(m, L->qn, name, c->head_dim, 0, 0, err)) return -1;
      snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", l);
      L->kn = &m->params[n++];
      if (bind(m, L->kn, name, c->head_dim, 0, 0, err)) return -1;
    }
    const int outs[7] = {HD, KVD, KVD, C, F, F, C}, ins[7] = {C, C, C, HD, C, C, F};
    const int bias[7] = {c->qkv_bias, c->qkv_bias, c->qkv_bias, c->o_bias, c->mlp_bias, c->mlp_bias, c->mlp_bias};
    for (int j = 0; j < 7; j++) {
      lt_linear *p = &L->proj[j];
      p->in = ins[j];
      p->out = outs[j];
      p->id = j;
      snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, proj_names[j]);
      p->w = &m->params[n++];
      if (bind(m, p->w, name, outs[j], ins[j], 0, err)) return -1;
      if (bias[j]) {
        snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, proj_names[j]);
        p->b = &m->params[n++];
        if (bind(m, p->b, name, outs[j], 0, 0, err)) return -1;
      }
    }
  }
  m->norm = &m->params[n++];
  if (bind(m, m->norm, "model.norm.weight", C, 0, 0, err)) return -1;
  if (c->tied) {
    m->lm_head = m->embed;
  } else {
    m->lm_head = &m->params[n++];
    if (bind(m, m->lm_head, "lm_head.weight", c->vocab, C, 0, err)) return -1;
  }
  m->nparams = n;
  return 0;
}

// Load (fresh == 0: config.json + safetensors) or create (fresh: config.json only, weights zeroed) a model.
// layers > 0 (fresh models only): keep the first `layers` decoder layers of the config
static int model_open(lt_model **out, const char *dir, int fresh, int layers, lt_err *err) {
  *out = NULL;
  lt_model *m = lt_alloc(sizeof *m, err);
  if (!m) return -1;
  snprintf(m->dir, sizeof m->dir, "%s", dir);
  int rc = lt_config_load(&m->cfg, dir, err);
  if (!rc && fresh && layers > 0) m->cfg.layers = LT_MIN(layers, m->cfg.layers);
  if (rc || (!fresh && lt_weights_open(&m->weights, dir, err)) || load_weights(m, err)) {
    lt_model_free(m);
    return -1;
  }
  m->inv_freq = lt_alloc(sizeof(float) * (size_t)(m->cfg.head_dim / 2), err);
  if (!m->inv_freq) {
    lt_model_free(m);
    return -1;
  }
  lt_rope_inv_freq(&m->cfg, m->inv_freq);
  m->mode = LT_TRAIN_FROZEN;
  *out = m;
  return 0;
}

int lt_model_load(lt_model **out, const char *dir, lt_err *err) { return model_open(out, dir, 0, 0, err); }

// w[k] ~ normal(0, std): Box-Muller over pairs of counter-RNG uniforms, (stream, 2j) and (stream, 2j+1) giving
// elements 2j and 2j+1, so the values depend only on (seed, stream), not on the thread count.
static void init_normal(float *w, int64_t n, double std, uint64_t seed, uint64_t stream) {
  const double two_pi = 6.28318530717958647692;
  int64_t pairs = (n + 1) / 2;
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < pairs; j++) {
    double u1 = 1.0 - (double)lt_rng_uniform(seed, stream, (uint64_t)(2 * j));  // (0, 1]
    double u2 = (double)lt_rng_uniform(seed, stream, (uint64_t)(2 * j + 1));
    double r = std * sqrt(-2.0 * log(u1)), th = two_pi * u2;
    w[2 * j] = (float)(r * cos(th));
    if (2 * j + 1 < n) w[2 * j + 1] = (float)(r * sin(th));
  }
}

static uint64_t name_stream(const char *s) {  // FNV-1a: a weight's values do not depend on its position
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

int lt_model_init(lt_model **out, const char *dir, uint64_t seed, lt_err *err) {
  return lt_model_init_layers(out, dir, 0, seed, err);
}

int lt_model_init_layers(lt_model **out, const char *dir, int layers, uint64_t seed, lt_err *err) {
  if (model_open(out, dir, 1, layers, err)) return -1;
  lt_model *m = *out;
  const lt_config *c = &m->cfg;
  // As transformers' PreTrainedModel._init_weights: Linear and Embedding weights ~ normal(0, initializer_range),
  // biases 0, RMSNorm weights (q_norm / k_norm too) 1, the embedding's padding_idx row 0; a tied lm_head is the
  // embedding itself.
  for (int i = 0; i < m->nparams; i++) {
    lt_param *p = &m->params[i];
    size_t len = strlen(p->name);
    if (p->ndim == 2) {
      init_normal(p->w, p->numel, c->init_std, seed, name_stream(p->name));
    } else if (len >= 5 && strcmp(p->name + len - 5, ".bias") == 0) {
      memset(p->w, 0, (size_t)p->numel * sizeof(float));
    } else {
      for (int64_t k = 0; k < p->numel; k++) p->w[k] = 1.0f;
    }
  }
  if (c->pad_id >= 0 && c->pad_id < c->vocab)
    memset(m->embed->w + (size_t)c->pad_id * (size_t)c->hidden, 0, (size_t)c->hidden * sizeof(float));
  return 0;
}

static void free_grads(lt_model *m) {
  for (int i = 0; i < m->nparams; i++) {
    lt_free(m->params[i].g);
    m->params[i].g = NULL;
  }
}

void lt_model_free(lt_model *m) {
  if (!m) return;
  lt_ws_free(&m->ws);
  lt_lora_free(m);
  if (m->params) {
    free_grads(m);
    for (int i = 0; i < m->nparams; i++) {
      if (m->params[i].owned) lt_free(m->params[i].w);
      if (m->params[i].bf_owned) lt_free((void *)(uintptr_t)m->params[i].bf);
      lt_param_unpack(&m->params[i]);
    }
  }
  lt_free(m->params);
  lt_free(m->layer);
  lt_free(m->inv_freq);
  lt_free(m->train);
  lt_weights_close(&m->weights);
  lt_free(m);
}

int lt_model_set_train_mode(lt_model *m, lt_train_mode mode, const lt_lora_config *lora, lt_err *err) {
  lt_lora_free(m);
  free_grads(m);
  m->mode = mode;
  m->views_ready = 0;
  lt_ws_free(&m->ws);
  if (mode == LT_TRAIN_FULL) {
    for (int i = 0; i < m->nparams; i++) {  // gradients first: trainable weights then get f32 views only
      m->params[i].g = lt_alloc((size_t)m->params[i].numel * sizeof(float), err);
      if (!m->params[i].g) return -1;
    }
    if (lt_model_prepare(m, err)) return -1;
    for (int i = 0; i < m->nparams; i++) {
      lt_param *p = &m->params[i];
      if (!p->owned) {  // trainable weights must own their f32 storage
        float *w = lt_alloc((size_t)p->numel * sizeof(float), err);
        if (!w) return -1;
        memcpy(w, p->w, (size_t)p->numel * sizeof(float));
        p->w = w;
        p->owned = 1;
      }
    }
  } else if (mode == LT_TRAIN_LORA) {
    if (!lora) return lt_errf(err, "LoRA mode needs a LoRA configuration");
    if (lt_lora_alloc(m, lora, err)) return -1;
  }
  if (lt_model_prepare(m, err)) return -1;
  return lt_registry_build(m, err);
}

void lt_model_zero_grad(lt_model *m) {
  m->bf_stale = 1;  // a new step: values may have changed since the last forward
  // (the threads share the matrices: hundreds of small ones under LoRA)
#pragma omp parallel for schedule(dynamic, 1) if (m->ntrain > 1)
  for (int i = 0; i < m->ntrain; i++) memset(m->train[i].g, 0, (size_t)m->train[i].numel * sizeof(float));
}

int lt_model_num_params(const lt_model *m) { return m->nparams; }

int64_t lt_model_param_count(const lt_model *m) {
  int64_t n = 0;
  for (int i = 0; i < m->nparams; i++) n += m->params[i].numel;
  return n;
}

int lt_model_num_trainable(const lt_model *m) { return m->ntrain; }

int lt_model_trainable(const lt_model *m, int i, const char **name, float **w, float **g, int64_t *numel,
                       int64_t shape[2]) {
  if (i < 0 || i >= m->ntrain) return -1;
  const lt_trainable *t = &m->train[i];
  if (name) *name = t->name;
  if (w) *w = t->w;
  if (g) *g = t->g;
  if (numel) *numel = t->numel;
  if (shape) {
    shape[0] = t->shape[0];
    shape[1] = t->shape[1];
  }
  return 0;
}

void lt_model_get_info(const lt_model *m, lt_model_info *info) {
  const lt_config *c = &m->cfg;
  memset(info, 0, sizeof *info);
  info->architecture = c->architecture;
  info->model_type = c->model_type;
  info->dtype = lt_dtype_name(m->embed->dtype);
  info->vocab = c->vocab;
  info->hidden = c->hidden;
  info->layers = c->layers;
  info->heads = c->heads;
  info->kv_heads = c->kv_heads;
  info->head_dim = c->head_dim;
  info->ffn = c->ffn;
  info->tied = c->tied;
  info->params = lt_model_param_count(m);
  info->n_eos = c->n_eos;
  info->eos_ids = c->eos;
}
