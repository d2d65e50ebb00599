// Chat templates: a Jinja2-subset interpreter (lexer, parser, evaluator) rendering tokenizer_config.json
// chat_template exactly as transformers' apply_chat_template, plus built-in named templates.
#ifndef LT_CHAT_H
#define LT_CHAT_H
#include <stddef.h>

#include "lmtune.h"

typedef struct lt_chat_template lt_chat_template;

// Compile a template source; errors name the construct and its line:column.
int lt_chat_compile(lt_chat_template **out, const char *source, lt_err *err);
void lt_chat_free(lt_chat_template *t);

// Render with a JSON context (text of a JSON object), e.g. {"messages": [...], "add_generation_prompt": true,
// "bos_token": "<s>", "eos_token": "</s>", ...extra template kwargs}. *out is malloc'd, NUL-ended.
// raise_exception(msg) in the template becomes an error carrying msg.
int lt_chat_render(const lt_chat_template *t, const char *context_json, char **out, size_t *len, lt_err *err);

// Render one request as transformers' tokenizer.apply_chat_template(messages, tokenize=False, ...) does:
// request_json is {"messages": [...], "add_generation_prompt": bool, "tools": [...], "documents": [...],
// "template_kwargs": {...}} (only "messages" is required). special_json (may be NULL) is a JSON object of the
// tokenizer's named special tokens ({"bos_token": "<s>", "eos_token": "</s>", ...}); template_kwargs override them.
// Messages get transformers' normalization (keys with null values dropped; reasoning_content / thinking /
// reasoning aliased), tools/documents default to none, add_generation_prompt to false.
int lt_chat_render_request(const lt_chat_template *t, const char *request_json, const char *special_json, char **out,
                           size_t *len, lt_err *err);

// A model's templates, ready to render requests: `tokenizer` is a folder or tokenizer.json (NULL: built-ins
// only); `name` picks a named template of the config or a built-in (NULL: the config's default). Requests with
// tools use the config's "tool_use" template when it has one, as transformers does.
typedef struct lt_chat_set lt_chat_set;
int lt_chat_set_load(lt_chat_set **out, const char *tokenizer, const char *name, lt_err *err);
void lt_chat_set_free(lt_chat_set *s);
int lt_chat_set_render(const lt_chat_set *s, const char *request_json, char **out, size_t *len, lt_err *err);

// Built-in templates for models without one, as LLaMA-Factory's `template:` names them:
// "alpaca", "chatml", "llama3", "deepseek", "qwen". NULL if unknown.
const char *lt_chat_builtin(const char *name);
// Comma-separated list of built-in names (for error messages).
const char *lt_chat_builtin_names(void);

#endif
