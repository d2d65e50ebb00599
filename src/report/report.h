// Run reports: RUN_DIR/report.html (self-contained: inline CSS and SVG, no scripts, no external resources) and the
// same figures as SVG files in RUN_DIR (loss.svg, lr.svg, throughput.svg, confusion_matrix*.svg), from what
// `lmtune train` and `lmtune eval` leave there: training_args.yaml, trainer_state.json (or metrics.jsonl),
// all_results.json, adapter_config.json, eval_results*.json. Missing files only omit their sections; a file that
// exists but cannot be read becomes a warning (in the page and in info) and its sections are omitted.
// The throughput curve plots a per-entry "tokens_per_second" (or "train_tokens_per_second") of the log history;
// the summary's tokens/s is all_results.json's "train_tokens_per_second", else the mean of those entries, else
// trainer_state.json's num_input_tokens_seen / train_runtime.
#ifndef LT_REPORT_H
#define LT_REPORT_H
#include <stddef.h>

#include "lmtune.h"

typedef struct cJSON cJSON;
typedef struct lt_sbuf lt_sbuf;

#define LT_REPORT_MAX_FIGURES 64

typedef struct lt_report_info {
  int n_figures;                              // SVG files written in RUN_DIR
  char figures[LT_REPORT_MAX_FIGURES][80];    // their names
  int n_warnings;
  char warnings[4096];                        // one per line
  char html[4200];                            // the page written
} lt_report_info;

// Write the report. out_html NULL: RUN_DIR/report.html. Fails (-1) when RUN_DIR is not a directory, holds none of
// the files above in a readable form, or an output cannot be written. Never prints.
int lt_report_write(const char *run_dir, const char *out_html, lt_err *err);
// The same, also telling what was written and what was skipped (info may be NULL).
int lt_report_write_info(const char *run_dir, const char *out_html, lt_report_info *info, lt_err *err);

// The loss figure (training "loss" as a line, "eval_loss" as points joined by a line, over "step") of a
// trainer_state log_history, as one <svg> element appended to out (standalone: with the XML declaration).
// Also used for training_loss.svg. Returns -1 when out of memory.
int lt_report_loss_svg(const cJSON *log_history, const char *title, int standalone, lt_sbuf *out, lt_err *err);

#endif
