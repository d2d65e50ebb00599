// lmtune metrics --task bleu|rouge|classify|exact --pred FILE --ref FILE [...]: metrics of predictions against
// references, printed as one JSON object (numbers printed to round-trip exactly).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "core/core.h"
#include "eval/metrics.h"


static const char USAGE[] =
    "usage: lmtune metrics --task bleu|rouge|classify|exact --pred FILE --ref FILE [options]\n"
    "\n"
    "  --task T           bleu: corpus BLEU as sacrebleu.corpus_bleu (BLEU-4, exp smoothing)\n"
    "                     rouge: ROUGE-L as rouge_score RougeScorer(['rougeL']), mean over pairs\n"
    "                     classify: accuracy, per-class/macro/micro/weighted P/R/F1, confusion matrix (scikit-learn)\n"
    "                     exact: exact-match rate\n"
    "  --pred FILE        predictions, one per line; .jsonl/.json: JSON strings or objects (see --pred-field)\n"
    "  --ref FILE         references, same layout; in JSON an array of strings gives several references\n"
    "  --tokenize T       BLEU tokenizer: 13a (default), zh (Chinese), none\n"
    "  --stemmer          ROUGE: Porter stemmer (use_stemmer=True)\n"
    "  --per-pair         ROUGE: also print [precision, recall, f] per pair\n"
    "  --labels a,b,...   classify: the label set in order (default: sorted labels seen in both files)\n"
    "  --allow-other      classify: predictions outside --labels count as wrong instead of being an error\n"
    "  --pred-field NAME  JSON member holding the prediction (default: first of prediction, pred, output, response,\n"
    "                     reference, ref, target, answer, label, text)\n"
    "  --ref-field NAME   JSON member holding the reference (same default list)\n";

static cJSON *num_array(const double *v, int n) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
  return a;
}

static cJSON *int_array(const int64_t *v, int n) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
  return a;
}

static int emit(cJSON *o) {
  char *s = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  if (!s) {
    fprintf(stderr, "lmtune metrics: out of memory\n");
    return LT_EXIT_FAIL;
  }
  printf("%s\n", s);
  free(s);
  return LT_EXIT_OK;
}

// refs as the library's stream layout: refs[r][i].
static const char *const **ref_streams(const lt_texts *ref) {
  const char ***streams = calloc((size_t)ref->n_alt, sizeof *streams);
  if (!streams) return NULL;
  for (int r = 0; r < ref->n_alt; r++) {
    streams[r] = malloc(ref->n * sizeof **streams);
    if (!streams[r]) {
      for (int q = 0; q < r; q++) free(streams[q]);
      free(streams);
      return NULL;
    }
    for (size_t i = 0; i < ref->n; i++) streams[r][i] = ref->s[i * (size_t)ref->n_alt + (size_t)r];
  }
  return (const char *const **)streams;
}

static void free_streams(const char *const **s, int n) {
  if (!s) return;
  for (int r = 0; r < n; r++) free((void *)s[r]);
  free((void *)s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_classify(const lt_texts *pred, const lt_texts *ref, const char *labels_arg, int allow_other) {
  size_t n = pred->n;
  char **labels = NULL;
  int nl = 0, rc = LT_EXIT_FAIL;
  char *lab_copy = NULL;
  int32_t *yt = malloc(n * sizeof *yt), *yp = malloc(n * sizeof *yp);
  if (!yt || !yp) goto oom;
  if (labels_arg) {
    lab_copy = strdup(labels_arg);
    if (!lab_copy) goto oom;
    size_t cap = 1;
    for (const char *p = labels_arg; *p; p++) cap += *p == ',';
    labels = calloc(cap, sizeof *labels);
    if (!labels) goto oom;
    char *save = NULL;
    for (char *tok = strtok_r(lab_copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
      for (int j = 0; j < nl; j++)
        if (!strcmp(labels[j], tok)) {
          fprintf(stderr, "lmtune metrics: --labels lists \"%s\" twice\n", tok);
          goto out;
        }
      labels[nl++] = tok;
    }
    if (nl == 0) {
      fprintf(stderr, "lmtune metrics: --labels is empty\n");
      rc = LT_EXIT_USAGE;
      goto out;
    }
  } else {
    // scikit-learn's default: the sorted union of the labels in y_true and y_pred (UTF-8 byte order is code point
    // order, as Python sorts str).
    labels = malloc(2 * n * sizeof *labels);
    if (!labels) goto oom;
    for (size_t i = 0; i < n; i++) {
      labels[2 * i] = ref->s[i * (size_t)ref->n_alt];
      labels[2 * i + 1] = pred->s[i * (size_t)pred->n_alt];
    }
    qsort(labels, 2 * n, sizeof *labels, cmp_str);
    for (size_t i = 0; i < 2 * n; i++)
      if (nl == 0 || strcmp(labels[nl - 1], labels[i])) labels[nl++] = labels[i];
  }
  for (size_t i = 0; i < n; i++) {
    const char *t = ref->s[i * (size_t)ref->n_alt], *p = pred->s[i * (size_t)pred->n_alt];
    yt[i] = yp[i] = -1;
    for (int j = 0; j < nl; j++) {
      if (!strcmp(labels[j], t)) yt[i] = j;
      if (!strcmp(labels[j], p)) yp[i] = j;
    }
    if (yt[i] < 0) {
      fprintf(stderr, "lmtune metrics: reference %zu: label \"%s\" is not in the label set\n", i + 1, t);
      goto out;
    }
    if (yp[i] < 0 && !allow_other) {
      fprintf(stderr,
              "lmtune metrics: prediction %zu: label \"%s\" is not in the label set (--allow-other counts it as "
              "wrong)\n",
              i + 1, p);
      goto out;
    }
  }
  lt_classify_result r;
  lt_err err;
  if (lt_classify_metrics(yt, yp, n, nl, &r, &err)) {
    rc = lt_cli_fail("metrics", &err);
    goto out;
  }
  cJSON *o = cJSON_CreateObject(), *lab = cJSON_CreateArray(), *pc = cJSON_CreateObject(), *cm = cJSON_CreateArray();
  if (o && lab && pc && cm) {
    cJSON_AddStringToObject(o, "task", "classify");
    cJSON_AddNumberToObject(o, "n", (double)r.n);
    for (int j = 0; j < nl; j++) cJSON_AddItemToArray(lab, cJSON_CreateString(labels[j]));
    cJSON_AddItemToObject(o, "labels", lab);
    lab = NULL;
    cJSON_AddNumberToObject(o, "accuracy", r.accuracy);
    cJSON_AddNumberToObject(o, "n_correct", (double)r.n_correct);
    cJSON_AddNumberToObject(o, "n_other", (double)r.n_other);
    for (int j = 0; j < nl; j++) {
      cJSON *c = cJSON_CreateObject();
      if (!c) continue;
      cJSON_AddNumberToObject(c, "precision", r.precision[j]);
      cJSON_AddNumberToObject(c, "recall", r.recall[j]);
      cJSON_AddNumberToObject(c, "f1", r.f1[j]);
      cJSON_AddNumberToObject(c, "support", (double)r.support[j]);
      cJSON_AddItemToObject(pc, labels[j], c);
    }
    cJSON_AddItemToObject(o, "per_class", pc);
    pc = NULL;
    const struct { const char *name; double p, r, f; } avg[] = {
        {"macro", r.macro_precision, r.macro_recall, r.macro_f1},
        {"micro", r.micro_precision, r.micro_recall, r.micro_f1},
        {"weighted", r.weighted_precision, r.weighted_recall, r.weighted_f1}};
    for (int a = 0; a < 3; a++) {
      cJSON *c = cJSON_CreateObject();
      if (!c) continue;
      cJSON_AddNumberToObject(c, "precision", avg[a].p);
      cJSON_AddNumberToObject(c, "recall", avg[a].r);
      cJSON_AddNumberToObject(c, "f1", avg[a].f);
      cJSON_AddItemToObject(o, avg[a].name, c);
    }
    cJSON_AddNumberToObject(o, "macro_f1", r.macro_f1);
    cJSON_AddNumberToObject(o, "micro_f1", r.micro_f1);
    for (int j = 0; j < nl; j++) cJSON_AddItemToArray(cm, int_array(r.confusion + (size_t)j * (size_t)nl, nl));
    cJSON_AddItemToObject(o, "confusion_matrix", cm);
    cm = NULL;
  } else {
    cJSON_Delete(o);
    o = NULL;
  }
  cJSON_Delete(lab);
  cJSON_Delete(pc);
  cJSON_Delete(cm);
  lt_classify_result_free(&r);
  rc = emit(o);
  goto out;
oom:
  fprintf(stderr, "lmtune metrics: out of memory\n");
out:
  free(yt);
  free(yp);
  free(labels);
  free(lab_copy);
  return rc;
}

int lt_cmd_metrics(int argc, char **argv) {
  const char *task = NULL, *pred_path = NULL, *ref_path = NULL, *tok_name = NULL, *stemmer = NULL, *per_pair = NULL,
             *labels = NULL, *allow_other = NULL, *pred_field = NULL, *ref_field = NULL, *help = NULL;
  lt_opt opts[] = {{"--task", 1, &task},           {"--pred", 1, &pred_path},      {"--ref", 1, &ref_path},
                   {"--tokenize", 1, &tok_name},   {"--stemmer", 0, &stemmer},     {"--per-pair", 0, &per_pair},
                   {"--labels", 1, &labels},       {"--allow-other", 0, &allow_other},
                   {"--pred-field", 1, &pred_field}, {"--ref-field", 1, &ref_field}, {"--help", 0, &help}};
  if (lt_cli_parse("metrics", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]))) return LT_EXIT_USAGE;
  if (help) {
    fputs(USAGE, stdout);
    return LT_EXIT_OK;
  }
  if (!task || !pred_path || !ref_path) {
    fprintf(stderr, "lmtune metrics: --task, --pred and --ref are required\n%s", USAGE);
    return LT_EXIT_USAGE;
  }
  int t_bleu = !strcmp(task, "bleu"), t_rouge = !strcmp(task, "rouge"), t_cls = !strcmp(task, "classify"),
      t_exact = !strcmp(task, "exact");
  if (!t_bleu && !t_rouge && !t_cls && !t_exact) {
    fprintf(stderr, "lmtune metrics: --task \"%s\": choose bleu, rouge, classify or exact\n", task);
    return LT_EXIT_USAGE;
  }
  lt_err err;
  lt_bleu_tok tok = LT_BLEU_TOK_13A;
  if (tok_name && lt_bleu_tok_parse(tok_name, &tok, &err)) {
    fprintf(stderr, "lmtune metrics: --tokenize: %s\n", err.msg);
    return LT_EXIT_USAGE;
  }
  if ((tok_name && !t_bleu) || ((stemmer || per_pair) && !t_rouge) || ((labels || allow_other) && !t_cls)) {
    fprintf(stderr, "lmtune metrics: an option does not apply to --task %s\n", task);
    return LT_EXIT_USAGE;
  }
  lt_texts pred = {0}, ref = {0};
  if (lt_texts_read(pred_path, pred_field, &pred, &err)) return lt_cli_fail("metrics", &err);
  if (lt_texts_read(ref_path, ref_field, &ref, &err)) {
    lt_texts_free(&pred);
    return lt_cli_fail("metrics", &err);
  }
  int rc = LT_EXIT_FAIL;
  const char *const **streams = NULL;
  const char **hyps = NULL;
  if (pred.n != ref.n) {
    fprintf(stderr, "lmtune metrics: %zu predictions (%s) but %zu references (%s)\n", pred.n, pred_path, ref.n,
            ref_path);
    goto out;
  }
  if (pred.n_alt != 1) {
    fprintf(stderr, "lmtune metrics: %s: one prediction per line expected, found arrays\n", pred_path);
    goto out;
  }
  for (size_t i = 0; i < ref.n; i++) {
    int have = 0;
    for (int a = 0; a < ref.n_alt; a++) have |= ref.s[i * (size_t)ref.n_alt + (size_t)a] != NULL;
    if (!have) {
      fprintf(stderr, "lmtune metrics: %s: record %zu has no reference\n", ref_path, i + 1);
      goto out;
    }
  }
  if (t_cls) {
    if (ref.n_alt != 1) {
      fprintf(stderr, "lmtune metrics: %s: classify takes one label per record\n", ref_path);
      goto out;
    }
    rc = run_classify(&pred, &ref, labels, allow_other != NULL);
    goto out;
  }
  hyps = malloc(pred.n * sizeof *hyps);
  streams = ref_streams(&ref);
  if (!hyps || !streams) {
    fprintf(stderr, "lmtune metrics: out of memory\n");
    goto out;
  }
  for (size_t i = 0; i < pred.n; i++) hyps[i] = pred.s[i];
  cJSON *o = cJSON_CreateObject();
  if (!o) {
    fprintf(stderr, "lmtune metrics: out of memory\n");
    goto out;
  }
  cJSON_AddStringToObject(o, "task", task);
  cJSON_AddNumberToObject(o, "n", (double)pred.n);
  cJSON_AddNumberToObject(o, "n_refs", ref.n_alt);
  if (t_bleu) {
    lt_bleu_result b;
    if (lt_bleu_corpus(hyps, streams, ref.n_alt, pred.n, tok, &b, &err)) {
      cJSON_Delete(o);
      rc = lt_cli_fail("metrics", &err);
      goto out;
    }
    cJSON_AddStringToObject(o, "tokenize", lt_bleu_tok_name(tok));
    cJSON_AddNumberToObject(o, "score", b.score);
    cJSON_AddItemToObject(o, "precisions", num_array(b.precisions, LT_BLEU_ORDER));
    cJSON_AddNumberToObject(o, "bp", b.bp);
    cJSON_AddNumberToObject(o, "sys_len", (double)b.sys_len);
    cJSON_AddNumberToObject(o, "ref_len", (double)b.ref_len);
    cJSON_AddNumberToObject(o, "ratio", b.ref_len ? (double)b.sys_len / (double)b.ref_len : 0.0);
    cJSON_AddItemToObject(o, "counts", int_array(b.counts, LT_BLEU_ORDER));
    cJSON_AddItemToObject(o, "totals", int_array(b.totals, LT_BLEU_ORDER));
  } else if (t_rouge) {
    lt_rouge_score *pp = per_pair ? malloc(pred.n * sizeof *pp) : NULL, mean;
    if (per_pair && !pp) {
      cJSON_Delete(o);
      fprintf(stderr, "lmtune metrics: out of memory\n");
      goto out;
    }
    if (lt_rouge_l_corpus(hyps, streams, ref.n_alt, pred.n, stemmer != NULL, pp, &mean, &err)) {
      free(pp);
      cJSON_Delete(o);
      rc = lt_cli_fail("metrics", &err);
      goto out;
    }
    cJSON_AddBoolToObject(o, "use_stemmer", stemmer != NULL);
    cJSON *m = cJSON_AddObjectToObject(o, "rougeL");
    if (m) {
      cJSON_AddNumberToObject(m, "precision", mean.precision);
      cJSON_AddNumberToObject(m, "recall", mean.recall);
      cJSON_AddNumberToObject(m, "fmeasure", mean.fmeasure);
    }
    if (pp) {
      cJSON *arr = cJSON_AddArrayToObject(o, "per_pair");
      for (size_t i = 0; arr && i < pred.n; i++) {
        double v[3] = {pp[i].precision, pp[i].recall, pp[i].fmeasure};
        cJSON_AddItemToArray(arr, num_array(v, 3));
      }
      free(pp);
    }
  }
  {
    // exact match: the prediction equals a reference byte for byte (any of them when there are several)
    double em;
    if (ref.n_alt == 1) {
      if (lt_exact_match(hyps, streams[0], pred.n, &em, &err)) {
        cJSON_Delete(o);
        rc = lt_cli_fail("metrics", &err);
        goto out;
      }
    } else {
      size_t hit = 0;
      for (size_t i = 0; i < pred.n; i++) {
        int h = 0;
        for (int r = 0; r < ref.n_alt && !h; r++) h = streams[r][i] && !strcmp(streams[r][i], hyps[i]);
        hit += (size_t)h;
      }
      em = (double)hit / (double)pred.n;
    }
    cJSON_AddNumberToObject(o, "exact_match", em);
  }
  rc = emit(o);
out:
  free(hyps);
  free_streams(streams, ref.n_alt);
  lt_texts_free(&pred);
  lt_texts_free(&ref);
  return rc;
}
