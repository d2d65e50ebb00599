// lmtune generate --model DIR [--adapter DIR] --ids ... --max-new-tokens N [sampling options]
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

int lt_cmd_generate(int argc, char **argv) {
  const char *model = NULL, *adapter = NULL, *ids_s = NULL, *maxn = "32", *temp = "0", *topk = "0", *topp = "1",
             *rep = "1", *seed = "0", *dtype = "f32", *help = NULL;
  lt_opt opts[] = {{"--model", 1, &model},          {"--adapter", 1, &adapter},  {"--ids", 1, &ids_s},
                   {"--max-new-tokens", 1, &maxn},  {"--temperature", 1, &temp}, {"--top-k", 1, &topk},
                   {"--top-p", 1, &topp},           {"--repetition-penalty", 1, &rep},
                   {"--seed", 1, &seed},            {"--dtype", 1, &dtype},      {"--help", 0, &help}};
  if (lt_cli_parse("generate", argc, argv, opts, 11)) return LT_EXIT_USAGE;
  if (help || !model || !ids_s) {
    fprintf(help ? stdout : stderr,
            "usage: lmtune generate --model DIR [--adapter DIR] --ids 1,2,3 [--max-new-tokens N]\n"
            "       [--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R] [--seed S]\n"
            "       [--dtype f32|bf16]\n"
            "temperature 0 (default) is greedy. Prints the new token ids, space-separated, on one line;\n"
            "stops after an EOS id from generation_config.json/config.json (the EOS id is printed).\n");
    return help ? LT_EXIT_OK : LT_EXIT_USAGE;
  }
  long max_new, k, s;
  double t, p, r;
  if (lt_cli_parse_int("generate", "--max-new-tokens", maxn, 0, 1 << 20, &max_new) ||
      lt_cli_parse_float("generate", "--temperature", temp, 0, 100, &t) ||
      lt_cli_parse_int("generate", "--top-k", topk, 0, 1 << 30, &k) ||
      lt_cli_parse_float("generate", "--top-p", topp, 0, 1, &p) ||
      lt_cli_parse_float("generate", "--repetition-penalty", rep, 0.01, 100, &r) ||
      lt_cli_parse_int("generate", "--seed", seed, 0, 0x7fffffffL, &s))
    return LT_EXIT_USAGE;
  lt_compute compute;
  if (lt_cli_parse_compute("generate", dtype, &compute)) return LT_EXIT_USAGE;
  int32_t *ids;
  int n = lt_cli_parse_ids("generate", ids_s, &ids);
  if (n < 0) return LT_EXIT_USAGE;
  lt_err err;
  lt_model *m = NULL;
  int32_t *out = malloc(sizeof(int32_t) * (size_t)(max_new + 1));
  int rc = LT_EXIT_FAIL, n_out = 0;
  if (!out) {
    fprintf(stderr, "lmtune generate: out of memory\n");
    goto done;
  }
  lt_sampling smp = {(float)t, (int)k, (float)p, (float)r, (uint64_t)s};
  if (lt_model_load(&m, model, &err) || lt_model_set_compute(m, compute, &err) ||
      (adapter && lt_model_load_adapter(m, adapter, &err)) ||
      lt_generate(m, ids, n, (int)max_new, &smp, out, &n_out, &err)) {
    lt_cli_fail("generate", &err);
    goto done;
  }
  for (int i = 0; i < n_out; i++) printf("%s%d", i ? " " : "", out[i]);
  printf("\n");
  rc = LT_EXIT_OK;
done:
  free(out);
  free(ids);
  lt_model_free(m);
  return rc;
}
