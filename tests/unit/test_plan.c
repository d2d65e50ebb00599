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
// norms, trained values), bf16 copies of trained matrices, packed copies, gradients, adapters with their gradients.
static double real_weights(const lt_model *m) {
  double b = 0;
  for (int i = 0; i < m->nparams; i++) {
    const lt_param *p = &m->params[i];
    int mat = p->ndim == 2, tr = p->g != NULL, bf = m->compute == LT_COMPUTE_BF16;
    b += 2.0 * p->numel;
    if (!(bf && mat && !tr)) b += 4.0 * p->numel;
    if (bf && mat && tr) b += 2.0 * p->numel;
    if (tr) b += 4.0 * p->numel;
    // packed for bf16 training (the LM head in both forms, the layers' matrices in the NN form); a packed matrix
    // that is a view of the mapping leaves memory
    if (p->pk_nt) b += (double)lt_bf16_prepack_bytes((int)p->shape[0], (int)p->shape[1]);
    if (p->pk_nn) b += (double)lt_bf16_prepack_bytes((int)p->shape[1], (int)p->shape[0]);
    if ((p->pk_nt || p->pk_nn) && !p->bf_owned) b -= 2.0 * p->numel;
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
  // the frozen matrices' NT copies: made for these short steps unless checkpointing (lt_model_pack_nt)
  if (ft == LT_FT_LORA && bf16 && lt_cpu_has_avx512bf16()) {
    const lt_param *wq = m->layer[0].proj[LT_Q].w;
    CHECK_MSG(wq->pk_nn && (wq->pk_nt != NULL) == !ckpt, "ckpt %d: q_proj packed NN %d NT %d", ckpt, wq->pk_nn != NULL,
              wq->pk_nt != NULL);
  }
  int64_t ntrain = 0;
  for (int i = 0; i < m->ntrain; i++) ntrain += m->train[i].numel;
  CHECK_MSG(p.mem_optim == 8.0 * (double)ntrain, "optimizer state predicted %.0f, AdamW over the full model's %lld "
            "trainable values %.0f", p.mem_optim, (long long)ntrain, 8.0 * (double)ntrain);
  CHECK(p.mem_peak >= p.mem_weights + p.mem_work);
  lt_model_free(m);
  char txt[2048];
  CHECK(lt_plan_format(&p, &a, 10, txt, sizeof txt) == 0);
  CHECK(strstr(txt, "tokens/s") && strstr(txt, "10 optimizer steps") && strstr(txt, "peak memory"));
  CHECK(lt_plan_format(&p, &a, 10, txt, 40) == -1);  // too small a buffer is an error, not an overflow
}

// A dataset of rows with these lengths (attention mask all ones except `pad_last` zeros at the end of row 0).
static void make_set(lt_dataset *d, const int *lens, int n, int pad_last) {
  lt_err err;
  memset(d, 0, sizeof *d);
  for (int i = 0; i < n; i++) {
    int32_t ids[64], lab[64], attn[64];
    for (int k = 0; k < lens[i]; k++) {
      ids[k] = lab[k] = k + 1;
      attn[k] = !(i == 0 && k >= lens[i] - pad_last);
    }
    CHECK(lt_dataset_add(d, ids, lab, pad_last ? attn : NULL, lens[i], i + 1, &err) == 0);
  }
}

// The run's batch shape as the trainer makes it: padded to the longest row of each micro-batch.
static void check_shape(void) {
  lt_train_args a;
  args_for(&a, LT_FT_LORA, 0, 0);
  a.per_device_train_batch_size = 2;
  a.gradient_accumulation_steps = 1;
  a.disable_shuffling = 1;
  lt_dataset d;
  const int lens[5] = {10, 3, 7, 5, 2};  // batches (10,3) (7,5) (2): padded 20 + 14 + 2 = 36 over 3 x 2 rows
  make_set(&d, lens, 5, 0);
  lt_plan_shape s;
  lt_err err;
  CHECK(lt_plan_shape_of(&a, &d, 0, &s, &err) == 0);
  CHECK_MSG(s.seq == 6 && s.seq_max == 10 && fabs(s.tokens - 27.0 / 3) < 1e-12, "seq %d max %d tokens %g", s.seq,
            s.seq_max, s.tokens);
  CHECK(lt_plan_shape_of(&a, &d, 1, &s, &err) == 0);  // max_steps 1: the first micro-batch only
  CHECK_MSG(s.seq == 10 && s.seq_max == 10 && fabs(s.tokens - 13) < 1e-12, "seq %d max %d tokens %g", s.seq,
            s.seq_max, s.tokens);
  lt_dataset_free(&d);
  const int lens2[4] = {4, 3, 2, 9};  // max_steps 1 never meets the 9-token row
  make_set(&d, lens2, 4, 2);           // row 0 ends in 2 masked positions
  CHECK(lt_plan_shape_of(&a, &d, 1, &s, &err) == 0);
  CHECK_MSG(s.seq == 4 && s.seq_max == 4 && fabs(s.tokens - 5) < 1e-12, "seq %d max %d tokens %g", s.seq, s.seq_max,
            s.tokens);
  CHECK(lt_plan_shape_of(&a, &d, 0, &s, &err) == 0);  // the whole epoch: (4,3) (2,9) = 8 + 18 over 4 rows
  CHECK_MSG(s.seq == 7 && s.seq_max == 9 && fabs(s.tokens - 16.0 / 2) < 1e-12, "seq %d max %d tokens %g", s.seq,
            s.seq_max, s.tokens);
  // shuffled: the first epoch's order, as the trainer draws it
  a.disable_shuffling = 0;
  a.seed = 3;
  int32_t perm[4];
  lt_shuffle_perm(perm, 4, 3, 0);
  CHECK(lt_plan_shape_of(&a, &d, 1, &s, &err) == 0);
  int t0 = LT_MAX(lens2[perm[0]], lens2[perm[1]]);
  CHECK_MSG(s.seq == LT_MAX(t0, 2) && s.seq_max == s.seq, "seq %d max %d, expected %d", s.seq, s.seq_max, t0);
  lt_dataset_free(&d);
  lt_dataset empty = {0};
  CHECK(lt_plan_shape_of(&a, &empty, 0, &s, &err) == -1);
  CHECK_MSG(strstr(err.msg, "no training examples"), "%s", err.msg);

  // speed at the mean length, workspace at the longest: the full model's allocation at B x seq_max
  enum { B = 2 };
  lt_plan_shape sh = {24, 40, 30.25};
  lt_plan p;
  CHECK_MSG(lt_plan_measure_shape(&a, &sh, 0, &p, &err) == 0, "%s", err.msg);
  CHECK(p.seq == 24 && p.seq_max == 40 && p.tokens_micro == 30.25);
  CHECK(fabs(p.tokens_per_s - 30.25 * a.gradient_accumulation_steps / p.step_s) < 1e-9 * p.tokens_per_s);
  lt_model *m;
  CHECK(lt_model_load(&m, TINY, &err) == 0);
  CHECK(lt_train_setup(m, &a, &err) == 0);
  CHECK(lt_model_prepare(m, &err) == 0 && lt_ws_reserve(m, B, 40, &err) == 0);
  CHECK_MSG((double)m->ws.bytes == p.mem_work, "workspace predicted %.0f, allocated at %d x 40: %lld", p.mem_work, B,
            (long long)m->ws.bytes);
  lt_model_free(m);
  char txt[2048];
  CHECK(lt_plan_format(&p, &a, 10, txt, sizeof txt) == 0);
  CHECK_MSG(strstr(txt, "longest 40") && strstr(txt, "30 non-padding tokens"), "%s", txt);  
}

int main(void) {
  check_shape();
  // the mapping (+ norms, adapters), and with AVX512-BF16 the LM head's two packed forms (2x its bf16 size)
  // with AVX512-BF16 the frozen matrices are packed in both forms for these short steps (lt_model_pack_nt)
  check_case(LT_FT_LORA, 1, 0, 1.0, lt_cpu_has_avx512bf16() ? 2.6 : 1.4);
  check_case(LT_FT_LORA, 1, 1, 1.0, lt_cpu_has_avx512bf16() ? 2.0 : 1.4);  // checkpointing: the NN form alone
  check_case(LT_FT_LORA, 0, 1, 3.0, 3.4);  // + f32 copies
  check_case(LT_FT_FULL, 1, 1, 5.9, 6.0);  // + f32 values, gradients, bf16 copies
  check_case(LT_FT_FREEZE, 0, 0, 3.0, 4.0);  // the last 2 of 6 layers trained: the copy has frozen and trained layers

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
  a.finetuning_type = LT_FT_FREEZE;
  a.freeze_trainable_layers = -7;
  CHECK(lt_plan_measure(&a, 32, 0, &p, &err) == -1);
  CHECK_MSG(strstr(err.msg, "freeze_trainable_layers -7") && strstr(err.msg, "6 layers"), "%s", err.msg);
  a.finetuning_type = LT_FT_LORA;
  CHECK(lt_plan_measure(&a, 1, 0, &p, &err) == -1);
  CHECK_MSG(strstr(err.msg, "sequence length"), "%s", err.msg);
  snprintf(a.model_name_or_path, sizeof a.model_name_or_path, "%s/no-such-model", LT_TMPDIR);
  CHECK(lt_plan_measure(&a, 32, 0, &p, &err) == -1);
  CHECK_MSG(strstr(err.msg, "no-such-model"), "%s", err.msg);
  TEST_MAIN_END();
}
