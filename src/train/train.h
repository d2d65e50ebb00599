// Training machinery: learning-rate schedules (transformers' get_scheduler, step for step), optimizers over the
// trainable registry (AdamW as torch.optim.AdamW with HF Trainer's decay grouping, SGD with momentum), global-norm
// gradient clipping.
#ifndef LT_TRAIN_H
#define LT_TRAIN_H
#include <stdint.h>

#include "lmtune.h"

typedef enum {
  LT_SCHED_CONSTANT = 0, LT_SCHED_CONSTANT_WITH_WARMUP, LT_SCHED_LINEAR, LT_SCHED_COSINE,
  LT_SCHED_COSINE_WITH_RESTARTS, LT_SCHED_POLYNOMIAL, LT_SCHED_INVERSE_SQRT, LT_SCHED_EXPONENTIAL,
  LT_SCHED_COUNT
} lt_sched_type;

typedef struct lt_sched {
  lt_sched_type type;
  double lr;               // peak learning rate
  int64_t warmup_steps;
  int64_t total_steps;
  double num_cycles;       // cosine: 0.5 (half a wave); cosine_with_restarts: 1
  double lr_end, power;    // polynomial: 1e-7, 1.0
  int64_t timescale;       // inverse_sqrt: 0 = warmup_steps or 10000
  double min_lr_ratio;     // exponential: lr decays to lr * min_lr_ratio at total_steps (0.01)
} lt_sched;

// Names as transformers' SchedulerType values ("linear", "cosine", ...) plus "exponential".
int lt_sched_parse(const char *name, lt_sched_type *out, lt_err *err);
const char *lt_sched_name(lt_sched_type t);
// Defaults for the type-specific knobs.
void lt_sched_init(lt_sched *s, lt_sched_type type, double lr, int64_t warmup_steps, int64_t total_steps);
// warmup_ratio -> steps as transformers' TrainingArguments.get_warmup_steps: ceil(total * ratio).
int64_t lt_sched_warmup_from_ratio(int64_t total_steps, double ratio);
// The learning rate used by optimizer step `step` (0-based): lr * lambda(step), as LambdaLR gives it.
double lt_sched_lr(const lt_sched *s, int64_t step);

typedef enum { LT_OPT_ADAMW = 0, LT_OPT_SGD } lt_opt_type;

typedef struct lt_optim_config {
  lt_opt_type type;
  double beta1, beta2, eps, weight_decay;  // AdamW (torch defaults 0.9, 0.999, 1e-8; HF Trainer wd 0.0)
  int amsgrad;
  double momentum;                         // SGD
} lt_optim_config;

typedef struct lt_optim lt_optim;
// State (moments) for every trainable tensor of m, in registry order.
int lt_optim_new(lt_optim **out, lt_model *m, const lt_optim_config *c, lt_err *err);
void lt_optim_free(lt_optim *o);
// One update of every trainable tensor with learning rate lr; the step counter advances.
void lt_optim_step(lt_optim *o, double lr);
int64_t lt_optim_steps(const lt_optim *o);
// Moment buffers for checkpointing: tensor i's buffers (NULL when the optimizer has none) and element count.
int lt_optim_state(lt_optim *o, int i, float **m1, float **m2, float **vmax, int64_t *numel);
void lt_optim_set_steps(lt_optim *o, int64_t steps);

// Global L2 norm of all trainable gradients (double accumulation, fixed order); if max_norm > 0 the gradients
// are scaled by max_norm / (norm + 1e-6) when that is below 1, as torch.nn.utils.clip_grad_norm_. Returns the
// norm before clipping.
double lt_clip_grad_norm(lt_model *m, double max_norm);

#endif
