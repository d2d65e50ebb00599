// Training examples as the trainer consumes them: token ids + labels (+ optional attention mask), whatever reader
// produced them (pre-tokenized JSONL here; chat-template readers build the same lt_example list).
#ifndef LT_DATA_H
#define LT_DATA_H
#include <stdint.h>

#include "lmtune.h"

typedef struct lt_example {
  int32_t *ids;     // len token ids
  int32_t *labels;  // len labels (unshifted, as transformers: -100 = ignored)
  int32_t *attn;    // len 0/1 values, or NULL (all ones)
  int len;
  int line;         // source line (1-based) for messages, 0 when not from a file
} lt_example;

typedef struct lt_dataset {
  lt_example *ex;
  int n, cap;
  char source[512];  // file name for messages
} lt_dataset;

// Append a copy of one example (labels NULL: a copy of ids; attn NULL: no mask). len >= 1.
int lt_dataset_add(lt_dataset *d, const int32_t *ids, const int32_t *labels, const int32_t *attn, int len, int line,
                   lt_err *err);
void lt_dataset_free(lt_dataset *d);
// Number of label tokens the causal-LM loss uses (labels[1:] != -100).
int64_t lt_example_n_targets(const lt_example *e);

typedef struct lt_pretok_opts {
  int cutoff_len;   // > 0: truncate longer examples to this many tokens (counted in stats->n_truncated)
  int max_samples;  // > 0: keep at most this many examples
  int skip_bad;     // bad records are counted and skipped instead of failing
  int vocab;        // > 0: token ids and labels must be < vocab
  // {"text": ...} records (pre-training): tokenized with the tokenizer in this folder (NULL: refused) as
  // LLaMA-Factory does: [bos when the tokenizer adds one] + text + eos, no other special tokens; labels = ids.
  const char *tokenizer_path;
} lt_pretok_opts;

typedef struct lt_data_stats {
  int n_records;    // records read (non-blank lines)
  int n_skipped;    // bad records skipped (skip_bad)
  int n_truncated;  // examples cut to cutoff_len
  int n_no_target;  // examples with no label token left (they add nothing to the loss)
  char first_bad[768];  // the first skipped record's message
} lt_data_stats;

// Read JSONL records {"input_ids": [...], "labels": [...], "attention_mask": [...]} (labels and attention_mask
// optional; labels default to input_ids; -100 allowed in labels) or {"text": ...} (tokenized with
// o->tokenizer_path). A .txt file is read as one text record per non-blank line (as LLaMA-Factory), a directory
// as one text document per *.txt file (sorted by name), and "a,b" (when no such file exists) as each of the
// comma-separated paths in turn. Errors name the file, the line and the field. Appends to *out.
int lt_data_read_pretok(const char *path, const lt_pretok_opts *o, lt_dataset *out, lt_data_stats *st, lt_err *err);

// LLaMA-Factory's packing for pre-training: concatenate every example (ids and labels) in order and cut the
// stream into blocks of `block` tokens, dropping the remainder; bos >= 0 overwrites each block's first id.
int lt_dataset_pack(lt_dataset *d, int block, int32_t bos, lt_err *err);
// The bos id the reader prepends to text records (-1 when none), for lt_dataset_pack.
int32_t lt_pretok_text_bos(const char *tokenizer_path);

// Split off round(val_size * n) (val_size < 1) or val_size (>= 1) examples as an evaluation set, after a seeded
// shuffle (as LLaMA-Factory's train_test_split with a seed; the order differs from the datasets library).
// Examples move from *all (left empty) into *train and *eval.
int lt_dataset_split(lt_dataset *all, double val_size, uint64_t seed, lt_dataset *train, lt_dataset *eval,
                     lt_err *err);

// Deterministic permutation of 0..n-1 for (seed, epoch) (Fisher-Yates over the counter RNG).
void lt_shuffle_perm(int32_t *perm, int n, uint64_t seed, uint64_t epoch);

#endif
