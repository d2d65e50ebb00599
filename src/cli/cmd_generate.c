// lmtune generate --model DIR [--adapter DIR] (--ids 1,2,3 | --prompt TEXT [--chat] [--system TEXT])
//                 [--max-new-tokens N] [sampling options] [--dtype f32|bf16]
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "cli/cli.h"
#include "core/core.h"
#include "tokenizer/tokenizer.h"

#define VERB "generate"

static void usage(FILE *fp) {
  fprintf(fp,
          "usage: lmtune generate --model DIR [--adapter DIR] (--ids 1,2,3 | --prompt TEXT [--chat] [--system TEXT])\n"
          "       [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R]\n"
          "       [--seed S] [--dtype f32|bf16] [--tokenizer PATH] [--template NAME] [--print-ids]\n"
          "temperature 0 (default) is greedy; generation stops after an EOS id from generation_config.json or\n"
          "config.json. With --ids the new ids are printed (space-separated, the EOS included); with --prompt the\n"
          "new text is streamed (special tokens skipped). --chat renders the prompt as a user turn with the chat\n"
          "template (and add_generation_prompt), as transformers' apply_chat_template; --template picks a named or\n"
          "built-in template. The tokenizer is read from the model folder unless --tokenizer is given.\n");
}

typedef struct {
  lt_detok_stream *ds;
  lt_err err;
  int failed;
} stream_ctx;

static int on_token(int32_t id, void *user) {
  stream_ctx *c = user;
  char *text = NULL;
  size_t len = 0;
  if (lt_detok_stream_push(c->ds, id, &text, &len, &c->err)) {
    c->failed = 1;
    return 1;
  }
  if (len) {
    fwrite(text, 1, len, stdout);
    fflush(stdout);
  }
  free(text);
  return 0;
}

// The prompt's ids: plain text with the tokenizer's special tokens (as tokenizer(text)), or a chat turn rendered by
// the template and encoded without adding special tokens again (as apply_chat_template(tokenize=True)).
static int prompt_ids(const lt_tokenizer *tok, const char *tok_path, const char *tmpl, const char *prompt,
                      const char *system, int chat, int32_t **ids, int *n, lt_err *err) {
  if (!chat) return lt_tokenizer_encode(tok, prompt, strlen(prompt), 1, ids, n, err);
  lt_chat_set *cs;
  if (lt_chat_set_load(&cs, tok_path, tmpl, err)) return -1;
  cJSON *req = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(req, "messages");
  if (system) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", system);
    cJSON_AddItemToArray(msgs, m);
  }
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", "user");
  cJSON_AddStringToObject(m, "content", prompt);
  cJSON_AddItemToArray(msgs, m);
  cJSON_AddTrueToObject(req, "add_generation_prompt");
  char *js = cJSON_PrintUnformatted(req), *text = NULL;
  size_t len = 0;
  cJSON_Delete(req);
  int rc = -1;
  if (!js) lt_errf(err, "out of memory");
  else if (lt_chat_set_render(cs, js, &text, &len, err) == 0) rc = lt_tokenizer_encode(tok, text, len, 0, ids, n, err);
  free(js);
  free(text);
  lt_chat_set_free(cs);
  return rc;
}

int lt_cmd_generate(int argc, char **argv) {
  const char *model = NULL, *adapter = NULL, *ids_s = NULL, *prompt = NULL, *chat = NULL, *system = NULL,
             *tok_path = NULL, *tmpl = NULL, *print_ids = NULL, *maxn = "32", *temp = "0", *topk = "0",
             *topp = "1", *rep = "1", *seed = "0", *dtype = "f32", *help = NULL;
  lt_opt opts[] = {{"--model", 1, &model},         {"--adapter", 1, &adapter},
                   {"--ids", 1, &ids_s},           {"--prompt", 1, &prompt},
                   {"--chat", 0, &chat},           {"--system", 1, &system},
                   {"--tokenizer", 1, &tok_path},  {"--template", 1, &tmpl},
                   {"--print-ids", 0, &print_ids}, {"--max-new-tokens", 1, &maxn},
                   {"--temperature", 1, &temp},    {"--top-k", 1, &topk},
                   {"--top-p", 1, &topp},          {"--repetition-penalty", 1, &rep},
                   {"--seed", 1, &seed},           {"--dtype", 1, &dtype},
                   {"--help", 0, &help}};
  if (lt_cli_parse(VERB, argc, argv, opts, (int)(sizeof opts / sizeof opts[0]))) return LT_EXIT_USAGE;
  if (help || !model || (!ids_s == !prompt) || ((chat || system) && !prompt)) {
    usage(help ? stdout : stderr);
    return help ? LT_EXIT_OK : LT_EXIT_USAGE;
  }
  long max_new, k, s;
  double t, p, r;
  lt_compute compute;
  if (lt_cli_parse_int(VERB, "--max-new-tokens", maxn, 0, 1 << 20, &max_new) ||
      lt_cli_parse_float(VERB, "--temperature", temp, 0, 100, &t) ||
      lt_cli_parse_int(VERB, "--top-k", topk, 0, 1 << 30, &k) || lt_cli_parse_float(VERB, "--top-p", topp, 0, 1, &p) ||
      lt_cli_parse_float(VERB, "--repetition-penalty", rep, 0.01, 100, &r) ||
      lt_cli_parse_int(VERB, "--seed", seed, 0, 0x7fffffffL, &s) || lt_cli_parse_compute(VERB, dtype, &compute))
    return LT_EXIT_USAGE;
  int32_t *ids = NULL;
  int n = 0;
  if (ids_s && (n = lt_cli_parse_ids(VERB, ids_s, &ids)) < 0) return LT_EXIT_USAGE;
  lt_err err;
  lt_model *m = NULL;
  lt_tokenizer *tok = NULL;
  stream_ctx sc = {0};
  int32_t *out = malloc(sizeof(int32_t) * (size_t)(max_new + 1));
  int rc = LT_EXIT_FAIL, n_out = 0;
  if (!out) {
    fprintf(stderr, "lmtune %s: out of memory\n", VERB);
    goto done;
  }
  if (!tok_path) tok_path = model;
  if (prompt && (lt_tokenizer_load(&tok, tok_path, &err) ||
                 prompt_ids(tok, tok_path, tmpl, prompt, system, chat != NULL, &ids, &n, &err) ||
                 lt_detok_stream_new(&sc.ds, tok, 1, &err))) {
    lt_cli_fail(VERB, &err);
    goto done;
  }
  if (n == 0) {
    fprintf(stderr, "lmtune %s: the prompt encodes to no tokens\n", VERB);
    goto done;
  }
  lt_sampling smp = {(float)t, (int)k, (float)p, (float)r, (uint64_t)s};
  if (lt_model_load(&m, model, &err) || lt_model_set_compute(m, compute, &err) ||
      (adapter && lt_model_load_adapter(m, adapter, &err)) ||
      lt_generate_cb(m, ids, n, (int)max_new, &smp, sc.ds ? on_token : NULL, &sc, out, &n_out, &err)) {
    lt_cli_fail(VERB, &err);
    goto done;
  }
  if (sc.failed) {
    lt_cli_fail(VERB, &sc.err);
    goto done;
  }
  if (sc.ds) {
    char *tail = NULL;
    size_t len = 0;
    if (lt_detok_stream_flush(sc.ds, &tail, &len, &err)) {
      lt_cli_fail(VERB, &err);
      goto done;
    }
    fwrite(tail, 1, len, stdout);
    free(tail);
    printf("\n");
  }
  if (!prompt || print_ids) {
    for (int i = 0; i < n_out; i++) printf("%s%d", i ? " " : "", out[i]);
    printf("\n");
  }
  rc = LT_EXIT_OK;
done:
  lt_detok_stream_free(sc.ds);
  lt_tokenizer_free(tok);
  free(out);
  free(ids);
  lt_model_free(m);
  return rc;
}
