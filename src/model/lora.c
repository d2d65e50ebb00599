// LoRA: adapters as PEFT defines them (A (r,in) Kaiming-uniform, B (out,r) zero, scale alpha/r or alpha/sqrt(r)),
// PEFT adapter folders, dropout, and the trainable-parameter registry.
#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

const char *lt_proj_name(int id);

static const char *const short_names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

int lt_lora_parse_targets(const char *list, unsigned *mask, lt_err *err) {
  *mask = 0;
  if (!list || !*list) return lt_errf(err, "empty LoRA target list; use e.g. q_proj,v_proj or all");
  const char *s = list;
  while (*s) {
    const char *e = strchr(s, ',');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    while (n && (*s == ' ')) s++, n--;
    while (n && s[n - 1] == ' ') n--;
    int found = 0;
    if (n == 3 && strncmp(s, "all", 3) == 0) {
      *mask |= LT_LORA_ALL;
      found = 1;
    }
    for (int j = 0; j < 7 && !found; j++)
      if (strlen(short_names[j]) == n && strncmp(s, short_names[j], n) == 0) {
        *mask |= 1u << j;
        found = 1;
      }
    if (!found)
      return lt_errf(err, "unknown LoRA target \"%.*s\"; choose from q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,"
                     "down_proj or all", (int)n, s);
    if (!e) break;
    s = e + 1;
  }
  return 0;
}

// Give p its own f32 values (a copy of vals, or of its current values) and drop its bf16 view, which no longer
// matches; the caller re-prepares the views.
static int own_values(lt_model *m, lt_param *p, const float *vals, lt_err *err) {
  if (!p->owned || vals) {
    float *w = lt_alloc((size_t)p->numel * sizeof(float), err);
    if (!w) return -1;
    if (vals) {
      memcpy(w, vals, (size_t)p->numel * sizeof(float));
    } else if (p->w) {
      memcpy(w, p->w, (size_t)p->numel * sizeof(float));
    } else if (lt_tensor_to_f32(p->st, w, err)) {
      lt_free(w);
      return lt_err_prefix(err, "%s", m->dir);
    }
    if (p->owned) lt_free(p->w);
    p->w = w;
    p->owned = 1;
  }
  if (p->bf_owned) lt_free((void *)p->bf);
  p->bf = NULL;
  p->bf_owned = p->bf_shadow = 0;
  m->views_ready = 0;
  return 0;
}

void lt_lora_free(lt_model *m) {
  if (!m->loras) return;
  for (int i = 0; i < m->cfg.layers * 7; i++) {
    lt_lora *a = &m->loras[i];
    lt_free(a->A);
    lt_free(a->B);
    lt_free(a->gA);
    lt_free(a->gB);
  }
  lt_free(m->loras);
  m->loras = NULL;
  for (int l = 0; m->layer && l < m->cfg.layers; l++)
    for (int j = 0; j < 7; j++) m->layer[l].proj[j].lora = NULL;
}

int lt_lora_max_r(const lt_model *m) {
  int r = 0;
  if (m->loras)
    for (int i = 0; i < m->cfg.layers * 7; i++) r = LT_MAX(r, m->loras[i].r);
  return r;
}

static float lora_scale(float alpha, int r, int rslora) { return rslora ? alpha / sqrtf((float)r) : alpha / (float)r; }

// Allocate one adapter slot (zeroed A and B).
static int slot_alloc(lt_model *m, int l, int j, int r, float scale, lt_err *err) {
  lt_linear *p = &m->layer[l].proj[j];
  lt_lora *a = &m->loras[l * 7 + j];
  a->r = r;
  a->in = p->in;
  a->out = p->out;
  a->scale = scale;
  snprintf(a->nameA, sizeof a->nameA, "base_model.model.model.layers.%d.%s.lora_A.weight", l, lt_proj_name(j));
  snprintf(a->nameB, sizeof a->nameB, "base_model.model.model.layers.%d.%s.lora_B.weight", l, lt_proj_name(j));
  size_t na = (size_t)r * (size_t)p->in, nb = (size_t)p->out * (size_t)r;
  a->A = lt_alloc(na * sizeof(float), err);
  a->B = lt_alloc(nb * sizeof(float), err);
  a->gA = lt_alloc(na * sizeof(float), err);
  a->gB = lt_alloc(nb * sizeof(float), err);
  if (!a->A || !a->B || !a->gA || !a->gB) return -1;
  p->lora = a;
  return 0;
}

int lt_lora_alloc(lt_model *m, const lt_lora_config *cfg, lt_err *err) {
  if (cfg->r <= 0 || cfg->r > 4096) return lt_errf(err, "LoRA rank r=%d must be in [1, 4096]", cfg->r);
  if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
    return lt_errf(err, "lora_dropout %g must be in [0, 1)", (double)cfg->dropout);
  if (!(cfg->targets & LT_LORA_ALL)) return lt_errf(err, "no LoRA target modules selected");
  m->lora_cfg = *cfg;
  m->loras = lt_alloc(sizeof(lt_lora) * (size_t)(m->cfg.layers * 7), err);
  if (!m->loras) return -1;
  float scale = lora_scale(cfg->alpha, cfg->r, cfg->use_rslora);
  for (int l = 0; l < m->cfg.layers; l++)
    for (int j = 0; j < 7; j++) {
      if (!(cfg->targets & (1u << j))) continue;
      if (slot_alloc(m, l, j, cfg->r, scale, err)) return -1;
      lt_lora *a = &m->loras[l * 7 + j];
      // kaiming_uniform_(a=sqrt(5)) on (r, in): bound = 1/sqrt(in)
      float bound = 1.0f / sqrtf((float)a->in);
      uint64_t stream = 0x10a0000ull + (uint64_t)(l * 7 + j);
      for (int64_t i = 0; i < (int64_t)a->r * a->in; i++)
        a->A[i] = (2.0f * lt_rng_uniform(cfg->seed, stream, (uint64_t)i) - 1.0f) * bound;
    }
  return 0;
}

int lt_lora_has_dropout(const lt_model *m) { return m->lora_cfg.dropout > 0.0f; }

const float *lt_lora_dropout(const lt_model *m, int l, int proj, const float *x, float *out, int N, int in, int train) {
  float p = m->lora_cfg.dropout;
  if (!train || p <= 0.0f) return x;
  float keep = 1.0f / (1.0f - p);
  uint64_t stream = (m->step << 16) ^ ((uint64_t)l << 3) ^ (uint64_t)proj ^ 0xd50000000000ull;
  int64_t n = (int64_t)N * in;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++)
    out[i] = lt_rng_uniform(m->lora_cfg.seed, stream, (uint64_t)i) < p ? 0.0f : x[i] * keep;
  return out;
}

// ---- PEFT adapter folders ----

static int target_matches(const cJSON *targets, regex_t *re, int use_re, const char *module, const char *shortname) {
  if (use_re) return regexec(re, module, 0, NULL, 0) == 0;
  const cJSON *t;
  cJSON_ArrayForEach(t, targets) {
    if (!cJSON_IsString(t)) continue;
    size_t lm = strlen(module), lt = strlen(t->valuestring);
    // PEFT: exact name or a suffix after '.'
    if (strcmp(t->valuestring, shortname) == 0 || strcmp(t->valuestring, module) == 0 ||
        (lm > lt && strcmp(module + lm - lt, t->valuestring) == 0 && module[lm - lt - 1] == '.'))
      return 1;
  }
  return 0;
}

static int nonempty(const cJSON *v) {
  if (!v || cJSON_IsNull(v)) return 0;
  if (cJSON_IsObject(v) || cJSON_IsArray(v)) return cJSON_GetArraySize(v) > 0;
  return 1;
}

static int read_adapter_config(const lt_model *m, const char *path, cJSON **out, lt_err *err) {
  char *text;
  size_t len;
  if (lt_read_file(path, &text, &len, err)) return -1;
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return lt_errf(err, "%s: invalid JSON", path);
  }
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "peft_type");
  if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA") != 0)) {
    cJSON_Delete(root);
    return lt_errf(err, "%s: peft_type \"%s\" is not supported (only LORA)", path,
                   cJSON_IsString(v) ? v->valuestring : "?");
  }
  const cJSON *mts = cJSON_GetObjectItemCaseSensitive(root, "modules_to_save");
  if (nonempty(mts)) {  // whole modules beside the adapter: the embedding / output layer only
    const cJSON *e;
    int ok = cJSON_IsArray(mts), emb = 0;
    cJSON_ArrayForEach(e, mts) {  // "embed_tokens", "model.embed_tokens", "lm_head"
      const char *last = cJSON_IsString(e) ? strrchr(e->valuestring, '.') : NULL;
      last = last ? last + 1 : cJSON_IsString(e) ? e->valuestring : "";
      ok = ok && (!strcmp(last, "embed_tokens") || !strcmp(last, "lm_head"));
      emb |= ok;
    }
    const char *why = !ok ? "only embed_tokens and lm_head can be loaded as modules_to_save"
                      : emb && m->embed == m->lm_head &&
                              !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "ensure_weight_tying"))
                          ? "on a model with tied embeddings it needs \"ensure_weight_tying\": true (PEFT would "
                            "otherwise untie the input embedding from the output layer)"
                          : NULL;
    if (why) {
      cJSON_Delete(root);
      return lt_errf(err, "%s: \"modules_to_save\": %s", path, why);
    }
  }
  static const char *const unsupported[] = {"rank_pattern", "alpha_pattern", "layer_replication"};
  for (int i = 0; i < 3; i++)
    if (nonempty(cJSON_GetObjectItemCaseSensitive(root, unsupported[i]))) {
      cJSON_Delete(root);
      return lt_errf(err, "%s: \"%s\" is not supported yet; remove it or use a plain LoRA adapter", path, unsupported[i]);
    }
  static const char *const false_keys[] = {"use_dora", "fan_in_fan_out"};
  for (int i = 0; i < 2; i++)
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, false_keys[i]))) {
      cJSON_Delete(root);
      return lt_errf(err, "%s: \"%s\": true is not supported", path, false_keys[i]);
    }
  v = cJSON_GetObjectItemCaseSensitive(root, "bias");
  if (v && cJSON_IsString(v) && strcmp(v->valuestring, "none") != 0) {
    cJSON_Delete(root);
    return lt_errf(err, "%s: bias \"%s\" is not supported (only \"none\")", path, v->valuestring);
  }
  *out = root;
  return 0;
}

int lt_model_load_adapter(lt_model *m, const char *dir, lt_err *err) {
  char cpath[4200], wpath[4200];
  if (lt_path_join(cpath, sizeof cpath, dir, "adapter_config.json") ||
      lt_path_join(wpath, sizeof wpath, dir, "adapter_model.safetensors"))
    return lt_errf(err, "%s: path too long", dir);
  cJSON *root = NULL;
  if (read_adapter_config(m, cpath, &root, err)) return -1;
  int rc = -1, use_re = 0, have_re = 0;
  regex_t re;
  lt_st_file f;
  memset(&f, 0, sizeof f);
  unsigned char *seen = NULL;  // per slot: bit 1 = A present, bit 2 = B present
  const cJSON *jr = cJSON_GetObjectItemCaseSensitive(root, "r");
  const cJSON *ja = cJSON_GetObjectItemCaseSensitive(root, "lora_alpha");
  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(root, "lora_dropout");
  const cJSON *jt = cJSON_GetObjectItemCaseSensitive(root, "target_modules");
  if (!cJSON_IsNumber(jr) || jr->valuedouble < 1 || jr->valuedouble != floor(jr->valuedouble)) {
    lt_errf(err, "%s: \"r\" must be a positive integer", cpath);
    goto done;
  }
  lt_lora_config cfg = {0};
  cfg.r = (int)jr->valuedouble;
  cfg.alpha = cJSON_IsNumber(ja) ? (float)ja->valuedouble : 8.0f;
  cfg.dropout = cJSON_IsNumber(jd) ? (float)jd->valuedouble : 0.0f;
  cfg.use_rslora = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_rslora"));
  if (cJSON_IsString(jt)) {
    char pat[1024];
    snprintf(pat, sizeof pat, "^(%s)$", jt->valuestring);
    if (regcomp(&re, pat, REG_EXTENDED | REG_NOSUB) != 0) {
      lt_errf(err, "%s: target_modules regex \"%s\" is not a valid (POSIX extended) regex", cpath, jt->valuestring);
      goto done;
    }
    have_re = use_re = 1;
  } else if (!cJSON_IsArray(jt)) {
    lt_errf(err, "%s: \"target_modules\" must be a list of module names or a regex string", cpath);
    goto done;
  }
  for (int l = 0; l < m->cfg.layers; l++)
    for (int j = 0; j < 7; j++) {
      char module[160];
      snprintf(module, sizeof module, "model.layers.%d.%s", l, lt_proj_name(j));
      if (target_matches(jt, &re, use_re, module, short_names[j])) cfg.targets |= 1u << j;
    }
  lt_lora_free(m);
  if (lt_st_open(&f, wpath, err)) goto done;
  m->lora_cfg = cfg;
  m->loras = lt_alloc(sizeof(lt_lora) * (size_t)(m->cfg.layers * 7), err);
  seen = lt_alloc((size_t)(m->cfg.layers * 7), err);
  if (!m->loras || !seen) goto done;
  float scale = lora_scale(cfg.alpha, cfg.r, cfg.use_rslora);
  // Every tensor must be a known LoRA weight; both halves present; shapes as PEFT.
  for (int i = 0; i < f.n; i++) {
    const char *name = f.t[i].name;
    int l, len = 0;
    char mod[64], which;
    lt_param *whole = NULL;  // a module saved whole (modules_to_save): base_model.model.<parameter name>
    if (strncmp(name, "base_model.model.", 17) == 0) {
      const char *pn = name + 17;
      if (strcmp(pn, "model.embed_tokens.weight") == 0) whole = m->embed;
      else if (strcmp(pn, "lm_head.weight") == 0) whole = m->lm_head;
    }
    if (whole) {
      const lt_st_tensor *t = &f.t[i];
      if (t->numel != whole->numel || t->ndim != 2 || t->shape[0] != whole->shape[0]) {
        lt_errf(err, "%s: tensor \"%s\" has the wrong shape for the model's %s", wpath, name, whole->name);
        goto done;
      }
      float *vals = lt_alloc((size_t)t->numel * sizeof(float), err);
      if (!vals) goto done;
      int bad = lt_tensor_to_f32(t, vals, err) || own_values(m, whole, vals, err);
      lt_free(vals);
      if (bad) {
        lt_err_prefix(err, "%s", wpath);
        goto done;
      }
      continue;
    }
    if (sscanf(name, "base_model.model.model.layers.%d.%63[A-Za-z_.]%n", &l, mod, &len) != 2 || name[len] != 0) {
      lt_errf(err, "%s: tensor \"%s\" is not a LoRA weight of a decoder layer (expected "
              "base_model.model.model.layers.N.<module>.lora_A.weight)", wpath, name);
      goto done;
    }
    int j = -1;
    for (int k = 0; k < 7; k++) {
      size_t pl = strlen(lt_proj_name(k));
      if (strncmp(mod, lt_proj_name(k), pl) == 0 && mod[pl] == '.') {
        j = k;
        const char *rest = mod + pl + 1;
        if (strcmp(rest, "lora_A.weight") == 0 || strcmp(rest, "lora_A.default.weight") == 0) which = 'A';
        else if (strcmp(rest, "lora_B.weight") == 0 || strcmp(rest, "lora_B.default.weight") == 0) which = 'B';
        else j = -2;
        break;
      }
    }
    if (j < 0 || l < 0 || l >= m->cfg.layers) {
      lt_errf(err, "%s: tensor \"%s\" does not name a LoRA A/B weight of one of the model's %d layers", wpath, name,
              m->cfg.layers);
      goto done;
    }
    lt_lora *a = &m->loras[l * 7 + j];
    const lt_linear *p = &m->layer[l].proj[j];
    const lt_st_tensor *t = &f.t[i];
    int64_t r0 = which == 'A' ? t->shape[0] : (t->ndim == 2 ? t->shape[1] : -1);
    int64_t other = which == 'A' ? (t->ndim == 2 ? t->shape[1] : -1) : t->shape[0];
    int64_t want_other = which == 'A' ? p->in : p->out;
    if (t->ndim != 2 || r0 != cfg.r || other != want_other) {
      lt_errf(err, "%s: tensor \"%s\" has the wrong shape; expected [%lld, %lld] for r=%d", wpath, name,
              (long long)(which == 'A' ? cfg.r : want_other), (long long)(which == 'A' ? want_other : cfg.r), cfg.r);
      goto done;
    }
    if (!a->A && slot_alloc(m, l, j, cfg.r, scale, err)) goto done;
    if (lt_tensor_to_f32(t, which == 'A' ? a->A : a->B, err)) {
      lt_err_prefix(err, "%s", wpath);
      goto done;
    }
    seen[l * 7 + j] |= which == 'A' ? 1 : 2;
  }
  for (int s = 0; s < m->cfg.layers * 7; s++) {
    lt_lora *a = &m->loras[s];
    if (!a->A) continue;
    int hasA = seen[s] & 1, hasB = (seen[s] >> 1) & 1;
    if (!hasA || !hasB) {
      lt_errf(err, "%s: \"%s\" has no matching lora_%c weight", wpath, hasA ? a->nameA : a->nameB, hasA ? 'B' : 'A');
      goto done;
    }
  }
  m->mode = LT_TRAIN_LORA;
  rc = lt_model_prepare(m, err) || lt_registry_build(m, err) ? -1 : 0;
done:
  if (rc) lt_lora_free(m);
  lt_free(seen);
  lt_st_close(&f);
  if (have_re) regfree(&re);
  cJSON_Delete(root);
  return rc;
}

int lt_registry_build(lt_model *m, lt_err *err) {
  lt_free(m->train);
  m->train = NULL;
  m->ntrain = 0;
  int cap = m->mode == LT_TRAIN_FULL ? m->nparams
            : (m->mode == LT_TRAIN_LORA ? 2 * 7 * m->cfg.layers + m->nparams : 0);
  if (cap == 0) return 0;
  m->train = lt_alloc(sizeof(lt_trainable) * (size_t)cap, err);
  if (!m->train) return -1;
  if (m->mode == LT_TRAIN_FULL) {
    for (int i = 0; i < m->nparams; i++) {
      lt_param *p = &m->params[i];
      lt_trainable *t = &m->train[m->ntrain++];
      t->name = p->name;
      t->w = p->w;
      t->g = p->g;
      t->numel = p->numel;
      t->shape[0] = p->shape[0];
      t->shape[1] = p->shape[1];
      t->decay = p->ndim == 2;
    }
  } else {
    for (int s = 0; s < 7 * m->cfg.layers; s++) {
      lt_lora *a = &m->loras[s];
      if (!a->A) continue;
      lt_trainable *t = &m->train[m->ntrain++];
      *t = (lt_trainable){a->nameA, a->A, a->gA, (int64_t)a->r * a->in, {a->r, a->in}, 1};
      t = &m->train[m->ntrain++];
      *t = (lt_trainable){a->nameB, a->B, a->gB, (int64_t)a->out * a->r, {a->out, a->r}, 1};
    }
    for (int i = 0; i < m->nparams; i++) {  // modules trained whole beside the adapter (PEFT's modules_to_save)
      lt_param *p = &m->params[i];
      if (p->g) m->train[m->ntrain++] = (lt_trainable){p->name, p->w, p->g, p->numel, {p->shape[0], p->shape[1]}, 1};
    }
  }
  return 0;
}

// The parameter a PEFT modules_to_save name stands for ("embed_tokens" or "lm_head"; the same one when tied).
static lt_param *module_param(lt_model *m, const char *name) {
  if (strcmp(name, "embed_tokens") == 0) return m->embed;
  if (strcmp(name, "lm_head") == 0) return m->lm_head;
  return NULL;
}

int lt_lora_train_modules(lt_model *m, const char *list, lt_err *err) {
  if (m->mode != LT_TRAIN_LORA || !m->loras) return lt_errf(err, "modules to save need a LoRA adapter first");
  char buf[256];
  if (strlen(list) >= sizeof buf) return lt_errf(err, "additional_target: list too long");
  snprintf(buf, sizeof buf, "%s", list);
  char *save = NULL;
  for (char *n = strtok_r(buf, ", ", &save); n; n = strtok_r(NULL, ", ", &save)) {
    lt_param *p = module_param(m, n);
    if (!p)
      return lt_errf(err, "additional_target: \"%s\" cannot be trained beside LoRA (choose embed_tokens or lm_head)",
                     n);
    if (p->g) continue;
    if (own_values(m, p, NULL, err)) return -1;
    p->g = lt_alloc((size_t)p->numel * sizeof(float), err);
    if (!p->g) return -1;
  }
  lt_ws_free(&m->ws);
  if (lt_model_prepare(m, err)) return -1;
  return lt_registry_build(m, err);
}

int lt_lora_modules_to_save(const lt_model *m, char *out, size_t cap) {
  out[0] = 0;
  int n = 0;
  if (m->embed->g) n += snprintf(out, cap, "embed_tokens") > 0;
  if (m->lm_head != m->embed && m->lm_head->g)
    n += snprintf(out + strlen(out), cap - strlen(out), "%slm_head", n ? "," : "") > 0;
  return n;
}
