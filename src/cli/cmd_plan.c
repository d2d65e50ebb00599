// lmtune plan [config.yaml] [--key value ...] [--seq N] [--examples N] [--json]: the speed, run time and peak memory
// `lmtune train` with the same arguments would have on this machine, measured on truncated copies of the model.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <omp.h>

#include "cli/cli.h"
#include "core/core.h"
#include "train/trainer.h"

typedef struct {
  long seq, examples;
  int json;
} plan_opts;

static int plan_key(void *ud, const char *key, const char *val) {
  plan_opts *o = ud;
  if (strcmp(key, "seq") == 0) return lt_cli_parse_int("plan", "--seq", val, 2, 1 << 20, &o->seq) ? -1 : 1;
  if (strcmp(key, "examples") == 0)
    return lt_cli_parse_int("plan", "--examples", val, 1, 1L << 40, &o->examples) ? -1 : 1;
  if (strcmp(key, "json") == 0) {
    o->json = strcmp(val, "false") != 0 && strcmp(val, "0") != 0;
    return 1;
  }
  return 0;
}

// Examples in a JSON array file or JSONL lines, when cheap to tell; 0 otherwise.
static int64_t count_examples(const char *path) {
  char *text;
  size_t len;
  lt_err err;
  if (!path[0] || strchr(path, ',') || lt_read_file(path, &text, &len, &err)) return 0;
  int64_t n = 0;
  size_t i = 0;
  while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) i++;
  if (i < len && text[i] == '[') {
    cJSON *root = cJSON_ParseWithLength(text, len);
    n = cJSON_IsArray(root) ? cJSON_GetArraySize(root) : 0;
    cJSON_Delete(root);
  } else {
    for (size_t k = 0, start = 0; k <= len; k++)
      if (k == len || text[k] == '\n') {
        size_t a = start;
        while (a < k && (text[a] == ' ' || text[a] == '\r' || text[a] == '\t')) a++;
        if (a < k) n++;
        start = k + 1;
      }
  }
  free(text);
  return n;
}

static void usage(FILE *fp) {
  fprintf(fp,
          "usage: lmtune plan [config.yaml] [--key value ...] [--seq N] [--examples N] [--json]\n"
          "Predicts tokens/s, the time of the run and its peak memory for `lmtune train` with the same\n"
          "arguments (model_name_or_path, finetuning_type, lora_rank, lora_target, bf16, gradient_checkpointing,\n"
          "per_device_train_batch_size, gradient_accumulation_steps, cutoff_len, max_steps / num_train_epochs,\n"
          "threads ...), by running a few training steps of a 3-layer copy of the model on this machine\n"
          "(through its first layer and through all three, in turns).\n"
          "  --seq N        tokens per row (default cutoff_len, else 1024); rows are assumed full\n"
          "  --examples N   dataset size for the step count (default: counted from a JSON/JSONL dataset file)\n"
          "  --json         one JSON object instead of text\n");
}

int lt_cmd_plan(int argc, char **argv) {
  int ex = lt_cli_help(argc, argv, usage);
  if (ex >= 0) return ex;
  lt_train_args a;
  lt_train_args_default(&a);
  snprintf(a.output_dir, sizeof a.output_dir, ".");  // unused: nothing is written
  plan_opts o = {0, 0, 0};
  if (lt_cli_train_args("plan", argc, argv, &a, plan_key, &o)) return LT_EXIT_USAGE;
  if (!a.model_name_or_path[0]) {
    fprintf(stderr, "lmtune plan: model_name_or_path is required\n");
    return LT_EXIT_USAGE;
  }
  if (a.threads > 0) omp_set_num_threads(a.threads);
  int seq = o.seq > 0 ? (int)o.seq : a.cutoff_len > 0 ? a.cutoff_len : 1024;
  int64_t steps = lt_plan_steps(&a, o.examples > 0 ? o.examples : count_examples(a.dataset));
  lt_plan p;
  lt_err err;
  if (lt_plan_measure(&a, seq, 0, &p, &err)) return lt_cli_fail("plan", &err);
  if (o.json) {
    char *s = lt_plan_json(&p, steps);
    if (!s) {
      fprintf(stderr, "lmtune plan: out of memory\n");
      return LT_EXIT_FAIL;
    }
    printf("%s\n", s);
    free(s);
  } else {
    char txt[2048];
    if (lt_plan_format(&p, &a, steps, txt, sizeof txt) == 0) fputs(txt, stdout);
  }
  return LT_EXIT_OK;
}
