// Saving: PEFT LoRA adapter folders (adapter_config.json + adapter_model.safetensors with PEFT's key names) and
// Hugging Face model folders (full weights, or base + merged LoRA: W + scale * B A), every file written atomically.
#include <cblas.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

const char *lt_proj_name(int id);
static const char *const short_names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

static int write_json(const char *dir, const char *name, cJSON *root, lt_err *err) {
  char path[4200];
  if (lt_path_join(path, sizeof path, dir, name)) return lt_errf(err, "%s: path too long", dir);
  char *text = cJSON_Print(root);
  if (!text) return lt_errf(err, "%s: out of memory", path);
  size_t n = strlen(text);
  char *withnl = malloc(n + 2);
  if (!withnl) {
    free(text);
    return lt_errf(err, "%s: out of memory", path);
  }
  memcpy(withnl, text, n);
  withnl[n] = '\n';
  int rc = lt_write_file_atomic(path, withnl, n + 1, err);
  free(withnl);
  free(text);
  return rc;
}

int lt_model_save_adapter(lt_model *m, const char *dir, const char *base_model, lt_err *err) {
  if (!m->loras || m->ntrain == 0) return lt_errf(err, "the model has no LoRA adapter to save");
  int L = m->cfg.layers;
  // Which modules are adapted, and on which layers: PEFT expresses "these modules on these layers".
  unsigned layer_mask_all = 0, first = 0;
  int n_layers_with = 0, uniform = 1;
  int *layers = lt_alloc(sizeof(int) * (size_t)L, err);
  if (!layers) return -1;
  for (int l = 0; l < L; l++) {
    unsigned mask = 0;
    for (int j = 0; j < 7; j++)
      if (m->loras[l * 7 + j].A) mask |= 1u << j;
    if (!mask) continue;
    if (n_layers_with == 0) first = mask;
    else if (mask != first) uniform = 0;
    layers[n_layers_with++] = l;
    layer_mask_all |= mask;
  }
  int r = m->loras[0].r;
  for (int s = 0; s < L * 7; s++)
    if (m->loras[s].A && m->loras[s].r != r) r = -1;
  if (!uniform || r < 0) {
    lt_free(layers);
    return lt_errf(err, "the adapter's modules or ranks differ between layers, which adapter_config.json cannot "
                   "express without rank_pattern; not supported yet");
  }
  cJSON *c = cJSON_CreateObject();
  if (!c) {
    lt_free(layers);
    return lt_errf(err, "out of memory");
  }
  cJSON_AddItemToObject(c, "alpha_pattern", cJSON_CreateObject());
  cJSON_AddNullToObject(c, "auto_mapping");
  if (base_model) cJSON_AddStringToObject(c, "base_model_name_or_path", base_model);
  else cJSON_AddNullToObject(c, "base_model_name_or_path");
  cJSON_AddStringToObject(c, "bias", "none");
  cJSON_AddFalseToObject(c, "fan_in_fan_out");
  cJSON_AddTrueToObject(c, "inference_mode");
  cJSON_AddTrueToObject(c, "init_lora_weights");
  cJSON_AddNullToObject(c, "layers_pattern");
  if (n_layers_with == L) {
    cJSON_AddNullToObject(c, "layers_to_transform");
  } else {
    cJSON *lt = cJSON_AddArrayToObject(c, "layers_to_transform");
    for (int i = 0; i < n_layers_with; i++) cJSON_AddItemToArray(lt, cJSON_CreateNumber(layers[i]));
  }
  cJSON_AddNumberToObject(c, "lora_alpha", m->lora_cfg.alpha);
  cJSON_AddNumberToObject(c, "lora_dropout", m->lora_cfg.dropout);
  char mts[64];
  if (lt_lora_modules_to_save(m, mts, sizeof mts)) {
    cJSON *ms = cJSON_AddArrayToObject(c, "modules_to_save");
    char *save = NULL;
    for (char *tok = strtok_r(mts, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
      cJSON_AddItemToArray(ms, cJSON_CreateString(tok));
    // a tied embedding trained whole is also the output layer: PEFT keeps the pair tied only when asked
    if (m->lm_head == m->embed) cJSON_AddTrueToObject(c, "ensure_weight_tying");
  } else {
    cJSON_AddNullToObject(c, "modules_to_save");
  }
  cJSON_AddStringToObject(c, "peft_type", "LORA");
  cJSON_AddNumberToObject(c, "r", r);
  cJSON_AddItemToObject(c, "rank_pattern", cJSON_CreateObject());
  cJSON_AddNullToObject(c, "revision");
  // sorted, as PEFT writes a set
  static const int order[7] = {6, 4, 1, 3, 0, 5, 2};  // down, gate, k, o, q, up, v
  cJSON *tm = cJSON_AddArrayToObject(c, "target_modules");
  for (int i = 0; i < 7; i++)
    if (layer_mask_all & (1u << order[i])) cJSON_AddItemToArray(tm, cJSON_CreateString(short_names[order[i]]));
  cJSON_AddStringToObject(c, "task_type", "CAUSAL_LM");
  cJSON_AddFalseToObject(c, "use_dora");
  cJSON_AddBoolToObject(c, "use_rslora", m->lora_cfg.use_rslora);
  lt_free(layers);

  lt_st_wtensor *t = lt_alloc(sizeof(lt_st_wtensor) * (size_t)(m->ntrain + 1), err);
  char(*names)[160] = lt_alloc(sizeof *names * (size_t)m->ntrain, err);
  int nt = m->ntrain;
  int rc = -1;
  if (!t || !names || lt_mkdirs(dir, err)) goto done;
  for (int i = 0; i < m->ntrain; i++) {
    const char *nm = m->train[i].name;
    if (strncmp(nm, "base_model.", 11) != 0) {  // a module saved whole: PEFT's key is the prefixed parameter name
      snprintf(names[i], sizeof names[i], "base_model.model.%s", nm);
      nm = names[i];
    }
    t[i] = (lt_st_wtensor){nm, LT_DTYPE_F32, 2, {m->train[i].shape[0], m->train[i].shape[1]}, m->train[i].w};
    if (m->train[i].w == m->embed->w && m->embed == m->lm_head) {  // tied: PEFT saves the output layer too
      t[nt] = t[i];
      t[nt++].name = "base_model.model.lm_head.weight";
    }
  }
  char path[4200];
  if (lt_path_join(path, sizeof path, dir, "adapter_model.safetensors")) {
    lt_errf(err, "%s: path too long", dir);
    goto done;
  }
  if (lt_st_write(path, t, nt, "{\"format\":\"pt\"}", err) || write_json(dir, "adapter_config.json", c, err))
    goto done;
  rc = 0;
done:
  lt_free(t);
  lt_free(names);
  cJSON_Delete(c);
  return rc;
}

// Files copied beside the weights when present in the source folder.
static const char *const side_files[] = {"config.json", "generation_config.json", "tokenizer.json",
                                         "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                                         "tokenizer.model", "vocab.json", "merges.txt"};

int lt_model_save_pretrained(lt_model *m, const char *dir, int dtype, lt_err *err) {
  if (lt_model_prepare(m, err) || lt_mkdirs(dir, err)) return -1;
  int n = m->nparams;
  lt_st_wtensor *t = lt_alloc(sizeof(lt_st_wtensor) * (size_t)n, err);
  void **bufs = lt_alloc(sizeof(void *) * (size_t)n, err);
  float *tmp = NULL;
  int rc = -1;
  if (!t || !bufs) goto done;
  for (int i = 0; i < n; i++) {
    lt_param *p = &m->params[i];
    lt_dtype out = dtype >= 0 ? (lt_dtype)dtype : p->dtype;
    // f32 values of this weight, with the LoRA product merged in
    float *w = p->w;
    const lt_lora *a = NULL;
    for (int l = 0; l < m->cfg.layers && !a; l++)
      for (int j = 0; j < 7; j++)
        if (m->layer[l].proj[j].w == p && m->layer[l].proj[j].lora) a = m->layer[l].proj[j].lora;
    if (!w || a) {
      lt_free(tmp);
      tmp = lt_alloc((size_t)p->numel * sizeof(float), err);
      if (!tmp) goto done;
      if (p->w) memcpy(tmp, p->w, (size_t)p->numel * sizeof(float));
      else if (!p->st) {
        lt_errf(err, "weight \"%s\" has no values", p->name);
        goto done;
      } else if (lt_tensor_to_f32(p->st, tmp, err)) goto done;
      if (a)  // W (out,in) += scale * B (out,r) A (r,in)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a->out, a->in, a->r, a->scale, a->B, a->r, a->A, a->in,
                    1.0f, tmp, a->in);
      w = tmp;
    }
    size_t esz = lt_dtype_size(out);
    bufs[i] = lt_alloc((size_t)p->numel * esz, err);
    if (!bufs[i]) goto done;
    if (out == LT_DTYPE_F32) {
      memcpy(bufs[i], w, (size_t)p->numel * sizeof(float));
    } else if (out == LT_DTYPE_BF16) {
      uint16_t *o = bufs[i];
      for (int64_t k = 0; k < p->numel; k++) o[k] = lt_f32_to_bf16(w[k]);
    } else if (out == LT_DTYPE_F16) {
      uint16_t *o = bufs[i];
      for (int64_t k = 0; k < p->numel; k++) o[k] = lt_f32_to_f16(w[k]);
    } else {
      lt_errf(err, "cannot save weights as %s (choose F32, BF16 or F16)", lt_dtype_name(out));
      goto done;
    }
    t[i] = (lt_st_wtensor){p->name, out, p->ndim, {p->shape[0], p->ndim == 2 ? p->shape[1] : 0}, bufs[i]};
  }
  char path[4200];
  if (lt_path_join(path, sizeof path, dir, "model.safetensors")) {
    lt_errf(err, "%s: path too long", dir);
    goto done;
  }
  if (lt_st_write(path, t, n, "{\"format\":\"pt\"}", err)) goto done;
  for (size_t i = 0; i < sizeof side_files / sizeof side_files[0]; i++) {
    char src[4200], dst[4200];
    if (lt_path_join(src, sizeof src, m->dir, side_files[i]) || lt_path_join(dst, sizeof dst, dir, side_files[i]))
      continue;
    if (strcmp(src, dst) != 0 && lt_file_exists(src) && lt_copy_file(src, dst, err)) goto done;
  }
  rc = 0;
done:
  if (bufs)
    for (int i = 0; i < n; i++) lt_free(bufs[i]);
  lt_free(bufs);
  lt_free(t);
  lt_free(tmp);
  return rc;
}
