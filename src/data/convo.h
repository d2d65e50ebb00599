// Instruction datasets as conversations: Alpaca (instruction/input/output, system, history), ShareGPT
// (conversations with from/value), OpenAI messages (role/content), preference pairs (chosen/rejected) and plain
// text, with LLaMA-Factory's column/tag mapping (dataset_info.json). Every bad record is an error naming the file,
// the line (JSONL) or record index and line (JSON array), and the field.
#ifndef LT_CONVO_H
#define LT_CONVO_H
#include "lmtune.h"

typedef enum { LT_ROLE_SYSTEM = 0, LT_ROLE_USER, LT_ROLE_ASSISTANT, LT_ROLE_FUNCTION, LT_ROLE_OBSERVATION } lt_role;
const char *lt_role_name(lt_role r);  // "system", "user", "assistant", "function", "observation"

typedef struct lt_msg {
  lt_role role;
  char *content;
} lt_msg;

typedef struct lt_convo {
  char *system;       // "" when none
  char *tools;        // JSON text, "" when none
  int n_prompt;       // alternating user(or observation) / assistant(or function) turns, ending with a user turn
  lt_msg *prompt;
  int n_response;     // 1: SFT; 2: preference (chosen, rejected); 0: unsupervised
  lt_msg *response;
  char *text;         // plain-text record (pre-training), else NULL
  char origin[96];    // "line 12" or "record 3 (line 40)"
} lt_convo;

typedef enum { LT_FMT_AUTO = 0, LT_FMT_ALPACA, LT_FMT_SHAREGPT, LT_FMT_OPENAI, LT_FMT_TEXT } lt_formatting;

typedef struct lt_data_format {
  lt_formatting formatting;
  int ranking;  // preference data
  // columns (NULL: the format's default)
  const char *prompt, *query, *response, *history, *messages, *system, *tools, *chosen, *rejected, *text;
  // ShareGPT/OpenAI tags (NULL: default)
  const char *role_tag, *content_tag, *user_tag, *assistant_tag, *observation_tag, *function_tag, *system_tag;
} lt_data_format;

// Read a .json (array) or .jsonl file. skip_bad: bad records are counted in *n_skipped (first message kept in
// err->msg as a warning) instead of failing. *out is an array of *n conversations.
int lt_data_read_convos(const char *path, const lt_data_format *f, int skip_bad, lt_convo **out, int *n,
                        int *n_skipped, lt_err *err);
void lt_convos_free(lt_convo *c, int n);

// LLaMA-Factory dataset_info.json: the entry `name` -> format (strings owned by *keep; free with cJSON_Delete-like
// lt_data_info_free) and the data file path (dir of the info file + file_name).
typedef struct lt_data_info lt_data_info;
int lt_data_info_load(const char *info_path, const char *name, lt_data_format *f, char *file, size_t file_cap,
                      lt_data_info **keep, lt_err *err);
void lt_data_info_free(lt_data_info *k);

#endif
