// Optimizers over the trainable registry: AdamW (torch.optim.AdamW; weight decay skipped for biases and norm
// weights, as HF Trainer groups parameters) and SGD with momentum (torch.optim.SGD); global-norm clipping.
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/model.h"
#include "train/train.h"

struct lt_optim {
  lt_model *m;
  lt_optim_config c;
  int n;
  float **m1, **m2, **vmax;  // per trainable tensor
  int64_t steps;
};

void lt_optim_free(lt_optim *o) {
  if (!o) return;
  for (int i = 0; i < o->n; i++) {
    if (o->m1) lt_free(o->m1[i]);
    if (o->m2) lt_free(o->m2[i]);
    if (o->vmax) lt_free(o->vmax[i]);
  }
  lt_free(o->m1);
  lt_free(o->m2);
  lt_free(o->vmax);
  lt_free(o);
}

int lt_optim_new(lt_optim **out, lt_model *m, const lt_optim_config *c, lt_err *err) {
  *out = NULL;
  if (c->type == LT_OPT_ADAMW && !(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1 && c->eps > 0))
    return lt_errf(err, "AdamW needs 0 <= adam_beta1, adam_beta2 < 1 and adam_epsilon > 0 (got %g, %g, %g)",
                   c->beta1, c->beta2, c->eps);
  if (c->weight_decay < 0) return lt_errf(err, "weight_decay %g must be >= 0", c->weight_decay);
  if (c->type == LT_OPT_SGD && !(c->momentum >= 0 && c->momentum < 1))
    return lt_errf(err, "SGD momentum %g must be in [0, 1)", c->momentum);
  lt_optim *o = lt_alloc(sizeof *o, err);
  if (!o) return -1;
  o->m = m;
  o->c = *c;
  o->n = m->ntrain;
  int adam = c->type == LT_OPT_ADAMW;
  o->m1 = lt_alloc(sizeof(float *) * (size_t)LT_MAX(o->n, 1), err);
  o->m2 = lt_alloc(sizeof(float *) * (size_t)LT_MAX(o->n, 1), err);
  o->vmax = lt_alloc(sizeof(float *) * (size_t)LT_MAX(o->n, 1), err);
  if (!o->m1 || !o->m2 || !o->vmax) {
    lt_optim_free(o);
    return -1;
  }
  for (int i = 0; i < o->n; i++) {
    size_t bytes = (size_t)m->train[i].numel * sizeof(float);
    int need_m1 = adam || c->momentum > 0;
    if ((need_m1 && !(o->m1[i] = lt_alloc(bytes, err))) || (adam && !(o->m2[i] = lt_alloc(bytes, err))) ||
        (adam && c->amsgrad && !(o->vmax[i] = lt_alloc(bytes, err)))) {
      lt_optim_free(o);
      return lt_err_prefix(err, "optimizer state for %s", m->train[i].name);
    }
  }
  *out = o;
  return 0;
}

static void optim_one(lt_optim *o, int i, double lr) {
  const lt_trainable *t = &o->m->train[i];
  float wd = t->decay ? (float)o->c.weight_decay : 0.0f;
  if (o->c.type == LT_OPT_ADAMW) {
    lt_adamw_step(t->w, t->g, o->m1[i], o->m2[i], o->vmax[i], t->numel, (float)lr, (float)o->c.beta1,
                  (float)o->c.beta2, (float)o->c.eps, wd, o->steps);
    return;
  }
  // torch.optim.SGD: g += wd w; buf = momentum buf + g (buf = g on the first step); w -= lr buf
  float mom = (float)o->c.momentum, *buf = o->m1[i];
  for (int64_t k = 0; k < t->numel; k++) {
    float g = t->g[k] + wd * t->w[k];
    if (buf) {
      buf[k] = o->steps == 1 ? g : mom * buf[k] + g;
      g = buf[k];
    }
    t->w[k] -= (float)lr * g;
  }
}

void lt_optim_step(lt_optim *o, double lr) {
  o->steps++;
  // the matrices too small for lt_adamw_step's threads (LoRA's hundreds) shared among the threads, whole; then the
  // large ones, each by all threads (the same values either way: every element is updated on its own)
#pragma omp parallel for schedule(dynamic, 1) if (o->n > 1)
  for (int i = 0; i < o->n; i++)
    if (o->m->train[i].numel <= LT_ADAMW_PAR) optim_one(o, i, lr);
  for (int i = 0; i < o->n; i++)
    if (o->m->train[i].numel > LT_ADAMW_PAR) optim_one(o, i, lr);
}

int64_t lt_optim_steps(const lt_optim *o) { return o->steps; }
void lt_optim_set_steps(lt_optim *o, int64_t steps) { o->steps = steps; }

int lt_optim_state(lt_optim *o, int i, float **m1, float **m2, float **vmax, int64_t *numel) {
  if (i < 0 || i >= o->n) return -1;
  *m1 = o->m1[i];
  *m2 = o->m2[i];
  *vmax = o->vmax[i];
  *numel = o->m->train[i].numel;
  return 0;
}

#define NORM_BLOCK (1 << 16)  // gradient values per partial sum of the norm

// sum of g[k]^2 in double, in eight interleaved partial sums (k mod 8) added in a fixed order
static double sum_sq(const float *g, int64_t n) {
  double s[8] = {0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; j++) s[j] += (double)g[k + j] * g[k + j];
  for (; k < n; k++) s[k & 7] += (double)g[k] * g[k];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static int64_t norm_blocks(int64_t n) { return n > 0 ? (n + NORM_BLOCK - 1) / NORM_BLOCK : 0; }

// Block b of all trainable gradients (matrix by matrix): its matrix, first value and length.
static float *norm_block(const lt_model *m, int64_t b, int64_t *n) {
  int i = 0;
  while (b >= norm_blocks(m->train[i].numel)) b -= norm_blocks(m->train[i++].numel);
  *n = LT_MIN((int64_t)NORM_BLOCK, m->train[i].numel - b * NORM_BLOCK);
  return m->train[i].g + b * NORM_BLOCK;
}

double lt_clip_grad_norm(lt_model *m, double max_norm) {
  // blocks of NORM_BLOCK values, each summed on one thread, the block sums added in matrix and block order: the same
  // bits at any number of threads
  int64_t nb = 0;
  for (int i = 0; i < m->ntrain; i++) nb += norm_blocks(m->train[i].numel);
  double sq = 0;
#pragma omp parallel for schedule(dynamic, 1) ordered if (nb > 1)
  for (int64_t b = 0; b < nb; b++) {
    int64_t n;
    const float *g = norm_block(m, b, &n);
    double s = sum_sq(g, n);
#pragma omp ordered
    sq += s;
  }
  double norm = sqrt(sq);
  if (max_norm > 0) {
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
#pragma omp parallel for schedule(dynamic, 1) if (nb > 1)
      for (int64_t b = 0; b < nb; b++) {
        int64_t n;
        float *g = norm_block(m, b, &n);
        for (int64_t k = 0; k < n; k++) g[k] *= (float)coef;
      }
  }
  return norm;
}
