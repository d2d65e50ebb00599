// The training loop (HF Trainer semantics: batching, gradient accumulation with transformers 5's loss scaling,
// logging, evaluation, early stopping, checkpoints, exact resume), its arguments (LLaMA-Factory / HF names, from
// YAML and key=value flags), and its outputs (trainer_state.json, metrics.jsonl, TensorBoard events, SVG plot).
// The library never prints: progress, log entries and notices go through lt_train_hooks.
#ifndef LT_TRAINER_H
#define LT_TRAINER_H
#include <signal.h>
#include <stdint.h>

#include "data/data.h"
#include "lmtune.h"
#include "train/train.h"

typedef enum { LT_FT_LORA = 0, LT_FT_FULL, LT_FT_FREEZE } lt_finetune_type;

#define LT_PATH_CAP 4096

typedef struct lt_train_args {
  char model_name_or_path[LT_PATH_CAP];
  char adapter_name_or_path[LT_PATH_CAP];  // start LoRA from this PEFT adapter
  char stage[8];                           // "sft" or "pt" (both take pre-tokenized data)
  char template_name[64];                  // conversations: a named/built-in chat template (empty: the model's own)
  lt_finetune_type finetuning_type;
  int lora_rank;
  double lora_alpha;  // <= 0: 2 * lora_rank (LLaMA-Factory's default)
  double lora_dropout;
  char lora_target[256];
  int use_rslora;
  int freeze_trainable_layers;  // freeze: train the last N layers (N < 0: the first -N)
  char dataset[LT_PATH_CAP], eval_dataset[LT_PATH_CAP];
  double val_size;
  int cutoff_len, max_samples, skip_bad_records;
  int train_on_prompt;  // SFT on conversations: labels on the prompt tokens too
  int packing;  // -1 auto (stage pt with cutoff_len > 0), 0/1; {"text"} records are tokenized with the model's tokenizer
  char output_dir[LT_PATH_CAP];
  int overwrite_output_dir;
  int logging_steps, save_steps, eval_steps, save_total_limit, logging_first_step;
  int per_device_train_batch_size, per_device_eval_batch_size, gradient_accumulation_steps;
  double learning_rate, num_train_epochs;
  int64_t max_steps;  // > 0 overrides num_train_epochs
  lt_sched_type lr_scheduler_type;
  double warmup_ratio;
  int64_t warmup_steps;
  lt_opt_type optim;
  double weight_decay, adam_beta1, adam_beta2, adam_epsilon, max_grad_norm, momentum;
  int amsgrad;
  uint64_t seed;
  char resume_from_checkpoint[LT_PATH_CAP];  // "" none, "true" the latest checkpoint, or a path
  int disable_shuffling;
  int early_stopping_patience;  // 0: off
  double early_stopping_threshold;
  int load_best_model_at_end;
  char metric_for_best_model[32];  // only eval_loss
  int bf16, threads;
  int gradient_checkpointing;  // recompute each layer's activations in backward
  int plan;                    // print lmtune plan's prediction before training (default on)
  int plot_loss, report_to_tensorboard;
  int eval_strategy, save_strategy;  // LT_STRATEGY_*: "steps" (default), "no", "epoch"
  char additional_target[128];         // lora: whole modules trained beside the adapter (embed_tokens, lm_head)
  char freeze_trainable_modules[256];  // freeze: modules trained inside the chosen layers ("all" or names)
  char freeze_extra_modules[256];      // freeze: modules outside the layers also trained (e.g. embed_tokens,norm)
} lt_train_args;

enum { LT_STRATEGY_STEPS = 0, LT_STRATEGY_NO = 1, LT_STRATEGY_EPOCH = 2 };

void lt_train_args_default(lt_train_args *a);
// Set one key (LLaMA-Factory / HF name) from its text value. An unknown key names the closest valid one; a bad
// value names the key and the value.
int lt_train_args_set(lt_train_args *a, const char *key, const char *value, lt_err *err);
// Read a flat YAML mapping of such keys (libyaml).
int lt_train_args_load_yaml(lt_train_args *a, const char *path, lt_err *err);
// Consistency checks across keys (required keys, eval needs data, load_best_model_at_end needs matching steps).
int lt_train_args_check(const lt_train_args *a, lt_err *err);
// The closest valid key to `key` (edit distance), or NULL when nothing is close.
const char *lt_train_key_suggest(const char *key);
// training_args.yaml text (malloc'd).
char *lt_train_args_yaml(const lt_train_args *a);

typedef struct lt_train_progress {
  int64_t step, total;      // optimizer steps done / planned
  double epoch;             // fractional, as transformers
  double loss;              // mean loss of the last step
  double lr, grad_norm;
  double tokens_per_s;      // input tokens (non-padding) per second in this session
  double elapsed_s, eta_s;
} lt_train_progress;

typedef struct lt_train_hooks {
  void *ud;
  void (*progress)(void *ud, const lt_train_progress *p);  // after every optimizer step
  void (*log)(void *ud, const char *json);                 // every log_history entry, one JSON object
  void (*message)(void *ud, const char *msg);              // notices and warnings
} lt_train_hooks;

typedef struct lt_train_result {
  int64_t global_step, max_steps;
  double epoch, train_loss;
  int interrupted;       // stopped by the stop flag; a checkpoint was saved
  int early_stopped;
  int completed;         // the final outputs were written
  char checkpoint[LT_PATH_CAP + 64];  // the last checkpoint written (or resumed from)
} lt_train_result;

// Apply the run's compute precision, checkpointing and method (LoRA / full / freeze) to a loaded model.
int lt_train_setup(lt_model *m, const lt_train_args *a, lt_err *err);

// ---- plan.c: predicted speed and peak memory of a run, measured on truncated copies of the model ----
typedef struct lt_plan {
  int layers, batch, seq, seq_max, grad_accum, threads;
  double micro_s, opt_s, step_s;  // seconds per micro-batch, optimizer, optimizer step (= accumulation x micro + opt)
  double fixed_s, layer_s;         // micro = fixed + layers x layer (layer: the mean over the layers)
  double tokens_micro;                              // non-padding tokens per micro-batch
  double tokens_per_s;                              // non-padding tokens per second (as the trainer logs them)
  double mem_weights, mem_optim, mem_work, mem_runtime, mem_peak;  // bytes
  double measure_s;
} lt_plan;
// The shape of a run's micro-batches (rows are padded to the longest of their batch).
typedef struct lt_plan_shape {
  int seq;        // tokens per row the speed is measured at: the run's mean padded length
  int seq_max;    // tokens per row of the longest micro-batch: the workspace of the peak
  double tokens;  // non-padding tokens per micro-batch on average; <= 0: full rows (batch x seq)
} lt_plan_shape;
// Measure for a->model_name_or_path at batch a->per_device_train_batch_size x seq tokens (full rows). rss_base: the
// process's resident bytes to count as the baseline (<= 0: now).
int lt_plan_measure(const lt_train_args *a, int seq, int64_t rss_base, lt_plan *p, lt_err *err);
int lt_plan_measure_shape(const lt_train_args *a, const lt_plan_shape *s, int64_t rss_base, lt_plan *p, lt_err *err);
// The shape of the run over `d` as the trainer batches it: the micro-batches of the first epoch's order (all of them,
// or the first max_steps x gradient_accumulation_steps when fewer). An empty dataset is an error.
int lt_plan_shape_of(const lt_train_args *a, const lt_dataset *d, int64_t max_steps, lt_plan_shape *s, lt_err *err);
// Optimizer steps of the run (max_steps, or epochs over n_examples as the trainer counts them; 0 unknown).
int64_t lt_plan_steps(const lt_train_args *a, int64_t n_examples);
int lt_plan_format(const lt_plan *p, const lt_train_args *a, int64_t steps, char *out, size_t cap);
char *lt_plan_json(const lt_plan *p, int64_t steps);  // malloc'd JSON object
int64_t lt_rss_bytes(void);                            // resident set size of this process now

// Train as `a` says. train == NULL: read a->dataset (and a->eval_dataset / a->val_size); otherwise use the given
// examples (eval may be NULL). *stop (may be NULL) is polled between optimizer steps: when set, a checkpoint is
// saved and the run returns 0 with res->interrupted. A NaN/Inf loss or gradient norm fails naming the step.
int lt_train(const lt_train_args *a, const lt_dataset *train, const lt_dataset *eval, const lt_train_hooks *hooks,
             volatile sig_atomic_t *stop, lt_train_result *res, lt_err *err);

// ---- state.c: trainer_state.json and log files ----
typedef struct cJSON cJSON;
typedef struct lt_trainer_state {
  double epoch;
  int64_t global_step, max_steps;
  int logging_steps, eval_steps, save_steps, train_batch_size, num_train_epochs;
  int64_t num_input_tokens_seen;
  int has_best;
  double best_metric;
  int64_t best_global_step;
  char best_model_checkpoint[LT_PATH_CAP + 64];  // "" = null
  int es_patience, es_counter;
  double es_threshold;
  int should_training_stop;
  cJSON *log_history;  // array of objects (owned)
} lt_trainer_state;

int lt_state_write(const lt_trainer_state *s, const char *path, lt_err *err);
int lt_state_read(lt_trainer_state *s, const char *path, lt_err *err);
void lt_state_free(lt_trainer_state *s);
// metrics.jsonl: every log entry on one line (written atomically from the history).
int lt_metrics_write(const cJSON *log_history, const char *path, lt_err *err);
// SVG line plot of "loss" (and "eval_loss" points) over "step" from the history.
int lt_plot_loss_svg(const cJSON *log_history, const char *path, const char *title, lt_err *err);

// ---- tfevents.c: TensorBoard event files ----
uint32_t lt_crc32c(const void *data, size_t n);
uint32_t lt_tf_masked_crc(uint32_t crc);  // ((crc >> 15) | (crc << 17)) + 0xa282ead8
// One TFRecord: u64 length, masked CRC of the length, data, masked CRC of the data. Returns bytes written to out
// (out needs n + 16 bytes).
size_t lt_tfrecord_frame(uint8_t *out, const void *data, size_t n);
// The Event protobuf with a scalar summary (tag, simple_value) or, tag == NULL, file_version "brain.Event:2".
// Returns the encoded size (out needs 64 + strlen(tag) bytes).
size_t lt_tf_event_encode(uint8_t *out, double wall_time, int64_t step, const char *tag, float value);
// events.out.tfevents.<time>.<host> with one scalar per numeric log entry key (train/<key>, eval/<key>), written
// atomically from the history.
int lt_tfevents_write(const cJSON *log_history, const char *path, double wall_time0, lt_err *err);
// "events.out.tfevents.<unix time>.<host>"
void lt_tfevents_name(char *out, size_t cap, double unix_time);

// ---- checkpoint.c ----
typedef struct lt_optim lt_optim;
// Optimizer moments + step count as a safetensors file (tensor "<name>.exp_avg", ".exp_avg_sq",
// ".max_exp_avg_sq", ".momentum_buffer").
int lt_optim_save(lt_optim *o, lt_model *m, const char *path, lt_err *err);
int lt_optim_load(lt_optim *o, lt_model *m, const char *path, lt_err *err);
// output_dir/checkpoint-N with the largest N (complete ones only); -1 when none.
int64_t lt_checkpoint_latest(const char *output_dir, char *path, size_t cap);
// Keep at most `limit` checkpoints (oldest removed first; the newest and `protect` are kept).
int lt_checkpoint_rotate(const char *output_dir, int limit, const char *protect, lt_err *err);
// rm -rf of a directory we made (checkpoint dirs, temp dirs).
int lt_remove_tree(const char *path, lt_err *err);

#endif
