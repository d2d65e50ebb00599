// Schedulers, optimizers and clipping against transformers/torch (tests/fixtures/train_ref.json, made by
// make_train_ref.py).
#include <cjson/cJSON.h>

#include "model/model.h"
#include "test.h"
#include "train/train.h"

static double num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuedouble; }

static void fill(float *dst, const cJSON *arr) {
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, arr) dst[i++] = (float)e->valuedouble;
}

// A model stand-in with hand-made trainable tensors: the optimizer only sees the registry.
typedef struct {
  lt_model m;
  lt_trainable t[2];
  float w[2][8], g[2][8];
} fake_model;

static void fake_init(fake_model *f, int n0, int n1, int decay0, int decay1) {
  memset(f, 0, sizeof *f);
  f->t[0] = (lt_trainable){"a", f->w[0], f->g[0], n0, {n0, 1}, decay0};
  f->t[1] = (lt_trainable){"b", f->w[1], f->g[1], n1, {n1, 1}, decay1};
  f->m.train = f->t;
  f->m.ntrain = 2;
}

int main(void) {
  char *text;
  size_t len;
  lt_err err;
  int rc = lt_read_file(LT_FIXTURES "/train_ref.json", &text, &len, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) TEST_MAIN_END();
  cJSON *root = cJSON_Parse(text);
  free(text);
  // schedulers: every step of every type equals transformers' LambdaLR
  const cJSON *sc;
  int n_sched = 0;
  cJSON_ArrayForEach(sc, cJSON_GetObjectItem(root, "schedulers")) {
    lt_sched_type type;
    const char *name = cJSON_GetObjectItem(sc, "type")->valuestring;
    CHECK(lt_sched_parse(name, &type, &err) == 0);
    lt_sched s;
    lt_sched_init(&s, type, num(sc, "lr"), (int64_t)num(sc, "warmup"), (int64_t)num(sc, "total"));
    int step = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(sc, "lrs")) {
      double got = lt_sched_lr(&s, step), want = v->valuedouble;
      CHECK_MSG(fabs(got - want) <= 1e-12 * fabs(want) + 1e-18, "%s warmup %g total %g step %d: %.17g vs %.17g", name,
                num(sc, "warmup"), num(sc, "total"), step, got, want);
      step++;
    }
    n_sched++;
  }
  CHECK(n_sched >= 27);
  lt_sched_type t;
  CHECK(lt_sched_parse("cosine_annealing", &t, &err) == -1 && strstr(err.msg, "cosine_with_restarts"));
  CHECK(lt_sched_warmup_from_ratio(37, 0.1) == 4 && lt_sched_warmup_from_ratio(100, 0.0) == 0);
  lt_sched ex;
  lt_sched_init(&ex, LT_SCHED_EXPONENTIAL, 1.0, 2, 12);
  CHECK_NEAR(lt_sched_lr(&ex, 1), 0.5, 1e-15);
  CHECK_NEAR(lt_sched_lr(&ex, 2), 1.0, 1e-15);
  CHECK_NEAR(lt_sched_lr(&ex, 7), sqrt(0.01), 1e-12);
  CHECK_NEAR(lt_sched_lr(&ex, 12), 0.01, 1e-15);

  // optimizer trajectories (4 steps from w0 with fixed gradients)
  const cJSON *traj = cJSON_GetObjectItem(root, "trajectories"), *grads = cJSON_GetObjectItem(root, "grads");
  struct { const char *key; lt_optim_config c; double lr; } cases[] = {
      {"sgd", {LT_OPT_SGD, 0, 0, 0, 0.01, 0, 0.9}, 0.1},
      {"adamw", {LT_OPT_ADAMW, 0.8, 0.95, 1e-6, 0.1, 0, 0}, 0.01},
      {"adamw_amsgrad", {LT_OPT_ADAMW, 0.9, 0.999, 1e-8, 0.0, 1, 0}, 0.01},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    fake_model f;
    fake_init(&f, 7, 1, 1, 0);
    fill(f.w[0], cJSON_GetObjectItem(root, "w0"));
    lt_optim *o;
    CHECK(lt_optim_new(&o, &f.m, &cases[c].c, &err) == 0);
    int step = 0;
    const cJSON *want_w;
    cJSON_ArrayForEach(want_w, cJSON_GetObjectItem(traj, cases[c].key)) {
      fill(f.g[0], cJSON_GetArrayItem(grads, step));
      lt_optim_step(o, cases[c].lr);
      float want[8];
      fill(want, want_w);
      for (int k = 0; k < 7; k++)
        CHECK_MSG(fabs(f.w[0][k] - want[k]) <= 2e-6 * fabs(want[k]) + 1e-7, "%s step %d [%d]: %.9g vs %.9g",
                  cases[c].key, step, k, f.w[0][k], want[k]);
      step++;
    }
    CHECK(lt_optim_steps(o) == 4);
    lt_optim_free(o);
  }
  // no weight decay on tensors flagged as biases/norms
  {
    fake_model f;
    fake_init(&f, 2, 2, 1, 0);
    f.w[0][0] = f.w[1][0] = 1.0f;
    lt_optim_config c = {LT_OPT_SGD, 0, 0, 0, 0.5, 0, 0.0};
    lt_optim *o;
    CHECK(lt_optim_new(&o, &f.m, &c, &err) == 0);
    lt_optim_step(o, 0.1);
    CHECK_NEAR(f.w[0][0], 0.95, 1e-7);
    CHECK_NEAR(f.w[1][0], 1.0, 0);
    lt_optim_free(o);
    lt_optim_config bad = {LT_OPT_ADAMW, 1.0, 0.999, 1e-8, 0, 0, 0};
    CHECK(lt_optim_new(&o, &f.m, &bad, &err) == -1 && strstr(err.msg, "adam_beta1"));
  }
  // clip_grad_norm_
  {
    const cJSON *cl = cJSON_GetObjectItem(root, "clip");
    fake_model f;
    fake_init(&f, 5, 6, 1, 1);
    fill(f.g[0], cJSON_GetArrayItem(cJSON_GetObjectItem(cl, "grads"), 0));
    fill(f.g[1], cJSON_GetArrayItem(cJSON_GetObjectItem(cl, "grads"), 1));
    double norm = lt_clip_grad_norm(&f.m, num(cl, "max_norm"));
    CHECK_NEAR(norm, num(cl, "norm"), 1e-5 * num(cl, "norm"));
    float want[2][8];
    fill(want[0], cJSON_GetArrayItem(cJSON_GetObjectItem(cl, "clipped"), 0));
    fill(want[1], cJSON_GetArrayItem(cJSON_GetObjectItem(cl, "clipped"), 1));
    for (int k = 0; k < 5; k++) CHECK_NEAR(f.g[0][k], want[0][k], 1e-6);
    for (int k = 0; k < 6; k++) CHECK_NEAR(f.g[1][k], want[1][k], 1e-6);
    double again = lt_clip_grad_norm(&f.m, 0);  // no clipping: only the norm
    CHECK_NEAR(again, num(cl, "max_norm"), 1e-5);
  }
  cJSON_Delete(root);
  TEST_MAIN_END();
}
