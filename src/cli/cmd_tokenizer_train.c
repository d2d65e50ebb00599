// lmtune tokenizer train --vocab-size N --out DIR [--min-frequency 2] [--special-tokens "<|endoftext|>,<pad>"]
//                        [--chat-template FILE] corpus.txt...
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/core.h"
#include "tokenizer/bpe_train.h"

static const char USAGE[] =
    "usage: lmtune tokenizer train --vocab-size N --out DIR [--min-frequency 2]\n"
    "                              [--special-tokens \"<|endoftext|>,<pad>\"] [--chat-template FILE] corpus.txt...\n"
    "trains a byte-level BPE tokenizer as Hugging Face tokenizers' BpeTrainer does (ByteLevel pre-tokenizer,\n"
    "GPT-2 regex, no prefix space; each corpus line is pre-tokenized on its own) and writes DIR/tokenizer.json and\n"
    "DIR/tokenizer_config.json. --vocab-size counts the 256 byte tokens and the special tokens, which get the\n"
    "first ids in the order given; pairs seen fewer than --min-frequency times are not merged.\n"
    "tokenizer_config.json names the well-known special tokens among them: <s> <bos> <|begin_of_text|> as\n"
    "bos_token, </s> <eos> <|endoftext|> <|end_of_text|> <|eot_id|> as eos_token, <pad> [PAD] as pad_token,\n"
    "<unk> [UNK] as unk_token. --chat-template stores the Jinja template in FILE as its chat_template.\n";

static int train_main(int argc, char **argv) {
  const char *verb = "tokenizer train";
  const char *vocab_s = NULL, *out = NULL, *minf_s = "2", *special_s = NULL, *help = NULL, *tmpl_s = NULL;
  char *tmpl = NULL;
  lt_opt opts[] = {{"--vocab-size", 1, &vocab_s},
                   {"--out", 1, &out},
                   {"--min-frequency", 1, &minf_s},
                   {"--special-tokens", 1, &special_s},
                   {"--chat-template", 1, &tmpl_s},
                   {"--help", 0, &help}};
  const int nopts = (int)(sizeof opts / sizeof opts[0]);
  // Options go to lt_cli_parse; everything else (or anything after "--") is a corpus file.
  char **optv = malloc((size_t)(argc + 1) * sizeof *optv);
  const char **files = malloc((size_t)(argc + 1) * sizeof *files);
  char *specials = NULL;
  const char **special = NULL;
  int rc = LT_EXIT_USAGE, noptv = 0, nfiles = 0, nspecial = 0;
  if (!optv || !files) {
    fprintf(stderr, "lmtune %s: out of memory\n", verb);
    rc = LT_EXIT_FAIL;
    goto done;
  }
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      while (++i < argc) files[nfiles++] = argv[i];
      break;
    }
    if (strncmp(a, "--", 2) != 0) {
      files[nfiles++] = a;
      continue;
    }
    optv[noptv++] = argv[i];
    if (strchr(a, '=')) continue;
    for (int j = 0; j < nopts; j++)
      if (opts[j].has_value && strcmp(opts[j].name, a) == 0 && i + 1 < argc) {
        optv[noptv++] = argv[++i];
        break;
      }
  }
  if (lt_cli_parse(verb, noptv, optv, opts, nopts)) goto done;
  if (help) {
    fputs(USAGE, stdout);
    rc = LT_EXIT_OK;
    goto done;
  }
  if (!vocab_s || !out || nfiles == 0) {
    fprintf(stderr, "lmtune %s: %s\n%s", verb,
            !vocab_s ? "--vocab-size is required" : !out ? "--out is required" : "no corpus files given", USAGE);
    goto done;
  }
  long vocab, minf;
  if (lt_cli_parse_int(verb, "--vocab-size", vocab_s, 1, 16777216, &vocab) ||
      lt_cli_parse_int(verb, "--min-frequency", minf_s, 0, 2147483647, &minf))
    goto done;
  if (special_s && *special_s) {
    specials = strdup(special_s);
    special = malloc((strlen(special_s) + 1) * sizeof *special);
    if (!specials || !special) {
      fprintf(stderr, "lmtune %s: out of memory\n", verb);
      rc = LT_EXIT_FAIL;
      goto done;
    }
    char *p = specials;
    for (;;) {
      char *comma = strchr(p, ',');
      if (comma) *comma = 0;
      if (!*p) {
        fprintf(stderr, "lmtune %s: --special-tokens \"%s\": empty token in the comma-separated list\n", verb,
                special_s);
        goto done;
      }
      for (int k = 0; k < nspecial; k++)
        if (strcmp(special[k], p) == 0) {
          fprintf(stderr, "lmtune %s: --special-tokens: \"%s\" is given twice\n", verb, p);
          goto done;
        }
      special[nspecial++] = p;
      if (!comma) break;
      p = comma + 1;
    }
  }
  if (vocab < 256 + nspecial) {
    fprintf(stderr, "lmtune %s: --vocab-size %ld is smaller than the 256 byte tokens + %d special tokens\n", verb, vocab,
            nspecial);
    goto done;
  }
  lt_err err;
  if (tmpl_s) {
    size_t tl;
    if (lt_read_file(tmpl_s, &tmpl, &tl, &err)) {
      rc = lt_cli_fail(verb, &err);
      goto done;
    }
    if (strlen(tmpl) != tl || tl == 0) {
      fprintf(stderr, "lmtune %s: --chat-template %s: the file is empty or holds a NUL byte\n", verb, tmpl_s);
      goto done;
    }
  }
  lt_bpe_train_opts o = {.vocab_size = (int)vocab, .min_frequency = (int)minf, .special = special,
                         .n_special = nspecial, .chat_template = tmpl};
  double t0 = lt_now();
  if (lt_bpe_train(files, nfiles, &o, out, &err)) {
    rc = lt_cli_fail(verb, &err);
    goto done;
  }
  printf("lmtune %s: wrote %s/tokenizer.json and %s/tokenizer_config.json from %d file%s in %.2f s\n", verb, out, out,
         nfiles, nfiles == 1 ? "" : "s", lt_now() - t0);
  rc = LT_EXIT_OK;
done:
  free(optv);
  free(files);
  free(specials);
  free(special);
  free(tmpl);
  return rc;
}

int lt_cmd_tokenizer(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "train") == 0) return train_main(argc - 1, argv + 1);
  if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    fputs("usage: lmtune tokenizer train ...   (lmtune tokenizer train --help)\n", stdout);
    return LT_EXIT_OK;
  }
  if (argc >= 1)
    fprintf(stderr, "lmtune tokenizer: unknown subcommand \"%s\" (only \"train\")\n", argv[0]);
  else
    fprintf(stderr, "lmtune tokenizer: missing subcommand\n");
  fputs("usage: lmtune tokenizer train ...   (lmtune tokenizer train --help)\n", stderr);
  return LT_EXIT_USAGE;
}
