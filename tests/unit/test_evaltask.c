// lmtune eval library: the RFC 4180 CSV reader (quotes, doubled quotes, CRLF, embedded newlines, BOM, every error
// with file:line:column), MMLU / C-Eval / CMMLU files and the lm-evaluation-harness prompt, the data loaders' error
// paths, output paths, and whole runs on a fixture model with a character-level tokenizer made here: every score
// (read through the KV cache that keeps shared prefixes) must equal a plain full-sequence forward
// (lt_model_logits) and the perplexity the training loss path (lt_model_loss_sum), with and without an adapter.
#include <math.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/core.h"
#include "data/csv.h"
#include "eval/evaltask.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

#define DIR LT_TMPDIR "/evaltask"
#define FIX LT_FIXTURES "/eval"
#define MODEL_FIX LT_FIXTURES "/models/llama_mha_tied_f32"

static const char *put(const char *name, const char *text, size_t len) {
  static char path[4][512];
  static int k = 0;
  char *p = path[k++ & 3];
  snprintf(p, 512, "%s/%s", DIR, name);
  lt_err err;
  CHECK_MSG(lt_write_file_atomic(p, text, len, &err) == 0, "%s", err.msg);
  return p;
}
#define PUT(name, text) put((name), (text), strlen(text))

// ---------------------------------------------------------------------------------------------------------------
// CSV

static lt_csv parse_ok(const char *text, size_t len) {
  lt_csv c;
  lt_err err;
  int rc = lt_csv_parse(text, len, "t.csv", &c, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  return c;
}

static void field_is(const lt_csv *c, int r, int f, const char *want) {
  int have = r < c->n_rows && f < c->rows[r].n;
  CHECK_MSG(have && strcmp(c->rows[r].f[f], want) == 0, "row %d field %d: \"%s\" != \"%s\"", r, f,
            have ? c->rows[r].f[f] : "(missing)", want);
}

static void csv_err(const char *text, size_t len, const char *where, const char *what) {
  lt_csv c;
  lt_err err = {{0}};
  int rc = lt_csv_parse(text, len, "t.csv", &c, &err);
  CHECK_MSG(rc == -1 && c.n_rows == 0 && c.rows == NULL, "\"%s\" should fail", text);
  CHECK_MSG(strstr(err.msg, where) && strstr(err.msg, what), "\"%s\" lacks \"%s\" / \"%s\"", err.msg, where, what);
}

static void test_csv(void) {
  const char *t = "a,b,c\n1,2,3\n";
  lt_csv c = parse_ok(t, strlen(t));
  CHECK(c.n_rows == 2 && c.rows[0].n == 3 && c.rows[1].n == 3);
  field_is(&c, 0, 2, "c");
  field_is(&c, 1, 0, "1");
  CHECK(c.rows[1].line == 2 && c.rows[1].col[0] == 1 && c.rows[1].col[2] == 5);
  lt_csv_free(&c);

  // quotes with commas, doubled quotes, LF and CRLF inside quotes, CRLF records
  t = "\"x,y\",\"he said \"\"hi\"\"\",\"l1\nl2\",\"c1\r\nc2\"\r\nnext,\"\"\r\n";
  c = parse_ok(t, strlen(t));
  CHECK(c.n_rows == 2 && c.rows[0].n == 4 && c.rows[1].n == 2);
  field_is(&c, 0, 0, "x,y");
  field_is(&c, 0, 1, "he said \"hi\"");
  field_is(&c, 0, 2, "l1\nl2");
  field_is(&c, 0, 3, "c1\r\nc2");
  field_is(&c, 1, 0, "next");
  field_is(&c, 1, 1, "");
  CHECK(c.rows[0].line == 1 && c.rows[1].line == 4);
  CHECK(c.rows[0].fline[3] == 2 && c.rows[0].col[3] == 5);  // "c1 starts on line 2 after l2",
  lt_csv_free(&c);

  // BOM, blank lines (LF, CRLF), lone CR records, empty and trailing empty fields, no final newline
  t = "\xef\xbb\xbfq,a\n\n\r\n,,\rx,\ry";
  c = parse_ok(t, strlen(t));
  CHECK(c.n_rows == 4);
  field_is(&c, 0, 0, "q");
  CHECK(c.rows[0].col[0] == 1 && c.rows[1].line == 4 && c.rows[1].n == 3);
  field_is(&c, 1, 2, "");
  CHECK(c.rows[2].n == 2 && c.rows[3].n == 1 && c.rows[3].line == 6);
  field_is(&c, 2, 0, "x");
  field_is(&c, 2, 1, "");
  field_is(&c, 3, 0, "y");
  lt_csv_free(&c);

  // a quote inside an unquoted field is kept (as Python's csv module does); UTF-8 passes through
  t = "ab\"c,d\n\"\xc3\xa9t\xc3\xa9\",\xe4\xb8\xad\n";
  c = parse_ok(t, strlen(t));
  field_is(&c, 0, 0, "ab\"c");
  field_is(&c, 1, 0, "\xc3\xa9t\xc3\xa9");
  field_is(&c, 1, 1, "\xe4\xb8\xad");
  lt_csv_free(&c);

  c = parse_ok("", 0);
  CHECK(c.n_rows == 0);
  lt_csv_free(&c);
  c = parse_ok("\n\r\n", 3);
  CHECK(c.n_rows == 0);
  lt_csv_free(&c);

  csv_err("a,\"open\nb", 9, "t.csv:1:3", "no closing quote");
  csv_err("x\n\"ab\"x,c", 9, "t.csv:2:5", "after the closing quote");
  csv_err("a\0b", 3, "t.csv:1:2", "NUL");
  csv_err("ok\n\xff", 4, "t.csv:2:1", "UTF-8");
  csv_err("ok\n\xc3", 4, "t.csv:2:1", "UTF-8");  // truncated sequence at the end: never read past it

  lt_err err;
  CHECK(lt_csv_read(DIR "/missing.csv", &c, &err) == -1 && strstr(err.msg, "missing.csv"));
}

// ---------------------------------------------------------------------------------------------------------------
// MCQ files and prompts

static void mcq_err(const char *path, const char *a, const char *b) {
  lt_mcq_file f;
  lt_err err = {{0}};
  int rc = lt_mcq_read(path, &f, &err);
  CHECK_MSG(rc == -1 && f.q == NULL && f.n == 0, "%s should fail", path);
  CHECK_MSG(strstr(err.msg, a) && (!b || strstr(err.msg, b)), "\"%s\" lacks \"%s\" / \"%s\"", err.msg, a, b ? b : "");
}

static void test_mcq(void) {
  char s[64];
  lt_mcq_subject("x/y/abstract_algebra_test.csv", s, sizeof s);
  CHECK(strcmp(s, "abstract_algebra") == 0);
  lt_mcq_subject("computer_network_val.csv", s, sizeof s);
  CHECK(strcmp(s, "computer_network") == 0);
  lt_mcq_subject("d/anatomy_dev.csv", s, sizeof s);
  CHECK(strcmp(s, "anatomy") == 0);
  lt_mcq_subject("agronomy.csv", s, sizeof s);
  CHECK(strcmp(s, "agronomy") == 0);
  lt_mcq_subject("a_test.csv", s, 2);
  CHECK(strcmp(s, "a") == 0);

  lt_mcq_file f;
  lt_err err;
  CHECK_MSG(lt_mcq_read(FIX "/mmlu/test/astronomy_test.csv", &f, &err) == 0, "%s", err.msg);
  CHECK(f.n == 5 && strcmp(f.subject, "astronomy") == 0);
  const int answers[5] = {1, 2, 3, 1, 0};
  for (int i = 0; i < f.n && i < 5; i++) CHECK(f.q[i].answer == answers[i]);
  CHECK(f.n == 5 && strcmp(f.q[3].question, "A \"light-year\" measures what?") == 0 && f.q[3].line == 4);
  CHECK(f.n == 5 && strcmp(f.q[4].question, "  Which of these is a dwarf planet?\n(choose one)") == 0);
  CHECK(f.n == 5 && strcmp(f.q[2].question, "What is the main gas in the Sun, by mass?") == 0);
  CHECK(f.n == 5 && strcmp(f.q[2].choice[3], "Hydrogen") == 0);
  lt_mcq_free(&f);
  // C-Eval: id,question,A,B,C,D,answer,explanation (CRLF)
  CHECK_MSG(lt_mcq_read(FIX "/ceval_computer_network_val.csv", &f, &err) == 0, "%s", err.msg);
  CHECK(f.n == 3 && strcmp(f.subject, "ceval_computer_network") == 0 && f.q[0].answer == 3 && f.q[0].line == 2);
  CHECK(f.n == 3 && strcmp(f.q[1].choice[0], "300,000") == 0 && strcmp(f.q[1].question, "Speed of light in vacuum, "
                                                                       "approximately, in km/s?") == 0);
  lt_mcq_free(&f);
  // CMMLU: BOM, ,Question,A,B,C,D,Answer
  CHECK_MSG(lt_mcq_read(FIX "/cmmlu_astronomy.csv", &f, &err) == 0, "%s", err.msg);
  CHECK(f.n == 3 && f.q[2].answer == 3 && strcmp(f.q[0].choice[1], "Mercury") == 0);
  lt_mcq_free(&f);

  mcq_err(FIX "/bad_no_answer.csv", "bad_no_answer.csv:1:", "no \"answer\" column");
  mcq_err(FIX "/bad_short_row.csv", "bad_short_row.csv:2:", "column 6 (\"answer\") is missing");
  mcq_err(PUT("bad_answer.csv", "q,a,b,c,d,A\nq2,a,b,c,d, E \n"), "bad_answer.csv:2:12:", "one of A, B, C, D");
  mcq_err(PUT("header_only.csv", "question,A,B,C,D,answer\n"), "header_only.csv", "no questions");
  mcq_err(PUT("empty.csv", ""), "empty.csv", "empty");
  mcq_err(PUT("bad_quote.csv", "q,\"a,b,c,d,A\n"), "bad_quote.csv:1:3:", "no closing quote");

  // the harness prompt: description, k shots with their answers, the question ending in "Answer:"
  lt_mcq_question shot = {"  What? ", {"1", "2", "3", "4"}, 2, 1};
  lt_mcq_question q = {"\nWhy?\t", {"a", " b", "c ", "d"}, 0, 2};
  char *p;
  CHECK(lt_mcq_prompt("high_school_physics", &shot, 1, &q, &p, &err) == 0);
  const char *want =
      "The following are multiple choice questions (with answers) about high school physics.\n\n"
      "What?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: C\n\n"
      "Why?\nA. a\nB.  b\nC. c \nD. d\nAnswer:";
  CHECK_MSG(strcmp(p, want) == 0, "prompt:\n%s", p);
  free(p);
  CHECK(lt_mcq_prompt("x", NULL, 0, &q, &p, &err) == 0);
  CHECK(strcmp(p, "The following are multiple choice questions (with answers) about x.\n\nWhy?\nA. a\nB.  b\nC. c \n"
                  "D. d\nAnswer:") == 0);
  free(p);
}

// ---------------------------------------------------------------------------------------------------------------
// Data errors and output paths (no model needed)

static void load_err(lt_eval_opts *o, const char *a, const char *b) {
  lt_eval_data *d = NULL;
  lt_err err = {{0}};
  int rc = lt_eval_data_load(&d, o, &err);
  CHECK_MSG(rc == -1 && d == NULL, "%s should fail", o->dataset);
  CHECK_MSG(strstr(err.msg, a) && (!b || strstr(err.msg, b)), "\"%s\" lacks \"%s\" / \"%s\"", err.msg, a, b ? b : "");
}

static void test_errors(void) {
  lt_err err;
  lt_eval_task t;
  CHECK(lt_eval_task_parse("mcq", &t, &err) == 0 && t == LT_EVAL_MCQ);
  CHECK(lt_eval_task_parse("bleu", &t, &err) == -1 && strstr(err.msg, "ppl, classify, generate or mcq"));

  lt_eval_opts o;
  memset(&o, 0, sizeof o);
  o.task = LT_EVAL_CLASSIFY;
  o.tokenizer = DIR "/no_tokenizer";
  mkdir(DIR "/no_tokenizer", 0755);
  o.dataset = DIR "/nothing.json";
  load_err(&o, "nothing.json", "no such file");
  o.dataset = PUT("empty.jsonl", "");
  load_err(&o, "empty.jsonl", "empty");
  const char *data = PUT("mail.jsonl",
                         "{\"instruction\": \"Spam?\", \"input\": \"win cash\", \"output\": \"yes\"}\n"
                         "{\"instruction\": \"Spam?\", \"input\": \"lunch\", \"output\": \"no\"}\n"
                         "{\"instruction\": \"Spam?\", \"input\": \"hi\", \"output\": \"maybe\"}\n");
  o.dataset = data;
  o.labels = "yes, no";
  load_err(&o, "mail.jsonl: line 3:", "\"maybe\" is not in --labels (yes, no)");
  o.labels = "yes,,no";
  load_err(&o, "--labels", "empty label");
  o.labels = "yes,no,yes";
  load_err(&o, "--labels", "given twice");
  o.labels = NULL;  // labels from the data: fine, but there is no tokenizer in the folder
  load_err(&o, DIR "/no_tokenizer", "tokenizer");
  o.dataset = PUT("one_label.jsonl", "{\"instruction\": \"Spam?\", \"input\": \"a\", \"output\": \"yes\"}\n");
  load_err(&o, "one_label.jsonl", "at least two labels");
  o.dataset = PUT("no_answer.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
  load_err(&o, "no_answer.jsonl: line 1", "must end with an assistant turn");
  o.task = LT_EVAL_MCQ;
  o.dataset = FIX "/mmlu/test";
  o.shots = 2;
  load_err(&o, "--shots 2", "--dev");
  o.shots = -1;
  o.dev = DIR "/no_dev";
  load_err(&o, "no_dev", "no such file");

  char r[512], p[512];
  CHECK(lt_eval_out_paths("out/dir", r, sizeof r, p, sizeof p, &err) == 0);
  CHECK(strcmp(r, "out/dir/eval_results.json") == 0 && strcmp(p, "out/dir/predictions.jsonl") == 0);
  CHECK(lt_eval_out_paths("a/eval_results.json", r, sizeof r, p, sizeof p, &err) == 0);
  CHECK(strcmp(r, "a/eval_results.json") == 0 && strcmp(p, "a/predictions.jsonl") == 0);
  CHECK(lt_eval_out_paths("mmlu.json", r, sizeof r, p, sizeof p, &err) == 0);
  CHECK(strcmp(r, "mmlu.json") == 0 && strcmp(p, "mmlu_predictions.jsonl") == 0);
  CHECK(lt_eval_out_paths("a/.json", r, sizeof r, p, sizeof p, &err) == -1);
  CHECK(lt_eval_out_paths("a/b", r, 8, p, sizeof p, &err) == -1 && strstr(err.msg, "too long"));
}

// ---------------------------------------------------------------------------------------------------------------
// Whole runs on the fixture model (vocabulary 96) with a character-level tokenizer: id 0 "</s>", 1 "\n",
// 2 + (c - 32) for the printable characters ' '..'}'.

#define MODEL_DIR DIR "/model"
#define TEMPLATE "{% for m in messages %}{% if m['role'] == 'user' %}Q: {{ m['content'] }}\\nA:{% else %} " \
                 "{{ m['content'] }}{{ eos_token }}\\n{% endif %}{% endfor %}"

static int32_t char_id(char c) { return c == '\n' ? 1 : (int32_t)(c - 30); }

// Text (with "</s>" as the special token) -> ids.
static int encode_chars(const char *s, int32_t *out) {
  int n = 0;
  while (*s) {
    if (strncmp(s, "</s>", 4) == 0) {
      out[n++] = 0;
      s += 4;
    } else {
      out[n++] = char_id(*s++);
    }
  }
  return n;
}

static int make_model(void) {
  lt_err err;
  mkdir(MODEL_DIR, 0755);
  const char *files[] = {"config.json", "model.safetensors", "generation_config.json"};
  for (int i = 0; i < 3; i++) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/%s", MODEL_FIX, files[i]);
    snprintf(b, sizeof b, "%s/%s", MODEL_DIR, files[i]);
    if (lt_copy_file(a, b, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return -1;
    }
  }
  cJSON *vocab = cJSON_CreateObject();
  cJSON_AddNumberToObject(vocab, "\n", 1);
  for (int c = 32; c <= 125; c++) {
    char k[2] = {(char)c, 0};
    cJSON_AddNumberToObject(vocab, k, char_id((char)c));
  }
  cJSON *model = cJSON_CreateObject();
  cJSON_AddStringToObject(model, "type", "BPE");
  cJSON_AddItemToObject(model, "vocab", vocab);
  cJSON_AddItemToObject(model, "merges", cJSON_CreateArray());
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "version", "1.0");
  cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
  cJSON *eos = cJSON_CreateObject();
  cJSON_AddNumberToObject(eos, "id", 0);
  cJSON_AddStringToObject(eos, "content", "</s>");
  cJSON_AddFalseToObject(eos, "single_word");
  cJSON_AddFalseToObject(eos, "lstrip");
  cJSON_AddFalseToObject(eos, "rstrip");
  cJSON_AddFalseToObject(eos, "normalized");
  cJSON_AddTrueToObject(eos, "special");
  cJSON_AddItemToArray(added, eos);
  cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
  cJSON_AddStringToObject(dec, "type", "Fuse");
  cJSON_AddItemToObject(root, "model", model);
  char *js = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  int rc = lt_write_file_atomic(MODEL_DIR "/tokenizer.json", js, strlen(js), &err);
  free(js);
  const char *cfg = "{\"eos_token\": \"</s>\", \"tokenizer_class\": \"PreTrainedTokenizerFast\", \"chat_template\": \""
                    TEMPLATE "\"}";
  if (rc || lt_write_file_atomic(MODEL_DIR "/tokenizer_config.json", cfg, strlen(cfg), &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  return 0;
}

// log p(cont | prompt) by one plain forward over the whole sequence.
static double full_loglik(lt_model *m, const int32_t *prompt, int np, const int32_t *cont, int nc) {
  int32_t ids[512];
  int n = np + nc, V = 96;
  memcpy(ids, prompt, sizeof(int32_t) * (size_t)np);
  memcpy(ids + np, cont, sizeof(int32_t) * (size_t)nc);
  float *logits = malloc(sizeof(float) * (size_t)n * V);
  lt_err err;
  double s = 0;
  if (lt_model_logits(m, ids, n, logits, &err) == 0) {
    for (int t = np; t < n; t++) {
      const float *x = logits + (int64_t)(t - 1) * V;
      double mx = x[0], z = 0;
      for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
      for (int v = 0; v < V; v++) z += exp(x[v] - mx);
      s += x[ids[t]] - mx - log(z);
    }
  } else {
    CHECK_MSG(0, "%s", err.msg);
  }
  free(logits);
  return s;
}

static double rec_num(const lt_eval_run *r, int i, const char *obj, const char *key) {
  const cJSON *o = cJSON_GetArrayItem(r->records, i);
  if (obj) o = cJSON_GetObjectItemCaseSensitive(o, obj);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *rec_str(const lt_eval_run *r, int i, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r->records, i), key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

#define REL_OK(a, b) (fabs((a) - (b)) <= 1e-4 * fabs(b) + 1e-6)

static const char *const TEXTS[4] = {"win cash now", "lunch at noon", "cheap pills", "see you later"};
static const char *const GOLD[4] = {"yes", "no", "yes", "no"};

static void check_classify(lt_model *m, const lt_eval_opts *o) {
  lt_eval_data *d;
  lt_eval_run r;
  lt_err err;
  if (lt_eval_data_load(&d, o, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  CHECK(lt_eval_data_size(d) == 4 && lt_eval_data_n_names(d) == 2 && strcmp(lt_eval_data_name(d, 0), "no") == 0);
  if (lt_eval_run_model(m, d, o, &r, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    lt_eval_data_free(d);
    return;
  }
  int right = 0;
  for (int i = 0; i < 4; i++) {
    char prompt[128];
    int32_t p[128], c[16];
    snprintf(prompt, sizeof prompt, "Q: Spam?\n%s\nA:", TEXTS[i]);
    int np = encode_chars(prompt, p);
    double best = -INFINITY;
    const char *pred = NULL;
    for (int k = 0; k < 2; k++) {
      const char *lab = k ? "yes" : "no";
      char resp[32];
      snprintf(resp, sizeof resp, " %s</s>\n", lab);
      int nc = encode_chars(resp, c);
      double want = full_loglik(m, p, np, c, nc), got = rec_num(&r, i, "scores", lab);
      CHECK_MSG(REL_OK(got, want), "example %d label %s: %.8f vs %.8f", i, lab, got, want);
      if (want > best) best = want, pred = lab;
    }
    CHECK_MSG(pred && strcmp(rec_str(&r, i, "prediction"), pred) == 0, "example %d: %s vs %s", i,
              rec_str(&r, i, "prediction"), pred ? pred : "");
    right += pred && strcmp(pred, GOLD[i]) == 0;
  }
  const cJSON *acc = cJSON_GetObjectItemCaseSensitive(r.metrics, "accuracy");
  CHECK(cJSON_IsNumber(acc) && acc->valuedouble == right / 4.0);
  const cJSON *cm = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.metrics, "confusion_matrix"),
                                                     "matrix");
  CHECK(cJSON_GetArraySize(cm) == 2);
  // the files: one run, predictions first, the schema's keys
  const char *names[1] = {"base"}, *adapters[1] = {NULL};
  CHECK_MSG(lt_eval_write(DIR "/out/eval_results.json", DIR "/out/predictions.jsonl", d, MODEL_DIR, names, adapters, &r,
                          1, 1.5, &err) == 0, "%s", err.msg);
  char *text;
  size_t len;
  if (lt_read_file(DIR "/out/eval_results.json", &text, &len, &err) == 0) {
    cJSON *j = cJSON_Parse(text);
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(j, "runs");
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(j, "task")->valuestring, "classify") == 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "n_examples")->valuedouble == 4);
    CHECK(cJSON_GetArraySize(runs) == 1 && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(runs, 0),
                                                                                            "adapter")));
    cJSON_Delete(j);
    free(text);
  }
  if (lt_read_file(DIR "/out/predictions.jsonl", &text, &len, &err) == 0) {
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    CHECK(lines == 4 && strstr(text, "\"gold\":\"yes\"") && strstr(text, "\"prompt\":\"Spam?\\nwin cash now\""));
    free(text);
  }
  lt_eval_run_free(&r);
  lt_eval_data_free(d);
}

static void check_generate(lt_model *m, lt_eval_opts o, int by_generate) {
  lt_eval_data *d;
  lt_eval_run r;
  lt_err err;
  o.task = by_generate ? LT_EVAL_CLASSIFY : LT_EVAL_GENERATE;
  o.by_generate = by_generate;
  o.max_new_tokens = 6;
  if (lt_eval_data_load(&d, &o, &err) || lt_eval_run_model(m, d, &o, &r, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  lt_tokenizer *tok;
  CHECK(lt_tokenizer_load(&tok, MODEL_DIR, &err) == 0);
  lt_sampling greedy = {0, 0, 1, 1, 0};
  for (int i = 0; i < 4; i++) {
    char prompt[128];
    int32_t p[128], out[16];
    snprintf(prompt, sizeof prompt, "Q: Spam?\n%s\nA:", TEXTS[i]);
    int np = encode_chars(prompt, p), n = 0;
    // by generate: max new = the longest label (" yes</s>\n": 6 tokens) + 4
    CHECK(lt_generate(m, p, np, by_generate ? 10 : 6, &greedy, out, &n, &err) == 0);
    char *text;
    size_t len;
    CHECK(lt_tokenizer_decode(tok, out, n, 1, &text, &len, &err) == 0);
    char *s = text, *e = text + len;  // the fixture's text is ASCII: strip ASCII whitespace
    while (*s == ' ' || *s == '\n') s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n')) e--;
    *e = 0;
    CHECK_MSG(strcmp(rec_str(&r, i, by_generate ? "generated" : "prediction"), s) == 0, "example %d: \"%s\" vs \"%s\"",
              i, rec_str(&r, i, by_generate ? "generated" : "prediction"), s);
    if (by_generate) {
      const char *want = strcmp(s, "yes") == 0 ? "yes" : strcmp(s, "no") == 0 ? "no" : "<other>";
      CHECK(strcmp(rec_str(&r, i, "prediction"), want) == 0);
    }
    free(text);
  }
  lt_tokenizer_free(tok);
  lt_eval_run_free(&r);
  lt_eval_data_free(d);
}

static void check_ppl(lt_model *m) {
  const char *path = PUT("ids.jsonl", "{\"input_ids\": [5, 9, 17, 3, 44, 60, 2]}\n"
                                      "{\"input_ids\": [5, 9, 17, 8], \"labels\": [-100, -100, 17, 8]}\n"
                                      "{\"input_ids\": [70, 71, 72, 73, 74, 75, 76, 77, 78]}\n");
  lt_eval_opts o;
  memset(&o, 0, sizeof o);
  o.task = LT_EVAL_PPL;
  o.dataset = path;
  o.vocab = 96;
  lt_eval_data *d;
  lt_eval_run r;
  lt_err err;
  if (lt_eval_data_load(&d, &o, &err) || lt_eval_run_model(m, d, &o, &r, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  // the training loss path, one example at a time
  const int32_t a[] = {5, 9, 17, 3, 44, 60, 2}, b[] = {5, 9, 17, 8}, bl[] = {-100, -100, 17, 8},
                c[] = {70, 71, 72, 73, 74, 75, 76, 77, 78};
  double s1, s2, s3;
  int n1, n2, n3;
  CHECK(lt_model_loss_sum(m, a, NULL, a, 1, 7, 0, 1.0, &s1, &n1, &err) == 0);
  CHECK(lt_model_loss_sum(m, b, NULL, bl, 1, 4, 0, 1.0, &s2, &n2, &err) == 0);
  CHECK(lt_model_loss_sum(m, c, NULL, c, 1, 9, 0, 1.0, &s3, &n3, &err) == 0);
  CHECK(n1 == 6 && n2 == 2 && n3 == 8);
  double loss = (s1 + s2 + s3) / (n1 + n2 + n3);
  const cJSON *jl = cJSON_GetObjectItemCaseSensitive(r.metrics, "loss");
  const cJSON *jp = cJSON_GetObjectItemCaseSensitive(r.metrics, "perplexity");
  const cJSON *jn = cJSON_GetObjectItemCaseSensitive(r.metrics, "n_tokens");
  CHECK(cJSON_IsNumber(jn) && jn->valuedouble == 16);
  CHECK_MSG(cJSON_IsNumber(jl) && REL_OK(jl->valuedouble, loss), "loss %g vs %g", jl ? jl->valuedouble : NAN, loss);
  CHECK(cJSON_IsNumber(jp) && REL_OK(jp->valuedouble, exp(loss)));
  CHECK(REL_OK(rec_num(&r, 1, NULL, "nll"), s2) && rec_num(&r, 1, NULL, "n_tokens") == 2);
  lt_eval_run_free(&r);
  lt_eval_data_free(d);
}

static void check_mcq(lt_model *m) {
  PUT("mcq/facts_test.csv", "\"What is 2+2, said \"\"Bob\"\"?\",3,4,5,6,B\r\nSky colour?,red,blue,green,grey,B\r\n"
                             "Which is a fruit?,apple,stone,iron,glass,A\r\n");
  PUT("mcq/facts_dev.csv", "Ice is?,hot,cold,loud,sweet,B\n1+1?,2,3,4,5,A\n");
  lt_eval_opts o;
  memset(&o, 0, sizeof o);
  o.task = LT_EVAL_MCQ;
  o.dataset = DIR "/mcq/facts_test.csv";
  o.dev = DIR "/mcq";
  o.shots = 2;
  o.tokenizer = MODEL_DIR;
  o.vocab = 96;
  lt_eval_data *d;
  lt_eval_run r;
  lt_err err;
  if (lt_eval_data_load(&d, &o, &err) || lt_eval_run_model(m, d, &o, &r, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  const char *shots = "The following are multiple choice questions (with answers) about facts.\n\n"
                      "Ice is?\nA. hot\nB. cold\nC. loud\nD. sweet\nAnswer: B\n\n"
                      "1+1?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer: A\n\n";
  const char *qs[3] = {"What is 2+2, said \"Bob\"?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:",
                       "Sky colour?\nA. red\nB. blue\nC. green\nD. grey\nAnswer:",
                       "Which is a fruit?\nA. apple\nB. stone\nC. iron\nD. glass\nAnswer:"};
  int right = 0;
  for (int i = 0; i < 3; i++) {
    char ctx[1024];
    int32_t p[1024], cont[2];
    snprintf(ctx, sizeof ctx, "%s%s", shots, qs[i]);
    int np = encode_chars(ctx, p), best = 0;
    double ll[4];
    for (int k = 0; k < 4; k++) {
      cont[0] = char_id(' ');
      cont[1] = char_id((char)('A' + k));
      ll[k] = full_loglik(m, p, np, cont, 2);
      char key[2] = {(char)('A' + k), 0};
      double got = rec_num(&r, i, "scores", key);
      CHECK_MSG(REL_OK(got, ll[k]), "question %d choice %c: %.8f vs %.8f", i, 'A' + k, got, ll[k]);
      if (ll[k] > ll[best]) best = k;
    }
    char want[2] = {(char)('A' + best), 0};
    CHECK(strcmp(rec_str(&r, i, "prediction"), want) == 0);
    right += best == (i == 2 ? 0 : 1);
  }
  const cJSON *acc = cJSON_GetObjectItemCaseSensitive(r.metrics, "accuracy");
  CHECK(cJSON_IsNumber(acc) && fabs(acc->valuedouble - right / 3.0) < 1e-12);
  const cJSON *ps = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.metrics, "per_subject"),
                                                     "facts");
  CHECK(ps && cJSON_GetObjectItemCaseSensitive(ps, "n")->valuedouble == 3);
  lt_eval_run_free(&r);
  lt_eval_data_free(d);
  // a dev directory without the subject's file
  o.dev = FIX "/mmlu/dev";
  load_err(&o, "no dev file for subject \"facts\"", NULL);
  o.dev = DIR "/mcq/facts_dev.csv";  // a dev file: used for every subject; 2 examples < 5 shots
  o.shots = 5;
  load_err(&o, "facts_dev.csv", "fewer than --shots 5");
}

static void test_runs(void) {
  if (make_model()) {
    CHECK_MSG(0, "could not make the test model");
    return;
  }
  lt_model *m;
  lt_err err;
  if (lt_model_load(&m, MODEL_DIR, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  char lines[1024] = "";
  for (int i = 0; i < 4; i++) {
    char l[200];
    snprintf(l, sizeof l, "{\"instruction\": \"Spam?\", \"input\": \"%s\", \"output\": \"%s\"}\n", TEXTS[i], GOLD[i]);
    strcat(lines, l);
  }
  lt_eval_opts o;
  memset(&o, 0, sizeof o);
  o.task = LT_EVAL_CLASSIFY;
  o.dataset = PUT("cls.jsonl", lines);
  o.tokenizer = MODEL_DIR;
  o.vocab = 96;
  check_classify(m, &o);
  check_generate(m, o, 0);
  check_generate(m, o, 1);
  check_ppl(m);
  check_mcq(m);
  // the same with the fixture's adapter (LoRA on q_proj, v_proj)
  CHECK_MSG(lt_model_load_adapter(m, MODEL_FIX "/adapter", &err) == 0, "%s", err.msg);
  check_classify(m, &o);
  check_generate(m, o, 0);
  check_ppl(m);
  check_mcq(m);
  lt_model_free(m);
}

int main(void) {
  mkdir(LT_TMPDIR, 0755);
  mkdir(DIR, 0755);
  mkdir(DIR "/mcq", 0755);
  test_csv();
  test_mcq();
  test_errors();
  test_runs();
  TEST_MAIN_END();
}
