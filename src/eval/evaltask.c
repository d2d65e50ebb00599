// Evaluation tasks (see evaltask.h). Everything a run scores is a token sequence whose logits are needed from some
// position on: perplexity examples (labels as training builds them), prompt + candidate answer (classify: the SFT
// example of (prompt, label); mcq: lm-evaluation-harness's context + " A".." D"), and prompt + generated tokens.
// A KV cache keeps the ids it holds, and the next sequence only decodes from where it differs (candidates share
// their prompt, MCQ questions share the few-shot context), so a prompt runs once. With several OpenMP threads the
// examples are shared among workers, one cache each; records and metrics are then made in example order.
#include "eval/evaltask.h"

#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chat/chat.h"
#include "core/core.h"
#include "data/convo.h"
#include "data/data.h"
#include "data/sft.h"
#include "eval/text.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define GEN_DEFAULT_NEW 128
#define CLASSIFY_GEN_SLACK 4  // classify --by generate: longest label + this many tokens

typedef struct ev_item {
  int32_t *ids;      // ppl: the example; otherwise the prompt
  int32_t *labels;   // ppl: labels (unshifted; -100 = not scored)
  int n;
  int n_cand;        // classify: labels; mcq: 4
  int32_t **cand;    // continuation ids per candidate
  int *cand_n;
  int gold;          // classify / mcq: index of the gold label / answer
  int subject;       // mcq
  char *gold_text;   // generate: the reference answer
  char *prompt_text; // shown in predictions.jsonl (the last user message / the question)
  char origin[160];  // where the example comes from, for messages
} ev_item;

struct lt_eval_data {
  lt_eval_task task;
  char dataset[1024];
  int n, cap;
  ev_item *it;
  int n_names;
  char **names;      // classify: labels; mcq: subjects
  int max_seq;       // longest sequence a run puts into the KV cache
  int max_cand;      // longest candidate continuation
  int n_truncated;   // classify prompts cut to cutoff_len
  lt_tokenizer *tok; // decodes generated text
};

int lt_eval_task_parse(const char *name, lt_eval_task *out, lt_err *err) {
  static const char *const names[] = {"ppl", "classify", "generate", "mcq"};
  for (int i = 0; i < 4; i++)
    if (strcmp(name, names[i]) == 0) {
      *out = (lt_eval_task)i;
      return 0;
    }
  return lt_errf(err, "unknown task \"%s\": choose ppl, classify, generate or mcq", name);
}

const char *lt_eval_task_name(lt_eval_task t) {
  switch (t) {
    case LT_EVAL_PPL: return "ppl";
    case LT_EVAL_CLASSIFY: return "classify";
    case LT_EVAL_GENERATE: return "generate";
    default: return "mcq";
  }
}

int lt_eval_data_size(const lt_eval_data *d) { return d->n; }
int lt_eval_data_n_names(const lt_eval_data *d) { return d->n_names; }
const char *lt_eval_data_name(const lt_eval_data *d, int i) { return i >= 0 && i < d->n_names ? d->names[i] : NULL; }

static void item_free(ev_item *it) {
  free(it->ids);
  free(it->labels);
  for (int c = 0; c < it->n_cand; c++) free(it->cand[c]);
  free(it->cand);
  free(it->cand_n);
  free(it->gold_text);
  free(it->prompt_text);
}

void lt_eval_data_free(lt_eval_data *d) {
  if (!d) return;
  for (int i = 0; i < d->n; i++) item_free(&d->it[i]);
  free(d->it);
  for (int i = 0; i < d->n_names; i++) free(d->names[i]);
  free(d->names);
  lt_tokenizer_free(d->tok);
  free(d);
}

static ev_item *new_item(lt_eval_data *d, lt_err *err) {
  if (d->n == d->cap) {
    if (d->cap > (1 << 28)) {
      lt_errf(err, "too many examples");
      return NULL;
    }
    int cap = d->cap ? 2 * d->cap : 64;
    ev_item *p = realloc(d->it, sizeof *p * (size_t)cap);
    if (!p) {
      lt_errf(err, "out of memory for %d examples", cap);
      return NULL;
    }
    d->it = p;
    d->cap = cap;
  }
  ev_item *it = &d->it[d->n++];
  memset(it, 0, sizeof *it);
  return it;
}

static char *dup_str(const char *s, lt_err *err) {
  char *p = strdup(s ? s : "");
  if (!p) lt_errf(err, "out of memory");
  return p;
}

static int32_t *dup_ids(const int32_t *ids, int n, lt_err *err) {
  int32_t *p = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
  if (!p) {
    lt_errf(err, "out of memory");
    return NULL;
  }
  if (n > 0) memcpy(p, ids, sizeof(int32_t) * (size_t)n);
  return p;
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int load_tokenizer(lt_eval_data *d, const lt_eval_opts *o, lt_err *err) {
  if (d->tok) return 0;
  if (!o->tokenizer) return lt_errf(err, "no tokenizer given");
  if (lt_tokenizer_load(&d->tok, o->tokenizer, err))
    return lt_err_prefix(err, "%s: a tokenizer (tokenizer.json) is needed to read %s", o->tokenizer, o->dataset);
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// ppl: pre-tokenized / {"text"} JSONL and plain text as `lmtune train --stage pt` reads them, or conversations as
// SFT builds them (labels on the responses only).

static int load_ppl(lt_eval_data *d, const lt_eval_opts *o, lt_err *err) {
  lt_dataset ds = {0};
  int pre = 1;
  if (!is_dir(o->dataset) && !ends_with(o->dataset, ".txt")) {
    pre = lt_data_is_pretok(o->dataset, err);
    if (pre < 0) return -1;
  }
  if (pre) {
    lt_pretok_opts po = {o->cutoff_len, o->max_samples, 0, o->vocab, o->tokenizer};
    lt_data_stats st;
    if (lt_data_read_pretok(o->dataset, &po, &ds, &st, err)) {
      lt_dataset_free(&ds);
      return -1;
    }
  } else {
    lt_sft_opts so = {o->cutoff_len, 0, o->max_samples, 0};
    lt_sft_stats st;
    if (lt_data_read_sft(o->dataset, o->tokenizer, o->template_name, &so, o->vocab, &ds, &st, err)) {
      lt_dataset_free(&ds);
      return -1;
    }
  }
  int rc = 0;
  for (int i = 0; i < ds.n && !rc; i++) {
    lt_example *e = &ds.ex[i];
    if (e->attn)
      for (int k = 0; k < e->len; k++)
        if (e->attn[k] == 0) {
          rc = lt_errf(err, "%s: line %d: field \"attention_mask\" has padding (0) at position %d; evaluation takes "
                       "unpadded examples", o->dataset, e->line, k);
          break;
        }
    if (rc) break;
    ev_item *it = new_item(d, err);
    if (!it) {
      rc = -1;
      break;
    }
    it->ids = e->ids;
    it->labels = e->labels;
    it->n = e->len;
    e->ids = e->labels = NULL;
    if (e->line > 0) snprintf(it->origin, sizeof it->origin, "line %d", e->line);
    else snprintf(it->origin, sizeof it->origin, "example %d", i + 1);
    d->max_seq = LT_MAX(d->max_seq, it->n);
  }
  lt_dataset_free(&ds);
  return rc;
}

// ---------------------------------------------------------------------------------------------------------------
// Conversations (classify, generate): the prompt is the SFT example's tokens before the final answer.

static int read_convos(const lt_eval_opts *o, lt_convo **c, int *n, lt_err *err) {
  lt_data_format f;
  memset(&f, 0, sizeof f);
  int skipped = 0;
  if (lt_data_read_convos(o->dataset, &f, 0, c, n, &skipped, err)) return -1;
  for (int i = 0; i < *n; i++) {
    const lt_convo *r = &(*c)[i];
    if (r->text || r->n_response < 1 || r->n_prompt < 1)
      return lt_errf(err, "%s: %s: %s", o->dataset, r->origin,
                     r->text ? "a plain-text record; this task needs conversations ending in an assistant answer"
                             : "no assistant answer at the end of the conversation (the reference / label)");
    if (r->n_response > 1)
      return lt_errf(err, "%s: %s: a preference record (chosen/rejected); this task needs one answer", o->dataset,
                     r->origin);
  }
  return 0;
}

// The SFT example of (conversation, answer): ids[0..*P) are the prompt, ids[*P..n) the answer's labelled tokens.
static int build_pair(const lt_convo *c, const char *answer, const char *source, const lt_chat_set *cs,
                      const lt_tokenizer *tok, int vocab, int32_t **ids, int *n, int *P, lt_err *err) {
  lt_convo tmp = *c;
  lt_msg resp = {LT_ROLE_ASSISTANT, (char *)answer};
  tmp.response = &resp;
  tmp.n_response = 1;
  lt_dataset ds = {0};
  lt_sft_opts so = {0, 0, 0, 0};
  lt_sft_stats st;
  *ids = NULL;
  if (lt_data_build_sft(&tmp, 1, source, cs, tok, lt_tokenizer_eos_id(tok), &so, &ds, &st, err)) {
    lt_dataset_free(&ds);
    return -1;
  }
  int rc = -1;
  if (ds.n != 1) {
    lt_errf(err, "%s: %s: the conversation renders to no tokens", source, c->origin);
    goto done;
  }
  const lt_example *e = &ds.ex[0];
  int last = e->len - 1;
  while (last >= 0 && e->labels[last] != -100) last--;
  if (last < 0 || last == e->len - 1) {
    lt_errf(err, "%s: %s: the answer \"%.60s\" %s", source, c->origin, answer,
            last < 0 ? "has no prompt before it" : "encodes to no tokens with this chat template");
    goto done;
  }
  for (int k = 0; k < e->len; k++)
    if (vocab > 0 && e->ids[k] >= vocab) {
      lt_errf(err, "%s: %s: the tokenizer produces id %d, outside the model's vocabulary (%d)", source, c->origin,
              e->ids[k], vocab);
      goto done;
    }
  *ids = e->ids;
  *n = e->len;
  *P = last + 1;
  ds.ex[0].ids = NULL;
  rc = 0;
done:
  lt_dataset_free(&ds);
  return rc;
}

static const char *last_user_text(const lt_convo *c) { return c->prompt[c->n_prompt - 1].content; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int add_name(lt_eval_data *d, const char *s, size_t n, lt_err *err) {
  if (d->n_names >= (1 << 15)) return lt_errf(err, "too many labels");
  char **p = realloc(d->names, sizeof *p * (size_t)(d->n_names + 1));
  if (!p) return lt_errf(err, "out of memory");
  d->names = p;
  char *s2 = malloc(n + 1);
  if (!s2) return lt_errf(err, "out of memory");
  memcpy(s2, s, n);
  s2[n] = 0;
  d->names[d->n_names++] = s2;
  return 0;
}

static int find_name(const lt_eval_data *d, const char *s) {
  for (int i = 0; i < d->n_names; i++)
    if (strcmp(d->names[i], s) == 0) return i;
  return -1;
}

// The label set: --labels in order, or the distinct gold labels sorted (scikit-learn's unique_labels order).
static int label_set(lt_eval_data *d, const lt_eval_opts *o, const lt_convo *c, int n, lt_err *err) {
  if (o->labels) {
    const char *p = o->labels;
    for (;;) {
      const char *e = strchr(p, ',');
      size_t len = e ? (size_t)(e - p) : strlen(p);
      const char *s = p;
      while (len && (*s == ' ' || *s == '\t')) s++, len--;
      while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
      if (len == 0) return lt_errf(err, "--labels \"%s\": an empty label", o->labels);
      if (add_name(d, s, len, err)) return -1;
      for (int i = 0; i + 1 < d->n_names; i++)
        if (strcmp(d->names[i], d->names[d->n_names - 1]) == 0)
          return lt_errf(err, "--labels \"%s\": label \"%s\" is given twice", o->labels, d->names[i]);
      if (!e) break;
      p = e + 1;
    }
    return 0;
  }
  for (int i = 0; i < n; i++) {
    const char *g = c[i].response[0].content;
    if (find_name(d, g) < 0 && add_name(d, g, strlen(g), err)) return -1;
  }
  qsort(d->names, (size_t)d->n_names, sizeof *d->names, cmp_str);
  return 0;
}

static void label_list(const lt_eval_data *d, char *out, size_t cap) {
  size_t at = 0;
  out[0] = 0;
  for (int i = 0; i < d->n_names && at + 1 < cap; i++) {
    int w = snprintf(out + at, cap - at, "%s%s", i ? ", " : "", d->names[i]);
    if (w < 0) break;
    at += (size_t)w;
  }
}

static int load_convo_task(lt_eval_data *d, const lt_eval_opts *o, lt_err *err) {
  lt_convo *c = NULL;
  int n = 0, n_use, rc = -1;
  lt_chat_set *cs = NULL;
  int32_t *ids = NULL;
  if (read_convos(o, &c, &n, err)) goto done;
  n_use = o->max_samples > 0 ? LT_MIN(n, o->max_samples) : n;
  if (d->task == LT_EVAL_CLASSIFY) {  // the data's own checks first: they need no tokenizer
    if (label_set(d, o, c, n_use, err)) goto done;
    if (d->n_names < 2 && !o->labels) {
      lt_errf(err, "%s: all %d answers are \"%.60s\": classification needs at least two labels (give them with "
              "--labels)", o->dataset, n_use, d->n_names ? d->names[0] : "");
      goto done;
    }
    for (int i = 0; i < n_use; i++)
      if (find_name(d, c[i].response[0].content) < 0) {
        char list[512];
        label_list(d, list, sizeof list);
        lt_errf(err, "%s: %s: the answer \"%.60s\" is not in --labels (%s)", o->dataset, c[i].origin,
                c[i].response[0].content, list);
        goto done;
      }
  }
  if (load_tokenizer(d, o, err)) goto done;
  if (lt_chat_set_load(&cs, o->tokenizer, o->template_name, err)) {
    lt_err_prefix(err, "%s: chat template", o->tokenizer);
    goto done;
  }
  for (int i = 0; i < n_use; i++) {
    const lt_convo *r = &c[i];
    ev_item *it = new_item(d, err);
    if (!it) goto done;
    snprintf(it->origin, sizeof it->origin, "%s", r->origin);
    if (!(it->prompt_text = dup_str(last_user_text(r), err))) goto done;
    int len, P;
    if (d->task == LT_EVAL_GENERATE) {
      if (build_pair(r, r->response[0].content, o->dataset, cs, d->tok, o->vocab, &ids, &len, &P, err)) goto done;
      it->ids = ids;  // the prompt part; the answer tokens after it are not needed
      ids = NULL;
      it->n = P;
      if (!(it->gold_text = dup_str(r->response[0].content, err))) goto done;
      continue;
    }
    it->gold = find_name(d, r->response[0].content);
    it->cand = calloc((size_t)d->n_names, sizeof *it->cand);
    it->cand_n = calloc((size_t)d->n_names, sizeof *it->cand_n);
    if (!it->cand || !it->cand_n) {
      lt_errf(err, "out of memory");
      goto done;
    }
    for (int k = 0; k < d->n_names; k++) {
      if (build_pair(r, d->names[k], o->dataset, cs, d->tok, o->vocab, &ids, &len, &P, err)) goto done;
      if (k == 0) {
        it->ids = dup_ids(ids, P, err);
        it->n = P;
        if (!it->ids) goto done;
      } else if (P != it->n || memcmp(ids, it->ids, sizeof(int32_t) * (size_t)P) != 0) {
        lt_errf(err, "%s: %s: the chat template renders the prompt differently for label \"%.60s\" than for \"%.60s\"; "
                "labels cannot be scored after one prompt (use another --template)", o->dataset, r->origin,
                d->names[k], d->names[0]);
        goto done;
      }
      it->cand[k] = dup_ids(ids + P, len - P, err);
      if (!it->cand[k]) goto done;
      it->cand_n[k] = len - P;
      it->n_cand = k + 1;
      d->max_cand = LT_MAX(d->max_cand, len - P);
      free(ids);
      ids = NULL;
    }
    if (o->cutoff_len > 0) {  // as SFT training cuts a long prompt (LLaMA-Factory's infer_seqlen): keep its head
      int longest = 0;
      for (int k = 0; k < it->n_cand; k++) longest = LT_MAX(longest, it->cand_n[k]);
      int keep = LT_MAX(1, o->cutoff_len - longest);
      if (it->n > keep) {
        it->n = keep;
        d->n_truncated++;
      }
    }
  }
  rc = 0;
done:
  free(ids);
  lt_chat_set_free(cs);
  lt_convos_free(c, n);
  return rc;
}

// ---------------------------------------------------------------------------------------------------------------
// mcq: MMLU / C-Eval / CMMLU CSV files with lm-evaluation-harness's prompt and scoring.

static int list_csv(const char *dir, char ***names, int *n, lt_err *err) {
  *names = NULL;
  *n = 0;
  DIR *dh = opendir(dir);
  if (!dh) return lt_errf(err, "%s: cannot open the directory", dir);
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(dh))) {
    if (de->d_name[0] == '.' || !ends_with(de->d_name, ".csv")) continue;
    char path[4200];
    if (lt_path_join(path, sizeof path, dir, de->d_name)) continue;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    char **p = realloc(*names, sizeof *p * (size_t)(*n + 1));
    if (!p || !(p[*n] = strdup(de->d_name))) {
      if (p) *names = p;
      rc = lt_errf(err, "out of memory");
      break;
    }
    *names = p;
    (*n)++;
  }
  closedir(dh);
  if (rc) return -1;
  qsort(*names, (size_t)*n, sizeof **names, cmp_str);
  return 0;
}

static void free_names(char **names, int n) {
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
}

// The dev file of `subject` in dev (a file: itself; a directory: {subject}_dev.csv or {subject}.csv).
static int dev_path(const char *dev, const char *subject, char *out, size_t cap, lt_err *err) {
  if (!is_dir(dev)) {
    snprintf(out, cap, "%s", dev);
    return 0;
  }
  static const char *const pats[] = {"%s_dev.csv", "%s.csv"};
  for (int i = 0; i < 2; i++) {
    char name[400];
    snprintf(name, sizeof name, pats[i], subject);
    if (lt_path_join(out, cap, dev, name) == 0 && lt_file_exists(out)) return 0;
  }
  return lt_errf(err, "%s: no dev file for subject \"%s\" (%s_dev.csv or %s.csv)", dev, subject, subject, subject);
}

static int load_mcq_file(lt_eval_data *d, const lt_eval_opts *o, const char *path, int shots, lt_err *err) {
  lt_mcq_file f, dv;
  memset(&dv, 0, sizeof dv);
  if (lt_mcq_read(path, &f, err)) return -1;
  int rc = -1, subject = d->n_names;
  char *prompt = NULL, *whole = NULL;
  int32_t *ctx = NULL, *w = NULL;
  if (add_name(d, f.subject, strlen(f.subject), err)) goto done;
  for (int i = 0; i < subject; i++)
    if (strcmp(d->names[i], f.subject) == 0) {
      lt_errf(err, "%s: subject \"%s\" appears in two files", path, f.subject);
      goto done;
    }
  if (shots > 0) {
    char dp[4200];
    if (dev_path(o->dev, f.subject, dp, sizeof dp, err) || lt_mcq_read(dp, &dv, err)) goto done;
    if (dv.n < shots) {
      lt_errf(err, "%s: %d example%s for subject \"%s\", fewer than --shots %d", dp, dv.n, dv.n == 1 ? "" : "s",
              f.subject, shots);
      goto done;
    }
  }
  int n = o->max_samples > 0 ? LT_MIN(o->max_samples, f.n) : f.n;
  for (int i = 0; i < n; i++) {
    const lt_mcq_question *q = &f.q[i];
    ev_item *it = new_item(d, err);
    if (!it) goto done;
    snprintf(it->origin, sizeof it->origin, "%.120s:%d", path, q->line);
    it->subject = subject;
    it->gold = q->answer;
    if (!(it->prompt_text = dup_str(q->question, err))) goto done;
    if (lt_mcq_prompt(f.subject, dv.q, shots, q, &prompt, err)) goto done;
    int nc = 0, nw = 0;
    // lm-evaluation-harness: context_enc = encode(context); continuation_enc = encode(context + " X")[len(ctx):],
    // both with the tokenizer's special tokens (its BOS)
    if (lt_tokenizer_encode(d->tok, prompt, strlen(prompt), 1, &ctx, &nc, err)) {
      lt_err_prefix(err, "%s", it->origin);
      goto done;
    }
    it->cand = calloc(4, sizeof *it->cand);
    it->cand_n = calloc(4, sizeof *it->cand_n);
    size_t plen = strlen(prompt);
    whole = malloc(plen + 3);
    if (!it->cand || !it->cand_n || !whole) {
      lt_errf(err, "out of memory");
      goto done;
    }
    memcpy(whole, prompt, plen);
    for (int c = 0; c < 4; c++) {
      whole[plen] = ' ';
      whole[plen + 1] = (char)('A' + c);
      whole[plen + 2] = 0;
      if (lt_tokenizer_encode(d->tok, whole, plen + 2, 1, &w, &nw, err)) {
        lt_err_prefix(err, "%s", it->origin);
        goto done;
      }
      if (nw <= nc) {
        lt_errf(err, "%s: the answer \" %c\" adds no tokens after the prompt", it->origin, 'A' + c);
        goto done;
      }
      it->cand[c] = dup_ids(w + nc, nw - nc, err);
      if (!it->cand[c]) goto done;
      it->cand_n[c] = nw - nc;
      it->n_cand = c + 1;
      d->max_cand = LT_MAX(d->max_cand, nw - nc);
      free(w);
      w = NULL;
    }
    it->ids = ctx;
    it->n = nc;
    ctx = NULL;
    free(whole);
    free(prompt);
    whole = prompt = NULL;
  }
  rc = 0;
done:
  free(prompt);
  free(whole);
  free(ctx);
  free(w);
  lt_mcq_free(&f);
  lt_mcq_free(&dv);
  return rc;
}

static int load_mcq(lt_eval_data *d, const lt_eval_opts *o, lt_err *err) {
  int shots = o->shots >= 0 ? o->shots : o->dev ? 5 : 0;
  if (shots > 0 && !o->dev) return lt_errf(err, "--shots %d needs --dev (the few-shot examples)", shots);
  if (load_tokenizer(d, o, err)) return -1;
  if (!is_dir(o->dataset)) return load_mcq_file(d, o, o->dataset, shots, err);
  char **files;
  int n;
  if (list_csv(o->dataset, &files, &n, err)) return -1;
  int rc = 0;
  if (n == 0) rc = lt_errf(err, "%s: no .csv files in the directory", o->dataset);
  for (int i = 0; i < n && !rc; i++) {
    char path[4200];
    if (lt_path_join(path, sizeof path, o->dataset, files[i])) rc = lt_errf(err, "%s: path too long", o->dataset);
    else rc = load_mcq_file(d, o, path, shots, err);
  }
  free_names(files, n);
  return rc;
}

int lt_eval_data_load(lt_eval_data **out, const lt_eval_opts *o, lt_err *err) {
  *out = NULL;
  if (!o->dataset) return lt_errf(err, "no dataset given");
  if (!lt_file_exists(o->dataset) && !is_dir(o->dataset)) return lt_errf(err, "%s: no such file", o->dataset);
  if (o->task == LT_EVAL_MCQ && o->shots > 0 && !o->dev)
    return lt_errf(err, "--shots %d needs --dev (the few-shot examples)", o->shots);
  if (o->task == LT_EVAL_MCQ && o->dev && !lt_file_exists(o->dev) && !is_dir(o->dev))
    return lt_errf(err, "%s: no such file", o->dev);
  lt_eval_data *d = calloc(1, sizeof *d);
  if (!d) return lt_errf(err, "out of memory");
  d->task = o->task;
  snprintf(d->dataset, sizeof d->dataset, "%s", o->dataset);
  int rc;
  switch (o->task) {
    case LT_EVAL_PPL: rc = load_ppl(d, o, err); break;
    case LT_EVAL_MCQ: rc = load_mcq(d, o, err); break;
    default: rc = load_convo_task(d, o, err); break;
  }
  if (!rc && d->n == 0) rc = lt_errf(err, "%s: no examples", o->dataset);
  if (!rc && o->task == LT_EVAL_GENERATE && !d->tok) rc = load_tokenizer(d, o, err);
  for (int i = 0; !rc && i < d->n; i++) {
    const ev_item *it = &d->it[i];
    int longest = 0;
    for (int c = 0; c < it->n_cand; c++) longest = LT_MAX(longest, it->cand_n[c]);
    int extra = longest;  // what follows the prompt in the cache: a candidate, or the generated tokens
    if (o->task == LT_EVAL_GENERATE) extra = o->max_new_tokens > 0 ? o->max_new_tokens : GEN_DEFAULT_NEW;
    else if (o->task == LT_EVAL_CLASSIFY && o->by_generate) extra = d->max_cand + CLASSIFY_GEN_SLACK;
    if ((int64_t)it->n + extra > (1 << 24))
      rc = lt_errf(err, "%s: %s: the sequence is too long", o->dataset, it->origin);
    else
      d->max_seq = LT_MAX(d->max_seq, it->n + extra);
    if (!rc && o->vocab > 0)
      for (int k = 0; k < it->n && !rc; k++)
        if (it->ids[k] < 0 || it->ids[k] >= o->vocab)
          rc = lt_errf(err, "%s: %s: token id %d is outside the model's vocabulary (%d)", o->dataset, it->origin,
                       it->ids[k], o->vocab);
    for (int c = 0; !rc && o->vocab > 0 && c < it->n_cand; c++)
      for (int k = 0; k < it->cand_n[c] && !rc; k++)
        if (it->cand[c][k] < 0 || it->cand[c][k] >= o->vocab)
          rc = lt_errf(err, "%s: %s: token id %d is outside the model's vocabulary (%d)", o->dataset, it->origin,
                       it->cand[c][k], o->vocab);
  }
  if (rc) {
    lt_eval_data_free(d);
    return -1;
  }
  *out = d;
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Scoring: a KV cache that remembers the ids it holds.

typedef struct scorer {
  lt_model *m;
  lt_kvcache *kc;
  int cap;            // tokens the cache holds at most
  int32_t *hist;      // ids in the cache
  int hist_len;
  int V, rows;        // logits rows per decode call
  float *logits;      // rows x V
  float *loss;        // rows
  int32_t *tgt;       // rows
  int64_t n_forward;  // tokens decoded
} scorer;

static void sc_free(scorer *s) {
  lt_kvcache_free(s->kc);
  lt_free(s->hist);
  lt_free(s->logits);
  lt_free(s->loss);
  lt_free(s->tgt);
  memset(s, 0, sizeof *s);
}

static int sc_init(scorer *s, lt_model *m, int cap, lt_err *err) {
  memset(s, 0, sizeof *s);
  s->m = m;
  s->cap = LT_MAX(cap, 1);
  s->V = m->cfg.vocab;
  int64_t budget = (int64_t)64 << 20;  // logits buffer: at most 64 MB, at most 64 rows
  s->rows = (int)LT_MAX(1, LT_MIN(64, budget / ((int64_t)s->V * 4)));
  if (lt_kvcache_new(&s->kc, m, s->cap, err)) return -1;
  s->hist = lt_alloc(sizeof(int32_t) * (size_t)s->cap, err);
  s->logits = s->hist ? lt_alloc(FL((int64_t)s->rows * s->V), err) : NULL;
  s->loss = s->logits ? lt_alloc(FL(s->rows), err) : NULL;
  s->tgt = s->loss ? lt_alloc(sizeof(int32_t) * (size_t)s->rows, err) : NULL;
  if (!s->tgt) {
    sc_free(s);
    return -1;
  }
  return 0;
}

// Called with the logits of positions pos0 .. pos0+k-1.
typedef int (*rows_fn)(void *user, const scorer *s, int pos0, int k);

// Make the cache hold seq[0..n) and pass the logits of positions from..n-1 to fn (in blocks of s->rows). Only the
// part of seq after the ids the cache already holds (and never before `from`) runs through the model.
static int sc_forward(scorer *s, const int32_t *seq, int n, int from, rows_fn fn, void *user, lt_err *err) {
  if (n > s->cap) return lt_errf(err, "sequence of %d tokens exceeds the evaluation cache (%d)", n, s->cap);
  if (from < 0 || from >= n) return lt_errf(err, "internal error: scoring from position %d of %d", from, n);
  int L = 0, lim = LT_MIN(s->hist_len, n);
  while (L < lim && s->hist[L] == seq[L]) L++;
  int start = LT_MIN(L, from);
  s->kc->len = start;  // drop what follows the common prefix (the cache overwrites those rows)
  s->hist_len = start;
  if (from > start) {
    if (lt_model_decode(s->m, s->kc, seq + start, from - start, s->logits, 0, err)) goto fail;
    memcpy(s->hist + start, seq + start, sizeof(int32_t) * (size_t)(from - start));
    s->hist_len = from;
    s->n_forward += from - start;
  }
  for (int p = from; p < n; p += s->rows) {
    int k = LT_MIN(s->rows, n - p);
    if (lt_model_decode(s->m, s->kc, seq + p, k, s->logits, 1, err)) goto fail;
    memcpy(s->hist + p, seq + p, sizeof(int32_t) * (size_t)k);
    s->hist_len = p + k;
    s->n_forward += k;
    if (fn && fn(user, s, p, k)) return -1;
  }
  return 0;
fail:
  s->hist_len = 0;
  lt_kvcache_reset(s->kc);
  return -1;
}

// Sum of log p(seq[p+1]) over rows whose target is labelled (labels NULL: every target in seq).
typedef struct {
  const int32_t *seq, *labels;
  int n;
  double logp;
  int64_t count;
} sum_ctx;

static int sum_rows(void *user, const scorer *s, int pos0, int k) {
  sum_ctx *c = user;
  for (int j = 0; j < k; j++) {
    int t = pos0 + j + 1;
    s->tgt[j] = t < c->n && (!c->labels || c->labels[t] != -100) ? (c->labels ? c->labels[t] : c->seq[t]) : -100;
  }
  lt_crossentropy_forward(s->loss, s->logits, s->tgt, k, s->V);
  for (int j = 0; j < k; j++)
    if (s->tgt[j] != -100) {
      c->logp -= (double)s->loss[j];
      c->count++;
    }
  return 0;
}

static cJSON *obj_or_null(cJSON *o, int *oom) {
  if (!o) *oom = 1;
  return o;
}

// log p(candidate | prompt) for each candidate.
static int score_cands(scorer *s, const ev_item *it, int32_t *seq, double *ll, lt_err *err) {
  memcpy(seq, it->ids, sizeof(int32_t) * (size_t)it->n);
  for (int c = 0; c < it->n_cand; c++) {
    memcpy(seq + it->n, it->cand[c], sizeof(int32_t) * (size_t)it->cand_n[c]);
    int n = it->n + it->cand_n[c];
    sum_ctx ctx = {seq, NULL, n, 0, 0};
    // the logits of positions P-1 .. n-2 predict the candidate's tokens
    if (sc_forward(s, seq, n - 1, it->n - 1, sum_rows, &ctx, err)) return -1;
    ll[c] = ctx.logp;
  }
  return 0;
}

static int is_stop(const lt_model_info *mi, int32_t eos, int32_t id) {
  for (int i = 0; i < mi->n_eos; i++)
    if (mi->eos_ids[i] == id) return 1;
  return id == eos;
}

// Greedy / sampled generation after the prompt: out receives the new ids, the stop token included as transformers
// returns it (decoding skips it when it is a special token).
static int generate(scorer *s, const lt_eval_data *d, const ev_item *it, int max_new, const lt_sampling *smp,
                    int32_t *seq, float *scratch, int32_t *out, int *n_out, lt_err *err) {
  lt_model_info mi;
  lt_model_get_info(s->m, &mi);
  int32_t eos = lt_tokenizer_eos_id(d->tok);
  *n_out = 0;
  memcpy(seq, it->ids, sizeof(int32_t) * (size_t)it->n);
  int n = it->n;
  if (sc_forward(s, seq, n, n - 1, NULL, NULL, err)) return -1;
  for (int i = 0; i < max_new; i++) {
    int32_t id;
    lt_sample(s->logits, s->V, smp, seq, n, (uint64_t)i, scratch, &id);
    out[(*n_out)++] = id;
    if (is_stop(&mi, eos, id) || i + 1 == max_new) break;
    seq[n++] = id;
    if (sc_forward(s, seq, n, n - 1, NULL, NULL, err)) return -1;
  }
  return 0;
}

// ---- phase 1: what each example needs from the model, independent of the other examples ----

typedef struct raw {
  double *nll;     // ppl: summed NLL and scored tokens per example
  int64_t *cnt;
  double *ll;      // classify / mcq: log-likelihood of candidate c of example i at [i * K + c]
  int K;
  int32_t *gen;    // generation: ids of example i at [i * max_new], n_gen[i] of them
  int *n_gen;
  int max_new;
} raw;

typedef struct worker {
  scorer s;
  int32_t *seq;    // max_seq ids
  float *scratch;  // sampling scratch (3 V floats)
  int ready;
  lt_err err;
} worker;

static int uses_generation(const lt_eval_data *d, const lt_eval_opts *o) {
  return d->task == LT_EVAL_GENERATE || (d->task == LT_EVAL_CLASSIFY && o->by_generate);
}

static int worker_init(worker *w, lt_model *m, const lt_eval_data *d, const lt_eval_opts *o, lt_err *err) {
  memset(w, 0, sizeof *w);
  if (sc_init(&w->s, m, d->max_seq, err)) return -1;
  w->seq = lt_alloc(sizeof(int32_t) * (size_t)LT_MAX(d->max_seq, 1), err);
  if (w->seq && uses_generation(d, o)) w->scratch = lt_alloc(FL((int64_t)w->s.V * 3), err);
  if (!w->seq || (uses_generation(d, o) && !w->scratch)) {
    sc_free(&w->s);
    lt_free(w->seq);
    return -1;
  }
  w->ready = 1;
  return 0;
}

static void worker_free(worker *w) {
  if (!w->ready) return;
  sc_free(&w->s);
  lt_free(w->seq);
  lt_free(w->scratch);
  w->ready = 0;
}

static int do_item(worker *w, const lt_eval_data *d, const lt_eval_opts *o, raw *R, int i, lt_err *err) {
  const ev_item *it = &d->it[i];
  int rc = 0;
  if (d->task == LT_EVAL_PPL) {
    int from = -1;
    for (int t = 1; t < it->n && from < 0; t++)
      if (it->labels[t] != -100) from = t - 1;
    sum_ctx c = {it->ids, it->labels, it->n, 0, 0};
    if (from >= 0) {
      int last = it->n - 1;  // the last labelled target, predicted by the logits of position last - 1
      while (it->labels[last] == -100) last--;
      rc = sc_forward(&w->s, it->ids, last, from, sum_rows, &c, err);
    }
    R->nll[i] = -c.logp;
    R->cnt[i] = c.count;
  } else if (uses_generation(d, o)) {
    lt_sampling smp = {0, 0, 1, 1, 0};  // classify --by generate: greedy
    if (d->task == LT_EVAL_GENERATE)
      smp = (lt_sampling){o->temperature, 0, o->top_p > 0 ? o->top_p : 1.0f, 1.0f,
                          lt_rng_u64(o->seed, 0x6e6e7a11ull, (uint64_t)i)};
    rc = generate(&w->s, d, it, R->max_new, &smp, w->seq, w->scratch, R->gen + (int64_t)i * R->max_new,
                  &R->n_gen[i], err);
  } else {
    rc = score_cands(&w->s, it, w->seq, R->ll + (int64_t)i * R->K, err);
  }
  return rc ? lt_err_prefix(err, "%s: %s", d->dataset, it->origin) : 0;
}

static void progress(const lt_eval_opts *o, int done, int total) {
  if (o->progress) o->progress(o->progress_user, done, total);
}

// Phase 1 over every example. With T > 1 OpenMP threads and nested parallel regions inactive (the default), the
// examples are shared among T workers, each with its own KV cache, whose matrix products then run on one thread:
// for small models that beats splitting every product over the threads. Otherwise one worker runs them in order.
static int run_items(lt_model *m, const lt_eval_data *d, const lt_eval_opts *o, raw *R, int64_t *n_forward,
                     lt_err *err) {
  int T = omp_get_max_threads();
  if (T > 1 && (omp_get_max_active_levels() > 1 || d->n < 2 * T)) T = 1;
  if (lt_model_prepare(m, err)) return -1;  // the weight views, made once before workers share the model
  worker *W = calloc((size_t)T, sizeof *W);
  if (!W) return lt_errf(err, "out of memory");
  int rc = 0;
  if (T == 1) {
    rc = worker_init(&W[0], m, d, o, err);
    for (int i = 0; i < d->n && !rc; i++) {
      rc = do_item(&W[0], d, o, R, i, err);
      progress(o, i + 1, d->n);
    }
  } else {
    int done = 0, stop = 0, bad_at = d->n;
#pragma omp parallel num_threads(T)
    {
      worker *w = &W[omp_get_thread_num()];
      int ok = worker_init(w, m, d, o, &w->err) == 0;
      if (!ok) {
#pragma omp critical(lt_eval_err)
        {
          if (!stop) *err = w->err;
          stop = 1;
          bad_at = -1;
        }
      }
#pragma omp for schedule(dynamic, 4)
      for (int i = 0; i < d->n; i++) {
        int halt;
#pragma omp atomic read
        halt = stop;
        if (!ok || halt) continue;
        if (do_item(w, d, o, R, i, &w->err)) {
          ok = 0;
#pragma omp critical(lt_eval_err)
          {
            if (i < bad_at) {  // report the first failing example, as a sequential run would
              bad_at = i;
              *err = w->err;
            }
            stop = 1;
          }
        }
        int now;
#pragma omp atomic capture
        now = ++done;
        if (omp_get_thread_num() == 0) progress(o, now, d->n);
      }
    }
    rc = stop ? -1 : 0;
    if (!rc) progress(o, d->n, d->n);
  }
  for (int t = 0; t < T; t++) {
    *n_forward += W[t].s.n_forward;
    worker_free(&W[t]);
  }
  free(W);
  return rc;
}

// ---- phase 2: records and metrics ----

static int finish_ppl(const lt_eval_data *d, const raw *R, lt_eval_run *r, lt_err *err) {
  double total = 0;
  int64_t count = 0;
  int oom = 0;
  for (int i = 0; i < d->n; i++) {
    total += R->nll[i];
    count += R->cnt[i];
    cJSON *rec = obj_or_null(cJSON_CreateObject(), &oom);
    cJSON_AddItemToArray(r->records, rec);
    cJSON_AddNumberToObject(rec, "n_tokens", (double)R->cnt[i]);
    cJSON_AddNumberToObject(rec, "nll", R->nll[i]);
    if (R->cnt[i]) {
      cJSON_AddNumberToObject(rec, "loss", R->nll[i] / (double)R->cnt[i]);
      cJSON_AddNumberToObject(rec, "perplexity", exp(R->nll[i] / (double)R->cnt[i]));
    }
  }
  double ppl, loss;
  if (count == 0) return lt_errf(err, "%s: no token to score (every label is -100)", d->dataset);
  if (lt_perplexity(total, count, &ppl, &loss, err)) return -1;
  cJSON_AddNumberToObject(r->metrics, "loss", loss);
  cJSON_AddNumberToObject(r->metrics, "perplexity", ppl);
  cJSON_AddNumberToObject(r->metrics, "n_tokens", (double)count);
  return oom ? lt_errf(err, "out of memory") : 0;
}

// Python's str.strip() of s, malloc'd.
static char *py_strip(const char *s, lt_err *err) {
  const unsigned char *u = (const unsigned char *)s;
  size_t len = strlen(s), i = 0, start, end;
  uint32_t cp;
  while (i < len) {
    size_t k = lt_utf8_next(u + i, len - i, &cp);
    if (!k || !lt_py_isspace(cp)) break;
    i += k;
  }
  start = end = i;
  while (i < len) {
    size_t k = lt_utf8_next(u + i, len - i, &cp);
    if (!k) k = 1, cp = 0;
    i += k;
    if (!lt_py_isspace(cp)) end = i;
  }
  char *out = malloc(end - start + 1);
  if (!out) {
    lt_errf(err, "out of memory");
    return NULL;
  }
  memcpy(out, s + start, end - start);
  out[end - start] = 0;
  return out;
}

static char *decode_stripped(const lt_eval_data *d, const int32_t *ids, int n, lt_err *err) {
  char *text = NULL;
  size_t len = 0;
  if (lt_tokenizer_decode(d->tok, ids, n, 1, &text, &len, err)) return NULL;
  char *s = py_strip(text, err);
  free(text);
  return s;
}

static void add_classify_metrics(cJSON *m, const lt_classify_result *cr, char **labels, int n_labels, int *oom) {
  cJSON_AddNumberToObject(m, "accuracy", cr->accuracy);
  cJSON_AddNumberToObject(m, "macro_f1", cr->macro_f1);
  cJSON_AddNumberToObject(m, "micro_f1", cr->micro_f1);
  cJSON_AddNumberToObject(m, "macro_precision", cr->macro_precision);
  cJSON_AddNumberToObject(m, "macro_recall", cr->macro_recall);
  cJSON_AddNumberToObject(m, "n", (double)cr->n);
  cJSON_AddNumberToObject(m, "n_other", (double)cr->n_other);
  cJSON *pc = obj_or_null(cJSON_AddObjectToObject(m, "per_class"), oom);
  for (int k = 0; pc && k < n_labels; k++) {
    cJSON *e = obj_or_null(cJSON_AddObjectToObject(pc, labels[k]), oom);
    cJSON_AddNumberToObject(e, "precision", cr->precision[k]);
    cJSON_AddNumberToObject(e, "recall", cr->recall[k]);
    cJSON_AddNumberToObject(e, "f1", cr->f1[k]);
    cJSON_AddNumberToObject(e, "support", (double)cr->support[k]);
  }
  cJSON *cm = obj_or_null(cJSON_AddObjectToObject(m, "confusion_matrix"), oom);
  cJSON *jl = obj_or_null(cJSON_CreateStringArray((const char *const *)labels, n_labels), oom);
  cJSON_AddItemToObject(cm, "labels", jl);
  cJSON *mat = obj_or_null(cJSON_AddArrayToObject(cm, "matrix"), oom);
  for (int i = 0; mat && i < n_labels; i++) {
    cJSON *row = obj_or_null(cJSON_CreateArray(), oom);
    for (int j = 0; row && j < n_labels; j++)
      cJSON_AddItemToArray(row, cJSON_CreateNumber((double)cr->confusion[(int64_t)i * n_labels + j]));
    cJSON_AddItemToArray(mat, row);
  }
}

static int finish_classify(const lt_eval_data *d, const lt_eval_opts *o, const raw *R, lt_eval_run *r, lt_err *err) {
  int K = d->n_names, oom = 0, rc = -1;
  int32_t *y_true = malloc(sizeof(int32_t) * (size_t)d->n), *y_pred = malloc(sizeof(int32_t) * (size_t)d->n);
  char **stripped = calloc((size_t)K, sizeof *stripped);
  char *text = NULL;
  lt_classify_result cr;
  memset(&cr, 0, sizeof cr);
  if (!y_true || !y_pred || !stripped) {
    lt_errf(err, "out of memory");
    goto done;
  }
  for (int k = 0; k < K; k++)
    if (!(stripped[k] = py_strip(d->names[k], err))) goto done;
  for (int i = 0; i < d->n; i++) {
    const ev_item *it = &d->it[i];
    cJSON *rec = obj_or_null(cJSON_CreateObject(), &oom);
    cJSON_AddItemToArray(r->records, rec);
    y_true[i] = it->gold;
    y_pred[i] = -1;
    if (o->by_generate) {  // the generated text, stripped, must equal a (stripped) label
      if (!(text = decode_stripped(d, R->gen + (int64_t)i * R->max_new, R->n_gen[i], err))) {
        lt_err_prefix(err, "%s: %s", d->dataset, it->origin);
        goto done;
      }
      for (int k = 0; k < K && y_pred[i] < 0; k++)
        if (strcmp(stripped[k], text) == 0) y_pred[i] = k;
      cJSON_AddStringToObject(rec, "generated", text);
      free(text);
      text = NULL;
    } else {  // the most likely label (the first on ties)
      const double *ll = R->ll + (int64_t)i * R->K;
      int best = 0;
      for (int k = 1; k < K; k++)
        if (ll[k] > ll[best]) best = k;
      y_pred[i] = best;
      cJSON *sc = obj_or_null(cJSON_AddObjectToObject(rec, "scores"), &oom);
      for (int k = 0; sc && k < K; k++) cJSON_AddNumberToObject(sc, d->names[k], ll[k]);
    }
    cJSON_AddStringToObject(rec, "prediction", y_pred[i] >= 0 ? d->names[y_pred[i]] : "<other>");
    cJSON_AddBoolToObject(rec, "correct", y_pred[i] == y_true[i]);
  }
  if (lt_classify_metrics(y_true, y_pred, (size_t)d->n, K, &cr, err)) goto done;
  add_classify_metrics(r->metrics, &cr, d->names, K, &oom);
  rc = oom ? lt_errf(err, "out of memory") : 0;
done:
  lt_classify_result_free(&cr);
  for (int k = 0; stripped && k < K; k++) free(stripped[k]);
  free(stripped);
  free(text);
  free(y_true);
  free(y_pred);
  return rc;
}

static int finish_generate(const lt_eval_data *d, const lt_eval_opts *o, const raw *R, lt_eval_run *r, lt_err *err) {
  int oom = 0, rc = -1;
  char **preds = calloc((size_t)d->n, sizeof *preds);
  char **strip_ref = calloc((size_t)d->n, sizeof *strip_ref);
  const char **refs = calloc((size_t)d->n, sizeof *refs);
  lt_rouge_score *rl = calloc((size_t)d->n, sizeof *rl);
  lt_bleu_tokenizer *bt = NULL;
  if (!preds || !strip_ref || !refs || !rl) {
    lt_errf(err, "out of memory");
    goto done;
  }
  if (lt_bleu_tokenizer_new(&bt, o->bleu_tok, err)) goto done;
  for (int i = 0; i < d->n; i++) {
    const ev_item *it = &d->it[i];
    if (!(preds[i] = decode_stripped(d, R->gen + (int64_t)i * R->max_new, R->n_gen[i], err))) {
      lt_err_prefix(err, "%s: %s", d->dataset, it->origin);
      goto done;
    }
    refs[i] = it->gold_text;
    if (!(strip_ref[i] = py_strip(it->gold_text, err))) goto done;
  }
  lt_bleu_result bleu;
  lt_rouge_score mean;
  double em;
  const char *const *ref_streams[1] = {refs};
  if (lt_bleu_corpus((const char *const *)preds, ref_streams, 1, (size_t)d->n, o->bleu_tok, &bleu, err) ||
      lt_rouge_l_corpus((const char *const *)preds, ref_streams, 1, (size_t)d->n, 0, rl, &mean, err) ||
      lt_exact_match((const char *const *)preds, (const char *const *)strip_ref, (size_t)d->n, &em, err))
    goto done;
  for (int i = 0; i < d->n; i++) {
    lt_bleu_stats st;
    memset(&st, 0, sizeof st);
    lt_bleu_result sb;
    const char *one[1] = {refs[i]};
    if (lt_bleu_add_segment(bt, preds[i], one, 1, &st, err)) goto done;
    lt_bleu_compute(&st, &sb);
    cJSON *rec = obj_or_null(cJSON_CreateObject(), &oom);
    cJSON_AddItemToArray(r->records, rec);
    cJSON_AddStringToObject(rec, "prediction", preds[i]);
    cJSON *sc = obj_or_null(cJSON_AddObjectToObject(rec, "scores"), &oom);
    cJSON_AddNumberToObject(sc, "bleu", sb.score);
    cJSON_AddNumberToObject(sc, "rouge_l", rl[i].fmeasure);
    cJSON_AddBoolToObject(sc, "exact_match", strcmp(preds[i], strip_ref[i]) == 0);
  }
  cJSON_AddNumberToObject(r->metrics, "bleu", bleu.score);
  cJSON_AddNumberToObject(r->metrics, "rouge_l", mean.fmeasure);
  cJSON_AddNumberToObject(r->metrics, "exact_match", em);
  cJSON_AddNumberToObject(r->metrics, "n", (double)d->n);
  rc = oom ? lt_errf(err, "out of memory") : 0;
done:
  for (int i = 0; preds && i < d->n; i++) free(preds[i]);
  for (int i = 0; strip_ref && i < d->n; i++) free(strip_ref[i]);
  free(preds);
  free(strip_ref);
  free(refs);
  free(rl);
  lt_bleu_tokenizer_free(bt);
  return rc;
}

static int finish_mcq(const lt_eval_data *d, const raw *R, lt_eval_run *r, lt_err *err) {
  int S = d->n_names, oom = 0;
  int64_t *right = calloc((size_t)S, sizeof *right), *total = calloc((size_t)S, sizeof *total);
  if (!right || !total) {
    free(right);
    free(total);
    return lt_errf(err, "out of memory");
  }
  static const char *const letters[4] = {"A", "B", "C", "D"};
  for (int i = 0; i < d->n; i++) {
    const ev_item *it = &d->it[i];
    const double *ll = R->ll + (int64_t)i * R->K;
    int best = 0;
    for (int c = 1; c < 4; c++)
      if (ll[c] > ll[best]) best = c;
    total[it->subject]++;
    right[it->subject] += best == it->gold;
    cJSON *rec = obj_or_null(cJSON_CreateObject(), &oom);
    cJSON_AddItemToArray(r->records, rec);
    cJSON_AddStringToObject(rec, "prediction", letters[best]);
    cJSON *sc = obj_or_null(cJSON_AddObjectToObject(rec, "scores"), &oom);
    for (int c = 0; sc && c < 4; c++) cJSON_AddNumberToObject(sc, letters[c], ll[c]);
    cJSON_AddBoolToObject(rec, "correct", best == it->gold);
  }
  int64_t all_right = 0, all = 0;
  double macro = 0;
  int n_sub = 0;
  cJSON *ps = obj_or_null(cJSON_CreateObject(), &oom);
  for (int k = 0; k < S; k++) {
    all_right += right[k];
    all += total[k];
    if (!total[k]) continue;
    double acc = (double)right[k] / (double)total[k];
    macro += acc;
    n_sub++;
    cJSON *e = obj_or_null(cJSON_AddObjectToObject(ps, d->names[k]), &oom);
    cJSON_AddNumberToObject(e, "accuracy", acc);
    cJSON_AddNumberToObject(e, "n", (double)total[k]);
  }
  cJSON_AddNumberToObject(r->metrics, "accuracy", all ? (double)all_right / (double)all : 0.0);
  cJSON_AddNumberToObject(r->metrics, "macro_accuracy", n_sub ? macro / n_sub : 0.0);
  cJSON_AddNumberToObject(r->metrics, "n", (double)all);
  cJSON_AddItemToObject(r->metrics, "per_subject", ps);
  free(right);
  free(total);
  return oom ? lt_errf(err, "out of memory") : 0;
}

void lt_eval_run_free(lt_eval_run *r) {
  if (!r) return;
  cJSON_Delete(r->metrics);
  cJSON_Delete(r->records);
  memset(r, 0, sizeof *r);
}

int lt_eval_run_model(lt_model *m, const lt_eval_data *d, const lt_eval_opts *o, lt_eval_run *out, lt_err *err) {
  memset(out, 0, sizeof *out);
  double t0 = lt_now();
  raw R;
  memset(&R, 0, sizeof R);
  size_t n = (size_t)d->n;
  int rc = -1;
  if (d->task == LT_EVAL_PPL) {
    R.nll = calloc(n, sizeof *R.nll);
    R.cnt = calloc(n, sizeof *R.cnt);
  } else if (uses_generation(d, o)) {
    R.max_new = d->task == LT_EVAL_GENERATE ? (o->max_new_tokens > 0 ? o->max_new_tokens : GEN_DEFAULT_NEW)
                                            : d->max_cand + CLASSIFY_GEN_SLACK;
    R.gen = malloc(sizeof(int32_t) * n * (size_t)R.max_new);
    R.n_gen = calloc(n, sizeof *R.n_gen);
  } else {
    R.K = d->task == LT_EVAL_MCQ ? 4 : d->n_names;
    R.ll = calloc(n * (size_t)R.K, sizeof *R.ll);
  }
  out->metrics = cJSON_CreateObject();
  out->records = cJSON_CreateArray();
  if (!out->metrics || !out->records || (d->task == LT_EVAL_PPL && (!R.nll || !R.cnt)) ||
      (R.max_new && (!R.gen || !R.n_gen)) || (R.K && !R.ll)) {
    lt_errf(err, "out of memory for the results of %d examples", d->n);
    goto done;
  }
  if (run_items(m, d, o, &R, &out->n_forward, err)) goto done;
  switch (d->task) {
    case LT_EVAL_PPL: rc = finish_ppl(d, &R, out, err); break;
    case LT_EVAL_CLASSIFY: rc = finish_classify(d, o, &R, out, err); break;
    case LT_EVAL_GENERATE: rc = finish_generate(d, o, &R, out, err); break;
    default: rc = finish_mcq(d, &R, out, err); break;
  }
done:
  out->seconds = lt_now() - t0;
  free(R.nll);
  free(R.cnt);
  free(R.ll);
  free(R.gen);
  free(R.n_gen);
  if (rc) lt_eval_run_free(out);
  return rc;
}

// ---------------------------------------------------------------------------------------------------------------
// Output files

int lt_eval_out_paths(const char *out, char *results, size_t rcap, char *preds, size_t pcap, lt_err *err) {
  if (!out || !*out) out = ".";
  if (ends_with(out, ".json")) {
    if ((size_t)snprintf(results, rcap, "%s", out) >= rcap) return lt_errf(err, "%s: path too long", out);
    const char *slash = strrchr(out, '/');
    const char *base = slash ? slash + 1 : out;
    size_t dlen = slash ? (size_t)(slash - out) + 1 : 0, blen = strlen(base) - 5;
    if (blen == 0) return lt_errf(err, "%s: the results file needs a name before .json", out);
    int w = strcmp(base, "eval_results.json") == 0
                ? snprintf(preds, pcap, "%.*spredictions.jsonl", (int)dlen, out)
                : snprintf(preds, pcap, "%.*s%.*s_predictions.jsonl", (int)dlen, out, (int)blen, base);
    if (w < 0 || (size_t)w >= pcap) return lt_errf(err, "%s: path too long", out);
    return 0;
  }
  if (lt_path_join(results, rcap, out, "eval_results.json") || lt_path_join(preds, pcap, out, "predictions.jsonl"))
    return lt_errf(err, "%s: path too long", out);
  return 0;
}

// The directory part of path, created if missing.
static int make_parent(const char *path, lt_err *err) {
  const char *slash = strrchr(path, '/');
  if (!slash || slash == path) return 0;
  char dir[4096];
  size_t n = (size_t)(slash - path);
  if (n >= sizeof dir) return lt_errf(err, "%s: path too long", path);
  memcpy(dir, path, n);
  dir[n] = 0;
  return lt_mkdirs(dir, err);
}

// The data side of one predictions.jsonl line.
static cJSON *data_record(const lt_eval_data *d, int i) {
  const ev_item *it = &d->it[i];
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, "index", i);
  static const char *const letters[4] = {"A", "B", "C", "D"};
  switch (d->task) {
    case LT_EVAL_PPL: cJSON_AddStringToObject(o, "source", it->origin); break;
    case LT_EVAL_CLASSIFY:
      cJSON_AddStringToObject(o, "prompt", it->prompt_text);
      cJSON_AddStringToObject(o, "gold", d->names[it->gold]);
      break;
    case LT_EVAL_GENERATE:
      cJSON_AddStringToObject(o, "prompt", it->prompt_text);
      cJSON_AddStringToObject(o, "gold", it->gold_text);
      break;
    default:
      cJSON_AddStringToObject(o, "subject", d->names[it->subject]);
      cJSON_AddStringToObject(o, "prompt", it->prompt_text);
      cJSON_AddStringToObject(o, "gold", letters[it->gold & 3]);
      break;
  }
  return o;
}

int lt_eval_write(const char *results_path, const char *preds_path, const lt_eval_data *d, const char *model,
                  const char *const *names, const char *const *adapters, const lt_eval_run *runs, int n_runs,
                  double seconds, lt_err *err) {
  if (make_parent(results_path, err) || make_parent(preds_path, err)) return -1;
  lt_atomic_file af;
  if (lt_atomic_open(&af, preds_path, err)) return -1;
  int bad = 0;
  for (int i = 0; i < d->n && !bad; i++) {
    cJSON *line = data_record(d, i);
    if (!line) {
      bad = 1;
      break;
    }
    for (int r = 0; r < n_runs; r++) {
      cJSON *rec = cJSON_GetArrayItem(runs[r].records, i);
      cJSON *copy = rec ? cJSON_Duplicate(rec, 1) : cJSON_CreateObject();
      if (!copy) {
        bad = 1;
        break;
      }
      if (n_runs > 1) {
        cJSON_AddItemToObject(line, names[r], copy);
        continue;
      }
      cJSON *f = copy->child;
      while (f) {  // one run: its fields at the top level
        cJSON *next = f->next;
        cJSON_AddItemToObject(line, f->string, cJSON_DetachItemViaPointer(copy, f));
        f = next;
      }
      cJSON_Delete(copy);
    }
    char *s = bad ? NULL : cJSON_PrintUnformatted(line);
    cJSON_Delete(line);
    if (!s || fputs(s, af.fp) < 0 || fputc('\n', af.fp) == EOF) bad = 1;
    free(s);
  }
  if (bad) {
    lt_atomic_abort(&af);
    return lt_errf(err, "%s: out of memory or write error", preds_path);
  }
  if (lt_atomic_commit(&af, err)) return -1;
  cJSON *root = cJSON_CreateObject(), *jr = cJSON_CreateArray();
  if (!root || !jr) {
    cJSON_Delete(root);
    cJSON_Delete(jr);
    return lt_errf(err, "out of memory");
  }
  cJSON_AddStringToObject(root, "task", lt_eval_task_name(d->task));
  cJSON_AddStringToObject(root, "dataset", d->dataset);
  cJSON_AddStringToObject(root, "model", model ? model : "");
  cJSON_AddNumberToObject(root, "n_examples", d->n);
  if (d->n_truncated) cJSON_AddNumberToObject(root, "n_prompts_truncated", d->n_truncated);
  cJSON_AddNumberToObject(root, "seconds", seconds);
  cJSON_AddItemToObject(root, "runs", jr);
  for (int r = 0; r < n_runs; r++) {
    cJSON *e = cJSON_CreateObject();
    if (!e) break;
    cJSON_AddItemToArray(jr, e);
    cJSON_AddStringToObject(e, "name", names[r]);
    if (adapters[r]) cJSON_AddStringToObject(e, "adapter", adapters[r]);
    else cJSON_AddNullToObject(e, "adapter");
    cJSON_AddItemToObject(e, "metrics", cJSON_Duplicate(runs[r].metrics, 1));
  }
  char *s = cJSON_Print(root);
  cJSON_Delete(root);
  if (!s) return lt_errf(err, "out of memory");
  size_t len = strlen(s);
  char *t = realloc(s, len + 2);
  if (!t) {
    free(s);
    return lt_errf(err, "out of memory");
  }
  t[len] = '\n';
  t[len + 1] = 0;
  int rc = lt_write_file_atomic(results_path, t, len + 1, err);
  free(t);
  return rc;
}
