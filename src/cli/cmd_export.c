// lmtune export --model BASE [--adapter DIR] --out DIR [--dtype auto|bf16|f16|f32]
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int lt_cmd_export(int argc, char **argv) {
  const char *model = NULL, *adapter = NULL, *out = NULL, *dtype = "auto", *help = NULL;
  lt_opt opts[] = {{"--model", 1, &model}, {"--adapter", 1, &adapter}, {"--out", 1, &out},
                   {"--dtype", 1, &dtype}, {"--help", 0, &help}};
  if (lt_cli_parse("export", argc, argv, opts, 5)) return LT_EXIT_USAGE;
  if (help || !model || !out) {
    fprintf(help ? stdout : stderr,
            "usage: lmtune export --model BASE [--adapter DIR] --out DIR [--dtype auto|bf16|f16|f32]\n"
            "writes a Hugging Face model folder: the base weights with the PEFT LoRA adapter merged in\n"
            "(W + scale * B A), config and tokenizer files copied; dtype auto keeps each weight's stored dtype\n");
    return help ? LT_EXIT_OK : LT_EXIT_USAGE;
  }
  int dt;
  if (strcmp(dtype, "auto") == 0) dt = -1;
  else if (strcmp(dtype, "bf16") == 0) dt = LT_DTYPE_BF16;
  else if (strcmp(dtype, "f16") == 0) dt = LT_DTYPE_F16;
  else if (strcmp(dtype, "f32") == 0) dt = LT_DTYPE_F32;
  else {
    fprintf(stderr, "lmtune export: --dtype \"%s\": choose auto, bf16, f16 or f32\n", dtype);
    return LT_EXIT_USAGE;
  }
  lt_err err;
  lt_model *m = NULL;
  int rc = LT_EXIT_OK;
  if (lt_model_load(&m, model, &err) || (adapter && lt_model_load_adapter(m, adapter, &err)) ||
      lt_model_save_pretrained(m, out, dt, &err))
    rc = lt_cli_fail("export", &err);
  else
    fprintf(stderr, "lmtune export: wrote %s\n", out);
  lt_model_free(m);
  return rc;
}
