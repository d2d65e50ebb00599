// lmtune eval --model DIR [--adapter DIR [--compare]] --task ppl|classify|generate|mcq --dataset FILE [--out DIR]:
// evaluate a model (and/or base + adapter) and write eval_results.json + predictions.jsonl; prints a short table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/core.h"
#include "eval/evaltask.h"

#define VERB "eval"

static void usage(FILE *fp) {
  fprintf(fp,
          "usage: lmtune eval --model DIR [--adapter DIR [--compare]] --task ppl|classify|generate|mcq --dataset PATH\n"
          "                   [--out DIR|FILE.json] [--dtype f32|bf16] [--max_samples N] [--template NAME] [options]\n"
          "Evaluates the model (with the adapter when given) and writes OUT/eval_results.json and\n"
          "OUT/predictions.jsonl (one line per example). OUT defaults to the adapter folder, else the current\n"
          "directory; a path ending in .json names the results file itself. --compare evaluates the base model and\n"
          "base + adapter in one run. The tokenizer (and chat template) come from the model folder.\n"
          "Tasks:\n"
          "  ppl       mean NLL and perplexity = exp(total NLL / tokens): {\"text\"} / pre-tokenized JSONL or .txt\n"
          "            (as lmtune train --stage pt reads them) or conversations (response tokens only, as SFT\n"
          "            labels them). --cutoff_len N truncates examples (classify: long prompts keep their\n"
          "            first cutoff_len - label tokens, as SFT training cuts them).\n"
          "  classify  conversations whose last assistant message is the label. Each label is scored as SFT labels\n"
          "            it (response + the template's turn end) after the prompt; the most likely one is the\n"
          "            prediction. --labels a,b,c fixes the label set and its order (default: the gold labels,\n"
          "            sorted); --by generate predicts by greedy generation matched exactly to a label (else\n"
          "            \"<other>\"). Accuracy, per-class P/R/F1, macro/micro F1, confusion matrix.\n"
          "  generate  conversations; generates after the prompt (greedy unless --temperature > 0; --top_p,\n"
          "            --seed, --max_new_tokens N (default 128)) and scores against the last assistant message:\n"
          "            corpus BLEU (sacreBLEU; --bleu_tokenize 13a|zh|none), ROUGE-L F, exact match (stripped).\n"
          "  mcq       MMLU / C-Eval / CMMLU CSV (a *_test.csv file or a directory of them), prompted and scored as\n"
          "            lm-evaluation-harness's MMLU task; --dev FILE|DIR with --shots K (default 5 with --dev)\n"
          "            adds K examples of the same subject. Per-subject, micro and macro accuracy.\n");
}

typedef struct {
  const char *name;
  int tty;
} progress_ui;

static void on_progress(void *user, int done, int total) {
  progress_ui *u = user;
  if (!u->tty) return;
  if (done != total && done % 8) return;
  fprintf(stderr, "\r\033[K  %s: %d/%d", u->name, done, total);
  if (done == total) fprintf(stderr, "\r\033[K");
  fflush(stderr);
}

static double num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : 0.0 / 0.0;
}

static void row(const char *label, const lt_eval_run *runs, int n_runs, const char *path1, const char *path2,
                const char *key) {
  printf("  %-28s", label);
  for (int r = 0; r < n_runs; r++) {
    const cJSON *o = runs[r].metrics;
    if (path1) o = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2) o = cJSON_GetObjectItemCaseSensitive(o, path2);
    double v = num(o, key);
    printf(" %12.4f", v);
  }
  printf("\n");
}

static void print_table(const lt_eval_data *d, lt_eval_task task, const char *const *names, const lt_eval_run *runs,
                        int n_runs) {
  printf("  %-28s", "metric");
  for (int r = 0; r < n_runs; r++) printf(" %12s", names[r]);
  printf("\n");
  static const char *const ppl[] = {"loss", "perplexity", "n_tokens"};
  static const char *const cls[] = {"accuracy", "macro_f1", "micro_f1", "macro_precision", "macro_recall"};
  static const char *const gen[] = {"bleu", "rouge_l", "exact_match", "n"};
  static const char *const mcq[] = {"accuracy", "macro_accuracy"};
  const char *const *keys = mcq;
  int nk = 2;
  if (task == LT_EVAL_PPL) keys = ppl, nk = 3;
  else if (task == LT_EVAL_CLASSIFY) keys = cls, nk = 5;
  else if (task == LT_EVAL_GENERATE) keys = gen, nk = 4;
  for (int k = 0; k < nk; k++) row(keys[k], runs, n_runs, NULL, NULL, keys[k]);
  char label[96];
  for (int i = 0; i < lt_eval_data_n_names(d) && (task == LT_EVAL_CLASSIFY || task == LT_EVAL_MCQ); i++) {
    const char *nm = lt_eval_data_name(d, i);
    snprintf(label, sizeof label, "%s[%.60s]", task == LT_EVAL_CLASSIFY ? "f1" : "accuracy", nm);
    row(label, runs, n_runs, task == LT_EVAL_CLASSIFY ? "per_class" : "per_subject", nm,
        task == LT_EVAL_CLASSIFY ? "f1" : "accuracy");
  }
  if (task != LT_EVAL_CLASSIFY) return;
  int K = lt_eval_data_n_names(d);
  for (int r = 0; r < n_runs; r++) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(runs[r].metrics,
                                                                                       "confusion_matrix"), "matrix");
    printf("  confusion matrix, %s (rows = gold, columns = predicted):\n", names[r]);
    printf("    %-16s", "");
    for (int j = 0; j < K; j++) printf(" %10.10s", lt_eval_data_name(d, j));
    printf("\n");
    for (int i = 0; i < K; i++) {
      printf("    %-16.16s", lt_eval_data_name(d, i));
      const cJSON *rowv = cJSON_GetArrayItem(m, i);
      for (int j = 0; j < K; j++) {
        const cJSON *v = cJSON_GetArrayItem(rowv, j);
        printf(" %10.0f", cJSON_IsNumber(v) ? v->valuedouble : 0.0);
      }
      printf("\n");
    }
    double other = num(runs[r].metrics, "n_other");
    if (other > 0) printf("    (%.0f predictions matched no label: <other>)\n", other);
  }
}

int lt_cmd_eval(int argc, char **argv) {
  const char *model = NULL, *adapter = NULL, *task_s = NULL, *dataset = NULL, *out = NULL, *labels = NULL,
             *by = "loglik", *maxn = "128", *temp = "0", *topp = "1", *seed = "0", *bleu_tok = "13a", *dev = NULL,
             *shots = NULL, *compare = NULL, *dtype = "f32", *max_samples = "0", *tmpl = NULL, *cutoff = "0",
             *help = NULL;
  lt_opt opts[] = {{"--model", 1, &model},
                   {"--adapter", 1, &adapter},
                   {"--task", 1, &task_s},
                   {"--dataset", 1, &dataset},
                   {"--out", 1, &out},
                   {"--labels", 1, &labels},
                   {"--by", 1, &by},
                   {"--max_new_tokens", 1, &maxn},
                   {"--max-new-tokens", 1, &maxn},
                   {"--temperature", 1, &temp},
                   {"--top_p", 1, &topp},
                   {"--top-p", 1, &topp},
                   {"--seed", 1, &seed},
                   {"--bleu_tokenize", 1, &bleu_tok},
                   {"--bleu-tokenize", 1, &bleu_tok},
                   {"--dev", 1, &dev},
                   {"--shots", 1, &shots},
                   {"--compare", 0, &compare},
                   {"--dtype", 1, &dtype},
                   {"--max_samples", 1, &max_samples},
                   {"--max-samples", 1, &max_samples},
                   {"--template", 1, &tmpl},
                   {"--cutoff_len", 1, &cutoff},
                   {"--cutoff-len", 1, &cutoff},
                   {"--help", 0, &help}};
  if (lt_cli_parse(VERB, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]))) return LT_EXIT_USAGE;
  if (help) {
    usage(stdout);
    return LT_EXIT_OK;
  }
  if (!model || !task_s || !dataset) {
    usage(stderr);
    return LT_EXIT_USAGE;
  }
  lt_err err;
  lt_eval_opts o;
  memset(&o, 0, sizeof o);
  if (lt_eval_task_parse(task_s, &o.task, &err)) {
    fprintf(stderr, "lmtune %s: --task: %s\n", VERB, err.msg);
    return LT_EXIT_USAGE;
  }
  long mn, sd, ms, cl, sh = -1;
  double t, p;
  lt_compute compute;
  if (lt_cli_parse_int(VERB, "--max_new_tokens", maxn, 1, 1 << 20, &mn) ||
      lt_cli_parse_float(VERB, "--temperature", temp, 0, 100, &t) ||
      lt_cli_parse_float(VERB, "--top_p", topp, 0, 1, &p) ||
      lt_cli_parse_int(VERB, "--seed", seed, 0, 0x7fffffffL, &sd) ||
      lt_cli_parse_int(VERB, "--max_samples", max_samples, 0, 1L << 30, &ms) ||
      lt_cli_parse_int(VERB, "--cutoff_len", cutoff, 0, 1 << 24, &cl) ||
      (shots && lt_cli_parse_int(VERB, "--shots", shots, 0, 1000, &sh)) || lt_cli_parse_compute(VERB, dtype, &compute))
    return LT_EXIT_USAGE;
  if (lt_bleu_tok_parse(bleu_tok, &o.bleu_tok, &err)) {
    fprintf(stderr, "lmtune %s: --bleu_tokenize: %s\n", VERB, err.msg);
    return LT_EXIT_USAGE;
  }
  const char *misuse = NULL;
  if (strcmp(by, "loglik") != 0 && strcmp(by, "generate") != 0) misuse = "--by takes loglik or generate";
  else if (compare && !adapter) misuse = "--compare needs --adapter (it evaluates the base model and base + adapter)";
  else if ((labels || strcmp(by, "loglik") != 0) && o.task != LT_EVAL_CLASSIFY)
    misuse = "--labels and --by are for --task classify";
  else if ((dev || shots) && o.task != LT_EVAL_MCQ) misuse = "--dev and --shots are for --task mcq";
  else if (shots && sh > 0 && !dev) misuse = "--shots needs --dev (the few-shot examples)";
  else if (cl > 0 && o.task != LT_EVAL_PPL && o.task != LT_EVAL_CLASSIFY)
    misuse = "--cutoff_len is for --task ppl and classify";
  if (misuse) {
    fprintf(stderr, "lmtune %s: %s\n", VERB, misuse);
    return LT_EXIT_USAGE;
  }
  if (!out) out = adapter ? adapter : ".";
  char results[4200], preds[4200];
  if (lt_eval_out_paths(out, results, sizeof results, preds, sizeof preds, &err)) return lt_cli_fail(VERB, &err);

  o.dataset = dataset;
  o.tokenizer = model;
  o.template_name = tmpl;
  o.cutoff_len = (int)cl;
  o.max_samples = (int)ms;
  o.labels = labels;
  o.by_generate = strcmp(by, "generate") == 0;
  o.max_new_tokens = (int)mn;
  o.temperature = (float)t;
  o.top_p = (float)p;
  o.seed = (uint64_t)sd;
  o.dev = dev;
  o.shots = (int)sh;
  progress_ui ui = {NULL, isatty(fileno(stderr))};
  o.progress = on_progress;
  o.progress_user = &ui;

  double t0 = lt_now();
  lt_model *m = NULL;
  lt_eval_data *d = NULL;
  lt_eval_run runs[2];
  memset(runs, 0, sizeof runs);
  const char *names[2], *adapters[2];
  int n_runs = 0, rc = LT_EXIT_FAIL;
  if (lt_model_load(&m, model, &err) || lt_model_set_compute(m, compute, &err)) {
    lt_cli_fail(VERB, &err);
    goto done;
  }
  lt_model_info mi;
  lt_model_get_info(m, &mi);
  o.vocab = mi.vocab;
  if (lt_eval_data_load(&d, &o, &err)) {
    lt_cli_fail(VERB, &err);
    goto done;
  }
  fprintf(stderr, "lmtune %s: %s on %s: %d example%s\n", VERB, task_s, dataset, lt_eval_data_size(d),
          lt_eval_data_size(d) == 1 ? "" : "s");
  for (int pass = 0; pass < 2; pass++) {
    int with_adapter = adapter && (pass == 1 || !compare);
    if (pass == 1 && !compare) break;
    if (with_adapter && lt_model_load_adapter(m, adapter, &err)) {
      lt_cli_fail(VERB, &err);
      goto done;
    }
    names[n_runs] = with_adapter ? "adapter" : "base";
    adapters[n_runs] = with_adapter ? adapter : NULL;
    ui.name = names[n_runs];
    if (lt_eval_run_model(m, d, &o, &runs[n_runs], &err)) {
      if (ui.tty) fprintf(stderr, "\n");
      lt_cli_fail(VERB, &err);
      goto done;
    }
    const lt_eval_run *r = &runs[n_runs];
    fprintf(stderr, "lmtune %s: %s: %d examples in %.2f s (%.0f tokens/s through the model)\n", VERB,
            names[n_runs], lt_eval_data_size(d), r->seconds,
            r->seconds > 0 ? (double)r->n_forward / r->seconds : 0.0);
    n_runs++;
  }
  double seconds = lt_now() - t0;
  if (lt_eval_write(results, preds, d, model, names, adapters, runs, n_runs, seconds, &err)) {
    lt_cli_fail(VERB, &err);
    goto done;
  }
  printf("%s on %s (%d examples, %.1f s)\n", task_s, dataset, lt_eval_data_size(d), seconds);
  print_table(d, o.task, names, runs, n_runs);
  printf("results: %s\npredictions: %s\n", results, preds);
  rc = LT_EXIT_OK;
done:
  for (int i = 0; i < 2; i++) lt_eval_run_free(&runs[i]);
  lt_eval_data_free(d);
  lt_model_free(m);
  return rc;
}
