// lmtune train's arguments: LLaMA-Factory / HF TrainingArguments key names as flags or YAML, defaults, checks
// (an unknown key names the closest valid one) and the training_args.yaml dump.
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/core.h"
#include "model/model.h"
#include "train/trainer.h"

// ======================================================================================== arguments

typedef enum { K_STR, K_INT, K_I64, K_F64, K_BOOL, K_U64, K_FT, K_SCHED, K_OPTIM, K_STAGE, K_RESUME, K_REPORT,
               K_STRATEGY, K_METRIC, K_IGNORE } key_type;

typedef struct {
  const char *name;
  key_type type;
  size_t off, size;
  double lo, hi;
} key_def;

#define A_(f) offsetof(lt_train_args, f), sizeof(((lt_train_args *)0)->f)
static const key_def keys[] = {
    {"model_name_or_path", K_STR, A_(model_name_or_path), 0, 0},
    {"adapter_name_or_path", K_STR, A_(adapter_name_or_path), 0, 0},
    {"stage", K_STAGE, A_(stage), 0, 0},
    {"template", K_STR, A_(template_name), 0, 0},
    {"finetuning_type", K_FT, A_(finetuning_type), 0, 0},
    {"lora_rank", K_INT, A_(lora_rank), 1, 4096},
    {"lora_alpha", K_F64, A_(lora_alpha), 0, 1e9},
    {"lora_dropout", K_F64, A_(lora_dropout), 0, 0.999},
    {"lora_target", K_STR, A_(lora_target), 0, 0},
    {"use_rslora", K_BOOL, A_(use_rslora), 0, 1},
    {"additional_target", K_STR, A_(additional_target), 0, 0},
    {"freeze_trainable_layers", K_INT, A_(freeze_trainable_layers), -100000, 100000},
    {"freeze_trainable_modules", K_STR, A_(freeze_trainable_modules), 0, 0},
    {"freeze_extra_modules", K_STR, A_(freeze_extra_modules), 0, 0},
    {"dataset", K_STR, A_(dataset), 0, 0},
    {"eval_dataset", K_STR, A_(eval_dataset), 0, 0},
    {"val_size", K_F64, A_(val_size), 0, 1e9},
    {"cutoff_len", K_INT, A_(cutoff_len), 0, 1 << 24},
    {"max_samples", K_INT, A_(max_samples), 0, 2147483647.0},
    {"skip_bad_records", K_BOOL, A_(skip_bad_records), 0, 1},
    {"train_on_prompt", K_BOOL, A_(train_on_prompt), 0, 1},
    {"packing", K_BOOL, A_(packing), 0, 1},
    {"output_dir", K_STR, A_(output_dir), 0, 0},
    {"overwrite_output_dir", K_BOOL, A_(overwrite_output_dir), 0, 1},
    {"logging_steps", K_INT, A_(logging_steps), 1, 1e9},
    {"logging_first_step", K_BOOL, A_(logging_first_step), 0, 1},
    {"save_steps", K_INT, A_(save_steps), 0, 1e9},
    {"eval_steps", K_INT, A_(eval_steps), 0, 1e9},
    {"save_total_limit", K_INT, A_(save_total_limit), 0, 1e9},
    {"save_strategy", K_STRATEGY, A_(save_strategy), 0, 0},
    {"eval_strategy", K_STRATEGY, A_(eval_strategy), 0, 0},
    {"evaluation_strategy", K_STRATEGY, A_(eval_strategy), 0, 0},
    {"per_device_train_batch_size", K_INT, A_(per_device_train_batch_size), 1, 65536},
    {"per_device_eval_batch_size", K_INT, A_(per_device_eval_batch_size), 1, 65536},
    {"gradient_accumulation_steps", K_INT, A_(gradient_accumulation_steps), 1, 1 << 20},
    {"learning_rate", K_F64, A_(learning_rate), 0, 1e30},
    {"num_train_epochs", K_F64, A_(num_train_epochs), 1e-9, 1e9},
    {"max_steps", K_I64, A_(max_steps), -1, 1e15},
    {"lr_scheduler_type", K_SCHED, A_(lr_scheduler_type), 0, 0},
    {"warmup_ratio", K_F64, A_(warmup_ratio), 0, 1},
    {"warmup_steps", K_I64, A_(warmup_steps), 0, 1e15},
    {"optim", K_OPTIM, A_(optim), 0, 0},
    {"weight_decay", K_F64, A_(weight_decay), 0, 1e6},
    {"adam_beta1", K_F64, A_(adam_beta1), 0, 0.999999999},
    {"adam_beta2", K_F64, A_(adam_beta2), 0, 0.999999999},
    {"adam_epsilon", K_F64, A_(adam_epsilon), 1e-30, 1},
    {"amsgrad", K_BOOL, A_(amsgrad), 0, 1},
    {"momentum", K_F64, A_(momentum), 0, 0.999999999},
    {"max_grad_norm", K_F64, A_(max_grad_norm), 0, 1e30},
    {"seed", K_U64, A_(seed), 0, 0},
    {"resume_from_checkpoint", K_RESUME, A_(resume_from_checkpoint), 0, 0},
    {"disable_shuffling", K_BOOL, A_(disable_shuffling), 0, 1},
    {"early_stopping_patience", K_INT, A_(early_stopping_patience), 0, 1e9},
    {"early_stopping_threshold", K_F64, A_(early_stopping_threshold), 0, 1e30},
    {"load_best_model_at_end", K_BOOL, A_(load_best_model_at_end), 0, 1},
    {"metric_for_best_model", K_METRIC, A_(metric_for_best_model), 0, 0},
    {"bf16", K_BOOL, A_(bf16), 0, 1},
    {"gradient_checkpointing", K_BOOL, A_(gradient_checkpointing), 0, 1},
    {"plan", K_BOOL, A_(plan), 0, 1},
    {"threads", K_INT, A_(threads), 0, 4096},
    {"plot_loss", K_BOOL, A_(plot_loss), 0, 1},
    {"report_to", K_REPORT, A_(report_to_tensorboard), 0, 0},
    // accepted for LLaMA-Factory configs; no effect on a single CPU process
    {"do_train", K_IGNORE, 0, 0, 0, 0},
    {"do_eval", K_IGNORE, 0, 0, 0, 0},
    {"preprocessing_num_workers", K_IGNORE, 0, 0, 0, 0},
    {"dataloader_num_workers", K_IGNORE, 0, 0, 0, 0},
    {"overwrite_cache", K_IGNORE, 0, 0, 0, 0},
    {"ddp_timeout", K_IGNORE, 0, 0, 0, 0},
    {"trust_remote_code", K_IGNORE, 0, 0, 0, 0},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

void lt_train_args_default(lt_train_args *a) {
  memset(a, 0, sizeof *a);
  snprintf(a->stage, sizeof a->stage, "sft");
  a->finetuning_type = LT_FT_LORA;
  a->lora_rank = 8;
  a->lora_alpha = 0;  // 2 * rank
  a->lora_dropout = 0;
  snprintf(a->lora_target, sizeof a->lora_target, "all");
  a->freeze_trainable_layers = 2;
  a->packing = -1;
  a->logging_steps = 500;
  a->save_steps = 500;
  a->per_device_train_batch_size = 8;
  a->per_device_eval_batch_size = 8;
  a->gradient_accumulation_steps = 1;
  a->learning_rate = 5e-5;
  a->num_train_epochs = 3.0;
  a->max_steps = -1;
  a->lr_scheduler_type = LT_SCHED_LINEAR;
  a->optim = LT_OPT_ADAMW;
  a->adam_beta1 = 0.9;
  a->adam_beta2 = 0.999;
  a->adam_epsilon = 1e-8;
  a->max_grad_norm = 1.0;
  a->seed = 42;
  snprintf(a->metric_for_best_model, sizeof a->metric_for_best_model, "eval_loss");
  a->plot_loss = 1;
  a->report_to_tensorboard = 1;
  a->plan = 1;
}

static int edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 64 || m > 64) return 99;
  int d[65][65];
  for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= n; i++)
    for (size_t j = 1; j <= m; j++) {
      int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      c = LT_MIN(c, d[i - 1][j] + 1);
      c = LT_MIN(c, d[i][j - 1] + 1);
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) c = LT_MIN(c, d[i - 2][j - 2] + 1);
      d[i][j] = c;
    }
  return d[n][m];
}

const char *lt_train_key_suggest(const char *key) {
  const char *best = NULL;
  int bd = 1 << 30;
  for (int i = 0; i < N_KEYS; i++) {
    int d = edit_distance(key, keys[i].name);
    if (d < bd) bd = d, best = keys[i].name;
  }
  int limit = LT_MAX(2, (int)strlen(key) / 3);
  if (bd <= limit) return best;
  // a prefix or substring match ("rank" -> "lora_rank")
  for (int i = 0; i < N_KEYS; i++)
    if (strlen(key) >= 4 && strstr(keys[i].name, key)) return keys[i].name;
  return NULL;
}

static int parse_bool(const char *v, int *out) {
  static const char *const t[] = {"true", "True", "TRUE", "1", "yes", "on"}, *const f[] = {"false", "False", "FALSE",
                                                                                          "0", "no", "off"};
  for (int i = 0; i < 6; i++) {
    if (strcmp(v, t[i]) == 0) return *out = 1, 0;
    if (strcmp(v, f[i]) == 0) return *out = 0, 0;
  }
  return -1;
}

static int is_null(const char *v) { return !*v || strcmp(v, "null") == 0 || strcmp(v, "~") == 0 || strcmp(v, "None") == 0; }

int lt_train_args_set(lt_train_args *a, const char *key, const char *v, lt_err *err) {
  const key_def *k = NULL;
  for (int i = 0; i < N_KEYS && !k; i++)
    if (strcmp(keys[i].name, key) == 0) k = &keys[i];
  if (!k) {
    const char *s = lt_train_key_suggest(key);
    if (s) return lt_errf(err, "unknown key \"%s\"; did you mean \"%s\"?", key, s);
    return lt_errf(err, "unknown key \"%s\" (lmtune train --help lists the keys)", key);
  }
  char *base = (char *)a + k->off;
  char *end;
  errno = 0;
  switch (k->type) {
    case K_IGNORE:
      return 0;
    case K_STR:
      if (strlen(v) >= k->size) return lt_errf(err, "%s: value is too long (%zu bytes)", key, strlen(v));
      snprintf(base, k->size, "%s", is_null(v) ? "" : v);
      return 0;
    case K_INT:
    case K_I64: {
      long long x = strtoll(v, &end, 10);
      if (errno || end == v || *end || x < k->lo || x > k->hi)
        return lt_errf(err, "%s: \"%s\" must be an integer in [%.0f, %.0f]", key, v, k->lo, k->hi);
      if (k->type == K_INT) *(int *)base = (int)x;
      else *(int64_t *)base = x;
      return 0;
    }
    case K_U64: {
      unsigned long long x = strtoull(v, &end, 10);
      if (errno || end == v || *end || v[0] == '-') return lt_errf(err, "%s: \"%s\" must be a non-negative integer", key, v);
      *(uint64_t *)base = x;
      return 0;
    }
    case K_F64: {
      double x = strtod(v, &end);
      if (errno || end == v || *end || !isfinite(x) || x < k->lo || x > k->hi)
        return lt_errf(err, "%s: \"%s\" must be a number in [%g, %g]", key, v, k->lo, k->hi);
      *(double *)base = x;
      return 0;
    }
    case K_BOOL:
      if (parse_bool(v, (int *)base)) return lt_errf(err, "%s: \"%s\" must be true or false", key, v);
      return 0;
    case K_FT:
      if (strcmp(v, "lora") == 0) a->finetuning_type = LT_FT_LORA;
      else if (strcmp(v, "full") == 0) a->finetuning_type = LT_FT_FULL;
      else if (strcmp(v, "freeze") == 0) a->finetuning_type = LT_FT_FREEZE;
      else return lt_errf(err, "%s: \"%s\": choose lora, full or freeze", key, v);
      return 0;
    case K_STAGE:
      if (strcmp(v, "sft") != 0 && strcmp(v, "pt") != 0)
        return lt_errf(err, "%s: \"%s\": choose sft or pt (rm, ppo, dpo, kto are not supported)", key, v);
      snprintf(a->stage, sizeof a->stage, "%s", v);
      return 0;
    case K_SCHED:
      if (lt_sched_parse(v, &a->lr_scheduler_type, err)) return lt_err_prefix(err, "%s", key);
      return 0;
    case K_OPTIM:
      if (strcmp(v, "adamw_torch") == 0 || strcmp(v, "adamw") == 0 || strcmp(v, "adamw_torch_fused") == 0 ||
          strcmp(v, "adamw_hf") == 0)
        a->optim = LT_OPT_ADAMW;
      else if (strcmp(v, "sgd") == 0)
        a->optim = LT_OPT_SGD;
      else
        return lt_errf(err, "%s: \"%s\": choose adamw_torch (AdamW) or sgd", key, v);
      return 0;
    case K_RESUME: {
      int b;
      if (is_null(v) || (parse_bool(v, &b) == 0 && !b)) a->resume_from_checkpoint[0] = 0;
      else if (parse_bool(v, &b) == 0 && b) snprintf(a->resume_from_checkpoint, k->size, "true");
      else if (strlen(v) >= k->size) return lt_errf(err, "%s: path is too long", key);
      else snprintf(a->resume_from_checkpoint, k->size, "%s", v);
      return 0;
    }
    case K_REPORT:
      if (strcmp(v, "none") == 0 || is_null(v)) a->report_to_tensorboard = 0;
      else if (strcmp(v, "tensorboard") == 0 || strcmp(v, "all") == 0) a->report_to_tensorboard = 1;
      else return lt_errf(err, "%s: \"%s\": choose tensorboard or none", key, v);
      return 0;
    case K_STRATEGY:
      if (strcmp(v, "no") == 0) *(int *)base = LT_STRATEGY_NO;
      else if (strcmp(v, "steps") == 0) *(int *)base = LT_STRATEGY_STEPS;
      else if (strcmp(v, "epoch") == 0) *(int *)base = LT_STRATEGY_EPOCH;
      else return lt_errf(err, "%s: \"%s\": choose steps, epoch or no", key, v);
      return 0;
    case K_METRIC:
      if (strcmp(v, "eval_loss") != 0 && strcmp(v, "loss") != 0)
        return lt_errf(err, "%s: \"%s\": only eval_loss is available", key, v);
      snprintf(a->metric_for_best_model, sizeof a->metric_for_best_model, "eval_loss");
      return 0;
  }
  return lt_errf(err, "%s: unhandled key type", key);
}

int lt_train_args_load_yaml(lt_train_args *a, const char *path, lt_err *err) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return lt_errf(err, "%s: cannot open: %s", path, strerror(errno));
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) {
    fclose(fp);
    return lt_errf(err, "%s: cannot initialise the YAML parser", path);
  }
  yaml_parser_set_input_file(&p, fp);
  int rc = -1, depth = 0, done = 0;
  char key[128] = "", list[1024] = "";
  int have_key = 0, in_list = 0;
  while (!done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      lt_errf(err, "%s:%zu:%zu: YAML error: %s", path, p.problem_mark.line + 1, p.problem_mark.column + 1,
              p.problem ? p.problem : "?");
      goto out;
    }
    size_t line = ev.start_mark.line + 1;
    int bad = 0;
    switch (ev.type) {
      case YAML_STREAM_END_EVENT:
        done = 1;
        break;
      case YAML_MAPPING_START_EVENT:
        if (depth++ > 0 || (have_key && !in_list)) {
          lt_errf(err, "%s:%zu: \"%s\": nested mappings are not supported; use flat key: value pairs", path, line,
                  have_key ? key : "?");
          bad = 1;
        }
        break;
      case YAML_MAPPING_END_EVENT:
        depth--;
        break;
      case YAML_SEQUENCE_START_EVENT:
        if (!have_key || in_list) {
          lt_errf(err, "%s:%zu: a list is only allowed as a value (e.g. lora_target)", path, line);
          bad = 1;
        }
        in_list = 1;
        list[0] = 0;
        break;
      case YAML_SEQUENCE_END_EVENT:
        in_list = 0;
        have_key = 0;
        if (lt_train_args_set(a, key, list, err)) {
          lt_err_prefix(err, "%s:%zu", path, line);
          bad = 1;
        }
        break;
      case YAML_SCALAR_EVENT: {
        const char *v = (const char *)ev.data.scalar.value;
        if (depth != 1) {
          lt_errf(err, "%s:%zu: the file must be a mapping of key: value pairs", path, line);
          bad = 1;
        } else if (in_list) {
          size_t n = strlen(list);
          if (n + strlen(v) + 2 >= sizeof list) {
            lt_errf(err, "%s:%zu: \"%s\": list too long", path, line, key);
            bad = 1;
          } else {
            snprintf(list + n, sizeof list - n, "%s%s", n ? "," : "", v);
          }
        } else if (!have_key) {
          if (strlen(v) >= sizeof key) {
            lt_errf(err, "%s:%zu: key too long", path, line);
            bad = 1;
          } else {
            snprintf(key, sizeof key, "%s", v);
            have_key = 1;
          }
        } else {
          have_key = 0;
          // a quoted or plain empty/"null" scalar
          int plain_null = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && is_null(v);
          if (lt_train_args_set(a, key, plain_null ? "" : v, err)) {
            lt_err_prefix(err, "%s:%zu", path, line);
            bad = 1;
          }
        }
        break;
      }
      case YAML_ALIAS_EVENT:
        lt_errf(err, "%s:%zu: YAML aliases are not supported", path, line);
        bad = 1;
        break;
      default:
        break;
    }
    yaml_event_delete(&ev);
    if (bad) goto out;
  }
  rc = 0;
out:
  yaml_parser_delete(&p);
  fclose(fp);
  return rc;
}

int lt_train_args_check(const lt_train_args *a, lt_err *err) {
  if (!a->model_name_or_path[0]) return lt_errf(err, "model_name_or_path is required");
  if (!a->output_dir[0]) return lt_errf(err, "output_dir is required");
  if (a->finetuning_type == LT_FT_LORA) {
    unsigned mask;
    if (!a->adapter_name_or_path[0] && lt_lora_parse_targets(a->lora_target, &mask, err))
      return lt_err_prefix(err, "lora_target");
  } else if (a->adapter_name_or_path[0]) {
    return lt_errf(err, "adapter_name_or_path needs finetuning_type: lora");
  }
  if (a->finetuning_type == LT_FT_FREEZE && a->freeze_trainable_layers == 0)
    return lt_errf(err, "freeze_trainable_layers must not be 0 (N > 0: the last N layers; N < 0: the first -N)");
  if (a->load_best_model_at_end) {
    if (a->eval_strategy == LT_STRATEGY_NO)
      return lt_errf(err, "load_best_model_at_end needs evaluation (eval_strategy: steps or epoch)");
    if ((a->eval_strategy == LT_STRATEGY_EPOCH) != (a->save_strategy == LT_STRATEGY_EPOCH))
      return lt_errf(err, "load_best_model_at_end needs save_strategy and eval_strategy to match (both steps or "
                     "both epoch)");
    int es = a->eval_steps > 0 ? a->eval_steps : a->logging_steps;
    if (a->eval_strategy == LT_STRATEGY_STEPS && (a->save_steps <= 0 || a->save_steps % es != 0))
      return lt_errf(err, "load_best_model_at_end needs save_steps (%d) to be a round multiple of eval_steps (%d)",
                     a->save_steps, es);
  }
  return 0;
}

char *lt_train_args_yaml(const lt_train_args *a) {
  size_t cap = 16384, n = 0;
  char *out = malloc(cap);
  if (!out) return NULL;
  out[0] = 0;
  for (int i = 0; i < N_KEYS; i++) {
    const key_def *k = &keys[i];
    const char *base = (const char *)a + k->off;
    char v[LT_PATH_CAP + 64];
    switch (k->type) {
      case K_IGNORE: continue;
      case K_STR:
      case K_STAGE:
      case K_RESUME:
      case K_METRIC: {
        if (!*base) continue;
        size_t o = 0;
        v[o++] = '"';
        for (const char *p = base; *p && o + 4 < sizeof v; p++) {
          if (*p == '"' || *p == '\\') v[o++] = '\\';
          if (*p == '\n') {
            v[o++] = '\\';
            v[o++] = 'n';
            continue;
          }
          v[o++] = *p;
        }
        v[o++] = '"';
        v[o] = 0;
        break;
      }
      case K_INT: snprintf(v, sizeof v, "%d", *(const int *)base); break;
      case K_I64: snprintf(v, sizeof v, "%lld", (long long)*(const int64_t *)base); break;
      case K_U64: snprintf(v, sizeof v, "%llu", (unsigned long long)*(const uint64_t *)base); break;
      case K_F64: snprintf(v, sizeof v, "%.17g", *(const double *)base); break;
      case K_BOOL:
        if (*(const int *)base < 0) continue;  // auto
        snprintf(v, sizeof v, "%s", *(const int *)base ? "true" : "false");
        break;
      case K_FT: snprintf(v, sizeof v, "%s", a->finetuning_type == LT_FT_LORA ? "lora" : a->finetuning_type == LT_FT_FULL ? "full" : "freeze"); break;
      case K_SCHED: snprintf(v, sizeof v, "%s", lt_sched_name(a->lr_scheduler_type)); break;
      case K_OPTIM: snprintf(v, sizeof v, "%s", a->optim == LT_OPT_SGD ? "sgd" : "adamw_torch"); break;
      case K_REPORT: snprintf(v, sizeof v, "%s", a->report_to_tensorboard ? "tensorboard" : "none"); break;
      case K_STRATEGY: {
        int sv = *(const int *)base;
        snprintf(v, sizeof v, "%s", sv == LT_STRATEGY_NO ? "no" : sv == LT_STRATEGY_EPOCH ? "epoch" : "steps");
        break;
      }
    }
    size_t need = strlen(k->name) + strlen(v) + 4;
    if (n + need >= cap) {
      char *o2 = realloc(out, cap *= 2);
      if (!o2) {
        free(out);
        return NULL;
      }
      out = o2;
    }
    n += (size_t)snprintf(out + n, cap - n, "%s: %s\n", k->name, v);
  }
  return out;
}
