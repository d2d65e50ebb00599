// lmtune train [config.yaml] [--key value | --key=value ...]: LLaMA-Factory / HF TrainingArguments key names;
// flags override the YAML file. Ctrl-C (SIGINT/SIGTERM) saves a checkpoint and exits.
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "train/trainer.h"

// The only mutable global: set by the signal handler, polled by the trainer through a pointer.
static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  if (stop_requested) signal(sig, SIG_DFL);  // a second Ctrl-C ends the process at once
  stop_requested = 1;
}

typedef struct {
  int tty;
  int bar_shown;
  double last_draw;  // elapsed seconds at the last redraw
} ui;

static void fmt_time(char *out, size_t cap, double s) {
  if (!(s >= 0) || s > 1e8) {
    snprintf(out, cap, "?");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600) snprintf(out, cap, "%ldh%02ldm%02lds", t / 3600, t / 60 % 60, t % 60);
  else if (t >= 60) snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
  else snprintf(out, cap, "%lds", t);
}

static void clear_bar(ui *u) {
  if (u->tty && u->bar_shown) {
    fprintf(stderr, "\r\033[K");
    u->bar_shown = 0;
  }
}

static void on_progress(void *ud, const lt_train_progress *p) {
  ui *u = ud;
  if (!u->tty) return;  // plain log lines come from on_log
  if (p->step < p->total && u->bar_shown && p->elapsed_s - u->last_draw < 0.1) return;  // at most ~10 redraws/s
  u->last_draw = p->elapsed_s;
  char eta[32], el[32];
  fmt_time(eta, sizeof eta, p->eta_s);
  fmt_time(el, sizeof el, p->elapsed_s);
  int width = 24, fill = p->total > 0 ? (int)((double)p->step / (double)p->total * width) : 0;
  char bar[32];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = 0;
  fprintf(stderr, "\r\033[K[%s] %lld/%lld  loss %.4f  lr %.3g  %.0f tok/s  %s elapsed  ETA %s", bar,
          (long long)p->step, (long long)p->total, p->loss, p->lr, p->tokens_per_s, el, eta);
  fflush(stderr);
  u->bar_shown = 1;
}

static void on_log(void *ud, const char *json) {
  ui *u = ud;
  clear_bar(u);
  fprintf(stderr, "%s\n", json);
  fflush(stderr);
}

static void on_message(void *ud, const char *msg) {
  ui *u = ud;
  clear_bar(u);
  fprintf(stderr, "lmtune train: %s\n", msg);
  fflush(stderr);
}

static void usage(FILE *fp) {
  fprintf(fp,
          "usage: lmtune train [config.yaml] [--key value | --key=value ...]\n"
          "Fine-tunes a model. dataset: conversations (Alpaca instruction/input/output, ShareGPT conversations,\n"
          "OpenAI messages; .json or .jsonl) rendered with the model's chat template (or `template`: a named or\n"
          "built-in one) with labels on the responses only (unless train_on_prompt); pre-tokenized JSONL\n"
          "({\"input_ids\": [...], \"labels\": [...]}, labels default to input_ids, -100 ignored); or {\"text\": ...}\n"
          "for stage pt. Keys as LLaMA-Factory / HF TrainingArguments name them; flags override the YAML file.\n"
          "Main keys (also template, train_on_prompt):\n"
          "  model_name_or_path, adapter_name_or_path, stage (sft|pt), finetuning_type (lora|full|freeze),\n"
          "  lora_rank, lora_alpha, lora_dropout, lora_target (q_proj,v_proj | all), use_rslora,\n"
          "  freeze_trainable_layers, freeze_trainable_modules (all | self_attn,mlp,...), freeze_extra_modules,\n"
          "  dataset (a file, a directory of .txt documents for pt, or a,b,c), eval_dataset, val_size, cutoff_len,\n"
          "  max_samples, skip_bad_records, output_dir, overwrite_output_dir, logging_steps, save_steps,\n"
          "  eval_steps, save_strategy / eval_strategy (steps|epoch|no), save_total_limit,\n"
          "  per_device_train_batch_size, per_device_eval_batch_size, gradient_accumulation_steps, learning_rate,\n"
          "  num_train_epochs, max_steps, lr_scheduler_type, warmup_ratio, warmup_steps, optim (adamw_torch|sgd),\n"
          "  weight_decay, adam_beta1, adam_beta2, adam_epsilon, amsgrad, momentum, max_grad_norm, seed,\n"
          "  resume_from_checkpoint (true|PATH), disable_shuffling, early_stopping_patience,\n"
          "  early_stopping_threshold, load_best_model_at_end, bf16, gradient_checkpointing, threads, plot_loss,\n"
          "  report_to, plan (print lmtune plan's prediction first; default true)\n"
          "Outputs in output_dir: the adapter (PEFT) or model (HF folder), checkpoint-N/, trainer_state.json,\n"
          "metrics.jsonl, runs/ (TensorBoard), training_loss.svg, training_args.yaml, train_results.json and\n"
          "all_results.json (written last: its presence marks a finished run).\n"
          "Ctrl-C saves a checkpoint and stops (exit 130); resume with --resume_from_checkpoint true.\n");
}

int lt_cli_help(int argc, char **argv, void (*usage)(FILE *)) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return LT_EXIT_OK;
    }
  if (argc == 0) {
    usage(stderr);
    return LT_EXIT_USAGE;
  }
  return -1;
}

int lt_cli_train_args(const char *verb, int argc, char **argv, lt_train_args *a, lt_cli_extra_key extra, void *ud) {
  lt_err err;
  int first_flag = 0;
  if (argc > 0 && strncmp(argv[0], "--", 2) != 0) {
    if (lt_train_args_load_yaml(a, argv[0], &err)) {
      fprintf(stderr, "lmtune %s: %s\n", verb, err.msg);
      return -1;
    }
    first_flag = 1;
  }
  for (int i = first_flag; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0 || !arg[2]) {
      fprintf(stderr, "lmtune %s: unexpected argument \"%s\" (options are --key value; the YAML file comes first)\n",
              verb, arg);
      return -1;
    }
    char key[128];
    const char *val, *eq = strchr(arg, '=');
    size_t kn = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    if (kn >= sizeof key) {
      fprintf(stderr, "lmtune %s: option \"%.60s...\" is too long\n", verb, arg);
      return -1;
    }
    memcpy(key, arg + 2, kn);
    key[kn] = 0;
    for (char *p = key; *p; p++)
      if (*p == '-') *p = '_';  // --learning-rate == --learning_rate
    if (eq) val = eq + 1;
    else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) val = argv[++i];
    else val = "true";  // a bare flag: --skip_bad_records
    int taken = extra ? extra(ud, key, val) : 0;
    if (taken < 0) return -1;
    if (!taken && lt_train_args_set(a, key, val, &err)) {
      fprintf(stderr, "lmtune %s: --%s: %s\n", verb, key, err.msg);
      return -1;
    }
  }
  if (lt_train_args_check(a, &err)) {
    fprintf(stderr, "lmtune %s: %s\n", verb, err.msg);
    return -1;
  }
  return 0;
}

int lt_cmd_train(int argc, char **argv) {
  lt_train_args a;
  lt_train_args_default(&a);
  lt_err err;
  int ex = lt_cli_help(argc, argv, usage);
  if (ex >= 0) return ex;
  if (lt_cli_train_args("train", argc, argv, &a, NULL, NULL)) return LT_EXIT_USAGE;
  ui u = {isatty(fileno(stderr)), 0, 0};
  lt_train_hooks hooks = {&u, on_progress, on_log, on_message};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int, old_term;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  lt_train_result res;
  int rc = lt_train(&a, NULL, NULL, &hooks, &stop_requested, &res, &err);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  clear_bar(&u);
  if (rc) {
    fprintf(stderr, "lmtune train: %s\n", err.msg);
    return LT_EXIT_FAIL;
  }
  if (res.interrupted) {
    fprintf(stderr, "lmtune train: stopped at step %lld of %lld; checkpoint %s\n", (long long)res.global_step,
            (long long)res.max_steps, res.checkpoint);
    return 130;
  }
  fprintf(stderr, "lmtune train: done: %lld steps, train_loss %.4f; outputs in %s\n", (long long)res.global_step,
          res.train_loss, a.output_dir);
  return LT_EXIT_OK;
}
