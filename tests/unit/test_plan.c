// lmtune plan: the workspace prediction equals what the full model really allocates (exact bytes, LoRA / full /
// checkpointing), the weight prediction brackets the checkpoint, step counts follow the trainer's rule, and bad
// input gives messages.
#include <math.h>
#include <string.h>

#include "model/model.h"
#include "test.h"
#include "train/trainer.h"

#define TINY LT_FIXTURES "/../../models/lmtune-tiny"

static void args_for(lt_train_args *a, lt_finetune_type ft, int bf16, int ckpt) {
  lt_train_args_default(a);
  snprintf(a->model_name_or_path, sizeof a->model_name_or_path, "%s", TINY);
  snprintf(a->output_dir, sizeof a->output_dir, "%s", LT_TMPDIR);
  a->finetuning_type = ft;
  a->lora_rank = 8;
  a->bf16 = bf16;
  a->gradient_checkpointing = ckpt;
  a->per_device_train_batch_size = 2;
  a->gradient_accumulation_steps = 2;
}

// The weight memory of the real model's views for this bf16 checkpoint: the mapping, f32 copies (f32 compute,
// norms, trained values), bf16 copies of trained matrices, gradients, adapters with their gradients.
static double real_weights(const lt_model *m) {
  double b = 0;
  for (int i = 0; i < m->nparams; i++) {
    const lt_param *p = &m->params[i];
    int mat = p->ndim == 2, tr = p->g != NULL, bf = m->compute == LT_COMPUTE_BF16;
    b += 2.0 * p->numel;
    if (!(bf && mat && !tr)) b += 4.0 * p->numel;
    if (bf && mat && tr) b += 2.0 * p->numel;
    if (tr) b += 4.0 * p->numel;
  }
  for (int i = 0; m->loras && i < m->cfg.layers * 7; i++)
    if (m->loras[i].r) b += 16.0 * m->loras[i].r * (m->loras[i].in + m->loras[i].out);
  return b;
}

// lo, hi: the expected weight memory in checkpoint sizes
static void check_case(lt_finetune_type ft, int bf16, int ckpt, double lo, double hi) {
  enum { B = 2, T = 48 };
  lt_train_args a;
  args_for(&a, ft, bf16, ckpt);
  lt_plan p;
  lt_err err;
  int rc = lt_plan_measure(&a, T, 0, &p, &err);
  CHECK_MSG(rc == 0, "plan: %s", err.msg);
  if (rc) return;
  CHECK(p.layers == 6 && p.batch == B && p.seq == T && p.grad_accum == 2);
  CHECK_MSG(p.step_s > 0 && isfinite(p.step_s) && p.micro_s > 0 && p.opt_s >= 0, "step %g micro %g opt %g", p.step_s,
            p.micro_s, p.opt_s);
  CHECK(fabs(p.step_s - (2 * p.micro_s + p.opt_s)) < 1e-9);
  CHECK(fabs(p.tokens_per_s - B * T * 2 / p.step_s) < 1e-6 * p.tokens_per_s);
  // the real model, set up the same way, after one training step
  lt_model *m;
  CHECK(lt_model_load(&m, TINY, &err) == 0);
  CHECK(lt_train_setup(m, &a, &err) == 0);
  int32_t ids[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (i * 37 + 11) % m->cfg.vocab;
  float loss;
  CHECK(lt_model_loss(m, ids, NULL, ids, B, T, 1, &loss, &err) == 0);
  CHECK_MSG((double)m->ws.bytes == p.mem_work, "ft %d bf16 %d ckpt %d: workspace predicted %.0f, allocated %lld",
            (int)ft, bf16, ckpt, p.mem_work, (long long)m->ws.bytes);
  int64_t stored = 0;
  for (int i = 0; i < m->nparams; i++) stored += m->params[i].numel * 2;  // the checkpoint is bf16
  CHECK_MSG(p.mem_weights >= lo * (double)stored && p.mem_weights <= hi * (double)stored,
            "weights predicted %.0f for a %lld-byte checkpoint: expected %g-%gx", p.mem_weights, (long long)stored, lo,
            hi);
  CHECK_MSG(fabs(p.mem_weights - real_weights(m)) < 1.0, "weights: predicted %.0f, the full model's views %.0f",
            p.mem_weights, real_weights(m));
  CHECK(p.mem_peak >= p.mem_weights + p.mem_work);
  lt_model_free(m);
  char txt[2048];
  CHECK(lt_plan_format(&p, &a, 10, txt, sizeof txt) == 0);
  CHECK(strstr(txt, "tokens/s") && strstr(txt, "10 optimizer steps") && strstr(txt, "peak memory"));
  CHECK(lt_plan_format(&p, &a, 10, txt, 40) == -1);  // too small a buffer is an error, not an overflow
}

int main(void) {
  check_case(LT_FT_LORA, 1, 0, 1.0, 1.4);  // the mapping (+ norms, adapters)
  check_case(LT_FT_LORA, 0, 1, 3.0, 3.4);  // + f32 copies
  check_case(LT_FT_FULL, 1, 1, 5.9, 6.0);  // + f32 values, gradients, bf16 copies

  lt_train_args a;
  args_for(&a, LT_FT_LORA, 0, 0);
  a.max_steps = 7;
  CHECK(lt_plan_steps(&a, 1000) == 7);
  a.max_steps = -1;
  a.num_train_epochs = 3;
  a.per_device_train_batch_size = 4;
  a.gradient_accumulation_steps = 2;
  CHECK(lt_plan_steps(&a, 10) == 6);  // 3 batches -> 2 updates per epoch
  CHECK(lt_plan_steps(&a, 0) == 0);

  lt_plan p;
  lt_err err;
  CHECK(lt_plan_measure(&a, 1, 0, &p, &err) == -1);
  CHECK_MSG(strstr(err.msg, "sequence length"), "%s", err.msg);
  snprintf(a.model_name_or_path, sizeof a.model_name_or_path, "%s/no-such-model", LT_TMPDIR);
  CHECK(lt_plan_measure(&a, 32, 0, &p, &err) == -1);
  CHECK_MSG(strstr(err.msg, "no-such-model"), "%s", err.msg);
  TEST_MAIN_END();
}
