// lmtune logits --model DIR [--adapter DIR] --ids 1,2,3 --out FILE.npy
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

int lt_cmd_logits(int argc, char **argv) {
  const char *model = NULL, *adapter = NULL, *ids_s = NULL, *out = NULL, *dtype = "f32", *help = NULL;
  lt_opt opts[] = {{"--model", 1, &model}, {"--adapter", 1, &adapter}, {"--ids", 1, &ids_s},
                   {"--out", 1, &out},     {"--dtype", 1, &dtype},     {"--help", 0, &help}};
  if (lt_cli_parse("logits", argc, argv, opts, 6)) return LT_EXIT_USAGE;
  if (help || !model || !ids_s || !out) {
    fprintf(help ? stdout : stderr,
            "usage: lmtune logits --model DIR [--adapter DIR] --ids 1,2,3 --out FILE.npy [--dtype f32|bf16]\n"
            "writes float32 logits [T, vocab] in NumPy .npy format; --dtype is the compute precision\n"
            "(f32 default: the reference path; bf16: frozen weights in bf16, as autocast)\n");
    return help ? LT_EXIT_OK : LT_EXIT_USAGE;
  }
  lt_compute compute;
  if (lt_cli_parse_compute("logits", dtype, &compute)) return LT_EXIT_USAGE;
  int32_t *ids;
  int T = lt_cli_parse_ids("logits", ids_s, &ids);
  if (T < 0) return LT_EXIT_USAGE;
  lt_err err;
  lt_model *m = NULL;
  float *logits = NULL;
  int rc = LT_EXIT_FAIL;
  if (lt_model_load(&m, model, &err) || lt_model_set_compute(m, compute, &err) ||
      (adapter && lt_model_load_adapter(m, adapter, &err))) {
    lt_cli_fail("logits", &err);
    goto done;
  }
  lt_model_info in;
  lt_model_get_info(m, &in);
  logits = malloc((size_t)T * (size_t)in.vocab * sizeof(float));
  if (!logits) {
    fprintf(stderr, "lmtune logits: out of memory for %d x %d logits\n", T, in.vocab);
    goto done;
  }
  int64_t shape[2] = {T, in.vocab};
  if (lt_model_logits(m, ids, T, logits, &err) || lt_npy_write_f32(out, logits, shape, 2, &err)) {
    lt_cli_fail("logits", &err);
    goto done;
  }
  rc = LT_EXIT_OK;
done:
  free(logits);
  free(ids);
  lt_model_free(m);
  return rc;
}
