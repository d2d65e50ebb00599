// Post-processors (tokenizers' processors/*) for a single sequence: TemplateProcessing, ByteLevel (ids unchanged),
// RobertaProcessing, BertProcessing ([CLS] A [SEP]), Sequence.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static int oom(lt_err *err) { return lt_errf(err, "tokenizer: out of memory"); }

static int parse_pair_tok(const cJSON *j, const char *key, const char *path, int32_t *id, lt_err *err) {
  const cJSON *v = tk_jget(j, key);
  char p[512];
  snprintf(p, sizeof p, "%s.%s", path, key);
  if (!v || !cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsString(v->child) ||
      !cJSON_IsNumber(v->child->next) || v->child->next->valuedouble < 0 ||
      v->child->next->valuedouble > 2147483646.0)
    return tk_jerr(err, p, "expected [token, id]");
  *id = (int32_t)v->child->next->valuedouble;
  return 0;
}

static int parse_template(tk_post *p, const cJSON *j, const char *path, lt_err *err) {
  char q[512];
  const cJSON *single = tk_jget(j, "single"), *st = tk_jget(j, "special_tokens");
  snprintf(q, sizeof q, "%s.single", path);
  if (!single || !cJSON_IsArray(single)) return tk_jerr(err, q, "expected an array of template pieces");
  if (st && !cJSON_IsObject(st)) return tk_jerr(err, path, "special_tokens must be an object");
  int cnt = cJSON_GetArraySize(single);
  p->item_ids = calloc((size_t)cnt + 1, sizeof *p->item_ids);
  p->item_n = calloc((size_t)cnt + 1, sizeof *p->item_n);
  if (!p->item_ids || !p->item_n) return oom(err);
  int i = 0;
  for (const cJSON *c = single->child; c; c = c->next, i++) {
    snprintf(q, sizeof q, "%s.single[%d]", path, i);
    p->nitems = i + 1;
    const cJSON *sp = tk_jget(c, "SpecialToken"), *sq = tk_jget(c, "Sequence");
    if (sq) {
      const char *sid;
      if (tk_jstr(sq, "id", q, 1, &sid, err)) return -1;
      if (strcmp(sid, "A") != 0)
        return tk_jerr(err, q, "a single-sequence template can only use sequence \"A\" (got \"%s\")", sid);
      continue;
    }
    if (!sp) return tk_jerr(err, q, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    const char *name;
    if (tk_jstr(sp, "id", q, 1, &name, err)) return -1;
    const cJSON *def = st ? cJSON_GetObjectItemCaseSensitive(st, name) : NULL;
    if (!def) return tk_jerr(err, q, "special token \"%.80s\" is not in special_tokens", name);
    const cJSON *ids = tk_jget(def, "ids");
    char r[600];
    snprintf(r, sizeof r, "%s.special_tokens[\"%.80s\"].ids", path, name);
    if (!ids || !cJSON_IsArray(ids)) return tk_jerr(err, r, "expected an array of ids");
    int k = cJSON_GetArraySize(ids);
    p->item_ids[i] = malloc(((size_t)k + 1) * sizeof(int32_t));
    if (!p->item_ids[i]) return oom(err);
    p->item_n[i] = k;
    int t = 0;
    for (const cJSON *x = ids->child; x; x = x->next, t++) {
      if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 2147483646.0 ||
          x->valuedouble != (double)(int32_t)x->valuedouble)
        return tk_jerr(err, r, "ids must be non-negative integers");
      p->item_ids[i][t] = (int32_t)x->valuedouble;
    }
  }
  return 0;
}

int tk_post_parse(tk_post *p, const cJSON *j, const char *path, lt_err *err) {
  memset(p, 0, sizeof *p);
  if (!j) return 0;
  if (!cJSON_IsObject(j)) return tk_jerr(err, path, "post_processor must be an object or null");
  const char *type;
  if (tk_jstr(j, "type", path, 1, &type, err)) return -1;
  if (!strcmp(type, "Sequence")) {
    p->type = TK_PP_SEQ;
    char q[512];
    const cJSON *arr = tk_jget(j, "processors");
    snprintf(q, sizeof q, "%s.processors", path);
    if (!arr || !cJSON_IsArray(arr)) return tk_jerr(err, q, "expected an array");
    int cnt = cJSON_GetArraySize(arr);
    p->sub = calloc((size_t)(cnt ? cnt : 1), sizeof *p->sub);
    if (!p->sub) return oom(err);
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
      snprintf(q, sizeof q, "%s.processors[%d]", path, i);
      p->nsub = i + 1;
      if (tk_post_parse(&p->sub[i], c, q, err)) return -1;
    }
    return 0;
  }
  if (!strcmp(type, "TemplateProcessing")) {
    p->type = TK_PP_TEMPLATE;
    return parse_template(p, j, path, err);
  }
  if (!strcmp(type, "ByteLevel")) {
    p->type = TK_PP_BYTELEVEL;
    return 0;
  }
  if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
    p->type = type[0] == 'R' ? TK_PP_ROBERTA : TK_PP_BERT;
    return parse_pair_tok(j, "cls", path, &p->cls_id, err) || parse_pair_tok(j, "sep", path, &p->sep_id, err)
               ? -1
               : 0;
  }
  return tk_jerr(err, path,
                 "unsupported post_processor type \"%s\" (supported: TemplateProcessing, ByteLevel, "
                 "RobertaProcessing, BertProcessing, Sequence)",
                 type);
}

void tk_post_free(tk_post *p) {
  for (int i = 0; i < p->nsub; i++) tk_post_free(&p->sub[i]);
  free(p->sub);
  if (p->item_ids)
    for (int i = 0; i < p->nitems; i++) free(p->item_ids[i]);
  free(p->item_ids);
  free(p->item_n);
  memset(p, 0, sizeof *p);
}

int tk_post_apply(const tk_post *p, int32_t **ids, int *n, int *cap, lt_err *err) {
  switch (p->type) {
    case TK_PP_NONE:
    case TK_PP_BYTELEVEL:
      return 0;
    case TK_PP_SEQ:
      for (int i = 0; i < p->nsub; i++)
        if (tk_post_apply(&p->sub[i], ids, n, cap, err)) return -1;
      return 0;
    default:
      break;
  }
  int32_t *seq = *ids;
  int sn = *n;
  int32_t *out = NULL;
  int on = 0, oc = 0;
  int rc = 0;
  if (p->type == TK_PP_TEMPLATE) {
    for (int i = 0; i < p->nitems && !rc; i++) {
      if (!p->item_ids[i]) {
        for (int k = 0; k < sn && !rc; k++) rc = tk_ids_push(&out, &on, &oc, seq[k]);
      } else {
        for (int k = 0; k < p->item_n[i] && !rc; k++) rc = tk_ids_push(&out, &on, &oc, p->item_ids[i][k]);
      }
    }
  } else {
    rc = tk_ids_push(&out, &on, &oc, p->cls_id);
    for (int k = 0; k < sn && !rc; k++) rc = tk_ids_push(&out, &on, &oc, seq[k]);
    if (!rc) rc = tk_ids_push(&out, &on, &oc, p->sep_id);
  }
  if (rc) {
    free(out);
    return oom(err);
  }
  if (!out) {  // empty template: keep an allocated (empty) array
    out = malloc(sizeof *out);
    if (!out) return oom(err);
    oc = 1;
  }
  free(*ids);
  *ids = out;
  *n = on;
  *cap = oc;
  return 0;
}
