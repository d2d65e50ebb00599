// lmtune report RUN_DIR [--out FILE]: the run's report.html (self-contained) and its figures as SVG files.
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "report/report.h"

static const char USAGE[] =
    "usage: lmtune report RUN_DIR [--out FILE]\n"
    "\n"
    "Writes RUN_DIR/report.html: one self-contained page (inline CSS and SVG, no scripts, nothing fetched) with the\n"
    "run summary (model, fine-tuning and LoRA settings, dataset, steps, epochs, runtime, tokens/s, losses), the\n"
    "loss / learning-rate / throughput curves, the eval_results*.json tables (runs side by side) and confusion\n"
    "matrices; and the figures as SVG files in RUN_DIR (loss.svg, lr.svg, throughput.svg, confusion_matrix*.svg).\n"
    "Reads what lmtune train and lmtune eval write there: training_args.yaml, trainer_state.json (or\n"
    "metrics.jsonl), all_results.json, adapter_config.json, eval_results*.json; absent files only omit sections.\n"
    "\n"
    "  --out FILE   write the page to FILE instead of RUN_DIR/report.html (the SVG files stay in RUN_DIR)\n";

int lt_cmd_report(int argc, char **argv) {
  const char *out = NULL, *help = NULL, *dir = NULL;
  lt_opt opts[] = {{"--out", 1, &out}, {"--help", 0, &help}};
  // one positional argument, RUN_DIR, anywhere among the options; the options go to lt_cli_parse
  char *rest[64];
  int nrest = 0;
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "--", 2) != 0) {
      if (dir) {
        fprintf(stderr, "lmtune report: one RUN_DIR expected, got \"%s\" and \"%s\"\n%s", dir, argv[i], USAGE);
        return LT_EXIT_USAGE;
      }
      dir = argv[i];
      continue;
    }
    if (nrest + 2 > (int)(sizeof rest / sizeof rest[0])) {
      fprintf(stderr, "lmtune report: too many arguments\n%s", USAGE);
      return LT_EXIT_USAGE;
    }
    rest[nrest++] = argv[i];
    if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) rest[nrest++] = argv[++i];
  }
  if (lt_cli_parse("report", nrest, rest, opts, 2)) return LT_EXIT_USAGE;
  if (help) {
    fputs(USAGE, stdout);
    return LT_EXIT_OK;
  }
  if (!dir) {
    fprintf(stderr, "lmtune report: RUN_DIR is required\n%s", USAGE);
    return LT_EXIT_USAGE;
  }
  lt_err err;
  lt_report_info info;
  if (lt_report_write_info(dir, out, &info, &err)) return lt_cli_fail("report", &err);
  for (const char *p = info.warnings; *p;) {
    int n = 0;
    while (p[n] && p[n] != '\n') n++;
    fprintf(stderr, "lmtune report: warning: %.*s\n", n, p);
    p += n + (p[n] == '\n');
  }
  printf("%s\n", info.html);
  for (int i = 0; i < info.n_figures; i++) printf("%s/%s\n", dir, info.figures[i]);
  return LT_EXIT_OK;
}
