// Metrics against the Python references stored in tests/fixtures/metrics_ref.json (make_metrics_ref.py):
// sacrebleu tokenizations and corpus BLEU (13a, zh, none; one and two references; per-segment statistics),
// rouge-score ROUGE-L per pair and mean (with and without the Porter stemmer), nltk Porter stems, scikit-learn
// classification metrics; then the error paths and the text-file reader.
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/core.h"
#include "eval/metrics.h"
#include "test.h"

#define DIR LT_TMPDIR "/metrics"

static double max_rel = 0;  // worst relative difference seen on any floating-point value
static long n_values = 0;

static void check_num(double got, double want, const char *what, const char *name, long idx) {
  double d = fabs(got - want), rel = d / (fabs(want) > 1e-300 ? fabs(want) : 1.0);
  if (rel > max_rel) max_rel = rel;
  n_values++;
  CHECK_MSG(rel <= 1e-12, "%s %s[%ld]: got %.17g want %.17g", name, what, idx, got, want);
}

static void check_int(int64_t got, double want, const char *what, const char *name, long idx) {
  n_values++;
  CHECK_MSG((double)got == want, "%s %s[%ld]: got %lld want %.17g", name, what, idx, (long long)got, want);
}

static double num(const cJSON *a, int i) { return cJSON_GetArrayItem(a, i)->valuedouble; }

// JSON array of strings (null -> NULL); the pointers stay owned by the cJSON tree.
static const char **strings(const cJSON *arr, int *n) {
  *n = cJSON_GetArraySize(arr);
  const char **v = calloc((size_t)(*n ? *n : 1), sizeof *v);
  int i = 0;
  for (const cJSON *it = arr ? arr->child : NULL; it; it = it->next, i++) v[i] = cJSON_IsString(it) ? it->valuestring : NULL;
  return v;
}

// A case's inputs: inline hyps/refs or a named corpus with n_refs streams.
static int inputs(const cJSON *root, const cJSON *c, const char ***hyps, const char ****refs, int *n, int *n_refs) {
  const cJSON *h = cJSON_GetObjectItem(c, "hyps"), *r = cJSON_GetObjectItem(c, "refs");
  *n_refs = r ? cJSON_GetArraySize(r) : 0;
  const cJSON *corpus = cJSON_GetObjectItem(c, "corpus");
  if (corpus) {
    const cJSON *cp = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "corpora"), corpus->valuestring);
    h = cJSON_GetObjectItem(cp, "hyps");
    r = cJSON_GetObjectItem(cp, "refs");
    *n_refs = cJSON_GetObjectItem(c, "n_refs")->valueint;
  }
  *hyps = strings(h, n);
  *refs = calloc((size_t)*n_refs, sizeof **refs);
  for (int k = 0; k < *n_refs; k++) {
    int m;
    (*refs)[k] = strings(cJSON_GetArrayItem(r, k), &m);
    if (m != *n) return -1;
  }
  return 0;
}

static void free_inputs(const char **hyps, const char ***refs, int n_refs) {
  for (int k = 0; k < n_refs; k++) free(refs[k]);
  free(refs);
  free(hyps);
}

static void test_tokenize(const cJSON *root) {
  lt_err err;
  lt_bleu_tokenizer *t13, *tzh;
  CHECK(lt_bleu_tokenizer_new(&t13, LT_BLEU_TOK_13A, &err) == 0);
  CHECK(lt_bleu_tokenizer_new(&tzh, LT_BLEU_TOK_ZH, &err) == 0);
  int n = 0, bad = 0;
  for (const cJSON *it = cJSON_GetObjectItem(root, "tokenize")->child; it; it = it->next, n++) {
    const char *s = cJSON_GetArrayItem(it, 0)->valuestring;
    for (int k = 0; k < 2; k++) {
      char *o = NULL;
      int rc = lt_bleu_tokenize(k ? tzh : t13, s, &o, &err);
      const char *want = cJSON_GetArrayItem(it, 1 + k)->valuestring;
      int ok = rc == 0 && !strcmp(o, want);
      if (!ok && bad++ < 10)
        fprintf(stderr, "tokenize %s: \"%s\"\n  got  \"%s\"\n  want \"%s\"\n", k ? "zh" : "13a", s, rc ? err.msg : o,
                want);
      CHECK(ok);
      free(o);
    }
  }
  fprintf(stderr, "tokenize: %d strings x 2 tokenizers, %d mismatches\n", n, bad);
  lt_bleu_tokenizer_free(t13);
  lt_bleu_tokenizer_free(tzh);
}

static void test_bleu(const cJSON *root) {
  int n_cases = 0, n_segs = 0;
  for (const cJSON *c = cJSON_GetObjectItem(root, "bleu")->child; c; c = c->next, n_cases++) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    lt_err err;
    lt_bleu_tok tok;
    CHECK(lt_bleu_tok_parse(cJSON_GetObjectItem(c, "tokenize")->valuestring, &tok, &err) == 0);
    const char **hyps, ***refs;
    int n, nr;
    CHECK(inputs(root, c, &hyps, &refs, &n, &nr) == 0);
    lt_bleu_result b;
    int rc = lt_bleu_corpus(hyps, (const char *const *const *)refs, nr, (size_t)n, tok, &b, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    const cJSON *e = cJSON_GetObjectItem(c, "expect");
    check_num(b.score, cJSON_GetObjectItem(e, "score")->valuedouble, "score", name, 0);
    check_num(b.bp, cJSON_GetObjectItem(e, "bp")->valuedouble, "bp", name, 0);
    check_int(b.sys_len, cJSON_GetObjectItem(e, "sys_len")->valuedouble, "sys_len", name, 0);
    check_int(b.ref_len, cJSON_GetObjectItem(e, "ref_len")->valuedouble, "ref_len", name, 0);
    for (int k = 0; k < LT_BLEU_ORDER; k++) {
      check_num(b.precisions[k], num(cJSON_GetObjectItem(e, "precisions"), k), "precisions", name, k);
      check_int(b.counts[k], num(cJSON_GetObjectItem(e, "counts"), k), "counts", name, k);
      check_int(b.totals[k], num(cJSON_GetObjectItem(e, "totals"), k), "totals", name, k);
    }
    const cJSON *segs = cJSON_GetObjectItem(c, "segments");
    if (segs) {
      lt_bleu_tokenizer *t;
      CHECK(lt_bleu_tokenizer_new(&t, tok, &err) == 0);
      const char *seg_refs[8];
      int i = 0;
      for (const cJSON *s = segs->child; s; s = s->next, i++) {
        for (int k = 0; k < nr; k++) seg_refs[k] = refs[k][i];
        lt_bleu_stats st = {0};
        CHECK(lt_bleu_add_segment(t, hyps[i], seg_refs, nr, &st, &err) == 0);
        int64_t got[2 + 2 * LT_BLEU_ORDER] = {st.sys_len, st.ref_len};
        for (int k = 0; k < LT_BLEU_ORDER; k++) {
          got[2 + k] = st.correct[k];
          got[2 + LT_BLEU_ORDER + k] = st.total[k];
        }
        int same = 1;
        for (int k = 0; k < 2 + 2 * LT_BLEU_ORDER; k++) same &= (double)got[k] == num(s, k);
        CHECK_MSG(same, "%s segment %d (\"%s\"): statistics differ", name, i + 1, hyps[i]);
        n_segs++;
      }
      lt_bleu_tokenizer_free(t);
    }
    free_inputs(hyps, refs, nr);
  }
  fprintf(stderr, "bleu: %d corpora, %d segments\n", n_cases, n_segs);
}

static void test_rouge(const cJSON *root) {
  int pairs = 0;
  for (const cJSON *c = cJSON_GetObjectItem(root, "rouge")->child; c; c = c->next) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const char **hyps, ***refs;
    int n, nr;
    CHECK(inputs(root, c, &hyps, &refs, &n, &nr) == 0);
    lt_rouge_score *pp = calloc((size_t)n, sizeof *pp), mean;
    lt_err err;
    int rc = lt_rouge_l_corpus(hyps, (const char *const *const *)refs, nr, (size_t)n,
                               cJSON_IsTrue(cJSON_GetObjectItem(c, "use_stemmer")), pp, &mean, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    const cJSON *per = cJSON_GetObjectItem(c, "per_pair"), *m = cJSON_GetObjectItem(c, "mean");
    int i = 0;
    for (const cJSON *p = per->child; p; p = p->next, i++) {
      check_num(pp[i].precision, num(p, 0), "precision", name, i);
      check_num(pp[i].recall, num(p, 1), "recall", name, i);
      check_num(pp[i].fmeasure, num(p, 2), "fmeasure", name, i);
      pairs++;
    }
    check_num(mean.precision, num(m, 0), "mean precision", name, 0);
    check_num(mean.recall, num(m, 1), "mean recall", name, 0);
    check_num(mean.fmeasure, num(m, 2), "mean fmeasure", name, 0);
    free(pp);
    free_inputs(hyps, refs, nr);
  }
  fprintf(stderr, "rouge: %d pairs\n", pairs);
}

static void test_stems(const cJSON *root) {
  int n = 0, bad = 0;
  for (const cJSON *it = cJSON_GetObjectItem(root, "stems")->child; it; it = it->next, n++) {
    const char *w = cJSON_GetArrayItem(it, 0)->valuestring, *want = cJSON_GetArrayItem(it, 1)->valuestring;
    char out[256];
    lt_err err;
    int rc = lt_porter_stem(w, out, sizeof out, &err);
    int ok = rc == 0 && !strcmp(out, want);
    if (!ok && bad++ < 10) fprintf(stderr, "stem %s: got %s want %s\n", w, rc ? err.msg : out, want);
    CHECK(ok);
  }
  fprintf(stderr, "stems: %d words, %d mismatches\n", n, bad);
}

static int index_of(const cJSON *labels, const char *s) {
  int i = 0;
  for (const cJSON *it = labels->child; it; it = it->next, i++)
    if (!strcmp(it->valuestring, s)) return i;
  return -1;
}

static void test_classify(const cJSON *root) {
  int cases = 0;
  for (const cJSON *c = cJSON_GetObjectItem(root, "classify")->child; c; c = c->next, cases++) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const cJSON *labels = cJSON_GetObjectItem(c, "labels"), *yt = cJSON_GetObjectItem(c, "y_true"),
                *yp = cJSON_GetObjectItem(c, "y_pred"), *e = cJSON_GetObjectItem(c, "expect");
    int n = cJSON_GetArraySize(yt), k = cJSON_GetArraySize(labels);
    int32_t *t = malloc((size_t)n * sizeof *t), *p = malloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) {
      t[i] = index_of(labels, cJSON_GetArrayItem(yt, i)->valuestring);
      p[i] = index_of(labels, cJSON_GetArrayItem(yp, i)->valuestring);
    }
    lt_classify_result r;
    lt_err err;
    int rc = lt_classify_metrics(t, p, (size_t)n, k, &r, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    if (rc == 0) {
      check_num(r.accuracy, cJSON_GetObjectItem(e, "accuracy")->valuedouble, "accuracy", name, 0);
      for (int j = 0; j < k; j++) {
        check_num(r.precision[j], num(cJSON_GetObjectItem(e, "precision"), j), "precision", name, j);
        check_num(r.recall[j], num(cJSON_GetObjectItem(e, "recall"), j), "recall", name, j);
        check_num(r.f1[j], num(cJSON_GetObjectItem(e, "f1"), j), "f1", name, j);
        check_int(r.support[j], num(cJSON_GetObjectItem(e, "support"), j), "support", name, j);
        const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "confusion"), j);
        for (int q = 0; q < k; q++) check_int(r.confusion[j * k + q], num(row, q), "confusion", name, j * k + q);
      }
      const struct { const char *key; double p, r, f; } avg[] = {
          {"macro", r.macro_precision, r.macro_recall, r.macro_f1},
          {"micro", r.micro_precision, r.micro_recall, r.micro_f1},
          {"weighted", r.weighted_precision, r.weighted_recall, r.weighted_f1}};
      for (int a = 0; a < 3; a++) {
        const cJSON *v = cJSON_GetObjectItem(e, avg[a].key);
        check_num(avg[a].p, num(v, 0), avg[a].key, name, 0);
        check_num(avg[a].r, num(v, 1), avg[a].key, name, 1);
        check_num(avg[a].f, num(v, 2), avg[a].key, name, 2);
      }
      lt_classify_result_free(&r);
    }
    free(t);
    free(p);
  }
  fprintf(stderr, "classify: %d cases\n", cases);
}

static const char *put(const char *name, const char *text) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", DIR, name);
  lt_err err;
  CHECK(lt_write_file_atomic(path, text, strlen(text), &err) == 0);
  return path;
}

static void expect_read_err(const char *name, const char *text, const char *field, const char *needle) {
  const char *path = put(name, text);
  lt_texts t;
  lt_err err = {{0}};
  int rc = lt_texts_read(path, field, &t, &err);
  CHECK_MSG(rc == -1, "%s should fail", name);
  CHECK_MSG(strstr(err.msg, name) && strstr(err.msg, needle), "\"%s\" lacks the file name or \"%s\"", err.msg, needle);
  if (rc == 0) lt_texts_free(&t);
}

static void test_files(void) {
  lt_texts t;
  lt_err err;
  CHECK(lt_texts_read(put("a.txt", "one\r\ntwo\n\nfour"), NULL, &t, &err) == 0);
  CHECK(t.n == 4 && t.n_alt == 1 && !strcmp(t.s[0], "one") && !strcmp(t.s[1], "two") && !strcmp(t.s[2], "") &&
        !strcmp(t.s[3], "four"));
  lt_texts_free(&t);
  CHECK(lt_texts_read(put("b.jsonl", "{\"prediction\": \"x y\"}\n\n\"plain\"\n{\"label\": 3}\n"), NULL, &t, &err) == 0);
  CHECK(t.n == 3 && !strcmp(t.s[0], "x y") && !strcmp(t.s[1], "plain") && !strcmp(t.s[2], "3"));
  lt_texts_free(&t);
  CHECK(lt_texts_read(put("c.jsonl", "{\"ref\": [\"a\", \"b\"]}\n{\"ref\": [\"c\", null]}\n{\"ref\": \"d\"}\n"), "ref",
                      &t, &err) == 0);
  CHECK(t.n == 3 && t.n_alt == 2 && !strcmp(t.s[1], "b") && t.s[3] == NULL && !strcmp(t.s[4], "d") && !t.s[5]);
  lt_texts_free(&t);
  CHECK(lt_texts_read(put("d.json", "[{\"text\": \"p\"}, {\"text\": \"q\"}]"), NULL, &t, &err) == 0);
  CHECK(t.n == 2 && !strcmp(t.s[1], "q"));
  lt_texts_free(&t);
  expect_read_err("empty.txt", "", NULL, "empty file");
  expect_read_err("blank.jsonl", "\n\n", NULL, "no records");
  expect_read_err("bad.jsonl", "{\"text\": \"a\"}\n{nope\n", NULL, ":2: not valid JSON");
  expect_read_err("nofield.jsonl", "{\"text\": \"a\"}\n", "answer", "no \"answer\" field");
  expect_read_err("nodefault.jsonl", "{\"zzz\": \"a\"}\n", NULL, "name the field");
  expect_read_err("float.jsonl", "{\"label\": 1.5}\n", NULL, "not an integer");
  expect_read_err("utf8.txt", "ok\n\xff\xfe\n", NULL, ":2: invalid UTF-8");
  CHECK(lt_texts_read(DIR "/does-not-exist.txt", NULL, &t, &err) == -1);
}

static void test_errors(void) {
  lt_err err;
  lt_bleu_result b;
  const char *h[] = {"a b", "\xc3\x28"}, *r0[] = {"a b", "x"}, *rn[] = {NULL, "x"};
  const char *const *refs[] = {r0};
  const char *const *refs_null[] = {rn};
  CHECK(lt_bleu_corpus(h, refs, 1, 0, LT_BLEU_TOK_13A, &b, &err) == -1 && strstr(err.msg, "no segments"));
  CHECK(lt_bleu_corpus(h, refs, 1, 2, LT_BLEU_TOK_13A, &b, &err) == -1 && strstr(err.msg, "segment 2") &&
        strstr(err.msg, "UTF-8"));
  CHECK(lt_bleu_corpus(h, refs_null, 1, 1, LT_BLEU_TOK_13A, &b, &err) == -1 && strstr(err.msg, "missing"));
  lt_bleu_tok tok;
  CHECK(lt_bleu_tok_parse("intl", &tok, &err) == -1 && strstr(err.msg, "intl"));
  lt_rouge_score rs;
  CHECK(lt_rouge_l("ok", "\xe4\xb8", 0, &rs, &err) == -1 && strstr(err.msg, "prediction"));
  char out[4];
  CHECK(lt_porter_stem("running", out, sizeof out, &err) == -1);
  CHECK(lt_porter_stem("Running", (char[16]){0}, 16, &err) == -1);
  int32_t yt[] = {0, 1, 2}, yp[] = {0, 1, 1};
  lt_classify_result cr;
  CHECK(lt_classify_metrics(yt, yp, 3, 2, &cr, &err) == -1 && strstr(err.msg, "sample 3") &&
        strstr(err.msg, "not in the label set"));
  CHECK(lt_classify_metrics(yt, yp, 0, 3, &cr, &err) == -1 && strstr(err.msg, "no samples"));
  int32_t bad_pred[] = {0, -2, 1};
  CHECK(lt_classify_metrics(yt, bad_pred, 3, 3, &cr, &err) == -1);
  double em, ppl, mean;
  const char *p2[] = {"x", "y"}, *q2[] = {"x", "Y"};
  CHECK(lt_exact_match(p2, q2, 2, &em, &err) == 0 && em == 0.5);
  CHECK(lt_exact_match(p2, q2, 0, &em, &err) == -1);
  CHECK(lt_perplexity(20.0, 10, &ppl, &mean, &err) == 0 && mean == 2.0 && ppl == exp(2.0));
  CHECK(lt_perplexity(1.0, 0, &ppl, NULL, &err) == -1 && strstr(err.msg, "no scored tokens"));
  CHECK(lt_perplexity(NAN, 3, &ppl, NULL, &err) == -1);
  // numpy's summation order: [1, 1e-16 x 9] sums to 1.0000000000000007 in numpy (8 accumulators).
  double a[10] = {1};
  for (int i = 1; i < 10; i++) a[i] = 1e-16;
  CHECK(lt_np_sum(a, 10) == 1.0000000000000007);
  CHECK(lt_np_sum(a, 3) == 1.0);
}

int main(void) {
  mkdir(LT_TMPDIR, 0755);
  mkdir(DIR, 0755);
  char *data = NULL;
  size_t len = 0;
  lt_err err;
  if (lt_read_file(LT_FIXTURES "/metrics_ref.json", &data, &len, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  cJSON *root = cJSON_ParseWithLength(data, len);
  free(data);
  CHECK(root != NULL);
  if (root) {
    test_tokenize(root);
    test_bleu(root);
    test_rouge(root);
    test_stems(root);
    test_classify(root);
  }
  cJSON_Delete(root);
  test_files();
  test_errors();
  fprintf(stderr, "reference values compared: %ld, worst relative difference %.3g\n", n_values, max_rel);
  TEST_MAIN_END();
}
