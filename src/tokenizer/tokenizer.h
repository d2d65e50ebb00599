// Tokenizer: Hugging Face tokenizer.json (normalizer, pre-tokenizer, model, post-processor, decoder, added
// tokens) plus the add_bos/add_eos rules transformers applies from tokenizer_config.json. Byte-exact with HF.
#ifndef LT_TOKENIZER_H
#define LT_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

#include "lmtune.h"

typedef struct lt_tokenizer lt_tokenizer;

// path: a folder holding tokenizer.json (+ optional tokenizer_config.json), or a tokenizer.json file.
int lt_tokenizer_load(lt_tokenizer **out, const char *path, lt_err *err);
void lt_tokenizer_free(lt_tokenizer *t);
// LT_TOK_RAW: use tokenizer.json exactly as HF `tokenizers.Tokenizer.from_file` does, ignoring
// tokenizer_config.json (no transformers class rules). Default (0): as transformers' AutoTokenizer.
enum { LT_TOK_RAW = 1 };
int lt_tokenizer_load_ex(lt_tokenizer **out, const char *path, unsigned flags, lt_err *err);
// The transformers class whose rules were applied ("" when tokenizer.json is used as is).
const char *lt_tokenizer_class(const lt_tokenizer *t);

// Encode UTF-8 text (len bytes; invalid UTF-8 is an error naming the byte offset). add_special: apply the
// post-processor / BOS-EOS rules as transformers' tokenizer(text) does (add_special_tokens=True).
// *ids is malloc'd; the caller frees it.
int lt_tokenizer_encode(const lt_tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids, int *n,
                        lt_err *err);
// Decode ids to UTF-8 (as transformers' decode(ids, skip_special_tokens=skip_special)); *text malloc'd, NUL-ended.
int lt_tokenizer_decode(const lt_tokenizer *t, const int32_t *ids, int n, int skip_special, char **text,
                        size_t *len, lt_err *err);

int lt_tokenizer_vocab_size(const lt_tokenizer *t);  // including added tokens
int32_t lt_tokenizer_token_to_id(const lt_tokenizer *t, const char *token);  // -1 if unknown
const char *lt_tokenizer_id_to_token(const lt_tokenizer *t, int32_t id);    // NULL if out of range
int32_t lt_tokenizer_bos_id(const lt_tokenizer *t);  // -1 when none
int32_t lt_tokenizer_eos_id(const lt_tokenizer *t);
int32_t lt_tokenizer_pad_id(const lt_tokenizer *t);
int lt_tokenizer_is_special(const lt_tokenizer *t, int32_t id);

// Streaming decode for serving: feed ids one at a time; emits only complete UTF-8 characters, and the
// concatenation of all emitted text equals lt_tokenizer_decode of the whole sequence.
typedef struct lt_detok_stream lt_detok_stream;
int lt_detok_stream_new(lt_detok_stream **out, const lt_tokenizer *t, int skip_special, lt_err *err);
// Appends newly completed text to *out (malloc'd, may be empty); returns 0 or -1.
int lt_detok_stream_push(lt_detok_stream *s, int32_t id, char **out, size_t *len, lt_err *err);
int lt_detok_stream_flush(lt_detok_stream *s, char **out, size_t *len, lt_err *err);
void lt_detok_stream_free(lt_detok_stream *s);

#endif
