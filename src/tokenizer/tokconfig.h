// tokenizer_config.json: special-token strings, add_bos/add_eos, model_max_length, chat templates.
#ifndef LT_TOKCONFIG_H
#define LT_TOKCONFIG_H
#include "lmtune.h"

#define LT_MAX_TEMPLATES 8

typedef struct lt_tokconfig {
  // Special-token strings (NULL when absent). Values may be written as "..." or {"content": "...", ...}.
  char *bos_token, *eos_token, *pad_token, *unk_token;
  int add_bos_token;   // -1 absent, else 0/1
  int add_eos_token;   // -1 absent, else 0/1
  char *tokenizer_class;  // e.g. "LlamaTokenizerFast", "PreTrainedTokenizerFast" (NULL when absent)
  double model_max_length;  // 0 when absent (huge values kept as given)
  int n_templates;        // chat_template: a string (one template named "default") or a list of {name, template}
  char *template_name[LT_MAX_TEMPLATES];
  char *template_src[LT_MAX_TEMPLATES];
  // The other named special tokens transformers passes to chat templates (special_tokens_map); NULL when absent.
  char *sep_token, *cls_token, *mask_token;
} lt_tokconfig;

// Read DIR/tokenizer_config.json (a missing file is not an error: all fields absent). If `path` names a
// tokenizer.json file, its folder is used. Templates as transformers loads them: the config's chat_template,
// replaced by a sibling chat_template.jinja ("default") plus additional_chat_templates/NAME.jinja when present;
// a legacy chat_template.json ({"chat_template": ...}) is used only when nothing else gives a template.
int lt_tokconfig_load(lt_tokconfig *c, const char *path, lt_err *err);
void lt_tokconfig_free(lt_tokconfig *c);
// The template to use: by name, or "default", or the only one. NULL if none.
const char *lt_tokconfig_template(const lt_tokconfig *c, const char *name);

#endif
