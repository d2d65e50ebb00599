// The training loop on a tiny fixture: loss falls on a memorisation task; an interrupted + resumed run ends with
// byte-identical weights (LoRA with dropout and gradient accumulation; full and freeze); data, config and
// output-directory errors; the TensorBoard record framing and CRC32C.
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "data/data.h"
#include "test.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

#define FIX LT_FIXTURES "/models"
#define TMP LT_TMPDIR "/trainer"

typedef struct {
  volatile sig_atomic_t *stop;
  int64_t stop_at;
  double losses[256];
  int n;
  char msgs[4096];
} hook_state;

static void on_progress(void *ud, const lt_train_progress *p) {
  hook_state *h = ud;
  if (h->n < 256) h->losses[h->n++] = p->loss;
  if (h->stop && h->stop_at > 0 && p->step == h->stop_at) *h->stop = 1;
}

static void on_message(void *ud, const char *msg) {
  hook_state *h = ud;
  size_t n = strlen(h->msgs);
  snprintf(h->msgs + n, sizeof h->msgs - n, "%s\n", msg);
}

static void rmtree(const char *p) {
  lt_err e;
  lt_remove_tree(p, &e);
}

static char *slurp(const char *path, size_t *len) {
  char *d = NULL;
  lt_err e;
  if (lt_read_file(path, &d, len, &e)) return NULL;
  return d;
}

static int same_file(const char *a, const char *b) {
  size_t na, nb;
  char *x = slurp(a, &na), *y = slurp(b, &nb);
  int same = x && y && na == nb && memcmp(x, y, na) == 0;
  free(x);
  free(y);
  return same;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  fputs(text, f);
  fclose(f);
}

// n examples of lengths 5..11 over a vocabulary of 96, the first 2 positions of each without labels
static void make_data(lt_dataset *d, int n, uint64_t seed) {
  lt_err err;
  memset(d, 0, sizeof *d);
  for (int i = 0; i < n; i++) {
    int len = 5 + (int)(lt_rng_u64(seed, 1, (uint64_t)i) % 7);
    int32_t ids[16], lab[16];
    for (int k = 0; k < len; k++) {
      ids[k] = 3 + (int32_t)(lt_rng_u64(seed, 2 + (uint64_t)i, (uint64_t)k) % 90);
      lab[k] = k < 2 ? -100 : ids[k];
    }
    CHECK(lt_dataset_add(d, ids, lab, NULL, len, i + 1, &err) == 0);
  }
}

static void base_args(lt_train_args *a, const char *out) {
  lt_err err;
  lt_train_args_default(a);
  snprintf(a->model_name_or_path, sizeof a->model_name_or_path, "%s", FIX "/llama_mha_tied_f32");
  snprintf(a->output_dir, sizeof a->output_dir, "%s", out);
  CHECK(lt_train_args_set(a, "lora_rank", "4", &err) == 0);
  CHECK(lt_train_args_set(a, "lora_target", "all", &err) == 0);
  CHECK(lt_train_args_set(a, "per_device_train_batch_size", "2", &err) == 0);
  CHECK(lt_train_args_set(a, "learning_rate", "5e-3", &err) == 0);
  CHECK(lt_train_args_set(a, "logging_steps", "1", &err) == 0);
  CHECK(lt_train_args_set(a, "save_steps", "0", &err) == 0);
  a->report_to_tensorboard = 1;
}

static void test_memorise(void) {
  lt_train_args a;
  base_args(&a, TMP "/mem");
  rmtree(TMP "/mem");
  lt_err err;
  CHECK(lt_train_args_set(&a, "max_steps", "40", &err) == 0);
  CHECK(lt_train_args_set(&a, "learning_rate", "2e-2", &err) == 0);
  CHECK(lt_train_args_set(&a, "lr_scheduler_type", "constant", &err) == 0);
  lt_dataset d;
  make_data(&d, 4, 7);
  hook_state h = {0};
  lt_train_hooks hooks = {&h, on_progress, NULL, on_message};
  lt_train_result res;
  int rc = lt_train(&a, &d, NULL, &hooks, NULL, &res, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  CHECK(res.completed && res.global_step == 40);
  CHECK_MSG(h.n == 40 && h.losses[39] < 0.5 * h.losses[0], "loss %g -> %g", h.losses[0], h.losses[h.n ? h.n - 1 : 0]);
  // the outputs of a finished run
  static const char *const files[] = {"adapter_config.json", "adapter_model.safetensors", "trainer_state.json",
                                      "metrics.jsonl", "training_loss.svg", "training_args.yaml",
                                      "train_results.json", "all_results.json"};
  for (int i = 0; i < 8; i++) {
    char p[512];
    snprintf(p, sizeof p, TMP "/mem/%s", files[i]);
    CHECK_MSG(lt_file_exists(p), "missing %s", p);
  }
  lt_trainer_state st;
  CHECK(lt_state_read(&st, TMP "/mem/trainer_state.json", &err) == 0);
  CHECK(st.global_step == 40 && cJSON_GetArraySize(st.log_history) == 41);
  const cJSON *e0 = cJSON_GetArrayItem(st.log_history, 0);
  CHECK(cJSON_IsNumber(cJSON_GetObjectItem(e0, "loss")) && cJSON_IsNumber(cJSON_GetObjectItem(e0, "grad_norm")));
  CHECK_NEAR(cJSON_GetObjectItem(e0, "learning_rate")->valuedouble, 2e-2, 1e-12);
  CHECK_NEAR(cJSON_GetObjectItem(e0, "epoch")->valuedouble, 0.5, 1e-12);  // 4 examples / batch 2: 2 steps an epoch
  lt_state_free(&st);
  lt_dataset_free(&d);
}

// Uninterrupted vs stopped at `stop_at` and resumed: the final weights file must be byte-identical.
static void resume_case(const char *name, const char *ft, int ga, const char *dropout, int64_t stop_at) {
  char da[256], db[256], fa[320], fb[320];
  snprintf(da, sizeof da, TMP "/%s_a", name);
  snprintf(db, sizeof db, TMP "/%s_b", name);
  rmtree(da);
  rmtree(db);
  lt_dataset d, ev;
  make_data(&d, 11, 3);
  make_data(&ev, 3, 5);
  lt_err err;
  lt_train_args a;
  char gas[8];
  snprintf(gas, sizeof gas, "%d", ga);
  for (int run = 0; run < 3; run++) {
    base_args(&a, run == 0 ? da : db);
    CHECK(lt_train_args_set(&a, "finetuning_type", ft, &err) == 0);
    CHECK(lt_train_args_set(&a, "freeze_trainable_layers", "1", &err) == 0);
    CHECK(lt_train_args_set(&a, "lora_dropout", dropout, &err) == 0);
    CHECK(lt_train_args_set(&a, "gradient_accumulation_steps", gas, &err) == 0);
    CHECK(lt_train_args_set(&a, "num_train_epochs", "2.5", &err) == 0);
    CHECK(lt_train_args_set(&a, "lr_scheduler_type", "cosine", &err) == 0);
    CHECK(lt_train_args_set(&a, "warmup_ratio", "0.2", &err) == 0);
    CHECK(lt_train_args_set(&a, "weight_decay", "0.1", &err) == 0);
    CHECK(lt_train_args_set(&a, "max_grad_norm", "0.5", &err) == 0);
    CHECK(lt_train_args_set(&a, "logging_steps", "3", &err) == 0);
    CHECK(lt_train_args_set(&a, "eval_steps", "2", &err) == 0);
    CHECK(lt_train_args_set(&a, "save_steps", "4", &err) == 0);
    CHECK(lt_train_args_set(&a, "save_total_limit", "2", &err) == 0);
    if (run == 2) CHECK(lt_train_args_set(&a, "resume_from_checkpoint", "true", &err) == 0);
    volatile sig_atomic_t stop = 0;
    hook_state h = {0};
    h.stop = &stop;
    h.stop_at = run == 1 ? stop_at : 0;
    lt_train_hooks hooks = {&h, on_progress, NULL, on_message};
    lt_train_result res;
    int rc = lt_train(&a, &d, &ev, &hooks, &stop, &res, &err);
    CHECK_MSG(rc == 0, "%s run %d: %s", name, run, err.msg);
    if (run == 1) CHECK_MSG(res.interrupted && res.global_step == stop_at && !res.completed, "%s: not interrupted", name);
    else CHECK_MSG(res.completed && res.global_step == (ga == 2 ? 8 : 15), "%s run %d: %lld steps", name, run,
                   (long long)res.global_step);  // 6 micro-batches per epoch, 2.5 epochs
  }
  const char *wf = strcmp(ft, "lora") == 0 ? "adapter_model.safetensors" : "model.safetensors";
  snprintf(fa, sizeof fa, "%s/%s", da, wf);
  snprintf(fb, sizeof fb, "%s/%s", db, wf);
  CHECK_MSG(same_file(fa, fb), "%s: resumed weights differ from the uninterrupted run", name);
  // the logged history is the same too (apart from timings)
  lt_trainer_state sa, sb;
  snprintf(fa, sizeof fa, "%s/trainer_state.json", da);
  snprintf(fb, sizeof fb, "%s/trainer_state.json", db);
  CHECK(lt_state_read(&sa, fa, &err) == 0 && lt_state_read(&sb, fb, &err) == 0);
  CHECK(cJSON_GetArraySize(sa.log_history) == cJSON_GetArraySize(sb.log_history));
  for (int i = 0; i < cJSON_GetArraySize(sa.log_history); i++) {
    const cJSON *x = cJSON_GetObjectItem(cJSON_GetArrayItem(sa.log_history, i), "loss");
    const cJSON *y = cJSON_GetObjectItem(cJSON_GetArrayItem(sb.log_history, i), "loss");
    CHECK((x == NULL) == (y == NULL));
    if (x && y) CHECK_MSG(x->valuedouble == y->valuedouble, "%s log %d: loss %.17g vs %.17g", name, i, x->valuedouble,
                          y->valuedouble);
  }
  CHECK(sa.has_best && sb.has_best && sa.best_metric == sb.best_metric);
  lt_state_free(&sa);
  lt_state_free(&sb);
  // save_total_limit 2: at most two checkpoints (the newest and the best)
  int n = 0;
  for (int s = 1; s <= 15; s++) {
    char p[320];
    snprintf(p, sizeof p, "%s/checkpoint-%d/lmtune_state.json", da, s);
    n += lt_file_exists(p);
  }
  CHECK_MSG(n >= 1 && n <= 2, "%s: %d checkpoints kept", name, n);
  lt_dataset_free(&d);
  lt_dataset_free(&ev);
}

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

static void test_data_errors(void) {
  lt_err err;
  lt_pretok_opts o = {0, 0, 0, 96, NULL};
  lt_data_stats st;
  struct {
    const char *text, *want1, *want2;
  } cases[] = {
      {"{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [1, 2,}\n", ":2:", "not valid JSON"},
      {"{\"input_ids\": [1, 2, 3]}\n\n{\"labels\": [1, 2]}\n", ":3:", "missing field \"input_ids\""},
      {"{\"input_ids\": [1, 2, 3], \"labels\": [1, 2]}\n", ":1:", "\"labels\" has 2 entries"},
      {"{\"input_ids\": [1, 2, 300]}\n", ":1:", "\"input_ids\"[2] = 300 is outside"},
      {"{\"input_ids\": [1, 2.5]}\n", ":1:", "\"input_ids\"[1] is not an integer"},
      {"{\"input_ids\": [1, 2], \"labels\": [-100, -5]}\n", ":1:", "\"labels\"[1] = -5"},
      {"{\"input_ids\": [1, 2], \"x\": \"caf\xe9\"}\n", ":1:", "invalid UTF-8"},
      {"{\"text\": \"hello\"}\n", ":1:", "tokenizer"},
      {"", "empty", "no records"},
      {"\n  \n", "empty", "no records"},
      {"{\"input_ids\": []}\n", ":1:", "is empty"},
      {"[1, 2]\n", ":1:", "JSON object"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_text(TMP "/bad.jsonl", cases[i].text);
    lt_dataset d = {0};
    int rc = lt_data_read_pretok(TMP "/bad.jsonl", &o, &d, &st, &err);
    CHECK_MSG(rc == -1 && contains(err.msg, cases[i].want1) && contains(err.msg, cases[i].want2) &&
                  contains(err.msg, "bad.jsonl"),
              "case %zu: %s", i, rc ? err.msg : "accepted");
    lt_dataset_free(&d);
  }
  // skip_bad: counted, first message kept
  write_text(TMP "/bad.jsonl", "{\"input_ids\": [1, 2, 3]}\n{oops\n{\"input_ids\": [4, 5, 6, 7, 8, 9]}\n\xff\n");
  lt_pretok_opts o2 = {4, 0, 1, 96, NULL};
  lt_dataset d = {0};
  CHECK(lt_data_read_pretok(TMP "/bad.jsonl", &o2, &d, &st, &err) == 0);
  CHECK(d.n == 2 && st.n_skipped == 2 && st.n_truncated == 1 && d.ex[1].len == 4 && contains(st.first_bad, ":2:"));
  CHECK(d.ex[0].labels[2] == 3 && d.ex[0].line == 1 && d.ex[1].line == 3);
  lt_dataset_free(&d);
  // max_samples and labels with -100
  write_text(TMP "/ok.jsonl", "{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 3]}\r\n{\"input_ids\": [4]}\n");
  lt_pretok_opts o3 = {0, 1, 0, 96, NULL};
  CHECK(lt_data_read_pretok(TMP "/ok.jsonl", &o3, &d, &st, &err) == 0 && d.n == 1 && d.ex[0].labels[0] == -100);
  lt_dataset_free(&d);
  // val_size split: deterministic, disjoint, complete
  lt_dataset all, tr, ev;
  make_data(&all, 20, 1);
  CHECK(lt_dataset_split(&all, 0.25, 42, &tr, &ev, &err) == 0 && tr.n == 15 && ev.n == 5);
  lt_dataset_free(&tr);
  lt_dataset_free(&ev);
  make_data(&all, 3, 1);
  CHECK(lt_dataset_split(&all, 0.1, 42, &tr, &ev, &err) == -1);
  lt_dataset_free(&all);
}

// Plain-text sources for pre-training: a directory (one document per *.txt, sorted), a .txt file (one record per
// non-blank line), "a,b" lists; each document = tokens + eos (the tokenizer adds no bos).
static void test_text_sources(void) {
  lt_err err;
  rmtree(TMP "/text");
  CHECK(lt_mkdirs(TMP "/text/docs", &err) == 0 && lt_mkdirs(TMP "/text/empty", &err) == 0 &&
        lt_mkdirs(TMP "/text/bad", &err) == 0);
  write_text(TMP "/text/corpus.txt", "the cat sat on the mat\nthe dog sat on the log\n");
  const char *files[] = {TMP "/text/corpus.txt"};
  const char *special[] = {"<|endoftext|>"};
  lt_bpe_train_opts bo = {.vocab_size = 280, .min_frequency = 1, .special = special, .n_special = 1};
  CHECK(lt_bpe_train(files, 1, &bo, TMP "/text/tok", &err) == 0);
  write_text(TMP "/text/docs/b.txt", "the dog sat");
  write_text(TMP "/text/docs/a.txt", "the cat\non the mat");
  write_text(TMP "/text/docs/c.md", "ignored");
  write_text(TMP "/text/lines.txt", "the cat\n\n  \non the log\n");
  write_text(TMP "/text/bad/x.txt", "caf\xe9");
  lt_tokenizer *tok;
  CHECK(lt_tokenizer_load(&tok, TMP "/text/tok", &err) == 0);
  const char *want[] = {"the cat\non the mat", "the dog sat", "the cat", "on the log"};
  int32_t *wid[4];
  int wn[4];
  for (int i = 0; i < 4; i++) CHECK(lt_tokenizer_encode(tok, want[i], strlen(want[i]), 0, &wid[i], &wn[i], &err) == 0);
  lt_tokenizer_free(tok);
  lt_pretok_opts o = {0, 0, 0, 280, TMP "/text/tok"};
  lt_data_stats st;
  lt_dataset d = {0};
  CHECK(lt_data_read_pretok(TMP "/text/docs," TMP "/text/lines.txt", &o, &d, &st, &err) == 0);
  CHECK_MSG(d.n == 4, "%d documents", d.n);
  for (int i = 0; i < 4 && i < d.n; i++) {
    CHECK(d.ex[i].len == wn[i] + 1 && d.ex[i].ids[wn[i]] == 0);
    CHECK(memcmp(d.ex[i].ids, wid[i], sizeof(int32_t) * (size_t)wn[i]) == 0);
  }
  CHECK(d.n == 4 && d.ex[2].line == 1 && d.ex[3].line == 4);
  lt_dataset_free(&d);
  for (int i = 0; i < 4; i++) free(wid[i]);
  CHECK(lt_data_read_pretok(TMP "/text/empty", &o, &d, &st, &err) == -1 && contains(err.msg, "no *.txt documents"));
  lt_dataset_free(&d);
  CHECK(lt_data_read_pretok(TMP "/text/bad", &o, &d, &st, &err) == -1 && contains(err.msg, "x.txt") &&
        contains(err.msg, "invalid UTF-8 byte 0xe9"));
  lt_dataset_free(&d);
  lt_pretok_opts o2 = {0, 0, 1, 280, TMP "/text/tok"};  // skip_bad: counted; a source left empty is an error
  write_text(TMP "/text/bad/y.txt", "the mat");
  CHECK(lt_data_read_pretok(TMP "/text/bad," TMP "/text/lines.txt", &o2, &d, &st, &err) == 0 && d.n == 3 &&
        st.n_skipped == 1 && contains(st.first_bad, "x.txt"));
  lt_dataset_free(&d);
  CHECK(unlink(TMP "/text/bad/y.txt") == 0);
  CHECK(lt_data_read_pretok(TMP "/text/bad", &o2, &d, &st, &err) == -1 && contains(err.msg, "no usable documents") &&
        contains(err.msg, "x.txt"));
  lt_dataset_free(&d);
  lt_pretok_opts o3 = {0, 0, 0, 280, NULL};
  CHECK(lt_data_read_pretok(TMP "/text/docs", &o3, &d, &st, &err) == -1 && contains(err.msg, "need a tokenizer"));
  lt_dataset_free(&d);
  CHECK(lt_data_read_pretok(TMP "/text/nope," TMP "/text/lines.txt", &o, &d, &st, &err) == -1 &&
        contains(err.msg, "nope"));
  lt_dataset_free(&d);
  rmtree(TMP "/text");
}

static void test_config_errors(void) {
  lt_train_args a;
  lt_train_args_default(&a);
  lt_err err;
  CHECK(lt_train_args_set(&a, "lora_rnak", "8", &err) == -1 && contains(err.msg, "did you mean \"lora_rank\""));
  CHECK(lt_train_args_set(&a, "learnig_rate", "1e-4", &err) == -1 && contains(err.msg, "\"learning_rate\""));
  CHECK(lt_train_args_set(&a, "completely_unrelated_thing", "1", &err) == -1 && !contains(err.msg, "did you mean"));
  CHECK(lt_train_args_set(&a, "learning_rate", "fast", &err) == -1 && contains(err.msg, "learning_rate") &&
        contains(err.msg, "fast"));
  CHECK(lt_train_args_set(&a, "lora_rank", "0", &err) == -1 && contains(err.msg, "lora_rank"));
  CHECK(lt_train_args_set(&a, "lr_scheduler_type", "cosine_warm", &err) == -1 && contains(err.msg, "cosine"));
  CHECK(lt_train_args_set(&a, "bf16", "maybe", &err) == -1 && contains(err.msg, "bf16"));
  CHECK(lt_train_args_set(&a, "resume_from_checkpoint", "true", &err) == 0 &&
        strcmp(a.resume_from_checkpoint, "true") == 0);
  CHECK(lt_train_args_set(&a, "resume_from_checkpoint", "false", &err) == 0 && !a.resume_from_checkpoint[0]);
  // YAML: values, lists, and an unknown key with its line
  write_text(TMP "/cfg.yaml", "model_name_or_path: /m\nlearning_rate: 1.0e-4\nlora_target:\n  - q_proj\n  - v_proj\n"
             "output_dir: out\nresume_from_checkpoint: null\n");
  lt_train_args_default(&a);
  CHECK_MSG(lt_train_args_load_yaml(&a, TMP "/cfg.yaml", &err) == 0, "%s", err.msg);
  CHECK(a.learning_rate == 1e-4 && strcmp(a.lora_target, "q_proj,v_proj") == 0 && strcmp(a.output_dir, "out") == 0);
  write_text(TMP "/cfg.yaml", "model_name_or_path: /m\n\nper_device_train_batchsize: 2\n");
  CHECK(lt_train_args_load_yaml(&a, TMP "/cfg.yaml", &err) == -1 && contains(err.msg, "cfg.yaml:3") &&
        contains(err.msg, "per_device_train_batch_size"));
  write_text(TMP "/cfg.yaml", "model_name_or_path: [unclosed\n");
  CHECK(lt_train_args_load_yaml(&a, TMP "/cfg.yaml", &err) == -1 && contains(err.msg, "YAML"));
  // training_args.yaml round trip
  lt_train_args b, c;
  lt_train_args_default(&b);
  CHECK(lt_train_args_set(&b, "learning_rate", "0.1", &err) == 0 && lt_train_args_set(&b, "stage", "pt", &err) == 0);
  char *y = lt_train_args_yaml(&b);
  write_text(TMP "/rt.yaml", y);
  free(y);
  lt_train_args_default(&c);
  CHECK_MSG(lt_train_args_load_yaml(&c, TMP "/rt.yaml", &err) == 0, "%s", err.msg);
  CHECK(c.learning_rate == 0.1 && strcmp(c.stage, "pt") == 0);
  // cross-key checks
  lt_train_args_default(&a);
  CHECK(lt_train_args_check(&a, &err) == -1 && contains(err.msg, "model_name_or_path"));
}

static void test_output_dir_errors(void) {
  lt_err err;
  lt_train_args a;
  lt_dataset d;
  make_data(&d, 4, 9);
  lt_train_result res;
  // a non-empty output_dir without overwrite or resume
  rmtree(TMP "/busy");
  mkdir(TMP "/busy", 0755);
  write_text(TMP "/busy/something.txt", "x");
  base_args(&a, TMP "/busy");
  CHECK(lt_train_args_set(&a, "max_steps", "2", &err) == 0);
  CHECK(lt_train(&a, &d, NULL, NULL, NULL, &res, &err) == -1 && contains(err.msg, "not empty") &&
        contains(err.msg, "overwrite_output_dir"));
  CHECK(!lt_file_exists(TMP "/busy/all_results.json"));
  a.overwrite_output_dir = 1;
  CHECK_MSG(lt_train(&a, &d, NULL, NULL, NULL, &res, &err) == 0, "%s", err.msg);
  CHECK(lt_file_exists(TMP "/busy/all_results.json") && lt_file_exists(TMP "/busy/something.txt"));
  // resume with no checkpoint
  base_args(&a, TMP "/busy");
  CHECK(lt_train_args_set(&a, "resume_from_checkpoint", "true", &err) == 0);
  CHECK(lt_train(&a, &d, NULL, NULL, NULL, &res, &err) == -1 && contains(err.msg, "no complete checkpoint"));
  // a data file error leaves no output directory behind
  rmtree(TMP "/nodir");
  base_args(&a, TMP "/nodir");
  write_text(TMP "/bad.jsonl", "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": \"x\"}\n");
  snprintf(a.dataset, sizeof a.dataset, "%s", TMP "/bad.jsonl");
  CHECK(lt_train(&a, NULL, NULL, NULL, NULL, &res, &err) == -1 && contains(err.msg, "bad.jsonl:2"));
  struct stat sb;
  CHECK(stat(TMP "/nodir", &sb) != 0);
  // a diverging run stops naming the step and keeps the last checkpoint; it does not look finished
  rmtree(TMP "/nan");
  base_args(&a, TMP "/nan");
  CHECK(lt_train_args_set(&a, "learning_rate", "1e30", &err) == 0);
  CHECK(lt_train_args_set(&a, "max_grad_norm", "0", &err) == 0);
  CHECK(lt_train_args_set(&a, "save_steps", "1", &err) == 0);
  CHECK(lt_train_args_set(&a, "max_steps", "10", &err) == 0);
  int rc = lt_train(&a, &d, NULL, NULL, NULL, &res, &err);
  CHECK_MSG(rc == -1 && contains(err.msg, "step ") && (contains(err.msg, "NaN") || contains(err.msg, "infinite")) &&
                contains(err.msg, "checkpoint"),
            "%s", rc ? err.msg : "no error");
  CHECK(!lt_file_exists(TMP "/nan/all_results.json") && lt_file_exists(TMP "/nan/checkpoint-1/lmtune_state.json"));
  lt_dataset_free(&d);
}

// Early stopping (patience 1, an impossible threshold: the second evaluation stops the run) and
// load_best_model_at_end: the final adapter is the best checkpoint's.
static void test_early_stopping(void) {
  lt_err err;
  lt_train_args a;
  base_args(&a, TMP "/es");
  rmtree(TMP "/es");
  lt_dataset d, ev;
  make_data(&d, 8, 21);
  make_data(&ev, 3, 22);
  CHECK(lt_train_args_set(&a, "max_steps", "20", &err) == 0);
  CHECK(lt_train_args_set(&a, "eval_steps", "2", &err) == 0);
  CHECK(lt_train_args_set(&a, "save_steps", "2", &err) == 0);
  CHECK(lt_train_args_set(&a, "early_stopping_patience", "1", &err) == 0);
  CHECK(lt_train_args_set(&a, "early_stopping_threshold", "1e9", &err) == 0);
  CHECK(lt_train_args_set(&a, "learning_rate", "0.3", &err) == 0);  // diverges: the second eval_loss is worse
  CHECK(lt_train_args_set(&a, "load_best_model_at_end", "true", &err) == 0);
  hook_state h = {0};
  lt_train_hooks hooks = {&h, on_progress, NULL, on_message};
  lt_train_result res;
  int rc = lt_train(&a, &d, &ev, &hooks, NULL, &res, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  CHECK_MSG(res.early_stopped && res.global_step == 4 && res.completed, "stopped at %lld", (long long)res.global_step);
  CHECK(contains(h.msgs, "early stopping") && contains(h.msgs, "best model"));
  lt_trainer_state st;
  CHECK(lt_state_read(&st, TMP "/es/trainer_state.json", &err) == 0);
  char best[320];
  snprintf(best, sizeof best, TMP "/es/checkpoint-%lld/adapter_model.safetensors", (long long)st.best_global_step);
  CHECK_MSG(st.has_best && st.best_global_step == 2, "best step %lld", (long long)st.best_global_step);
  CHECK(contains(st.best_model_checkpoint, "checkpoint-2"));
  lt_state_free(&st);
  CHECK(same_file(TMP "/es/adapter_model.safetensors", best));
  CHECK(!same_file(TMP "/es/adapter_model.safetensors", TMP "/es/checkpoint-4/adapter_model.safetensors"));
  // without evaluation data: refused
  rmtree(TMP "/es");
  CHECK(lt_train(&a, &d, NULL, NULL, NULL, &res, &err) == -1 && contains(err.msg, "evaluation data"));
  lt_dataset_free(&d);
  lt_dataset_free(&ev);
}

static void test_tfrecord(void) {
  CHECK(lt_crc32c("123456789", 9) == 0xE3069283u);
  uint32_t c = 0xE3069283u;
  CHECK(lt_tf_masked_crc(c) == (uint32_t)(((c >> 15) | (c << 17)) + 0xa282ead8u));
  CHECK(lt_tf_masked_crc(0) == 0xa282ead8u);
  uint8_t rec[64];
  size_t n = lt_tfrecord_frame(rec, "abc", 3);
  CHECK(n == 19 && rec[0] == 3 && rec[1] == 0 && rec[7] == 0 && memcmp(rec + 12, "abc", 3) == 0);
  uint32_t lc = (uint32_t)rec[8] | (uint32_t)rec[9] << 8 | (uint32_t)rec[10] << 16 | (uint32_t)rec[11] << 24;
  uint32_t dc = (uint32_t)rec[15] | (uint32_t)rec[16] << 8 | (uint32_t)rec[17] << 16 | (uint32_t)rec[18] << 24;
  CHECK(lc == lt_tf_masked_crc(lt_crc32c(rec, 8)) && dc == lt_tf_masked_crc(lt_crc32c("abc", 3)));
  // Event{wall_time 1.5, step 300, summary{value{tag "a", simple_value 2}}}
  uint8_t ev[128];
  n = lt_tf_event_encode(ev, 1.5, 300, "a", 2.0f);
  static const uint8_t want[] = {0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x10, 0xac, 0x02, 0x2a, 0x0a, 0x0a, 0x08,
                                 0x0a, 0x01, 'a', 0x15, 0, 0, 0, 0x40};
  CHECK(n == sizeof want && memcmp(ev, want, n) == 0);
}

int main(void) {
  lt_err err;
  CHECK(lt_mkdirs(TMP, &err) == 0);
  test_tfrecord();
  test_config_errors();
  test_data_errors();
  test_text_sources();
  test_memorise();
  resume_case("lora", "lora", 2, "0.1", 5);
  resume_case("lora_ga1", "lora", 1, "0.0", 7);
  resume_case("full", "full", 2, "0", 3);
  resume_case("freeze", "freeze", 1, "0", 9);
  test_early_stopping();
  test_output_dir_errors();
  TEST_MAIN_END();
}
