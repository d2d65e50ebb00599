// lmtune chat-template --tokenizer PATH (--jsonl | --messages FILE.json [--add-generation-prompt]) [--template NAME]
// Renders conversations with the tokenizer's chat template as transformers' apply_chat_template(tokenize=False).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "cli/cli.h"
#include "core/core.h"

#define VERB "chat-template"

static void usage(FILE *fp) {
  fprintf(fp,
          "usage: lmtune chat-template --tokenizer PATH --jsonl [--template NAME]\n"
          "       lmtune chat-template --tokenizer PATH --messages FILE.json [--add-generation-prompt] [--template NAME]\n"
          "renders conversations as transformers' tokenizer.apply_chat_template(..., tokenize=False)\n"
          "  --tokenizer PATH   folder (or its tokenizer.json) with tokenizer_config.json / chat_template.jinja\n"
          "  --jsonl            stdin lines {\"messages\": [...], \"add_generation_prompt\": bool,\n"
          "                     \"template_kwargs\": {...}, \"tools\": [...], \"documents\": [...]}; each stdout line is\n"
          "                     the rendered text as a JSON string\n"
          "  --messages FILE    a JSON list of messages (or an object like a JSONL line); prints the raw text\n"
          "  --template NAME    a named template of the config, or a built-in: %s\n",
          lt_chat_builtin_names());
}

static int run_jsonl(const lt_chat_set *ts) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long lineno = 0;
  int rc = LT_EXIT_OK;
  while ((n = getline(&line, &cap, stdin)) >= 0) {
    lineno++;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    size_t k = 0;
    while (line[k] == ' ' || line[k] == '\t') k++;
    if (!line[k]) continue;
    char *text = NULL;
    size_t len = 0;
    lt_err err;
    if (lt_chat_set_render(ts, line, &text, &len, &err)) {
      fprintf(stderr, "lmtune %s: line %ld: %s\n", VERB, lineno, err.msg);
      rc = LT_EXIT_FAIL;
      break;
    }
    if (memchr(text, 0, len)) {
      fprintf(stderr, "lmtune %s: line %ld: rendered text contains a NUL character\n", VERB, lineno);
      free(text);
      rc = LT_EXIT_FAIL;
      break;
    }
    cJSON *s = cJSON_CreateString(text);
    char *js = s ? cJSON_PrintUnformatted(s) : NULL;
    cJSON_Delete(s);
    free(text);
    if (!js) {
      fprintf(stderr, "lmtune %s: out of memory\n", VERB);
      rc = LT_EXIT_FAIL;
      break;
    }
    fputs(js, stdout);
    fputc('\n', stdout);
    free(js);
    if (fflush(stdout) != 0) {
      rc = LT_EXIT_FAIL;
      break;
    }
  }
  free(line);
  return rc;
}

static int run_messages(const lt_chat_set *ts, const char *file, int agp) {
  char *data;
  size_t len;
  lt_err err;
  if (lt_read_file(file, &data, &len, &err)) return lt_cli_fail(VERB, &err), LT_EXIT_FAIL;
  cJSON *o = cJSON_ParseWithLength(data, len);
  int is_list = cJSON_IsArray(o), is_obj = cJSON_IsObject(o);
  int has_agp = is_obj && cJSON_GetObjectItemCaseSensitive(o, "add_generation_prompt") != NULL;
  cJSON_Delete(o);
  if (!is_list && !is_obj) {
    fprintf(stderr, "lmtune %s: %s: expected a JSON list of messages or an object with \"messages\"\n", VERB, file);
    free(data);
    return LT_EXIT_FAIL;
  }
  if (is_obj && has_agp && agp) {
    fprintf(stderr, "lmtune %s: %s sets add_generation_prompt; do not also pass --add-generation-prompt\n", VERB, file);
    free(data);
    return LT_EXIT_USAGE;
  }
  // Splice the text (not re-serialized, so numbers keep their int/float spelling).
  const char *agp_s = agp ? "true" : "false";
  size_t cap = len + 128;
  char *req = malloc(cap);
  if (!req) {
    free(data);
    fprintf(stderr, "lmtune %s: out of memory\n", VERB);
    return LT_EXIT_FAIL;
  }
  if (is_list) {
    snprintf(req, cap, "{\"add_generation_prompt\": %s, \"messages\": %s}", agp_s, data);
  } else if (agp) {
    char *brace = strchr(data, '{');
    snprintf(req, cap, "{\"add_generation_prompt\": true, %s", brace + 1);
  } else {
    snprintf(req, cap, "%s", data);
  }
  free(data);
  char *text = NULL;
  size_t tl = 0;
  int rc = LT_EXIT_OK;
  if (lt_chat_set_render(ts, req, &text, &tl, &err)) {
    lt_cli_fail(VERB, &err);
    rc = LT_EXIT_FAIL;
  } else if (fwrite(text, 1, tl, stdout) != tl || fflush(stdout) != 0) {
    rc = LT_EXIT_FAIL;
  }
  free(text);
  free(req);
  return rc;
}

int lt_cmd_chat_template(int argc, char **argv) {
  const char *tokenizer = NULL, *jsonl = NULL, *messages = NULL, *agp = NULL, *name = NULL, *help = NULL;
  lt_opt opts[] = {{"--tokenizer", 1, &tokenizer}, {"--jsonl", 0, &jsonl},
                   {"--messages", 1, &messages},   {"--add-generation-prompt", 0, &agp},
                   {"--template", 1, &name},       {"--help", 0, &help}};
  if (lt_cli_parse(VERB, argc, argv, opts, 6)) return LT_EXIT_USAGE;
  if (help) {
    usage(stdout);
    return LT_EXIT_OK;
  }
  if ((!jsonl && !messages) || (jsonl && messages) || (!tokenizer && !name) || (jsonl && agp)) {
    usage(stderr);
    return LT_EXIT_USAGE;
  }
  lt_chat_set *ts;
  lt_err err;
  if (lt_chat_set_load(&ts, tokenizer, name, &err)) return lt_cli_fail(VERB, &err);
  int rc = jsonl ? run_jsonl(ts) : run_messages(ts, messages, agp != NULL);
  lt_chat_set_free(ts);
  return rc;
}
