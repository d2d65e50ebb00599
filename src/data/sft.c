// SFT examples from conversations (see sft.h).
#include "data/sft.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static const char *hf_role(lt_role r) {
  switch (r) {
    case LT_ROLE_SYSTEM: return "system";
    case LT_ROLE_USER: return "user";
    case LT_ROLE_OBSERVATION: return "tool";
    default: return "assistant";  // assistant and function calls
  }
}

// Render messages[0..n) (+ the generation prompt) as a request to the template set.
static int render(const lt_chat_set *cs, cJSON *msgs, int n, int agp, const char *tools, char **out, size_t *len,
                  lt_err *err) {
  cJSON *req = cJSON_CreateObject(), *arr = cJSON_CreateArray();
  if (!req || !arr) {
    cJSON_Delete(req);
    cJSON_Delete(arr);
    return lt_errf(err, "out of memory");
  }
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_Duplicate(cJSON_GetArrayItem(msgs, i), 1));
  cJSON_AddItemToObject(req, "messages", arr);
  cJSON_AddBoolToObject(req, "add_generation_prompt", agp);
  if (tools && *tools) {
    cJSON *t = cJSON_Parse(tools);
    if (t) cJSON_AddItemToObject(req, "tools", t);
  }
  char *js = cJSON_PrintUnformatted(req);
  cJSON_Delete(req);
  if (!js) return lt_errf(err, "out of memory");
  int rc = lt_chat_set_render(cs, js, out, len, err);
  free(js);
  return rc;
}

typedef struct {
  int32_t *ids, *labels;
  int n, cap;
} seq;

static int append(seq *s, const int32_t *ids, int n, int label, lt_err *err) {
  if (s->n + n > s->cap) {
    int cap = LT_MAX(2 * s->cap, s->n + n + 64);
    int32_t *a = realloc(s->ids, sizeof *a * (size_t)cap), *b = a ? realloc(s->labels, sizeof *b * (size_t)cap) : NULL;
    if (!a || !b) {
      if (a) s->ids = a;
      return lt_errf(err, "out of memory");
    }
    s->ids = a;
    s->labels = b;
    s->cap = cap;
  }
  for (int i = 0; i < n; i++) {
    s->ids[s->n + i] = ids[i];
    s->labels[s->n + i] = label ? ids[i] : -100;
  }
  s->n += n;
  return 0;
}

// Encode text[from..to) -> *ids (malloc'd, *n tokens); *has_eos set when it contains eos_id.
static int encode_seg(const lt_tokenizer *tok, const char *text, size_t from, size_t to, int32_t **ids, int *n,
                      int32_t eos_id, int *has_eos, lt_err *err) {
  *ids = NULL;
  *n = 0;
  if (to <= from) return 0;
  if (lt_tokenizer_encode(tok, text + from, to - from, 0, ids, n, err)) return -1;
  for (int i = 0; i < *n && has_eos; i++)
    if ((*ids)[i] == eos_id) *has_eos = 1;
  return 0;
}

// LLaMA-Factory's infer_seqlen: how much of a (source, target) pair fits in `cutoff` tokens. A short target is
// kept whole and the source cut; a short source is kept whole and the target cut; otherwise both in proportion.
static void infer_seqlen(int source_len, int target_len, int cutoff, int *new_source, int *new_target) {
  int max_target;
  if (target_len * 2 < cutoff) max_target = cutoff;
  else if (source_len * 2 < cutoff) max_target = cutoff - source_len;
  else max_target = (int)((double)cutoff * ((double)target_len / (double)(source_len + target_len)));
  *new_target = LT_MIN(max_target, target_len);
  int max_source = LT_MAX(cutoff - *new_target, 0);
  *new_source = LT_MIN(max_source, source_len);
}

static int build_one(const lt_convo *c, const char *source, const lt_chat_set *cs, const lt_tokenizer *tok,
                     int32_t eos_id, const lt_sft_opts *o, seq *s, int *no_eos, int *truncated, lt_err *err) {
  if (c->text) return lt_errf(err, "%s: %s: a plain-text record in SFT data (use stage pt)", source, c->origin);
  if (c->n_response < 1) return lt_errf(err, "%s: %s: no response to learn", source, c->origin);
  cJSON *msgs = cJSON_CreateArray();
  if (!msgs) return lt_errf(err, "out of memory");
  int n = 0;
  if (c->system && *c->system) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", c->system);
    cJSON_AddItemToArray(msgs, m);
    n++;
  }
  int first_turn = n;
  for (int i = 0; i <= c->n_prompt; i++) {  // the prompt turns, then the (first) response
    const lt_msg *msg = i < c->n_prompt ? &c->prompt[i] : &c->response[0];
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", hf_role(msg->role));
    cJSON_AddStringToObject(m, "content", msg->content);
    cJSON_AddItemToArray(msgs, m);
    n++;
  }
  char *prev = NULL, *prefix = NULL, *full = NULL;
  size_t prev_len = 0, plen = 0, flen = 0;
  int rc = -1, has_eos = 1;
  // every assistant turn: positions first_turn + 1, + 3, ...
  for (int a = first_turn + 1; a < n; a += 2) {
    if (render(cs, msgs, a, 1, c->tools, &prefix, &plen, err) || render(cs, msgs, a + 1, 0, c->tools, &full, &flen, err)) {
      lt_err_prefix(err, "%s: %s: chat template", source, c->origin);
      goto done;
    }
    if (plen < prev_len || memcmp(prefix, prev ? prev : "", prev_len) != 0 || flen < plen ||
        memcmp(full, prefix, plen) != 0) {
      lt_errf(err, "%s: %s: the chat template does not render turn %d as an extension of the earlier turns, so "
              "prompt and response tokens cannot be told apart; use another template (--template)", source,
              c->origin, (a - first_turn + 1) / 2);
      goto done;
    }
    int turn_eos = eos_id < 0;
    int32_t *src = NULL, *tgt = NULL;
    int ns = 0, nt = 0;
    if (encode_seg(tok, prefix, prev_len, plen, &src, &ns, eos_id, NULL, err) ||
        encode_seg(tok, full, plen, flen, &tgt, &nt, eos_id, &turn_eos, err)) {
      free(src);
      lt_err_prefix(err, "%s: %s", source, c->origin);
      goto done;
    }
    if (!turn_eos) has_eos = 0;
    // cutoff_len: each turn pair cut to what is left, as LLaMA-Factory's supervised preprocessing does (the
    // response keeps its tokens when it is short, so long prompts do not lose the labels)
    int ks = ns, kt = nt;
    if (o->cutoff_len > 0) {
      if (s->n >= o->cutoff_len) ks = kt = 0;
      else infer_seqlen(ns, nt, o->cutoff_len - s->n, &ks, &kt);
      if (ks < ns || kt < nt) *truncated = 1;
    }
    int arc = append(s, src, ks, o->train_on_prompt, err) || append(s, tgt, kt, 1, err);
    free(src);
    free(tgt);
    if (arc) goto done;
    free(prev);
    free(prefix);
    prev = full;
    prev_len = flen;
    prefix = full = NULL;
  }
  if (!has_eos) (*no_eos)++;
  rc = 0;
done:
  free(prev);
  free(prefix);
  free(full);
  cJSON_Delete(msgs);
  return rc;
}

int lt_data_build_sft(const lt_convo *c, int n, const char *source, const lt_chat_set *cs, const lt_tokenizer *tok,
                      int32_t eos_id, const lt_sft_opts *o, lt_dataset *out, lt_sft_stats *st, lt_err *err) {
  memset(st, 0, sizeof *st);
  seq s = {0};
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (o->max_samples > 0 && out->n >= o->max_samples) break;
    st->n_records++;
    s.n = 0;
    int truncated = 0;
    if (build_one(&c[i], source, cs, tok, eos_id, o, &s, &st->n_no_eos, &truncated, err)) {
      if (!o->skip_bad) {
        rc = -1;
        break;
      }
      if (st->n_skipped++ == 0) snprintf(st->first_bad, sizeof st->first_bad, "%.700s", err->msg);
      continue;
    }
    if (s.n == 0) continue;
    int len = s.n;
    if (o->cutoff_len > 0 && len > o->cutoff_len) len = o->cutoff_len;  // (infer_seqlen already fits)
    st->n_truncated += truncated;
    if (lt_dataset_add(out, s.ids, s.labels, NULL, len, 0, err)) {
      rc = -1;
      break;
    }
  }
  free(s.ids);
  free(s.labels);
  return rc;
}

int lt_data_read_sft(const char *path, const char *tokenizer_dir, const char *template_name, const lt_sft_opts *o,
                     int vocab, lt_dataset *out, lt_sft_stats *st, lt_err *err) {
  memset(st, 0, sizeof *st);
  lt_data_format f = {0};
  lt_convo *c = NULL;
  lt_chat_set *cs = NULL;
  lt_tokenizer *tok = NULL;
  int n = 0, skipped = 0, rc = -1;
  if (lt_data_read_convos(path, &f, o->skip_bad, &c, &n, &skipped, err)) return -1;
  if (lt_chat_set_load(&cs, tokenizer_dir, template_name, err) || lt_tokenizer_load(&tok, tokenizer_dir, err))
    goto done;
  if (lt_data_build_sft(c, n, path, cs, tok, lt_tokenizer_eos_id(tok), o, out, st, err)) goto done;
  st->n_skipped += skipped;
  snprintf(out->source, sizeof out->source, "%s", path);
  for (int i = 0; i < out->n && vocab > 0; i++)
    for (int k = 0; k < out->ex[i].len; k++)
      if (out->ex[i].ids[k] >= vocab) {
        lt_errf(err, "%s: the tokenizer in %s produces id %d, outside the model's vocabulary (%d)", path,
                tokenizer_dir, out->ex[i].ids[k], vocab);
        goto done;
      }
  rc = 0;
done:
  lt_tokenizer_free(tok);
  lt_chat_set_free(cs);
  lt_convos_free(c, n);
  return rc;
}

int lt_data_is_pretok(const char *path, lt_err *err) {
  char *text;
  size_t len;
  if (lt_read_file(path, &text, &len, err)) return -1;
  size_t i = 0;
  while (i < len && strchr(" \t\r\n", text[i])) i++;
  int r = i == len;  // an empty file: the pre-tokenized reader reports it
  if (i < len && text[i] == '{') {
    size_t e = i;
    while (e < len && text[e] != '\n') e++;
    cJSON *o = cJSON_ParseWithLength(text + i, e - i);
    r = o && (cJSON_GetObjectItemCaseSensitive(o, "input_ids") || cJSON_GetObjectItemCaseSensitive(o, "text"));
    cJSON_Delete(o);
  }
  free(text);
  return r;
}
