// lmtune data sft --tokenizer DIR --dataset FILE --out FILE.jsonl [--template NAME] [--cutoff-len N]
//                 [--train-on-prompt] [--max-samples N] [--skip-bad-records]
// Builds the SFT examples `lmtune train` would train on and writes them as pre-tokenized JSONL
// ({"input_ids": [...], "labels": [...]}), the format `lmtune train` also reads directly.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/core.h"
#include "data/sft.h"

#define VERB "data"

int lt_cmd_data(int argc, char **argv) {
  const char *tok = NULL, *dataset = NULL, *out = NULL, *tmpl = NULL, *cutoff = "0", *top = NULL, *maxs = "0",
             *skip = NULL, *help = NULL;
  if (argc >= 1 && strcmp(argv[0], "mail") == 0) return lt_cmd_data_mail(argc - 1, argv + 1);
  if (argc < 1 || strcmp(argv[0], "sft") != 0) {
    fprintf(stderr, "usage: lmtune data sft --tokenizer DIR --dataset FILE --out FILE.jsonl [--template NAME]\n"
                    "       [--cutoff-len N] [--train-on-prompt] [--max-samples N] [--skip-bad-records]\n"
                    "       lmtune data mail --out DIR [--split 0.8,0.1,0.1] ... LABEL=PATH ...\n");
    return argc >= 1 && !strcmp(argv[0], "--help") ? LT_EXIT_OK : LT_EXIT_USAGE;
  }
  lt_opt opts[] = {{"--tokenizer", 1, &tok},   {"--dataset", 1, &dataset},         {"--out", 1, &out},
                   {"--template", 1, &tmpl},   {"--cutoff-len", 1, &cutoff},       {"--train-on-prompt", 0, &top},
                   {"--max-samples", 1, &maxs}, {"--skip-bad-records", 0, &skip},  {"--help", 0, &help}};
  if (lt_cli_parse(VERB, argc - 1, argv + 1, opts, 9)) return LT_EXIT_USAGE;
  if (help || !tok || !dataset || !out) {
    fprintf(help ? stdout : stderr,
            "usage: lmtune data sft --tokenizer DIR --dataset FILE --out FILE.jsonl [--template NAME]\n"
            "       [--cutoff-len N] [--train-on-prompt] [--max-samples N] [--skip-bad-records]\n"
            "renders each conversation (Alpaca, ShareGPT or OpenAI messages) with the chat template, tokenizes it,\n"
            "and writes {\"input_ids\": [...], \"labels\": [...]} lines (labels -100 outside the responses)\n");
    return help ? LT_EXIT_OK : LT_EXIT_USAGE;
  }
  long cl, ms;
  if (lt_cli_parse_int(VERB, "--cutoff-len", cutoff, 0, 1 << 24, &cl) ||
      lt_cli_parse_int(VERB, "--max-samples", maxs, 0, 1L << 30, &ms))
    return LT_EXIT_USAGE;
  lt_sft_opts o = {(int)cl, top != NULL, (int)ms, skip != NULL};
  lt_sft_stats st;
  lt_dataset d = {0};
  lt_err err;
  if (lt_data_read_sft(dataset, tok, tmpl, &o, 0, &d, &st, &err)) {
    lt_dataset_free(&d);
    return lt_cli_fail(VERB, &err);
  }
  lt_atomic_file af;
  if (lt_atomic_open(&af, out, &err)) {
    lt_dataset_free(&d);
    return lt_cli_fail(VERB, &err);
  }
  for (int i = 0; i < d.n; i++) {
    const lt_example *e = &d.ex[i];
    fputs("{\"input_ids\": [", af.fp);
    for (int k = 0; k < e->len; k++) fprintf(af.fp, "%s%d", k ? ", " : "", e->ids[k]);
    fputs("], \"labels\": [", af.fp);
    for (int k = 0; k < e->len; k++) fprintf(af.fp, "%s%d", k ? ", " : "", e->labels[k]);
    fputs("]}\n", af.fp);
  }
  int rc = lt_atomic_commit(&af, &err) ? lt_cli_fail(VERB, &err) : LT_EXIT_OK;
  if (rc == LT_EXIT_OK)
    fprintf(stderr, "lmtune data: %d conversations -> %d examples (%d skipped, %d truncated, %d without EOS) -> %s\n",
            st.n_records, d.n, st.n_skipped, st.n_truncated, st.n_no_eos, out);
  lt_dataset_free(&d);
  return rc;
}
