// CLI helpers shared by the verbs. Only src/cli prints and chooses exit codes.
#ifndef LT_CLI_H
#define LT_CLI_H
#include <stdint.h>
#include "lmtune.h"

// Exit codes: 0 ok, 1 runtime failure (bad file, bad data), 2 usage error.
enum { LT_EXIT_OK = 0, LT_EXIT_FAIL = 1, LT_EXIT_USAGE = 2 };

typedef struct {
  const char *name;   // "--model"
  int has_value;
  const char **value; // receives the value (or "1" for flags)
} lt_opt;

// Parse argv against opts; on error prints "lmtune VERB: ..." and returns -1.
int lt_cli_parse(const char *verb, int argc, char **argv, lt_opt *opts, int nopts);
// "1,2,3" -> ids (malloc'd). Returns count or -1 with a message.
int lt_cli_parse_ids(const char *verb, const char *s, int32_t **ids);
int lt_cli_parse_int(const char *verb, const char *flag, const char *s, long lo, long hi, long *out);
int lt_cli_parse_float(const char *verb, const char *flag, const char *s, double lo, double hi, double *out);
int lt_cli_fail(const char *verb, const lt_err *err);
// --dtype f32|bf16 -> compute precision
int lt_cli_parse_compute(const char *verb, const char *s, lt_compute *out);

int lt_cmd_info(int argc, char **argv);
int lt_cmd_logits(int argc, char **argv);
int lt_cmd_generate(int argc, char **argv);
int lt_cmd_export(int argc, char **argv);
int lt_cmd_train(int argc, char **argv);           // cmd_train.c
int lt_cmd_plan(int argc, char **argv);            // cmd_plan.c
// cmd_train.c: [config.yaml] [--key value | --key=value ...] into *a (then checked). extra (may be NULL) sees each
// key first: returns 1 when it took the key, 0 to leave it to the training arguments, -1 after printing an error.
// cmd_train.c: --help / -h prints usage to stdout (LT_EXIT_OK), no arguments prints it to stderr (LT_EXIT_USAGE);
// otherwise -1: go on parsing.
#include <stdio.h>
int lt_cli_help(int argc, char **argv, void (*usage)(FILE *));
struct lt_train_args;
typedef int (*lt_cli_extra_key)(void *ud, const char *key, const char *value);
int lt_cli_train_args(const char *verb, int argc, char **argv, struct lt_train_args *a, lt_cli_extra_key extra,
                      void *ud);
int lt_cmd_tokenize(int argc, char **argv);        // cmd_tokenize.c
int lt_cmd_detokenize(int argc, char **argv);      // cmd_tokenize.c
int lt_cmd_chat_template(int argc, char **argv);   // cmd_chat_template.c
int lt_cmd_tokenizer(int argc, char **argv);       // cmd_tokenizer_train.c: "lmtune tokenizer train ..."
int lt_cmd_metrics(int argc, char **argv);         // cmd_metrics.c
int lt_cmd_eval(int argc, char **argv);            // cmd_eval.c
int lt_cmd_data(int argc, char **argv);            // cmd_data.c: "lmtune data sft ..."
int lt_cmd_data_mail(int argc, char **argv);       // cmd_data_mail.c: "lmtune data mail ..." (argv after "mail")
int lt_cmd_report(int argc, char **argv);          // cmd_report.c

#endif
