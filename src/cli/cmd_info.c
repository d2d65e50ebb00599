// lmtune info --model DIR
#include <stdio.h>

#include "cli/cli.h"

int lt_cmd_info(int argc, char **argv) {
  const char *model = NULL, *help = NULL;
  lt_opt opts[] = {{"--model", 1, &model}, {"--help", 0, &help}};
  if (lt_cli_parse("info", argc, argv, opts, 2)) return LT_EXIT_USAGE;
  if (help || !model) {
    fprintf(help ? stdout : stderr, "usage: lmtune info --model DIR\n");
    return help ? LT_EXIT_OK : LT_EXIT_USAGE;
  }
  lt_err err;
  lt_model *m;
  if (lt_model_load(&m, model, &err)) return lt_cli_fail("info", &err);
  lt_model_info in;
  lt_model_get_info(m, &in);
  printf("architecture: %s\n", in.architecture);
  printf("model_type: %s\n", in.model_type);
  printf("dtype: %s\n", in.dtype);
  printf("parameters: %lld\n", (long long)in.params);
  printf("layers: %d\nhidden: %d\nheads: %d\nkv_heads: %d\nhead_dim: %d\nintermediate: %d\nvocab: %d\n", in.layers,
         in.hidden, in.heads, in.kv_heads, in.head_dim, in.ffn, in.vocab);
  printf("tied_embeddings: %s\n", in.tied ? "true" : "false");
  printf("eos_token_ids:");
  for (int i = 0; i < in.n_eos; i++) printf("%s%d", i ? "," : " ", in.eos_ids[i]);
  printf("\n");
  lt_model_free(m);
  return LT_EXIT_OK;
}
