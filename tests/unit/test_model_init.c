// lt_model_init: a new model from config.json alone, initialised as transformers' _init_weights does.
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "model/model.h"
#include "test.h"

#define TMP LT_TMPDIR "/model_init"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void mkdir_p(const char *dir) {
  lt_err err;
  CHECK_MSG(lt_mkdirs(dir, &err) == 0, "%s", err.msg);
}

// A folder holding only the config.json of fixture `name`.
static void config_only(const char *name, char *out, size_t cap) {
  char src[1024];
  snprintf(out, cap, "%s/%s", TMP, name);
  snprintf(src, sizeof src, "%s/models/%s/config.json", LT_FIXTURES, name);
  mkdir_p(out);
  char dst[1200];
  snprintf(dst, sizeof dst, "%s/config.json", out);
  lt_err err;
  CHECK_MSG(lt_copy_file(src, dst, &err) == 0, "%s", err.msg);
}

static void write_text(const char *dir, const char *name, const char *text) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  lt_err err;
  CHECK(lt_write_file_atomic(p, text, strlen(text), &err) == 0);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

// Shapes, counts and init statistics of a new model against the fixture's real checkpoint.
static void check_against_fixture(const char *name) {
  char dir[1024], fix[1024];
  config_only(name, dir, sizeof dir);
  snprintf(fix, sizeof fix, "%s/models/%s", LT_FIXTURES, name);
  lt_err err = {{0}};
  lt_model *m = NULL, *ref = NULL, *same = NULL, *other = NULL;
  CHECK_MSG(lt_model_init(&m, dir, 7, &err) == 0, "%s: %s", name, err.msg);
  CHECK_MSG(lt_model_load(&ref, fix, &err) == 0, "%s: %s", name, err.msg);
  CHECK(lt_model_init(&same, dir, 7, &err) == 0);
  CHECK(lt_model_init(&other, dir, 8, &err) == 0);
  if (!m || !ref || !same || !other) goto out;
  CHECK(lt_model_num_params(m) == lt_model_num_params(ref));
  CHECK(lt_model_param_count(m) == lt_model_param_count(ref));
  CHECK((m->lm_head == m->embed) == (ref->lm_head == ref->embed));
  lt_model_info info;
  lt_model_get_info(m, &info);
  CHECK_MSG(strcmp(info.dtype, "F32") == 0, "dtype %s", info.dtype);
  float std = m->cfg.init_std;
  CHECK_NEAR(std, 0.02, 1e-9);  // the fixtures keep transformers' default
  for (int i = 0; i < m->nparams; i++) {
    const lt_param *p = &m->params[i], *r = &ref->params[i];
    CHECK_MSG(strcmp(p->name, r->name) == 0 && p->ndim == r->ndim && p->shape[0] == r->shape[0] &&
                  p->shape[1] == r->shape[1] && p->numel == r->numel,
              "%s: %s vs %s", name, p->name, r->name);
    CHECK(p->st == NULL && p->w && p->owned && p->dtype == LT_DTYPE_F32);
    if (p->ndim == 2) {
      double s = 0, s2 = 0;
      for (int64_t k = 0; k < p->numel; k++) s += p->w[k], s2 += (double)p->w[k] * p->w[k];
      double n = (double)p->numel, mean = s / n, sd = sqrt(s2 / n - mean * mean);
      // five standard errors: the mean's is std/sqrt(n), the sample std's about std/sqrt(2n)
      CHECK_MSG(fabs(mean) < 5 * std / sqrt(n), "%s mean %g (n %g)", p->name, mean, n);
      CHECK_MSG(fabs(sd - std) < 5 * std / sqrt(2 * n), "%s std %g (n %g)", p->name, sd, n);
    } else {
      float want = ends_with(p->name, ".bias") ? 0.0f : 1.0f;
      int exact = 1;
      for (int64_t k = 0; k < p->numel; k++) exact &= p->w[k] == want;
      CHECK_MSG(exact, "%s is not all %g", p->name, want);
    }
    CHECK(memcmp(p->w, same->params[i].w, (size_t)p->numel * sizeof(float)) == 0);
    if (p->ndim == 2) CHECK(memcmp(p->w, other->params[i].w, (size_t)p->numel * sizeof(float)) != 0);
  }
out:
  lt_model_free(m);
  lt_model_free(ref);
  lt_model_free(same);
  lt_model_free(other);
}

static void logits_of(lt_model *m, const int32_t *ids, int T, float *out) {
  lt_err err = {{0}};
  CHECK_MSG(lt_model_logits(m, ids, T, out, &err) == 0, "%s", err.msg);
}

// Full training from a new model lowers the loss; saving and loading the result gives the same logits.
static void train_save_load(void) {
  char dir[1024], saved[1100];
  config_only("llama_gqa2_bf16_sharded", dir, sizeof dir);
  snprintf(saved, sizeof saved, "%s/saved", TMP);
  lt_err err = {{0}};
  lt_model *m = NULL, *back = NULL;
  CHECK_MSG(lt_model_init(&m, dir, 42, &err) == 0, "%s", err.msg);
  if (!m) return;
  enum { T = 16 };
  int32_t ids[T], labels[T];
  for (int t = 0; t < T; t++) ids[t] = labels[t] = 3 + (t % 4) * 5;
  int V = m->cfg.vocab;
  float *a = malloc(sizeof(float) * T * (size_t)V), *b = malloc(sizeof(float) * T * (size_t)V);
  logits_of(m, ids, T, a);
  int finite = 1;
  for (int k = 0; k < T * V; k++) finite &= isfinite(a[k]) != 0;
  CHECK(finite);
  // a new model is near uniform: loss about log(V)
  float loss0 = 0, loss = 0;
  CHECK(lt_model_loss(m, ids, NULL, labels, 1, T, 0, &loss0, &err) == 0);
  CHECK_MSG(fabsf(loss0 - logf((float)V)) < 0.1f, "initial loss %g vs log(V) %g", loss0, logf((float)V));

  CHECK_MSG(lt_model_set_train_mode(m, LT_TRAIN_FULL, NULL, &err) == 0, "%s", err.msg);
  CHECK(lt_model_num_trainable(m) == m->nparams);
  float first = 0;
  for (int step = 0; step < 8; step++) {
    lt_model_zero_grad(m);
    CHECK_MSG(lt_model_loss(m, ids, NULL, labels, 1, T, 1, &loss, &err) == 0, "%s", err.msg);
    if (step == 0) first = loss;
    for (int i = 0; i < lt_model_num_trainable(m); i++) {  // plain SGD
      float *w, *g;
      int64_t n;
      lt_model_trainable(m, i, NULL, &w, &g, &n, NULL);
      for (int64_t k = 0; k < n; k++) w[k] -= 0.3f * g[k];
    }
  }
  CHECK_MSG(lt_model_loss(m, ids, NULL, labels, 1, T, 0, &loss, &err) == 0, "%s", err.msg);
  CHECK_NEAR(first, loss0, 1e-4);
  CHECK_MSG(loss < 0.8f * first, "loss %g after training, %g before", loss, first);

  logits_of(m, ids, T, a);
  CHECK_MSG(lt_model_save_pretrained(m, saved, -1, &err) == 0, "%s", err.msg);
  CHECK_MSG(lt_model_load(&back, saved, &err) == 0, "%s", err.msg);
  if (back) {
    lt_model_info info;
    lt_model_get_info(back, &info);
    CHECK(strcmp(info.dtype, "F32") == 0);
    logits_of(back, ids, T, b);
    double md = 0;
    for (int k = 0; k < T * V; k++) md = fmax(md, fabs((double)a[k] - b[k]));
    CHECK_MSG(md == 0, "saved model's logits differ by %g", md);
  }
  lt_model_free(back);
  lt_model_free(m);
  free(a);
  free(b);
}

// bf16 compute on a new (frozen) model converts from the f32 values: no stored tensor needed.
static void bf16_compute(void) {
  char dir[1024];
  config_only("qwen3_qknorm", dir, sizeof dir);
  lt_err err = {{0}};
  lt_model *m = NULL;
  CHECK_MSG(lt_model_init(&m, dir, 1, &err) == 0, "%s", err.msg);
  if (!m) return;
  enum { T = 8 };
  int32_t ids[T] = {1, 5, 9, 2, 7, 7, 3, 4};
  int V = m->cfg.vocab;
  float *a = malloc(sizeof(float) * T * (size_t)V), *b = malloc(sizeof(float) * T * (size_t)V);
  logits_of(m, ids, T, a);
  CHECK_MSG(lt_model_set_compute(m, LT_COMPUTE_BF16, &err) == 0, "%s", err.msg);
  logits_of(m, ids, T, b);
  double md = 0, amax = 0;
  for (int k = 0; k < T * V; k++) md = fmax(md, fabs((double)a[k] - b[k])), amax = fmax(amax, fabs(a[k]));
  CHECK_MSG(md < 0.05 * amax + 1e-3, "bf16 logits differ by %g (max |logit| %g)", md, amax);
  // bf16 compute with full training: trainable weights stay f32
  CHECK_MSG(lt_model_set_train_mode(m, LT_TRAIN_FULL, NULL, &err) == 0, "%s", err.msg);
  float loss = 0;
  CHECK_MSG(lt_model_loss(m, ids, NULL, ids, 1, T, 1, &loss, &err) == 0, "%s", err.msg);
  CHECK(isfinite(loss));
  lt_model_free(m);
  free(a);
  free(b);
}

// initializer_range, pad_token_id (its embedding row zero, tied or not) and biases.
static void config_fields(void) {
  static const char *cfg =
      "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":64,\"hidden_size\":32,"
      "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":48,"
      "\"attention_bias\":true,\"mlp_bias\":true,\"tie_word_embeddings\":%s,\"pad_token_id\":3,"
      "\"initializer_range\":%s}";
  const char *ties[2] = {"true", "false"}, *ranges[2] = {"0.1", "null"};
  for (int c = 0; c < 2; c++) {
    char dir[1024], text[1024];
    snprintf(dir, sizeof dir, "%s/fields%d", TMP, c);
    mkdir_p(dir);
    snprintf(text, sizeof text, cfg, ties[c], ranges[c]);
    write_text(dir, "config.json", text);
    lt_err err = {{0}};
    lt_model *m = NULL;
    CHECK_MSG(lt_model_init(&m, dir, 3, &err) == 0, "%s", err.msg);
    if (!m) continue;
    CHECK_NEAR(m->cfg.init_std, c == 0 ? 0.1 : 0.02, 1e-7);
    CHECK((m->lm_head == m->embed) == (c == 0));
    int C = m->cfg.hidden, zero = 1, nonzero = 0;
    for (int k = 0; k < C; k++) zero &= m->embed->w[3 * C + k] == 0.0f, nonzero += m->embed->w[2 * C + k] != 0.0f;
    CHECK(zero);
    CHECK(nonzero == C);
    if (c == 1) {  // an untied lm_head keeps its row
      int nz = 0;
      for (int k = 0; k < C; k++) nz += m->lm_head->w[3 * C + k] != 0.0f;
      CHECK(nz == C);
    }
    int biases = 0;
    for (int i = 0; i < m->nparams; i++)
      if (ends_with(m->params[i].name, ".bias")) {
        biases++;
        for (int64_t k = 0; k < m->params[i].numel; k++) CHECK(m->params[i].w[k] == 0.0f);
      }
    CHECK(biases == 7);
    double s2 = 0;
    const lt_param *q = m->layer[0].proj[LT_UP].w;
    for (int64_t k = 0; k < q->numel; k++) s2 += (double)q->w[k] * q->w[k];
    CHECK_NEAR(sqrt(s2 / (double)q->numel), m->cfg.init_std, 0.1 * m->cfg.init_std);
    lt_model_free(m);
  }
}

static void errors(void) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/empty", TMP);
  mkdir_p(dir);
  lt_err err = {{0}};
  lt_model *m = (lt_model *)1;
  CHECK(lt_model_init(&m, dir, 1, &err) == -1 && m == NULL);
  CHECK_MSG(strstr(err.msg, "config.json") != NULL, "%s", err.msg);
  write_text(dir, "config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\"}");
  CHECK(lt_model_init(&m, dir, 1, &err) == -1 && m == NULL);
  CHECK_MSG(strstr(err.msg, "vocab_size") != NULL, "%s", err.msg);
  write_text(dir, "config.json",
             "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,"
             "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":8,\"initializer_range\":-1}");
  CHECK(lt_model_init(&m, dir, 1, &err) == -1 && m == NULL);
  CHECK_MSG(strstr(err.msg, "initializer_range") != NULL, "%s", err.msg);
  // and a weightless folder does not load as a checkpoint
  CHECK(lt_model_load(&m, dir, &err) == -1 && m == NULL);
}

int main(void) {
  nftw(TMP, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  mkdir_p(TMP);
  const char *fixtures[] = {"llama_gqa2_bf16_sharded", "llama_mha_tied_f32", "llama3_rope_bias", "qwen2_gqa7_tied",
                            "qwen3_qknorm", "mistral_window"};
  for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) check_against_fixture(fixtures[i]);
  train_save_load();
  bf16_compute();
  config_fields();
  errors();
  TEST_MAIN_END();
}
