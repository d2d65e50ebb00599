// Chat templates, public API: compile a template, render it over a JSON context the way transformers'
// apply_chat_template calls jinja2 (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, default Undefined).
#include "chat/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja.h"

struct lt_chat_template {
  jarena ar;
  jnodes body;
};

int lt_chat_compile(lt_chat_template **out, const char *source, lt_err *err) {
  *out = NULL;
  if (!source) {
    if (err) snprintf(err->msg, sizeof err->msg, "no chat template source");
    return -1;
  }
  lt_chat_template *t = calloc(1, sizeof *t);
  if (!t) {
    if (err) snprintf(err->msg, sizeof err->msg, "out of memory compiling a chat template");
    return -1;
  }
  jarena_init(&t->ar, JX_MAX_ARENA);
  jctx *c = calloc(1, sizeof *c);
  if (!c) {
    free(t);
    if (err) snprintf(err->msg, sizeof err->msg, "out of memory compiling a chat template");
    return -1;
  }
  c->ar = &t->ar;
  c->err = err;
  if (setjmp(c->jb)) {
    free(c);
    lt_chat_free(t);
    return -1;
  }
  jtoken *toks;
  size_t ntoks;
  jx_lex(c, source, strlen(source), &toks, &ntoks);
  t->body = jx_parse(c, toks, ntoks);
  free(c);
  *out = t;
  return 0;
}

void lt_chat_free(lt_chat_template *t) {
  if (!t) return;
  jarena_free(&t->ar);
  free(t);
}

// ---------------------------------------------------------------- context preparation
static jv drop_none_keys(jctx *c, jv msg) {
  jv d = jv_dict_new(c, msg.u.d->n);
  for (size_t i = 0; i < msg.u.d->n; i++)
    if (msg.u.d->v[i].t != JV_NONE) jv_dict_set(c, d, msg.u.d->k[i], msg.u.d->v[i]);
  return d;
}

// transformers' _alias_reasoning_fields: {"thinking": r, **message, "reasoning_content": r}.
static jv alias_reasoning(jctx *c, jv msg) {
  static const char *const fields[] = {"reasoning_content", "thinking", "reasoning"};
  jv r = jv_undef();
  for (int i = 0; i < 3; i++) {
    jv v;
    if (jv_dict_gets(msg, fields[i], &v) && v.t != JV_NONE) {
      r = v;
      break;
    }
  }
  if (r.t == JV_UNDEF) return msg;
  jv d = jv_dict_new(c, msg.u.d->n + 2);
  jv_dict_set(c, d, jv_str(c, "thinking"), r);
  for (size_t i = 0; i < msg.u.d->n; i++) jv_dict_set(c, d, msg.u.d->k[i], msg.u.d->v[i]);
  jv_dict_set(c, d, jv_str(c, "reasoning_content"), r);
  return d;
}

static jv normalize_messages(jctx *c, jv msgs) {
  if (msgs.t != JV_LIST) jx_fail(c, 0, 0, "\"messages\" must be a list of message objects");
  if (msgs.u.l->n == 0) jx_fail(c, 0, 0, "Cannot apply chat template to an empty conversation. Provide at least one message.");
  jv out = jv_list_new(c, msgs.u.l->n);
  for (size_t i = 0; i < msgs.u.l->n; i++) {
    jv m = msgs.u.l->v[i];
    if (m.t != JV_DICT) jx_fail(c, 0, 0, "Chat messages should be dicts, but message %zu is a %s", i, jv_type_name(m));
    jv_list_push(c, out, alias_reasoning(c, drop_none_keys(c, m)));
  }
  return out;
}

static jv parse_json_arg(jctx *c, const char *text, const char *what) {
  char msg[256];
  jv v;
  if (jv_from_json(c, text, strlen(text), &v, msg, sizeof msg)) jx_fail(c, 0, 0, "%s: %s", what, msg);
  if (v.t != JV_DICT) jx_fail(c, 0, 0, "%s must be a JSON object", what);
  return v;
}

static void set_defaults(jctx *c, jscope *g) {
  static const char *const keys[] = {"tools", "documents"};
  for (int i = 0; i < 2; i++) {
    jv v;
    int have = 0;
    for (size_t k = 0; k < g->n; k++)
      if (!strcmp(g->k[k], keys[i])) have = 1;
    (void)v;
    if (!have) jx_scope_set(c, g, keys[i], jv_none());
  }
  int have_agp = 0;
  for (size_t k = 0; k < g->n; k++)
    if (!strcmp(g->k[k], "add_generation_prompt")) have_agp = 1;
  if (!have_agp) jx_scope_set(c, g, "add_generation_prompt", jv_bool(0));
}

static void scope_from_dict(jctx *c, jscope *g, jv d) {
  for (size_t i = 0; i < d.u.d->n; i++) {
    jv k = d.u.d->k[i];
    jx_scope_set(c, g, jx_strdup(c, k.u.s.p, k.u.s.n), d.u.d->v[i]);
  }
}

typedef struct render_in {
  const char *context_json;  // lt_chat_render
  const char *request_json;  // lt_chat_render_request
  const char *special_json;
} render_in;

static void build_context(jctx *c, const render_in *in) {
  jscope *g = jx_scope_new(c, NULL);
  if (in->context_json) {
    jv ctx = parse_json_arg(c, in->context_json, "chat context");
    scope_from_dict(c, g, ctx);
    jv m;
    if (jv_dict_gets(ctx, "messages", &m)) jx_scope_set(c, g, "messages", normalize_messages(c, m));
  } else {
    jv req = parse_json_arg(c, in->request_json, "chat request");
    if (in->special_json) scope_from_dict(c, g, parse_json_arg(c, in->special_json, "special tokens"));
    jv v;
    if (jv_dict_gets(req, "template_kwargs", &v) && v.t != JV_NONE) {
      if (v.t != JV_DICT) jx_fail(c, 0, 0, "\"template_kwargs\" must be a JSON object");
      scope_from_dict(c, g, v);
    }
    if (!jv_dict_gets(req, "messages", &v)) jx_fail(c, 0, 0, "chat request has no \"messages\"");
    jx_scope_set(c, g, "messages", normalize_messages(c, v));
    jv tools = jv_none(), docs = jv_none(), agp = jv_bool(0);
    jv_dict_gets(req, "tools", &tools);
    jv_dict_gets(req, "documents", &docs);
    jv_dict_gets(req, "add_generation_prompt", &agp);
    if (tools.t != JV_NONE && tools.t != JV_LIST) jx_fail(c, 0, 0, "\"tools\" must be a list");
    if (docs.t != JV_NONE) {
      if (docs.t != JV_LIST) jx_fail(c, 0, 0, "\"documents\" must be a list");
      for (size_t i = 0; i < docs.u.l->n; i++)
        if (docs.u.l->v[i].t != JV_DICT) jx_fail(c, 0, 0, "Documents should be a list of dicts with 'title' and 'text' keys!");
    }
    jv cfm;
    if (jv_dict_gets(req, "continue_final_message", &cfm) && jv_truthy(cfm))
      jx_fail(c, 0, 0, "continue_final_message is not supported");
    jx_scope_set(c, g, "tools", tools);
    jx_scope_set(c, g, "documents", docs);
    jx_scope_set(c, g, "add_generation_prompt", agp);
  }
  set_defaults(c, g);
  c->globals = g;
  c->scope = g;
}

static int render(const lt_chat_template *t, const render_in *in, char **out, size_t *len, lt_err *err) {
  *out = NULL;
  if (len) *len = 0;
  if (!t) {
    if (err) snprintf(err->msg, sizeof err->msg, "no chat template");
    return -1;
  }
  // The state lives on the heap: nothing the evaluation changes is a local of this frame (setjmp rules).
  struct { jctx c; jarena ar; } *st = calloc(1, sizeof *st);
  if (!st) {
    if (err) snprintf(err->msg, sizeof err->msg, "out of memory rendering a chat template");
    return -1;
  }
  jctx *c = &st->c;
  jarena_init(&st->ar, JX_MAX_ARENA);
  c->ar = &st->ar;
  c->err = err;
  if (setjmp(c->jb)) {
    jarena_free(&st->ar);
    free(st);
    return -1;
  }
  build_context(c, in);
  jbuf buf = {0};
  c->out = &buf;
  jx_exec_body(c, t->body);
  char *res = malloc(buf.n + 1);
  if (!res) {
    jarena_free(&st->ar);
    free(st);
    if (err) snprintf(err->msg, sizeof err->msg, "out of memory copying %zu rendered bytes", buf.n);
    return -1;
  }
  if (buf.n) memcpy(res, buf.p, buf.n);
  res[buf.n] = 0;
  *out = res;
  if (len) *len = buf.n;
  jarena_free(&st->ar);
  free(st);
  return 0;
}

int lt_chat_render(const lt_chat_template *t, const char *context_json, char **out, size_t *len, lt_err *err) {
  render_in in = {context_json ? context_json : "{}", NULL, NULL};
  return render(t, &in, out, len, err);
}

int lt_chat_render_request(const lt_chat_template *t, const char *request_json, const char *special_json, char **out,
                           size_t *len, lt_err *err) {
  if (!request_json) {
    *out = NULL;
    if (err) snprintf(err->msg, sizeof err->msg, "no chat request");
    return -1;
  }
  render_in in = {NULL, request_json, special_json};
  return render(t, &in, out, len, err);
}
