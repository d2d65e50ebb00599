// Every loader error path: a clear message naming the file/tensor, never a crash.
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "test.h"

#define TMP LT_TMPDIR "/model_errors"

static const char *base_config =
    "{%s\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":16,\"hidden_size\":8,"
    "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"intermediate_size\":12,"
    "\"rms_norm_eps\":1e-6,\"tie_word_embeddings\":true,\"eos_token_id\":2}";
// (cJSON returns the first of duplicate keys, so the %s prefix overrides the defaults that follow)

static void write_text(const char *dir, const char *name, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  lt_err err;
  CHECK(lt_write_file_atomic(p, text, strlen(text), &err) == 0);
}

// A tiny llama with one layer; skip: tensor to leave out; bad: tensor given a wrong shape.
static void write_weights(const char *dir, const char *skip, const char *bad) {
  static float buf[16 * 12];
  for (int i = 0; i < 16 * 12; i++) buf[i] = 0.01f * (float)(i % 7);
  struct { const char *n; int64_t d0, d1; } t[] = {
      {"model.embed_tokens.weight", 16, 8}, {"model.norm.weight", 8, 0},
      {"model.layers.0.input_layernorm.weight", 8, 0}, {"model.layers.0.post_attention_layernorm.weight", 8, 0},
      {"model.layers.0.self_attn.q_proj.weight", 8, 8}, {"model.layers.0.self_attn.k_proj.weight", 4, 8},
      {"model.layers.0.self_attn.v_proj.weight", 4, 8}, {"model.layers.0.self_attn.o_proj.weight", 8, 8},
      {"model.layers.0.mlp.gate_proj.weight", 12, 8}, {"model.layers.0.mlp.up_proj.weight", 12, 8},
      {"model.layers.0.mlp.down_proj.weight", 8, 12}};
  lt_st_wtensor w[16];
  int n = 0;
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    if (skip && strcmp(skip, t[i].n) == 0) continue;
    lt_st_wtensor x = {t[i].n, LT_DTYPE_F32, t[i].d1 ? 2 : 1, {t[i].d0, t[i].d1}, buf};
    if (bad && strcmp(bad, t[i].n) == 0) x.shape[0] += 1;
    w[n++] = x;
  }
  char p[1024];
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  lt_err err;
  CHECK(lt_st_write(p, w, n, NULL, &err) == 0);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static char *fresh(const char *name) {
  static char dir[1024];
  snprintf(dir, sizeof dir, "%s/%s", TMP, name);
  mkdir(LT_TMPDIR, 0755);
  mkdir(TMP, 0755);
  mkdir(dir, 0755);
  return dir;
}

static void expect_load_error(const char *dir, const char *needle1, const char *needle2) {
  lt_model *m = NULL;
  lt_err err = {{0}};
  int rc = lt_model_load(&m, dir, &err);
  CHECK_MSG(rc == -1 && m == NULL, "%s: load should fail", dir);
  CHECK_MSG(strstr(err.msg, needle1) != NULL, "message \"%s\" lacks \"%s\"", err.msg, needle1);
  if (needle2) CHECK_MSG(strstr(err.msg, needle2) != NULL, "message \"%s\" lacks \"%s\"", err.msg, needle2);
  lt_model_free(m);
}

int main(void) {
  char cfg[2048];
  nftw(TMP, rm_entry, 16, FTW_DEPTH | FTW_PHYS);  // start from nothing: earlier runs leave files behind
  // 1. a good model loads
  char *d = fresh("good");
  snprintf(cfg, sizeof cfg, base_config, "");
  write_text(d, "config.json", cfg);
  write_weights(d, NULL, NULL);
  lt_model *m = NULL;
  lt_err err;
  CHECK_MSG(lt_model_load(&m, d, &err) == 0, "%s", err.msg);
  if (m) {
    int32_t ids[3] = {1, 2, 99};
    float logits[3 * 16];
    CHECK(lt_model_logits(m, ids, 3, logits, &err) == -1 && strstr(err.msg, "99"));
    int32_t labels[3] = {1, 2, 17};
    float loss;
    ids[2] = 3;
    CHECK(lt_model_loss(m, ids, NULL, labels, 1, 3, 0, &loss, &err) == -1 && strstr(err.msg, "label 17"));
    lt_lora_config lc = {4, 8.0f, 0.0f, 0, 0, 1};
    CHECK(lt_model_set_train_mode(m, LT_TRAIN_LORA, &lc, &err) == -1 && strstr(err.msg, "target"));
    lc.targets = LT_LORA_ALL;
    lc.dropout = 1.5f;
    CHECK(lt_model_set_train_mode(m, LT_TRAIN_LORA, &lc, &err) == -1 && strstr(err.msg, "dropout"));
    lc.dropout = 0.1f;
    CHECK(lt_model_set_train_mode(m, LT_TRAIN_LORA, &lc, &err) == 0);
    CHECK(lt_model_num_trainable(m) == 14);
    // PEFT init: B zero, A within the Kaiming-uniform bound 1/sqrt(in)
    const char *name;
    float *w;
    int64_t numel, shape[2];
    lt_model_trainable(m, 0, &name, &w, NULL, &numel, shape);
    CHECK(strcmp(name, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") == 0);
    CHECK(shape[0] == 4 && shape[1] == 8);
    float amax = 0;
    for (int64_t i = 0; i < numel; i++) amax = fmaxf(amax, fabsf(w[i]));
    CHECK(amax > 0 && amax <= 1.0f / sqrtf(8.0f));
    lt_model_trainable(m, 1, &name, &w, NULL, &numel, shape);
    CHECK(shape[0] == 8 && shape[1] == 4);
    float bsum = 0;
    for (int64_t i = 0; i < numel; i++) bsum += fabsf(w[i]);
    CHECK(bsum == 0.0f);
    unsigned mask;
    CHECK(lt_lora_parse_targets("q_proj, v_proj", &mask, &err) == 0 && mask == (LT_LORA_Q | LT_LORA_V));
    CHECK(lt_lora_parse_targets("q_proj,qq_proj", &mask, &err) == -1 && strstr(err.msg, "qq_proj"));
    // a bad adapter folder: missing files, bad shapes
    char ad[1100];
    snprintf(ad, sizeof ad, "%s/adapter", d);
    mkdir(ad, 0755);
    CHECK(lt_model_load_adapter(m, ad, &err) == -1 && strstr(err.msg, "adapter_config.json"));
    write_text(ad, "adapter_config.json", "{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":4,\"target_modules\":[\"q_proj\"]}");
    CHECK_MSG(lt_model_load_adapter(m, ad, &err) == -1 && strstr(err.msg, "adapter_model.safetensors"), "%s", err.msg);
    static float z[64];
    lt_st_wtensor at[2] = {
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", LT_DTYPE_F32, 2, {2, 8}, z},
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", LT_DTYPE_F32, 2, {8, 3}, z}};
    char ap[1200];
    snprintf(ap, sizeof ap, "%s/adapter_model.safetensors", ad);
    CHECK(lt_st_write(ap, at, 2, NULL, &err) == 0);
    CHECK(lt_model_load_adapter(m, ad, &err) == -1 && strstr(err.msg, "lora_B") && strstr(err.msg, "shape"));
    at[1].shape[1] = 2;
    CHECK(lt_st_write(ap, at, 1, NULL, &err) == 0);
    CHECK(lt_model_load_adapter(m, ad, &err) == -1 && strstr(err.msg, "no matching lora_B"));
    at[1].name = "base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight";
    CHECK(lt_st_write(ap, at, 2, NULL, &err) == 0);
    CHECK(lt_model_load_adapter(m, ad, &err) == -1 && strstr(err.msg, "layers.3"));
    at[1].name = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
    CHECK(lt_st_write(ap, at, 2, NULL, &err) == 0);
    CHECK_MSG(lt_model_load_adapter(m, ad, &err) == 0, "%s", err.msg);
    CHECK(lt_model_num_trainable(m) == 2);
    write_text(ad, "adapter_config.json", "{\"peft_type\":\"LORA\",\"r\":2,\"use_dora\":true,\"target_modules\":[\"q_proj\"]}");
    CHECK(lt_model_load_adapter(m, ad, &err) == -1 && strstr(err.msg, "use_dora"));
    lt_model_free(m);
  }
  // 2. no config.json
  d = fresh("empty");
  expect_load_error(d, "config.json", NULL);
  // 3. unsupported architecture lists the supported ones
  d = fresh("gpt2");
  write_text(d, "config.json", "{\"architectures\":[\"GPT2LMHeadModel\"],\"model_type\":\"gpt2\"}");
  expect_load_error(d, "GPT2LMHeadModel", "Qwen3ForCausalLM");
  // 4. broken JSON, missing field, bad values, math-changing options
  d = fresh("badjson");
  write_text(d, "config.json", "{\"architectures\":[\"LlamaForCausalLM\"");
  expect_load_error(d, "invalid JSON", NULL);
  d = fresh("nofield");
  write_text(d, "config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":16}");
  expect_load_error(d, "hidden_size", NULL);
  d = fresh("yarn");
  snprintf(cfg, sizeof cfg, base_config, "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4},");
  write_text(d, "config.json", cfg);
  expect_load_error(d, "yarn", "llama3");
  d = fresh("gelu");
  snprintf(cfg, sizeof cfg, base_config, "\"hidden_act\":\"gelu\",");
  write_text(d, "config.json", cfg);
  expect_load_error(d, "gelu", NULL);
  d = fresh("heads");
  snprintf(cfg, sizeof cfg, base_config, "\"num_key_value_heads\":3,");
  write_text(d, "config.json", cfg);
  expect_load_error(d, "num_key_value_heads", NULL);
  // 5. weights: none, a missing tensor, a wrong shape
  d = fresh("noweights");
  snprintf(cfg, sizeof cfg, base_config, "");
  write_text(d, "config.json", cfg);
  expect_load_error(d, "model.safetensors", NULL);
  d = fresh("missing");
  write_text(d, "config.json", cfg);
  write_weights(d, "model.layers.0.mlp.up_proj.weight", NULL);
  expect_load_error(d, "model.layers.0.mlp.up_proj.weight", "missing");
  d = fresh("shape");
  write_text(d, "config.json", cfg);
  write_weights(d, NULL, "model.layers.0.self_attn.k_proj.weight");
  expect_load_error(d, "model.layers.0.self_attn.k_proj.weight", "[5, 8]");
  // 6. untied model without lm_head
  d = fresh("untied");
  snprintf(cfg, sizeof cfg, base_config, "\"tie_word_embeddings\":false,");
  write_text(d, "config.json", cfg);
  write_weights(d, NULL, NULL);
  expect_load_error(d, "lm_head.weight", NULL);
  // 7. eos outside the vocabulary
  d = fresh("eos");
  write_text(d, "config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":16,\"hidden_size\":8,"
             "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":12,\"eos_token_id\":[2,40]}");
  expect_load_error(d, "eos_token_id 40", NULL);
  TEST_MAIN_END();
}
