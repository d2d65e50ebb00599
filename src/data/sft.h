// Supervised fine-tuning examples from conversations: each turn rendered with the model's chat template and
// tokenized as LLaMA-Factory does (prompt and response segments encoded separately, no special tokens added
// beyond what the template writes); labels only on the assistant segments (each ends with the template's
// end-of-turn text, e.g. "<|im_end|>\n") unless train_on_prompt.
#ifndef LT_SFT_H
#define LT_SFT_H
#include "chat/chat.h"
#include "data/convo.h"
#include "data/data.h"
#include "tokenizer/tokenizer.h"

typedef struct lt_sft_opts {
  int cutoff_len;       // > 0: longer examples are cut to this many tokens
  int train_on_prompt;  // labels on the prompt tokens too
  int max_samples;      // > 0: at most this many examples
  int skip_bad;         // a conversation that cannot be rendered/encoded is counted and skipped
} lt_sft_opts;

typedef struct lt_sft_stats {
  int n_records, n_skipped, n_truncated;
  int n_no_eos;           // responses whose tokens do not contain the EOS id (the model would not learn to stop)
  char first_bad[768];
} lt_sft_stats;

// Conversations -> examples appended to *out. eos_id: the id responses must contain (-1: do not check).
int lt_data_build_sft(const lt_convo *c, int n, const char *source, const lt_chat_set *cs, const lt_tokenizer *tok,
                      int32_t eos_id, const lt_sft_opts *o, lt_dataset *out, lt_sft_stats *st, lt_err *err);

// The whole path for a dataset file: read it (Alpaca / ShareGPT / OpenAI, see convo.h), load the chat template
// (template_name: a named/built-in template, NULL: the tokenizer's own) and tokenizer from tokenizer_dir, build.
int lt_data_read_sft(const char *path, const char *tokenizer_dir, const char *template_name, const lt_sft_opts *o,
                     int vocab, lt_dataset *out, lt_sft_stats *st, lt_err *err);

// 1 when the file holds pre-tokenized ({"input_ids": ...}) or plain-text ({"text": ...}) JSONL records (or
// nothing), 0 when it holds conversations (or is a JSON array), -1 on a read error.
int lt_data_is_pretok(const char *path, lt_err *err);

#endif
