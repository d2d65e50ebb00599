// config: Hugging Face config.json (+ generation_config.json) -> lt_config; RoPE frequencies.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define SUPPORTED_ARCHS "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM"

static const cJSON *get(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return (v && !cJSON_IsNull(v)) ? v : NULL;
}

// Integer field: required (def < 0 means required) or defaulted; must be a positive-range integer.
static int get_int(const cJSON *o, const char *k, int def, int lo, int hi, int *out, const char *path, lt_err *err) {
  const cJSON *v = get(o, k);
  if (!v) {
    if (def == INT32_MIN) return lt_errf(err, "%s: missing required field \"%s\"", path, k);
    *out = def;
    return 0;
  }
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
    return lt_errf(err, "%s: field \"%s\" must be an integer in [%d, %d]", path, k, lo, hi);
  *out = (int)v->valuedouble;
  return 0;
}

static int get_num(const cJSON *o, const char *k, double def, double *out, const char *path, lt_err *err) {
  const cJSON *v = get(o, k);
  if (!v) {
    *out = def;
    return 0;
  }
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return lt_errf(err, "%s: field \"%s\" must be a number", path, k);
  *out = v->valuedouble;
  return 0;
}

static int get_bool(const cJSON *o, const char *k, int def) {
  const cJSON *v = get(o, k);
  if (!v) return def;
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
  if (cJSON_IsNumber(v)) return v->valuedouble != 0;
  return def;
}

// eos_token_id: an integer or a list of integers.
static int parse_eos(const cJSON *v, lt_config *c, const char *path, lt_err *err) {
  if (!v) return 0;
  c->n_eos = 0;
  if (cJSON_IsNumber(v)) {
    c->eos[c->n_eos++] = (int32_t)v->valuedouble;
    return 0;
  }
  if (!cJSON_IsArray(v)) return lt_errf(err, "%s: \"eos_token_id\" must be an integer or a list", path);
  const cJSON *e;
  cJSON_ArrayForEach(e, v) {
    if (!cJSON_IsNumber(e)) return lt_errf(err, "%s: \"eos_token_id\" list holds a non-integer", path);
    if (c->n_eos == LT_MAX_EOS) return lt_errf(err, "%s: more than %d eos_token_id values", path, LT_MAX_EOS);
    c->eos[c->n_eos++] = (int32_t)e->valuedouble;
  }
  return 0;
}

static int parse_rope(const cJSON *root, lt_config *c, const char *path, lt_err *err) {
  double theta;
  if (get_num(root, "rope_theta", 10000.0, &theta, path, err)) return -1;
  // transformers >= 5 writes "rope_parameters"; older files "rope_scaling" (+ top-level rope_theta).
  const cJSON *rp = get(root, "rope_parameters");
  const cJSON *rs = get(root, "rope_scaling");
  const cJSON *r = rp ? rp : rs;
  c->rope_type = LT_ROPE_DEFAULT;
  c->rope_factor = 1.0f;
  if (r) {
    if (!cJSON_IsObject(r)) return lt_errf(err, "%s: \"%s\" must be an object", path, rp ? "rope_parameters" : "rope_scaling");
    if (get_num(r, "rope_theta", theta, &theta, path, err)) return -1;
    const cJSON *t = get(r, "rope_type");
    if (!t) t = get(r, "type");
    const char *type = (t && cJSON_IsString(t)) ? t->valuestring : "default";
    double f, lo, hi;
    int omp;
    if (get_num(r, "factor", 1.0, &f, path, err) || get_num(r, "low_freq_factor", 1.0, &lo, path, err) ||
        get_num(r, "high_freq_factor", 4.0, &hi, path, err) ||
        get_int(r, "original_max_position_embeddings", c->max_pos, 1, 1 << 30, &omp, path, err))
      return -1;
    if (strcmp(type, "default") == 0) {
      c->rope_type = LT_ROPE_DEFAULT;
    } else if (strcmp(type, "linear") == 0) {
      c->rope_type = LT_ROPE_LINEAR;
    } else if (strcmp(type, "llama3") == 0) {
      c->rope_type = LT_ROPE_LLAMA3;
      if (!(hi > lo)) return lt_errf(err, "%s: llama3 rope needs high_freq_factor > low_freq_factor", path);
    } else {
      return lt_errf(err, "%s: rope type \"%s\" is not supported (supported: default, linear, llama3)", path, type);
    }
    if (!(f > 0)) return lt_errf(err, "%s: rope factor must be > 0", path);
    double prf;
    if (get_num(r, "partial_rotary_factor", 1.0, &prf, path, err)) return -1;
    if (prf != 1.0) return lt_errf(err, "%s: partial_rotary_factor %g is not supported (only 1.0)", path, prf);
    c->rope_factor = (float)f;
    c->rope_low_freq = (float)lo;
    c->rope_high_freq = (float)hi;
    c->rope_orig_max_pos = omp;
  }
  if (!(theta > 0)) return lt_errf(err, "%s: rope_theta must be > 0", path);
  c->rope_theta = (float)theta;
  return 0;
}

static int parse_config(lt_config *c, const cJSON *root, const char *path, lt_err *err) {
  memset(c, 0, sizeof *c);
  if (!cJSON_IsObject(root)) return lt_errf(err, "%s: not a JSON object", path);
  const cJSON *archs = get(root, "architectures"), *mt = get(root, "model_type");
  const char *arch = NULL;
  if (archs && cJSON_IsArray(archs) && cJSON_GetArraySize(archs) > 0 && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
    arch = cJSON_GetArrayItem(archs, 0)->valuestring;
  const char *type = (mt && cJSON_IsString(mt)) ? mt->valuestring : "";
  static const struct { const char *arch, *type; lt_arch id; } table[] = {
      {"LlamaForCausalLM", "llama", LT_ARCH_LLAMA},
      {"Qwen2ForCausalLM", "qwen2", LT_ARCH_QWEN2},
      {"Qwen3ForCausalLM", "qwen3", LT_ARCH_QWEN3},
      {"MistralForCausalLM", "mistral", LT_ARCH_MISTRAL},
  };
  int found = -1;
  for (int i = 0; i < 4; i++)
    if ((arch && strcmp(arch, table[i].arch) == 0) || (!arch && strcmp(type, table[i].type) == 0)) found = i;
  if (found < 0)
    return lt_errf(err, "%s: architecture \"%s\" (model_type \"%s\") is not supported; supported: " SUPPORTED_ARCHS,
                   path, arch ? arch : "?", type);
  c->arch = table[found].id;
  snprintf(c->architecture, sizeof c->architecture, "%s", table[found].arch);
  snprintf(c->model_type, sizeof c->model_type, "%s", table[found].type);

  const int R = INT32_MIN;
  if (get_int(root, "vocab_size", R, 1, 1 << 24, &c->vocab, path, err) ||
      get_int(root, "hidden_size", R, 1, 1 << 16, &c->hidden, path, err) ||
      get_int(root, "num_hidden_layers", R, 1, 4096, &c->layers, path, err) ||
      get_int(root, "num_attention_heads", R, 1, 4096, &c->heads, path, err) ||
      get_int(root, "num_key_value_heads", c->heads, 1, 4096, &c->kv_heads, path, err) ||
      get_int(root, "intermediate_size", R, 1, 1 << 20, &c->ffn, path, err) ||
      get_int(root, "max_position_embeddings", 2048, 1, 1 << 30, &c->max_pos, path, err))
    return -1;
  if (c->hidden % c->heads != 0 && !get(root, "head_dim"))
    return lt_errf(err, "%s: hidden_size %d is not divisible by num_attention_heads %d and no head_dim is given", path,
                   c->hidden, c->heads);
  if (get_int(root, "head_dim", c->hidden / c->heads, 2, 1 << 12, &c->head_dim, path, err)) return -1;
  if (c->head_dim % 2) return lt_errf(err, "%s: head_dim %d must be even for RoPE", path, c->head_dim);
  if (c->heads % c->kv_heads != 0)
    return lt_errf(err, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path, c->heads,
                   c->kv_heads);
  double eps;
  if (get_num(root, "rms_norm_eps", 1e-6, &eps, path, err)) return -1;
  c->rms_eps = (float)eps;
  if (parse_rope(root, c, path, err)) return -1;

  const cJSON *act = get(root, "hidden_act");
  if (act && (!cJSON_IsString(act) || (strcmp(act->valuestring, "silu") && strcmp(act->valuestring, "swish"))))
    return lt_errf(err, "%s: hidden_act \"%s\" is not supported (only silu)", path,
                   cJSON_IsString(act) ? act->valuestring : "?");
  double adrop;
  if (get_num(root, "attention_dropout", 0.0, &adrop, path, err)) return -1;
  if (adrop != 0.0) return lt_errf(err, "%s: attention_dropout %g is not supported (only 0)", path, adrop);
  if (get(root, "quantization_config"))
    return lt_errf(err, "%s: quantized checkpoints (quantization_config) are not supported; use bf16/f16/f32 weights",
                   path);

  double init_std;
  if (get_num(root, "initializer_range", 0.02, &init_std, path, err)) return -1;
  if (init_std < 0) return lt_errf(err, "%s: initializer_range must be >= 0", path);
  c->init_std = init_std > 0 ? (float)init_std : 0.02f;  // transformers: `initializer_range or 0.02`

  c->tied = get_bool(root, "tie_word_embeddings", 0);
  int attn_bias = get_bool(root, "attention_bias", 0);
  switch (c->arch) {
    case LT_ARCH_LLAMA:
      c->qkv_bias = c->o_bias = attn_bias;
      c->mlp_bias = get_bool(root, "mlp_bias", 0);
      break;
    case LT_ARCH_QWEN2:
      c->qkv_bias = 1;
      if (get_bool(root, "use_sliding_window", 0))
        return lt_errf(err, "%s: Qwen2 use_sliding_window=true is not supported", path);
      break;
    case LT_ARCH_QWEN3:
      c->qkv_bias = c->o_bias = attn_bias;
      c->qk_norm = 1;
      if (get_bool(root, "use_sliding_window", 0))
        return lt_errf(err, "%s: Qwen3 use_sliding_window=true is not supported", path);
      break;
    case LT_ARCH_MISTRAL: {
      int w = 0;
      if (get_int(root, "sliding_window", 0, 0, 1 << 30, &w, path, err)) return -1;
      c->sliding_window = w;
      break;
    }
  }
  if (get_int(root, "bos_token_id", -1, -1, 1 << 30, &c->bos_id, path, err) ||
      get_int(root, "pad_token_id", -1, -1, 1 << 30, &c->pad_id, path, err))
    return -1;
  return parse_eos(get(root, "eos_token_id"), c, path, err);
}

int lt_config_load(lt_config *c, const char *dir, lt_err *err) {
  char path[4200];
  if (lt_path_join(path, sizeof path, dir, "config.json")) return lt_errf(err, "%s: path too long", dir);
  char *text;
  size_t len;
  if (lt_read_file(path, &text, &len, err)) return -1;
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  if (!root) return lt_errf(err, "%s: invalid JSON", path);
  int rc = parse_config(c, root, path, err);
  cJSON_Delete(root);
  if (rc) return rc;
  // generation_config.json overrides eos ids when present.
  if (lt_path_join(path, sizeof path, dir, "generation_config.json") == 0 && lt_file_exists(path)) {
    if (lt_read_file(path, &text, &len, err)) return -1;
    root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
      cJSON_Delete(root);
      return lt_errf(err, "%s: invalid JSON", path);
    }
    rc = parse_eos(get(root, "eos_token_id"), c, path, err);
    cJSON_Delete(root);
    if (rc) return rc;
  }
  for (int i = 0; i < c->n_eos; i++)
    if (c->eos[i] < 0 || c->eos[i] >= c->vocab)
      return lt_errf(err, "%s: eos_token_id %d is outside the vocabulary (%d)", dir, c->eos[i], c->vocab);
  return 0;
}

void lt_rope_inv_freq(const lt_config *c, float *inv_freq) {
  int D = c->head_dim, half = D / 2;
  for (int i = 0; i < half; i++) {
    // transformers: 1 / base ** (arange(0, D, 2).float() / D), in f32
    float e = (float)(2 * i) / (float)D;
    float f = 1.0f / powf(c->rope_theta, e);
    if (c->rope_type == LT_ROPE_LINEAR) {
      f = f / c->rope_factor;
    } else if (c->rope_type == LT_ROPE_LLAMA3) {
      const float pi = 3.14159265358979323846f;
      float old = (float)c->rope_orig_max_pos;
      float low_wl = old / c->rope_low_freq, high_wl = old / c->rope_high_freq;
      float wl = 2.0f * pi / f;
      float scaled = wl > low_wl ? f / c->rope_factor : f;
      if (!(wl < high_wl) && !(wl > low_wl)) {
        float smooth = (old / wl - c->rope_low_freq) / (c->rope_high_freq - c->rope_low_freq);
        scaled = (1.0f - smooth) * scaled / c->rope_factor + smooth * scaled;
      }
      f = scaled;
    }
    inv_freq[i] = f;
  }
}
