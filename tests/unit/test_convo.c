// Dataset readers: every format's conversion (as LLaMA-Factory converts) and every bad-record error, which must
// name the file, the line or record, and the field.
#include <sys/stat.h>

#include "core/core.h"
#include "data/convo.h"
#include "test.h"

#define DIR LT_TMPDIR "/convo"

static const char *put(const char *name, const char *text) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", DIR, name);
  lt_err err;
  CHECK(lt_write_file_atomic(path, text, strlen(text), &err) == 0);
  return path;
}

static lt_convo *read_ok(const char *path, const lt_data_format *f, int *n) {
  lt_convo *c = NULL;
  lt_err err;
  int rc = lt_data_read_convos(path, f, 0, &c, n, NULL, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  return c;
}

static void expect_err(const char *path, const lt_data_format *f, const char *a, const char *b, const char *c3) {
  lt_convo *c = NULL;
  int n = 0;
  lt_err err = {{0}};
  int rc = lt_data_read_convos(path, f, 0, &c, &n, NULL, &err);
  CHECK_MSG(rc == -1 && c == NULL, "%s: should fail", path);
  CHECK_MSG(strstr(err.msg, path) != NULL, "\"%s\" does not name the file", err.msg);
  CHECK_MSG(!a || strstr(err.msg, a), "\"%s\" lacks \"%s\"", err.msg, a);
  CHECK_MSG(!b || strstr(err.msg, b), "\"%s\" lacks \"%s\"", err.msg, b);
  CHECK_MSG(!c3 || strstr(err.msg, c3), "\"%s\" lacks \"%s\"", err.msg, c3);
}

int main(void) {
  mkdir(LT_TMPDIR, 0755);
  mkdir(DIR, 0755);
  lt_data_format auto_fmt = {0};
  int n;
  // Alpaca (JSON array): instruction + "\n" + input; history pairs first; system kept
  const char *p = put("alpaca.json",
                      "[\n {\"instruction\": \"Add\", \"input\": \"2 and 3\", \"output\": \"5\", \"system\": \"math\",\n"
                      "  \"history\": [[\"hi\", \"hello\"]]},\n"
                      " {\"instruction\": \"Say hi\", \"input\": \"\", \"output\": \"hi\"}\n]\n");
  lt_convo *c = read_ok(p, &auto_fmt, &n);
  CHECK(n == 2);
  if (n == 2) {
    CHECK(c[0].n_prompt == 3 && c[0].prompt[0].role == LT_ROLE_USER && !strcmp(c[0].prompt[0].content, "hi"));
    CHECK(c[0].prompt[1].role == LT_ROLE_ASSISTANT && !strcmp(c[0].prompt[1].content, "hello"));
    CHECK(!strcmp(c[0].prompt[2].content, "Add\n2 and 3"));
    CHECK(c[0].n_response == 1 && !strcmp(c[0].response[0].content, "5"));
    CHECK(!strcmp(c[0].system, "math") && !strcmp(c[1].system, ""));
    CHECK(!strcmp(c[1].prompt[0].content, "Say hi"));
    CHECK_MSG(!strcmp(c[1].origin, "record 1 (line 4)"), "%s", c[1].origin);
  }
  lt_convos_free(c, n);
  // ShareGPT (JSONL) with a system turn, multi-turn
  p = put("sharegpt.jsonl",
          "{\"conversations\": [{\"from\": \"system\", \"value\": \"be brief\"}, {\"from\": \"human\", \"value\": \"q1\"},"
          " {\"from\": \"gpt\", \"value\": \"a1\"}, {\"from\": \"human\", \"value\": \"q2\"}, {\"from\": \"gpt\", \"value\": \"a2\"}]}\n"
          "\n"
          "{\"conversations\": [{\"from\": \"human\", \"value\": \"x\"}, {\"from\": \"gpt\", \"value\": \"y\"}], \"system\": \"s\"}\n");
  c = read_ok(p, &auto_fmt, &n);
  CHECK(n == 2);
  if (n == 2) {
    CHECK(!strcmp(c[0].system, "be brief") && c[0].n_prompt == 3 && !strcmp(c[0].response[0].content, "a2"));
    CHECK(!strcmp(c[1].system, "s") && !strcmp(c[1].origin, "line 3"));
  }
  lt_convos_free(c, n);
  // OpenAI messages: content parts, tool calls and tool results
  p = put("openai.jsonl",
          "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", "
          "\"text\": \"b\"}]}, {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"function\": {\"name\": \"f\"}}]},"
          " {\"role\": \"tool\", \"content\": \"r1\"}, {\"role\": \"tool\", \"content\": \"r2\"}, {\"role\": \"assistant\", "
          "\"content\": \"done\"}]}\n");
  c = read_ok(p, &auto_fmt, &n);
  CHECK(n == 1);
  if (n == 1) {
    CHECK(!strcmp(c[0].prompt[0].content, "ab"));
    CHECK(c[0].prompt[1].role == LT_ROLE_FUNCTION && !strcmp(c[0].prompt[1].content, "[{\"name\":\"f\"}]"));
    CHECK(c[0].prompt[2].role == LT_ROLE_OBSERVATION &&
          !strcmp(c[0].prompt[2].content, "r1\n</tool_response>\n<tool_response>\nr2"));
    CHECK(!strcmp(c[0].response[0].content, "done"));
  }
  lt_convos_free(c, n);
  // preference pairs and plain text
  lt_data_format pref = {0};
  pref.ranking = 1;
  p = put("pref.jsonl", "{\"instruction\": \"q\", \"chosen\": \"good\", \"rejected\": \"bad\"}\n");
  c = read_ok(p, &pref, &n);
  CHECK(n == 1 && c[0].n_response == 2 && !strcmp(c[0].response[0].content, "good") &&
        !strcmp(c[0].response[1].content, "bad"));
  lt_convos_free(c, n);
  p = put("text.jsonl", "{\"text\": \"Call me Ishmael.\"}\n{\"text\": \"Some years ago\"}");
  c = read_ok(p, &auto_fmt, &n);
  CHECK(n == 2 && !strcmp(c[1].text, "Some years ago"));
  lt_convos_free(c, n);
  // dataset_info.json column and tag mapping
  put("custom.jsonl", "{\"q\": \"hello\", \"a\": \"world\"}\n");
  put("tags.jsonl", "{\"m\": [{\"r\": \"u\", \"t\": \"1\"}, {\"r\": \"b\", \"t\": \"2\"}]}\n");
  p = put("dataset_info.json",
          "{\"mine\": {\"file_name\": \"custom.jsonl\", \"columns\": {\"prompt\": \"q\", \"response\": \"a\"}},"
          " \"chat\": {\"file_name\": \"tags.jsonl\", \"formatting\": \"sharegpt\", \"columns\": {\"messages\": \"m\"},"
          " \"tags\": {\"role_tag\": \"r\", \"content_tag\": \"t\", \"user_tag\": \"u\", \"assistant_tag\": \"b\"}}}");
  lt_data_format f;
  lt_data_info *keep;
  char file[600];
  lt_err err;
  CHECK_MSG(lt_data_info_load(p, "mine", &f, file, sizeof file, &keep, &err) == 0, "%s", err.msg);
  c = read_ok(file, &f, &n);
  CHECK(n == 1 && !strcmp(c[0].prompt[0].content, "hello") && !strcmp(c[0].response[0].content, "world"));
  lt_convos_free(c, n);
  lt_data_info_free(keep);
  CHECK(lt_data_info_load(p, "chat", &f, file, sizeof file, &keep, &err) == 0);
  c = read_ok(file, &f, &n);
  CHECK(n == 1 && !strcmp(c[0].response[0].content, "2"));
  lt_convos_free(c, n);
  lt_data_info_free(keep);
  CHECK(lt_data_info_load(p, "nope", &f, file, sizeof file, &keep, &err) == -1 && strstr(err.msg, "nope"));
  // bad records: file, line/record and field named
  expect_err(put("bad1.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\", \"output\": \n"),
             &auto_fmt, "line 2", "invalid JSON", NULL);
  expect_err(put("bad2.jsonl", "{\"instruction\": \"a\"}\n"), &auto_fmt, "line 1", "\"output\"", "missing");
  expect_err(put("bad3.jsonl", "   \n\n"), &auto_fmt, "empty", NULL, NULL);
  expect_err(put("bad4.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"\xff\", \"output\": \"b\"}\n"),
             &auto_fmt, "line 2", "UTF-8", "0xff");
  expect_err(put("bad5.jsonl", "{\"instruction\": \"a\", \"output\": 5}\n"), &auto_fmt, "\"output\"", "string", NULL);
  expect_err(put("bad6.jsonl", "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"human\", "
                               "\"value\": \"b\"}]}\n"),
             &auto_fmt, "conversations[1]", "out of order", NULL);
  expect_err(put("bad7.jsonl", "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}]}\n"), &auto_fmt,
             "conversations", "assistant turn", NULL);
  expect_err(put("bad8.jsonl", "{\"conversations\": [{\"from\": \"alien\", \"value\": \"a\"}]}\n"), &auto_fmt,
             "conversations[0]", "alien", NULL);
  expect_err(put("bad9.json", "[{\"instruction\": \"a\", \"output\": \"b\"},\n {\"foo\": 1}]"), &auto_fmt, "record 1",
             "line 2", NULL);
  expect_err(put("bad10.jsonl", "{\"instruction\": \"a\", \"output\": \"b\", \"history\": [[\"x\"]]}\n"), &auto_fmt,
             "history[0]", "pair", NULL);
  expect_err(DIR "/missing.jsonl", &auto_fmt, "cannot open", NULL, NULL);
  // skip_bad: counted, the good ones kept, the first problem reported as a warning
  p = put("mixed.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\"}\nnot json\n"
                         "{\"instruction\": \"c\", \"output\": \"d\"}\n");
  int skipped = 0;
  CHECK(lt_data_read_convos(p, &auto_fmt, 1, &c, &n, &skipped, &err) == 0);
  CHECK(n == 2 && skipped == 2 && strstr(err.msg, "line 2"));
  lt_convos_free(c, n);
  TEST_MAIN_END();
}
