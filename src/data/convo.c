// Dataset readers -> conversations (see convo.h). Conversion rules follow LLaMA-Factory's converters: Alpaca joins
// the non-empty instruction and input with "\n" and turns history pairs into earlier turns; ShareGPT/OpenAI take a
// leading system message as the system prompt, require user/observation turns at odd positions and
// assistant/function turns at even ones, and an even number of turns (odd for preference data).
#include "data/convo.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/core.h"

static const char *const role_names[] = {"system", "user", "assistant", "function", "observation"};
const char *lt_role_name(lt_role r) { return r >= 0 && r <= LT_ROLE_OBSERVATION ? role_names[r] : "?"; }

static const char *or_default(const char *v, const char *d) { return v ? v : d; }

static char *dup_str(const char *s) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}

static void convo_clear(lt_convo *c) {
  free(c->system);
  free(c->tools);
  free(c->text);
  for (int k = 0; k < c->n_prompt; k++) free(c->prompt[k].content);
  for (int k = 0; k < c->n_response; k++) free(c->response[k].content);
  free(c->prompt);
  free(c->response);
  memset(c, 0, sizeof *c);
}

void lt_convos_free(lt_convo *c, int n) {
  if (!c) return;
  for (int i = 0; i < n; i++) convo_clear(&c[i]);
  free(c);
}

// ---- building one conversation ----
typedef struct {
  lt_convo *c;
  int cap;
  const char *path;
  lt_err *err;
} builder;

static int fail(builder *b, const char *fmt, const char *a, const char *b2) {
  char msg[600];
  snprintf(msg, sizeof msg, fmt, a ? a : "", b2 ? b2 : "");
  return lt_errf(b->err, "%s: %s: %s", b->path, b->c->origin, msg);
}

static int push(builder *b, lt_role role, const char *content) {
  if (b->c->n_prompt == b->cap) {
    int cap = b->cap ? 2 * b->cap : 8;
    lt_msg *p = realloc(b->c->prompt, sizeof *p * (size_t)cap);
    if (!p) return lt_errf(b->err, "out of memory");
    b->c->prompt = p;
    b->cap = cap;
  }
  char *d = dup_str(content);
  if (!d) return lt_errf(b->err, "out of memory");
  b->c->prompt[b->c->n_prompt++] = (lt_msg){role, d};
  return 0;
}

// Move the last `k` prompt messages into the response.
static int split_response(builder *b, int k) {
  lt_convo *c = b->c;
  c->response = malloc(sizeof(lt_msg) * (size_t)(k ? k : 1));
  if (!c->response) return lt_errf(b->err, "out of memory");
  memcpy(c->response, c->prompt + c->n_prompt - k, sizeof(lt_msg) * (size_t)k);
  c->n_prompt -= k;
  c->n_response = k;
  return 0;
}

// content: a string, or a list of {"type": "text", "text": ...} parts (texts concatenated)
static int content_text(builder *b, const cJSON *v, const char *field, char **out) {
  if (cJSON_IsString(v)) {
    *out = dup_str(v->valuestring);
    return *out ? 0 : lt_errf(b->err, "out of memory");
  }
  if (cJSON_IsArray(v)) {
    size_t len = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, v) {
      const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
      if (!cJSON_IsString(t)) return fail(b, "%s: a content part without a \"text\" string", field, NULL);
      len += strlen(t->valuestring);
    }
    char *s = malloc(len + 1);
    if (!s) return lt_errf(b->err, "out of memory");
    s[0] = 0;
    cJSON_ArrayForEach(p, v) strcat(s, cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring);
    *out = s;
    return 0;
  }
  return fail(b, "field \"%s\" must be a string%s", field, v ? "" : " (it is missing)");
}

static int set_str(builder *b, char **dst, const cJSON *rec, const char *col) {
  const cJSON *v = col ? cJSON_GetObjectItemCaseSensitive(rec, col) : NULL;
  if (v && !cJSON_IsNull(v)) {
    if (cJSON_IsString(v)) {
      *dst = dup_str(v->valuestring);
    } else {  // tools given as JSON: kept as JSON text
      *dst = cJSON_PrintUnformatted(v);
    }
  } else {
    *dst = dup_str("");
  }
  return *dst ? 0 : lt_errf(b->err, "out of memory");
}

static int from_alpaca(builder *b, const cJSON *rec, const lt_data_format *f) {
  const char *pc = or_default(f->prompt, "instruction"), *qc = or_default(f->query, "input"),
             *rc = or_default(f->response, "output"), *hc = or_default(f->history, "history");
  const cJSON *h = cJSON_GetObjectItemCaseSensitive(rec, hc);
  if (h && !cJSON_IsNull(h)) {
    if (!cJSON_IsArray(h)) return fail(b, "field \"%s\" must be a list of [instruction, response] pairs", hc, NULL);
    const cJSON *pair;
    int i = 0;
    cJSON_ArrayForEach(pair, h) {
      char field[64];
      snprintf(field, sizeof field, "%s[%d]", hc, i++);
      if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !cJSON_IsString(cJSON_GetArrayItem(pair, 0)) ||
          !cJSON_IsString(cJSON_GetArrayItem(pair, 1)))
        return fail(b, "%s must be a pair of strings [instruction, response]", field, NULL);
      if (push(b, LT_ROLE_USER, cJSON_GetArrayItem(pair, 0)->valuestring) ||
          push(b, LT_ROLE_ASSISTANT, cJSON_GetArrayItem(pair, 1)->valuestring))
        return -1;
    }
  }
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(rec, pc), *q = cJSON_GetObjectItemCaseSensitive(rec, qc);
  if (p && !cJSON_IsNull(p) && !cJSON_IsString(p)) return fail(b, "field \"%s\" must be a string", pc, NULL);
  if (q && !cJSON_IsNull(q) && !cJSON_IsString(q)) return fail(b, "field \"%s\" must be a string", qc, NULL);
  const char *ps = cJSON_IsString(p) ? p->valuestring : "", *qs = cJSON_IsString(q) ? q->valuestring : "";
  if (!*ps && !*qs) return fail(b, "fields \"%s\" and \"%s\" are both missing or empty", pc, qc);
  size_t n = strlen(ps) + strlen(qs) + 2;
  char *user = malloc(n);
  if (!user) return lt_errf(b->err, "out of memory");
  snprintf(user, n, "%s%s%s", ps, (*ps && *qs) ? "\n" : "", qs);
  int rc2 = push(b, LT_ROLE_USER, user);
  free(user);
  if (rc2) return -1;
  if (f->ranking) {
    const char *cc = or_default(f->chosen, "chosen"), *jc = or_default(f->rejected, "rejected");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(rec, cc), *rj = cJSON_GetObjectItemCaseSensitive(rec, jc);
    if (!cJSON_IsString(ch)) return fail(b, "field \"%s\" must be a string%s", cc, ch ? "" : " (it is missing)");
    if (!cJSON_IsString(rj)) return fail(b, "field \"%s\" must be a string%s", jc, rj ? "" : " (it is missing)");
    if (push(b, LT_ROLE_ASSISTANT, ch->valuestring) || push(b, LT_ROLE_ASSISTANT, rj->valuestring)) return -1;
    return split_response(b, 2);
  }
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(rec, rc);
  char *resp;
  if (content_text(b, r, rc, &resp)) return -1;
  rc2 = push(b, LT_ROLE_ASSISTANT, resp);
  free(resp);
  return rc2 ? -1 : split_response(b, 1);
}

static int role_of(const lt_data_format *f, int openai, const char *tag, lt_role *out) {
  const char *user = or_default(f->user_tag, openai ? "user" : "human"),
             *asst = or_default(f->assistant_tag, openai ? "assistant" : "gpt"),
             *obs = or_default(f->observation_tag, openai ? "tool" : "observation"),
             *fn = or_default(f->function_tag, openai ? "function" : "function_call"),
             *sys = or_default(f->system_tag, "system");
  if (!strcmp(tag, user)) *out = LT_ROLE_USER;
  else if (!strcmp(tag, asst)) *out = LT_ROLE_ASSISTANT;
  else if (!strcmp(tag, obs)) *out = LT_ROLE_OBSERVATION;
  else if (!strcmp(tag, fn)) *out = LT_ROLE_FUNCTION;
  else if (!strcmp(tag, sys)) *out = LT_ROLE_SYSTEM;
  else return -1;
  return 0;
}

static int from_messages(builder *b, const cJSON *rec, const lt_data_format *f, int openai) {
  const char *mc = or_default(f->messages, openai ? "messages" : "conversations"),
             *rt = or_default(f->role_tag, openai ? "role" : "from"),
             *ct = or_default(f->content_tag, openai ? "content" : "value");
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(rec, mc);
  if (!cJSON_IsArray(msgs)) return fail(b, "field \"%s\" must be a list of messages%s", mc, msgs ? "" : " (it is missing)");
  int i = 0, turn = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, msgs) {
    char field[96];
    snprintf(field, sizeof field, "%s[%d]", mc, i);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, rt);
    if (!cJSON_IsString(r)) return fail(b, "%s: field \"%s\" must be a string", field, rt);
    lt_role role;
    if (role_of(f, openai, r->valuestring, &role)) return fail(b, "%s: unknown role \"%s\"", field, r->valuestring);
    char *content = NULL;
    const cJSON *tc = openai ? cJSON_GetObjectItemCaseSensitive(m, "tool_calls") : NULL;
    if (role == LT_ROLE_ASSISTANT && cJSON_IsArray(tc) && cJSON_GetArraySize(tc) > 0) {
      cJSON *fns = cJSON_CreateArray();
      const cJSON *t;
      cJSON_ArrayForEach(t, tc) cJSON_AddItemToArray(fns, cJSON_Duplicate(cJSON_GetObjectItem(t, "function"), 1));
      content = cJSON_PrintUnformatted(fns);
      cJSON_Delete(fns);
      role = LT_ROLE_FUNCTION;
      if (!content) return lt_errf(b->err, "out of memory");
    } else {
      char cfield[128];
      snprintf(cfield, sizeof cfield, "%s.%s", field, ct);
      if (content_text(b, cJSON_GetObjectItemCaseSensitive(m, ct), cfield, &content)) return -1;
    }
    i++;
    if (role == LT_ROLE_SYSTEM) {
      if (i != 1) {
        free(content);
        return fail(b, "%s: a system message is only allowed first", field, NULL);
      }
      free(b->c->system);
      b->c->system = content;
      continue;
    }
    // consecutive tool results become one observation turn, as LLaMA-Factory joins them
    if (openai && role == LT_ROLE_OBSERVATION && b->c->n_prompt > 0 &&
        b->c->prompt[b->c->n_prompt - 1].role == LT_ROLE_OBSERVATION) {
      lt_msg *last = &b->c->prompt[b->c->n_prompt - 1];
      const char *sep = "\n</tool_response>\n<tool_response>\n";
      char *joined = malloc(strlen(last->content) + strlen(sep) + strlen(content) + 1);
      if (!joined) {
        free(content);
        return lt_errf(b->err, "out of memory");
      }
      sprintf(joined, "%s%s%s", last->content, sep, content);
      free(last->content);
      free(content);
      last->content = joined;
      continue;
    }
    int odd = turn % 2 == 0;  // first, third, ... turn: user or observation
    if (odd != (role == LT_ROLE_USER || role == LT_ROLE_OBSERVATION)) {
      free(content);
      return fail(b, "%s: turn out of order: expected %s", field,
                  odd ? "a user (or observation) turn" : "an assistant (or function) turn");
    }
    turn++;
    int rc = push(b, role, content);
    free(content);
    if (rc) return -1;
  }
  if (f->ranking) {
    if (b->c->n_prompt % 2 != 1)
      return fail(b, "field \"%s\": preference data needs a conversation ending with a user turn", mc, NULL);
    const char *cc = or_default(f->chosen, "chosen"), *jc = or_default(f->rejected, "rejected");
    const char *cols[2] = {cc, jc};
    for (int k = 0; k < 2; k++) {
      const cJSON *x = cJSON_GetObjectItemCaseSensitive(rec, cols[k]);
      char *content;
      char cf[96];
      snprintf(cf, sizeof cf, "%s.%s", cols[k], ct);
      if (!cJSON_IsObject(x)) return fail(b, "field \"%s\" must be a message object%s", cols[k], x ? "" : " (it is missing)");
      if (content_text(b, cJSON_GetObjectItemCaseSensitive(x, ct), cf, &content)) return -1;
      int rc = push(b, LT_ROLE_ASSISTANT, content);
      free(content);
      if (rc) return -1;
    }
    return split_response(b, 2);
  }
  if (b->c->n_prompt == 0 || b->c->n_prompt % 2 != 0)
    return fail(b, "field \"%s\": the conversation must end with an assistant turn (it has %s turns)", mc,
                b->c->n_prompt == 0 ? "no" : "an odd number of");
  return split_response(b, 1);
}

static lt_formatting detect(const cJSON *rec, const lt_data_format *f) {
  if (f->formatting != LT_FMT_AUTO) return f->formatting;
  if (cJSON_GetObjectItemCaseSensitive(rec, or_default(f->messages, "conversations"))) return LT_FMT_SHAREGPT;
  if (cJSON_GetObjectItemCaseSensitive(rec, "messages")) return LT_FMT_OPENAI;
  if (cJSON_GetObjectItemCaseSensitive(rec, or_default(f->prompt, "instruction"))) return LT_FMT_ALPACA;
  if (cJSON_GetObjectItemCaseSensitive(rec, or_default(f->text, "text"))) return LT_FMT_TEXT;
  return LT_FMT_AUTO;
}

static int convert(builder *b, const cJSON *rec, const lt_data_format *f, lt_formatting *fmt) {
  if (!cJSON_IsObject(rec)) return fail(b, "a record must be a JSON object", NULL, NULL);
  if (*fmt == LT_FMT_AUTO) *fmt = detect(rec, f);
  if (*fmt == LT_FMT_AUTO)
    return fail(b, "cannot tell the format: no \"instruction\", \"conversations\", \"messages\" or \"text\" field",
                NULL, NULL);
  if (*fmt == LT_FMT_TEXT) {
    const char *tc = or_default(f->text, "text");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, tc);
    if (!cJSON_IsString(t)) return fail(b, "field \"%s\" must be a string%s", tc, t ? "" : " (it is missing)");
    b->c->text = dup_str(t->valuestring);
    return b->c->text ? 0 : lt_errf(b->err, "out of memory");
  }
  if (set_str(b, &b->c->system, rec, or_default(f->system, "system")) ||
      set_str(b, &b->c->tools, rec, or_default(f->tools, "tools")))
    return -1;
  if (*fmt == LT_FMT_ALPACA) return from_alpaca(b, rec, f);
  return from_messages(b, rec, f, *fmt == LT_FMT_OPENAI);
}

// ---- files ----
// First invalid UTF-8 byte offset, or -1.
static long bad_utf8(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
    if (k <= 0) return (long)i;
    i += (size_t)k;
  }
  return -1;
}

static int line_of(const char *s, size_t off) {
  int line = 1;
  for (size_t i = 0; i < off; i++) line += s[i] == '\n';
  return line;
}

// Skip one JSON value starting at s[i] (strings and nesting only; cJSON validates it afterwards).
static size_t skip_value(const char *s, size_t n, size_t i) {
  int depth = 0;
  for (; i < n; i++) {
    char c = s[i];
    if (c == '"') {
      for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
      if (depth == 0) return i + 1;
    } else if (c == '{' || c == '[') {
      depth++;
    } else if (c == '}' || c == ']') {
      if (--depth <= 0) return i + 1;
    } else if (depth == 0 && (c == ',' || c == '\n' || c == ' ' || c == '\t' || c == '\r')) {
      return i;
    }
  }
  return n;
}

typedef struct {
  lt_convo *v;
  int n, cap, skipped;
} convo_list;

static int add_record(convo_list *L, const char *path, const cJSON *rec, const char *origin, const lt_data_format *f,
                      lt_formatting *fmt, int skip_bad, lt_err *err, lt_err *first_warning) {
  if (L->n == L->cap) {
    int cap = L->cap ? 2 * L->cap : 64;
    lt_convo *v = realloc(L->v, sizeof *v * (size_t)cap);
    if (!v) return lt_errf(err, "out of memory");
    L->v = v;
    L->cap = cap;
  }
  lt_convo *c = &L->v[L->n];
  memset(c, 0, sizeof *c);
  snprintf(c->origin, sizeof c->origin, "%s", origin);
  builder b = {c, 0, path, err};
  if (convert(&b, rec, f, fmt) == 0) {
    L->n++;
    return 0;
  }
  convo_clear(c);  // the partial record
  if (!skip_bad) return -1;
  if (L->skipped++ == 0) *first_warning = *err;
  return 0;
}

int lt_data_read_convos(const char *path, const lt_data_format *f, int skip_bad, lt_convo **out, int *n,
                        int *n_skipped, lt_err *err) {
  *out = NULL;
  *n = 0;
  if (n_skipped) *n_skipped = 0;
  char *text;
  size_t len;
  if (lt_read_file(path, &text, &len, err)) return -1;
  long bad = bad_utf8(text, len);
  if (bad >= 0) {
    lt_errf(err, "%s: line %d: byte 0x%02x at offset %ld is not valid UTF-8; re-encode the file as UTF-8", path,
            line_of(text, (size_t)bad), (unsigned char)text[bad], bad);
    free(text);
    return -1;
  }
  convo_list L = {0};
  lt_formatting fmt = LT_FMT_AUTO;
  lt_err warning = {{0}};
  int rc = -1;
  size_t i = 0;
  while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) i++;
  if (i == len) {
    lt_errf(err, "%s: the file is empty", path);
    goto done;
  }
  if (text[i] == '[') {  // a JSON array of records
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
      size_t off = end ? (size_t)(end - text) : 0;
      lt_errf(err, "%s: line %d: invalid JSON", path, line_of(text, off));
      goto done;
    }
    size_t pos = i + 1;
    int idx = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, root) {
      while (pos < len && strchr(" \t\r\n,", text[pos])) pos++;
      char origin[96];
      snprintf(origin, sizeof origin, "record %d (line %d)", idx++, line_of(text, pos));
      pos = skip_value(text, len, pos);
      if (add_record(&L, path, rec, origin, f, &fmt, skip_bad, err, &warning)) {
        cJSON_Delete(root);
        goto done;
      }
    }
    cJSON_Delete(root);
  } else {  // JSON Lines
    int line = 0;
    while (i < len || line == 0) {
      size_t s = i;
      while (i < len && text[i] != '\n') i++;
      line = line_of(text, s);
      size_t e = i;
      if (i < len) i++;
      while (s < e && strchr(" \t\r", text[s])) s++;
      if (s == e) {
        if (i >= len) break;
        continue;
      }
      char origin[96];
      snprintf(origin, sizeof origin, "line %d", line);
      const char *pend = NULL;
      cJSON *rec = cJSON_ParseWithLengthOpts(text + s, e - s, &pend, 0);
      if (!rec) {
        lt_errf(err, "%s: line %d: invalid JSON at column %ld", path, line,
                (long)(pend ? pend - (text + s) : 0) + 1);
        if (!skip_bad) goto done;
        if (L.skipped++ == 0) warning = *err;
        if (i >= len) break;
        continue;
      }
      int r = add_record(&L, path, rec, origin, f, &fmt, skip_bad, err, &warning);
      cJSON_Delete(rec);
      if (r) goto done;
      if (i >= len) break;
    }
  }
  if (L.n == 0) {
    if (L.skipped) *err = warning;
    else lt_errf(err, "%s: no records", path);
    goto done;
  }
  if (n_skipped) *n_skipped = L.skipped;
  if (L.skipped) *err = warning;
  *out = L.v;
  *n = L.n;
  L.v = NULL;
  rc = 0;
done:
  lt_convos_free(L.v, L.n);
  free(text);
  return rc;
}

// ---- dataset_info.json ----
struct lt_data_info {
  cJSON *root;
};

void lt_data_info_free(lt_data_info *k) {
  if (!k) return;
  cJSON_Delete(k->root);
  free(k);
}

static const char *obj_str(const cJSON *o, const char *k) {
  const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

int lt_data_info_load(const char *info_path, const char *name, lt_data_format *f, char *file, size_t file_cap,
                      lt_data_info **keep, lt_err *err) {
  *keep = NULL;
  memset(f, 0, sizeof *f);
  char *text;
  size_t len;
  if (lt_read_file(info_path, &text, &len, err)) return -1;
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return lt_errf(err, "%s: invalid JSON", info_path);
  }
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, name);
  if (!cJSON_IsObject(e)) {
    cJSON_Delete(root);
    return lt_errf(err, "%s: no dataset named \"%s\"", info_path, name);
  }
  const char *fn = obj_str(e, "file_name");
  if (!fn) {
    cJSON_Delete(root);
    return lt_errf(err, "%s: dataset \"%s\" has no \"file_name\" (hub datasets are not reachable here)", info_path,
                   name);
  }
  const char *slash = strrchr(info_path, '/');
  int dl = slash ? (int)(slash - info_path) : 1;
  if (snprintf(file, file_cap, "%.*s/%s", dl, slash ? info_path : ".", fn) >= (int)file_cap) {
    cJSON_Delete(root);
    return lt_errf(err, "%s: path too long", info_path);
  }
  const char *fm = obj_str(e, "formatting");
  f->formatting = !fm ? LT_FMT_ALPACA : !strcmp(fm, "alpaca") ? LT_FMT_ALPACA : !strcmp(fm, "sharegpt") ? LT_FMT_SHAREGPT
                : !strcmp(fm, "openai") ? LT_FMT_OPENAI : LT_FMT_AUTO;
  if (fm && f->formatting == LT_FMT_AUTO) {
    lt_errf(err, "%s: dataset \"%s\": formatting \"%s\" is not supported (alpaca, sharegpt, openai)", info_path, name,
            fm);
    cJSON_Delete(root);
    return -1;
  }
  f->ranking = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "ranking"));
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "columns"), *t = cJSON_GetObjectItemCaseSensitive(e, "tags");
  f->prompt = obj_str(c, "prompt");
  f->query = obj_str(c, "query");
  f->response = obj_str(c, "response");
  f->history = obj_str(c, "history");
  f->messages = obj_str(c, "messages");
  f->system = obj_str(c, "system");
  f->tools = obj_str(c, "tools");
  f->chosen = obj_str(c, "chosen");
  f->rejected = obj_str(c, "rejected");
  f->role_tag = obj_str(t, "role_tag");
  f->content_tag = obj_str(t, "content_tag");
  f->user_tag = obj_str(t, "user_tag");
  f->assistant_tag = obj_str(t, "assistant_tag");
  f->observation_tag = obj_str(t, "observation_tag");
  f->function_tag = obj_str(t, "function_tag");
  f->system_tag = obj_str(t, "system_tag");
  lt_data_info *k = malloc(sizeof *k);
  if (!k) {
    cJSON_Delete(root);
    return lt_errf(err, "out of memory");
  }
  k->root = root;
  *keep = k;
  return 0;
}
