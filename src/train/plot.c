// training_loss.svg: the logged training loss over optimizer steps (and the eval_loss points), as LLaMA-Factory's
// plot_loss draws training_loss.png. Drawn by the report's chart code (src/report/svg.c): plain SVG 1.1, no
// external resources.
#include <cjson/cJSON.h>
#include <stdio.h>

#include "core/core.h"
#include "report/report.h"
#include "report/svgchart.h"
#include "train/trainer.h"

int lt_plot_loss_svg(const cJSON *log_history, const char *path, const char *title, lt_err *err) {
  lt_sbuf svg = {0};
  int rc = lt_report_loss_svg(log_history, title ? title : "training loss", 1, &svg, err);
  if (rc == 0) rc = lt_write_file_atomic(path, svg.p, svg.n, err);
  if (rc) lt_err_prefix(err, "%s", path);
  lt_sbuf_free(&svg);
  return rc;
}
