// Byte-level BPE training (as HF tokenizers' BpeTrainer with a ByteLevel pre-tokenizer): writes tokenizer.json +
// tokenizer_config.json that HF tokenizers loads and encodes identically.
#ifndef LT_BPE_TRAIN_H
#define LT_BPE_TRAIN_H
#include "lmtune.h"

typedef struct lt_bpe_train_opts {
  int vocab_size;            // total, including the 256 byte tokens and special tokens
  int min_frequency;         // pairs seen fewer times are not merged (default 2)
  const char **special;      // special tokens added first (ids 0..n-1), e.g. "<|endoftext|>"
  int n_special;
  const char *chat_template; // Jinja chat template stored in tokenizer_config.json (NULL: none)
} lt_bpe_train_opts;

// Train on the given text files (UTF-8) and write out_dir/tokenizer.json and out_dir/tokenizer_config.json
// (atomically). Errors name the file.
int lt_bpe_train(const char *const *files, int n_files, const lt_bpe_train_opts *o, const char *out_dir, lt_err *err);

#endif
