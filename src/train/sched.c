// Learning-rate schedules, the same lambdas as transformers.optimization (get_scheduler), evaluated in double.
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "train/train.h"

static const char *const names[LT_SCHED_COUNT] = {
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial", "inverse_sqrt",
    "exponential"};

const char *lt_sched_name(lt_sched_type t) { return t >= 0 && t < LT_SCHED_COUNT ? names[t] : "?"; }

int lt_sched_parse(const char *name, lt_sched_type *out, lt_err *err) {
  for (int i = 0; i < LT_SCHED_COUNT; i++)
    if (strcmp(name, names[i]) == 0) {
      *out = (lt_sched_type)i;
      return 0;
    }
  return lt_errf(err,
                 "unknown lr_scheduler_type \"%s\"; choose from constant, constant_with_warmup, linear, cosine, "
                 "cosine_with_restarts, polynomial, inverse_sqrt, exponential",
                 name);
}

void lt_sched_init(lt_sched *s, lt_sched_type type, double lr, int64_t warmup_steps, int64_t total_steps) {
  memset(s, 0, sizeof *s);
  s->type = type;
  s->lr = lr;
  s->warmup_steps = warmup_steps < 0 ? 0 : warmup_steps;
  s->total_steps = total_steps;
  s->num_cycles = type == LT_SCHED_COSINE_WITH_RESTARTS ? 1.0 : 0.5;
  s->lr_end = 1e-7;
  s->power = 1.0;
  s->min_lr_ratio = 0.01;
}

int64_t lt_sched_warmup_from_ratio(int64_t total_steps, double ratio) {
  return ratio > 0 ? (int64_t)ceil((double)total_steps * ratio) : 0;
}

static double lambda(const lt_sched *s, int64_t step) {
  double t = (double)step, w = (double)s->warmup_steps, n = (double)s->total_steps;
  if (s->type == LT_SCHED_CONSTANT) return 1.0;
  if (step < s->warmup_steps) return t / fmax(1.0, w);
  double progress = (t - w) / fmax(1.0, n - w);
  switch (s->type) {
    case LT_SCHED_CONSTANT_WITH_WARMUP:
      return 1.0;
    case LT_SCHED_LINEAR:
      return fmax(0.0, (n - t) / fmax(1.0, n - w));
    case LT_SCHED_COSINE:
      return fmax(0.0, 0.5 * (1.0 + cos(M_PI * s->num_cycles * 2.0 * progress)));
    case LT_SCHED_COSINE_WITH_RESTARTS:
      if (progress >= 1.0) return 0.0;
      return fmax(0.0, 0.5 * (1.0 + cos(M_PI * fmod(s->num_cycles * progress, 1.0))));
    case LT_SCHED_POLYNOMIAL: {
      if (step > s->total_steps || s->total_steps <= s->warmup_steps) return s->lr_end / s->lr;
      double decay = (s->lr - s->lr_end) * pow(1.0 - (t - w) / (n - w), s->power) + s->lr_end;
      return decay / s->lr;
    }
    case LT_SCHED_INVERSE_SQRT: {
      double ts = s->timescale > 0 ? (double)s->timescale : (s->warmup_steps > 0 ? w : 10000.0);
      return 1.0 / sqrt((t + ts - w) / ts);
    }
    case LT_SCHED_EXPONENTIAL:  // lr * min_lr_ratio^progress: lr at the end of warm-up, lr * ratio at the end
      return pow(s->min_lr_ratio, fmin(progress, 1.0));
    default:
      return 1.0;
  }
}

double lt_sched_lr(const lt_sched *s, int64_t step) { return s->lr * lambda(s, step); }
