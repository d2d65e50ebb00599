// A model's chat templates ready to render: the chosen (or default) template, the config's "tool_use" template
// (transformers picks it when a request has tools) and the tokenizer's named special tokens.
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "core/core.h"
#include "tokenizer/tokconfig.h"

struct lt_chat_set {
  lt_chat_template *main;
  lt_chat_template *tool_use;
  char *special_json;
};

static char *special_tokens_json(const lt_tokconfig *tc) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  const char *names[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
  const char *vals[] = {tc->bos_token, tc->eos_token, tc->unk_token, tc->sep_token, tc->pad_token, tc->cls_token,
                        tc->mask_token};
  for (int i = 0; i < 7; i++)
    if (vals[i] && !cJSON_AddStringToObject(o, names[i], vals[i])) {
      cJSON_Delete(o);
      return NULL;
    }
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

void lt_chat_set_free(lt_chat_set *s) {
  if (!s) return;
  lt_chat_free(s->main);
  lt_chat_free(s->tool_use);
  free(s->special_json);
  free(s);
}

int lt_chat_set_load(lt_chat_set **out, const char *tokenizer, const char *name, lt_err *err) {
  *out = NULL;
  lt_tokconfig tc;
  memset(&tc, 0, sizeof tc);
  if (tokenizer && lt_tokconfig_load(&tc, tokenizer, err)) return -1;
  lt_chat_set *s = calloc(1, sizeof *s);
  if (!s) {
    lt_tokconfig_free(&tc);
    return lt_errf(err, "out of memory");
  }
  const char *src = NULL, *what;
  int rc = -1;
  if (name) {
    src = lt_tokconfig_template(&tc, name);
    what = "the config's named template";
    if (!src) {
      src = lt_chat_builtin(name);
      what = "the built-in template";
    }
    if (!src) {
      char names[512] = "";
      for (int i = 0; i < tc.n_templates; i++) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, " %s", tc.template_name[i]);
      }
      lt_errf(err, "no template named \"%s\" (config templates:%s; built-ins: %s)", name,
              tc.n_templates ? names : " none", lt_chat_builtin_names());
      goto done;
    }
  } else {
    src = lt_tokconfig_template(&tc, NULL);
    what = "the tokenizer's chat template";
    if (!src) {
      lt_errf(err, "%s has no chat template (tokenizer_config.json chat_template / chat_template.jinja); pass a "
              "template name (built-ins: %s)", tokenizer ? tokenizer : "no tokenizer given:", lt_chat_builtin_names());
      goto done;
    }
    const char *tool = lt_tokconfig_template(&tc, "tool_use");
    if (tool && tool != src && lt_chat_compile(&s->tool_use, tool, err)) {
      lt_err_prefix(err, "tool_use template");
      goto done;
    }
  }
  if (lt_chat_compile(&s->main, src, err)) {
    lt_err_prefix(err, "%s", what);
    goto done;
  }
  s->special_json = special_tokens_json(&tc);
  if (!s->special_json) {
    lt_errf(err, "out of memory");
    goto done;
  }
  rc = 0;
done:
  lt_tokconfig_free(&tc);
  if (rc) lt_chat_set_free(s);
  else *out = s;
  return rc;
}

int lt_chat_set_render(const lt_chat_set *s, const char *request_json, char **out, size_t *len, lt_err *err) {
  const lt_chat_template *t = s->main;
  if (s->tool_use) {
    cJSON *o = cJSON_Parse(request_json);
    const cJSON *tools = o ? cJSON_GetObjectItemCaseSensitive(o, "tools") : NULL;
    if (tools && !cJSON_IsNull(tools)) t = s->tool_use;
    cJSON_Delete(o);
  }
  return lt_chat_render_request(t, request_json, s->special_json, out, len, err);
}
