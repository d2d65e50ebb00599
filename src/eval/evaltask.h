// Evaluation tasks over a model (lmtune eval): perplexity, classification by label log-likelihood (or greedy
// generation), free generation scored by BLEU / ROUGE-L / exact match, and MMLU-style multiple choice as
// lm-evaluation-harness runs it. Data is tokenized once (lt_eval_data_load) and can be run against several models
// (base and base + adapter); each run gives a metrics object and one record per example, written as
// eval_results.json + predictions.jsonl by lt_eval_write. No call prints.
#ifndef LT_EVALTASK_H
#define LT_EVALTASK_H
#include <cjson/cJSON.h>
#include <stdint.h>

#include "eval/metrics.h"
#include "lmtune.h"

typedef enum { LT_EVAL_PPL = 0, LT_EVAL_CLASSIFY, LT_EVAL_GENERATE, LT_EVAL_MCQ } lt_eval_task;

// "ppl" | "classify" | "generate" | "mcq"
int lt_eval_task_parse(const char *name, lt_eval_task *out, lt_err *err);
const char *lt_eval_task_name(lt_eval_task t);

typedef struct lt_eval_opts {
  lt_eval_task task;
  const char *dataset;        // a file; for mcq also a directory of CSV files
  const char *tokenizer;      // folder with tokenizer.json (+ tokenizer_config.json), normally the model folder
  const char *template_name;  // chat template: a named or built-in one (NULL: the tokenizer's own)
  int vocab;                  // the model's vocabulary size (> 0: token ids are checked against it)
  int cutoff_len;             // ppl: > 0 truncates longer examples to this many tokens (as training does)
  int max_samples;            // > 0: at most this many examples (mcq: per subject)
  // classify
  const char *labels;         // "a,b,c": the label set in this order (NULL: the distinct gold labels, sorted)
  int by_generate;            // predict by greedy generation instead of by label log-likelihood
  // generate
  int max_new_tokens;         // <= 0: 128
  float temperature, top_p;   // temperature 0: greedy
  uint64_t seed;
  lt_bleu_tok bleu_tok;
  // mcq
  const char *dev;            // few-shot source: a CSV file or a directory ({subject}_dev.csv or {subject}.csv)
  int shots;                  // < 0: 5 when dev is given, else 0
  // progress (may be NULL): called after each example of a run
  void (*progress)(void *user, int done, int total);
  void *progress_user;
} lt_eval_opts;

typedef struct lt_eval_data lt_eval_data;

// Read and tokenize the dataset for o->task. Errors name the file, the line / record and the field.
int lt_eval_data_load(lt_eval_data **out, const lt_eval_opts *o, lt_err *err);
int lt_eval_data_size(const lt_eval_data *d);
// Classify: the label set; mcq: the subjects (names as in the metrics).
int lt_eval_data_n_names(const lt_eval_data *d);
const char *lt_eval_data_name(const lt_eval_data *d, int i);
void lt_eval_data_free(lt_eval_data *d);

typedef struct lt_eval_run {
  cJSON *metrics;    // ppl: loss, perplexity, n_tokens; classify: accuracy, macro/micro F1, per_class,
                     // confusion_matrix ...; generate: bleu, rouge_l, exact_match, n; mcq: accuracy (micro),
                     // macro_accuracy, per_subject
  cJSON *records;    // one object per example: prediction, scores ...
  double seconds;
  int64_t n_forward; // tokens run through the model
} lt_eval_run;

// Evaluate model m (its adapter, if one is loaded, included) on the data.
int lt_eval_run_model(lt_model *m, const lt_eval_data *d, const lt_eval_opts *o, lt_eval_run *out, lt_err *err);
void lt_eval_run_free(lt_eval_run *r);

// Where the results go: `out` is a directory (eval_results.json + predictions.jsonl in it, created if missing) or
// a path ending in .json (predictions next to it: predictions.jsonl for eval_results.json, else
// <stem>_predictions.jsonl).
int lt_eval_out_paths(const char *out, char *results, size_t rcap, char *preds, size_t pcap, lt_err *err);
// Write both files atomically (predictions first, so eval_results.json marks a finished evaluation). runs[i] is
// named names[i] with adapters[i] (NULL for the base model). model: the model folder as given.
int lt_eval_write(const char *results_path, const char *preds_path, const lt_eval_data *d, const char *model,
                  const char *const *names, const char *const *adapters, const lt_eval_run *runs, int n_runs,
                  double seconds, lt_err *err);

// ---- multiple-choice CSV files (eval_mcq.c) ----

typedef struct lt_mcq_question {
  const char *question, *choice[4];  // point into the parsed CSV
  int answer;                        // 0..3
  int line;                          // 1-based line of the record
} lt_mcq_question;

typedef struct lt_mcq_file {
  char subject[256];  // file name without _test.csv / _val.csv / _dev.csv / .csv
  int n;
  lt_mcq_question *q;
  void *csv;          // the parsed file the strings live in
} lt_mcq_file;

// MMLU (no header: question,A,B,C,D,answer), C-Eval (id,question,A,B,C,D,answer,explanation) or CMMLU
// (,Question,A,B,C,D,Answer) layout: a first row naming a "question" column is a header (names matched
// case-insensitively, other columns ignored). A missing column or an answer other than A-D is an error naming
// the file, the line and the column.
int lt_mcq_read(const char *path, lt_mcq_file *out, lt_err *err);
void lt_mcq_free(lt_mcq_file *f);
// "abstract_algebra_test.csv" -> "abstract_algebra" (into out).
void lt_mcq_subject(const char *file_name, char *out, size_t cap);
// lm-evaluation-harness's MMLU prompt: "The following are multiple choice questions (with answers) about
// {subject, _ as space}.\n\n", then each shot "{question.strip()}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer: {X}\n\n",
// then the question in the same form ending in "Answer:". *out malloc'd.
int lt_mcq_prompt(const char *subject, const lt_mcq_question *shots, int n_shots, const lt_mcq_question *q,
                  char **out, lt_err *err);

#endif
