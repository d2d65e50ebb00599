// LoRA dropout: active only in training, deterministic for a given step (counter-based RNG), and the backward
// through the dropout mask matches central finite differences of the loss.
#include "model/model.h"
#include "test.h"

static float loss_at(lt_model *m, uint64_t step, const int32_t *ids, const int32_t *labels, int T, int train) {
  lt_err err;
  float loss = 0;
  m->step = step;
  CHECK(lt_model_loss(m, ids, NULL, labels, 1, T, train, &loss, &err) == 0);
  return loss;
}

int main(void) {
  lt_err err;
  lt_model *m;
  int rc = lt_model_load(&m, LT_FIXTURES "/models/llama_gqa2_bf16_sharded", &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) TEST_MAIN_END();
  lt_lora_config lc = {4, 8.0f, 0.3f, 0, LT_LORA_ALL, 7};
  CHECK(lt_model_set_train_mode(m, LT_TRAIN_LORA, &lc, &err) == 0);
  // give B values so that every LoRA path carries gradient
  for (int i = 0; i < lt_model_num_trainable(m); i++) {
    float *w;
    int64_t n;
    lt_model_trainable(m, i, NULL, &w, NULL, &n, NULL);
    if (i % 2)
      for (int64_t k = 0; k < n; k++) w[k] = 0.05f * (2.0f * lt_rng_uniform(3, (uint64_t)i, (uint64_t)k) - 1.0f);
  }
  enum { T = 12 };
  int32_t ids[T], labels[T];
  for (int t = 0; t < T; t++) ids[t] = labels[t] = (int32_t)((t * 37 + 5) % m->cfg.vocab);
  float eval = loss_at(m, 100, ids, labels, T, 0);
  float tr1 = loss_at(m, 100, ids, labels, T, 1), tr2 = loss_at(m, 100, ids, labels, T, 1);
  float tr3 = loss_at(m, 101, ids, labels, T, 1);
  CHECK_MSG(tr1 == tr2, "same step, different loss: %g vs %g", tr1, tr2);
  CHECK_MSG(tr1 != eval && tr1 != tr3, "dropout inactive: eval %g, step100 %g, step101 %g", eval, tr1, tr3);
  // analytic gradient at step 100, copied out: the finite-difference passes below run backward too (dropout is
  // only active in training passes) and keep accumulating into the model's buffers
  lt_model_zero_grad(m);
  loss_at(m, 100, ids, labels, T, 1);
  int nt = lt_model_num_trainable(m);
  float **saved = calloc((size_t)nt, sizeof *saved);
  for (int i = 0; i < nt; i++) {
    float *g;
    int64_t n;
    lt_model_trainable(m, i, NULL, NULL, &g, &n, NULL);
    saved[i] = malloc(sizeof(float) * (size_t)n);
    memcpy(saved[i], g, sizeof(float) * (size_t)n);
  }
  int checked = 0;
  for (int i = 0; i < nt; i += 5) {  // a spread of A and B tensors
    const char *name;
    float *w, *g;
    int64_t n;
    lt_model_trainable(m, i, &name, &w, NULL, &n, NULL);
    g = saved[i];
    // the two largest-gradient coordinates of this tensor
    int64_t best[2] = {0, 0};
    for (int64_t k = 0; k < n; k++)
      if (fabsf(g[k]) > fabsf(g[best[0]])) best[1] = best[0], best[0] = k;
    for (int b = 0; b < 2; b++) {
      int64_t k = best[b];
      float gk = g[k], w0 = w[k], h = 1e-2f;
      w[k] = w0 + h;
      double lp = loss_at(m, 100, ids, labels, T, 1);
      w[k] = w0 - h;
      double lm = loss_at(m, 100, ids, labels, T, 1);
      w[k] = w0;
      double fd = (lp - lm) / (2 * h);
      if (fabs(gk) < 1e-3) continue;
      CHECK_MSG(fabs(fd - gk) <= 2e-2 * fabs(gk) + 1e-4, "%s[%lld]: analytic %g vs finite difference %g", name,
                (long long)k, gk, fd);
      checked++;
    }
  }
  CHECK_MSG(checked >= 6, "only %d coordinates checked", checked);
  for (int i = 0; i < nt; i++) free(saved[i]);
  free(saved);
  lt_model_free(m);
  TEST_MAIN_END();
}
