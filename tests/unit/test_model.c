// Parity with transformers + PEFT on the committed fixtures (tests/fixtures/models, made by make_fixtures.py):
// logits, loss, LoRA and full gradients, KV-cache decoding, greedy generation.
#include <cjson/cJSON.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "test.h"

#define FIX LT_FIXTURES "/models"

static const lt_st_tensor *ref(const lt_st_file *f, const char *name) {
  const lt_st_tensor *t = lt_st_find(f, name);
  CHECK_MSG(t != NULL, "reference tensor %s missing", name);
  return t;
}

static int32_t *ids_of(const lt_st_tensor *t) {  // int64 -> int32
  int32_t *v = malloc(sizeof(int32_t) * (size_t)t->numel);
  for (int64_t i = 0; i < t->numel; i++) {
    int64_t x;
    memcpy(&x, t->data + 8 * i, 8);
    v[i] = (int32_t)x;
  }
  return v;
}

static float *f32_of(const lt_st_tensor *t) {
  float *v = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
  lt_err err;
  CHECK(lt_tensor_to_f32(t, v, &err) == 0);
  return v;
}

static double rel_err(const float *a, const float *b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double max_abs(const float *a, const float *b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

typedef struct {
  int B, T, V;
  int32_t *ids, *mask, *labels;
} batch;

static void check_logits(lt_model *m, const batch *bt, const lt_st_tensor *want_t, const char *name, const char *what) {
  float *want = f32_of(want_t);
  for (int b = 0; b < bt->B; b++) {
    int len = 0;
    while (len < bt->T && bt->mask[b * bt->T + len]) len++;
    float *got = malloc(sizeof(float) * (size_t)len * bt->V);
    lt_err err;
    int rc = lt_model_logits(m, bt->ids + b * bt->T, len, got, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    double e = max_abs(got, want + (int64_t)b * bt->T * bt->V, (int64_t)len * bt->V);
    CHECK_MSG(e <= 1e-4, "%s %s row %d: logits max abs error %g > 1e-4", name, what, b, e);
    // KV-cache decoding, one token at a time and in two chunks, equals the full forward
    lt_kvcache *kc;
    CHECK(lt_kvcache_new(&kc, m, len, &err) == 0);
    float *step = malloc(sizeof(float) * (size_t)len * bt->V);
    for (int t = 0; t < len; t++) CHECK(lt_model_decode(m, kc, bt->ids + b * bt->T + t, 1, step + (int64_t)t * bt->V, 0, &err) == 0);
    double e1 = max_abs(step, got, (int64_t)len * bt->V);
    CHECK_MSG(e1 <= 1e-5, "%s %s row %d: incremental decode differs from full forward by %g", name, what, b, e1);
    lt_kvcache_reset(kc);
    int half = len / 2;
    CHECK(lt_model_decode(m, kc, bt->ids + b * bt->T, half, step, 1, &err) == 0);
    CHECK(lt_model_decode(m, kc, bt->ids + b * bt->T + half, len - half, step + (int64_t)half * bt->V, 1, &err) == 0);
    double e2 = max_abs(step, got, (int64_t)len * bt->V);
    CHECK_MSG(e2 <= 1e-5, "%s %s row %d: chunked decode differs from full forward by %g", name, what, b, e2);
    CHECK(lt_model_decode(m, kc, bt->ids, 1, step, 0, &err) == -1);  // cache full: an error, not a crash
    lt_kvcache_free(kc);
    free(step);
    free(got);
  }
  free(want);
}

static void check_loss_and_grads(lt_model *m, const batch *bt, const lt_st_file *rf, const char *loss_name,
                                 const char *grad_prefix, const char *name, int *ngrads) {
  lt_err err;
  float loss;
  lt_model_zero_grad(m);
  int rc = lt_model_loss(m, bt->ids, bt->mask, bt->labels, bt->B, bt->T, 1, &loss, &err);
  CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
  float want;
  const lt_st_tensor *lt = ref(rf, loss_name);
  if (!lt) return;
  memcpy(&want, lt->data, 4);
  CHECK_MSG(fabs(loss - want) <= 1e-5 * fabs(want), "%s %s: %.8g vs %.8g", name, loss_name, loss, want);
  *ngrads = 0;
  for (int i = 0; i < lt_model_num_trainable(m); i++) {
    const char *tn;
    float *w, *g;
    int64_t numel, shape[2];
    lt_model_trainable(m, i, &tn, &w, &g, &numel, shape);
    char key[256];
    snprintf(key, sizeof key, "%s%s", grad_prefix, tn);
    const lt_st_tensor *gt = lt_st_find(rf, key);
    if (!gt) continue;
    CHECK_MSG(gt->numel == numel, "%s %s: %lld elements vs %lld", name, key, (long long)numel, (long long)gt->numel);
    if (gt->numel != numel) continue;
    float *gw = f32_of(gt);
    double e = rel_err(g, gw, numel);
    CHECK_MSG(e <= 1e-3, "%s %s: gradient rel error %g > 1e-3", name, key, e);
    free(gw);
    (*ngrads)++;
  }
  // second backward accumulates: gradients double
  if (lt_model_num_trainable(m) > 0) {
    float *g0;
    int64_t n0;
    lt_model_trainable(m, 0, NULL, NULL, &g0, &n0, NULL);
    float *copy = malloc(sizeof(float) * (size_t)n0);
    memcpy(copy, g0, sizeof(float) * (size_t)n0);
    CHECK(lt_model_loss(m, bt->ids, bt->mask, bt->labels, bt->B, bt->T, 1, &loss, &err) == 0);
    for (int64_t i = 0; i < n0; i++) copy[i] *= 2;
    CHECK_MSG(rel_err(g0, copy, n0) < 1e-5, "%s: gradients do not accumulate", name);
    free(copy);
  }
}

// Largest relative error of the trainable gradients against the reference's PREFIX<name> tensors.
static double worst_grad_err(const lt_model *m, const lt_st_file *rf, const char *prefix) {
  double worst = 0;
  for (int i = 0; i < lt_model_num_trainable(m); i++) {
    const char *tn;
    float *g;
    int64_t numel;
    lt_model_trainable(m, i, &tn, NULL, &g, &numel, NULL);
    char key[256];
    snprintf(key, sizeof key, "%s%s", prefix, tn);
    const lt_st_tensor *gt = lt_st_find(rf, key);
    if (!gt || gt->numel != numel) continue;
    float *gw = f32_of(gt);
    worst = fmax(worst, rel_err(g, gw, numel));
    free(gw);
  }
  return worst;
}

// LoRA B starts at zero: fill the zero trainable values with small distinct ones, so that every LoRA path carries
// gradient
static void nonzero_trainables(lt_model *m) {
  for (int i = 0; i < lt_model_num_trainable(m); i++) {
    float *w;
    int64_t n;
    lt_model_trainable(m, i, NULL, &w, NULL, &n, NULL);
    for (int64_t j = 0; j < n; j++)
      if (w[j] == 0.0f) w[j] = 0.01f * (float)((j * 7 + (int64_t)i) % 13 - 6);
  }
}

// how many trainable tensors' gradients differ (bitwise) between two set-ups of the same model; names the first
static int grad_diffs(lt_model *a, lt_model *b, const char *name) {
  int n = lt_model_num_trainable(a), diff = 0;
  if (n != lt_model_num_trainable(b) || n == 0) return -1;
  for (int i = 0; i < n; i++) {
    float *g0, *g1;
    int64_t n0, n1;
    const char *tn;
    lt_model_trainable(a, i, &tn, NULL, &g0, &n0, NULL);
    lt_model_trainable(b, i, NULL, NULL, &g1, &n1, NULL);
    if (n0 != n1 || memcmp(g0, g1, sizeof(float) * (size_t)n0))
      if (!diff++) fprintf(stderr, "  %s: first differing gradient %s\n", name, tn);
  }
  return diff;
}

// Activation checkpointing recomputes each layer with the same kernels and the same dropout stream, so the loss
// and every gradient are bit-identical to a run that keeps all activations. (Under bf16 compute with AVX512-BF16
// the run without checkpointing also reads the frozen matrices' NT copies (lt_model_pack_nt) where the other builds
// the forward's panels from the NN copies: the same panels, the same bits.)
static void check_ckpt(const char *dir, const batch *bt, const char *name, lt_train_mode mode, float dropout,
                       lt_compute comp) {
  lt_err err;
  lt_model *m[2];
  float loss[2];
  lt_lora_config lc = {4, 8.0f, dropout, 0, 0, 7};
  CHECK(lt_lora_parse_targets("all", &lc.targets, &err) == 0);
  for (int k = 0; k < 2; k++) {
    int rc = lt_model_load(&m[k], dir, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    if (rc) {
      if (k) lt_model_free(m[0]);
      return;
    }
    CHECK(lt_model_set_compute(m[k], comp, &err) == 0);
    CHECK(lt_model_set_train_mode(m[k], mode, &lc, &err) == 0);
    CHECK(lt_model_set_grad_checkpointing(m[k], k, &err) == 0);
    if (mode == LT_TRAIN_LORA) nonzero_trainables(m[k]);
    lt_model_zero_grad(m[k]);
    rc = lt_model_loss(m[k], bt->ids, bt->mask, bt->labels, bt->B, bt->T, 1, &loss[k], &err);
    CHECK_MSG(rc == 0, "%s ckpt=%d: %s", name, k, err.msg);
  }
  CHECK_MSG(loss[0] == loss[1], "%s checkpointing: loss %.9g vs %.9g", name, loss[0], loss[1]);
  int diff = grad_diffs(m[0], m[1], name);
  CHECK_MSG(diff == 0, "%s checkpointing (mode %d, dropout %g, compute %d): %d gradients differ", name, (int)mode,
            (double)dropout, (int)comp, diff);
  lt_model_free(m[0]);
  lt_model_free(m[1]);
}

// The bf16 GEMM's epilogue adds the biases and LoRA terms in the order of the separate passes: loss and every
// LoRA gradient equal those of a run with the passes (LMTUNE_NO_FUSED_EPILOGUE) to the bit. targets: all, or a
// subset that leaves some projections of a group without LoRA (the bf16-only tensors' partial cases).
static void check_fused(const char *dir, const batch *bt, const char *name, const char *targets) {
  lt_err err;
  lt_model *m[2];
  float loss[2];
  lt_lora_config lc = {4, 8.0f, 0.0f, 0, 0, 7};
  CHECK(lt_lora_parse_targets(targets, &lc.targets, &err) == 0);
  for (int k = 0; k < 2; k++) {
    if (k) setenv("LMTUNE_NO_FUSED_EPILOGUE", "1", 1);
    int rc = lt_model_load(&m[k], dir, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    if (rc) {
      if (k) lt_model_free(m[0]);
      unsetenv("LMTUNE_NO_FUSED_EPILOGUE");
      return;
    }
    CHECK(lt_model_set_compute(m[k], LT_COMPUTE_BF16, &err) == 0);
    CHECK(lt_model_set_train_mode(m[k], LT_TRAIN_LORA, &lc, &err) == 0);
    nonzero_trainables(m[k]);
    lt_model_zero_grad(m[k]);
    rc = lt_model_loss(m[k], bt->ids, bt->mask, bt->labels, bt->B, bt->T, 1, &loss[k], &err);
    CHECK_MSG(rc == 0, "%s fused=%d: %s", name, !k, err.msg);
  }
  unsetenv("LMTUNE_NO_FUSED_EPILOGUE");
  CHECK_MSG(loss[0] == loss[1], "%s fused epilogue (%s): loss %.9g vs %.9g", name, targets, loss[0], loss[1]);
  int diff = grad_diffs(m[0], m[1], name);
  CHECK_MSG(diff == 0, "%s fused epilogue (%s): %d gradients differ (-1: the trainable sets differ)", name, targets,
            diff);
  lt_model_free(m[0]);
  lt_model_free(m[1]);
}

static void run_fixture(const char *name) {
  char dir[1024], path[1200];
  snprintf(dir, sizeof dir, "%s/%s", FIX, name);
  snprintf(path, sizeof path, "%s/ref.safetensors", dir);
  lt_err err;
  lt_st_file rf;
  memset(&rf, 0, sizeof rf);
  int rc = lt_st_open(&rf, path, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  const lt_st_tensor *ti = ref(&rf, "input_ids"), *tm = ref(&rf, "attention_mask"), *tl = ref(&rf, "labels");
  const lt_st_tensor *tlog = ref(&rf, "logits");
  if (!ti || !tm || !tl || !tlog) return;
  batch bt = {(int)ti->shape[0], (int)ti->shape[1], (int)tlog->shape[2], ids_of(ti), ids_of(tm), ids_of(tl)};

  lt_model *m;
  rc = lt_model_load(&m, dir, &err);
  CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
  if (rc) return;
  // base model: logits, loss (no backward in frozen mode), full gradients
  check_logits(m, &bt, tlog, name, "base");
  float loss, want;
  CHECK(lt_model_loss(m, bt.ids, bt.mask, bt.labels, bt.B, bt.T, 0, &loss, &err) == 0);
  memcpy(&want, ref(&rf, "loss")->data, 4);
  CHECK_MSG(fabs(loss - want) <= 1e-5 * fabs(want), "%s loss %.8g vs %.8g", name, loss, want);
  CHECK(lt_model_loss(m, bt.ids, bt.mask, bt.labels, bt.B, bt.T, 1, &loss, &err) == -1);  // frozen: nothing trains
  // greedy generation equals transformers'
  const lt_st_tensor *tp = ref(&rf, "gen_prompt"), *tg = ref(&rf, "gen_greedy");
  if (tp && tg) {
    int32_t *prompt = ids_of(tp), *want_ids = ids_of(tg), out[64];
    int n_out = 0;
    lt_sampling greedy = {0.0f, 0, 1.0f, 1.0f, 0};
    CHECK(lt_generate(m, prompt, (int)tp->numel, 10, &greedy, out, &n_out, &err) == 0);
    CHECK_MSG(n_out == tg->numel, "%s: generated %d tokens, transformers %lld", name, n_out, (long long)tg->numel);
    for (int i = 0; i < n_out && i < tg->numel; i++) CHECK_MSG(out[i] == want_ids[i], "%s: token %d: %d vs %d", name, i, out[i], want_ids[i]);
    free(prompt);
    free(want_ids);
  }
  int ng = 0;
  CHECK(lt_model_set_train_mode(m, LT_TRAIN_FULL, NULL, &err) == 0);
  check_loss_and_grads(m, &bt, &rf, "loss", "full_grad.", name, &ng);
  CHECK_MSG(ng >= 4, "%s: only %d full gradients compared", name, ng);
  lt_model_free(m);

  // LoRA (PEFT adapter)
  CHECK(lt_model_load(&m, dir, &err) == 0);
  snprintf(path, sizeof path, "%s/adapter", dir);
  rc = lt_model_load_adapter(m, path, &err);
  CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
  if (rc == 0) {
    check_logits(m, &bt, ref(&rf, "lora_logits"), name, "lora");
    check_loss_and_grads(m, &bt, &rf, "lora_loss", "lora_grad.", name, &ng);
    CHECK_MSG(ng >= 4, "%s: only %d LoRA gradients compared", name, ng);
  }
  lt_model_free(m);

  // bf16 compute (frozen weights bf16, activations rounded to bf16, f32 accumulation) against the f32 reference:
  // documented tolerance: loss within 1% relative, LoRA gradients within 5% (relative L2 norm), logits within
  // 3% of the largest reference logit.
  CHECK(lt_model_load(&m, dir, &err) == 0);
  CHECK(lt_model_set_compute(m, LT_COMPUTE_BF16, &err) == 0);
  rc = lt_model_load_adapter(m, path, &err);
  CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
  if (rc == 0) {
    float *want_l = f32_of(ref(&rf, "lora_logits"));
    int len = 0;
    while (len < bt.T && bt.mask[len]) len++;
    float *got = malloc(sizeof(float) * (size_t)len * bt.V);
    CHECK(lt_model_logits(m, bt.ids, len, got, &err) == 0);
    double e = max_abs(got, want_l, (int64_t)len * bt.V), big = 0;
    for (int64_t i = 0; i < (int64_t)len * bt.V; i++) big = fmax(big, fabs(want_l[i]));
    CHECK_MSG(e <= 0.03 * big, "%s bf16 logits max abs error %g > 3%% of %g", name, e, big);
    lt_model_zero_grad(m);
    CHECK(lt_model_loss(m, bt.ids, bt.mask, bt.labels, bt.B, bt.T, 1, &loss, &err) == 0);
    memcpy(&want, ref(&rf, "lora_loss")->data, 4);
    CHECK_MSG(fabs(loss - want) <= 1e-2 * fabs(want), "%s bf16 loss %.6g vs %.6g", name, loss, want);
    double worst = worst_grad_err(m, &rf, "lora_grad.");
    CHECK_MSG(worst <= 5e-2, "%s bf16 LoRA gradient rel error %g > 5e-2", name, worst);
    fprintf(stderr, "  bf16 compute: logits max abs %.2e (max |logit| %.2f), loss rel %.2e, worst LoRA grad rel %.2e\n",
            e, big, fabs(loss - want) / fabs(want), worst);
    free(got);
    free(want_l);
  }
  lt_model_free(m);

  // full fine-tuning under bf16 compute: products use bf16 copies of the trainable matrices (the same tolerance
  // as above), refreshed after the values change
  CHECK(lt_model_load(&m, dir, &err) == 0);
  CHECK(lt_model_set_compute(m, LT_COMPUTE_BF16, &err) == 0);
  CHECK(lt_model_set_train_mode(m, LT_TRAIN_FULL, NULL, &err) == 0);
  lt_model_zero_grad(m);
  CHECK(lt_model_loss(m, bt.ids, bt.mask, bt.labels, bt.B, bt.T, 1, &loss, &err) == 0);
  memcpy(&want, ref(&rf, "loss")->data, 4);
  CHECK_MSG(fabs(loss - want) <= 1e-2 * fabs(want), "%s bf16 full loss %.6g vs %.6g", name, loss, want);
  double worst = worst_grad_err(m, &rf, "full_grad.");
  CHECK_MSG(worst <= 5e-2, "%s bf16 full gradient rel error %g > 5e-2", name, worst);
  for (int i = 0; i < lt_model_num_trainable(m); i++) {  // change every matrix: w -> 3 w
    float *w;
    int64_t numel, shape[2];
    lt_model_trainable(m, i, NULL, &w, NULL, &numel, shape);
    if (shape[1] > 1)
      for (int64_t k = 0; k < numel; k++) w[k] *= 3.0f;
  }
  lt_model_params_updated(m);
  float before = loss, after, f32;
  CHECK(lt_model_loss(m, bt.ids, bt.mask, bt.labels, bt.B, bt.T, 0, &after, &err) == 0);
  CHECK(lt_model_set_compute(m, LT_COMPUTE_F32, &err) == 0);
  CHECK(lt_model_loss(m, bt.ids, bt.mask, bt.labels, bt.B, bt.T, 0, &f32, &err) == 0);
  CHECK_MSG(fabs(f32 - before) > 0.05 * fabs(before), "%s: scaling the weights should change the loss", name);
  CHECK_MSG(fabs(after - f32) <= 1e-2 * fabs(f32), "%s bf16 full after an update: loss %.6g vs f32 %.6g", name,
            after, f32);
  lt_model_free(m);

  check_ckpt(dir, &bt, name, LT_TRAIN_LORA, 0.0f, LT_COMPUTE_F32);
  check_ckpt(dir, &bt, name, LT_TRAIN_LORA, 0.25f, LT_COMPUTE_BF16);
  check_ckpt(dir, &bt, name, LT_TRAIN_FULL, 0.0f, LT_COMPUTE_F32);
  check_fused(dir, &bt, name, "all");
  check_fused(dir, &bt, name, "q_proj,v_proj,gate_proj,down_proj");
  free(bt.ids);
  free(bt.mask);
  free(bt.labels);
  lt_st_close(&rf);
}

int main(void) {
  char *text;
  size_t len;
  lt_err err;
  int rc = lt_read_file(FIX "/index.json", &text, &len, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) TEST_MAIN_END();
  cJSON *root = cJSON_Parse(text);
  free(text);
  const cJSON *list = cJSON_GetObjectItem(root, "fixtures"), *e;
  int n = 0;
  cJSON_ArrayForEach(e, list) {
    const cJSON *nm = cJSON_GetObjectItem(e, "name");
    if (!cJSON_IsString(nm)) continue;
    int before = lt_test_failures;
    run_fixture(nm->valuestring);
    fprintf(stderr, "fixture %-28s %s\n", nm->valuestring, lt_test_failures == before ? "ok" : "FAILED");
    n++;
  }
  CHECK_MSG(n >= 6, "only %d fixtures listed", n);
  cJSON_Delete(root);
  TEST_MAIN_END();
}
