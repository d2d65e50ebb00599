// Chat templates: the Jinja subset (constructs, whitespace control, filters, tests, methods), errors with
// line:column, raise_exception, limits, built-in templates and tokenizer_config.json parsing.
// The expected strings of the `golden` table were produced by jinja2 3.1 in transformers' chat-template environment.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chat/chat.h"
#include "core/core.h"
#include "test.h"
#include "tokenizer/tokconfig.h"

// Renders; returns a malloc'd string, or "ERR:<message>".
static char *render(const char *tpl, const char *ctx) {
  lt_chat_template *t = NULL;
  lt_err err;
  char *out = NULL;
  size_t len = 0;
  if (lt_chat_compile(&t, tpl, &err) || lt_chat_render(t, ctx, &out, &len, &err)) {
    lt_chat_free(t);
    size_t n = strlen(err.msg) + 5;
    char *e = malloc(n);
    snprintf(e, n, "ERR:%s", err.msg);
    return e;
  }
  lt_chat_free(t);
  return out;
}

static void expect(const char *tpl, const char *ctx, const char *want, int line) {
  char *got = render(tpl, ctx);
  CHECK_MSG(strcmp(got, want) == 0, "line %d: template %s\n  got:  [%s]\n  want: [%s]", line, tpl, got, want);
  free(got);
}
#define EXPECT(tpl, ctx, want) expect(tpl, ctx, want, __LINE__)

// An error whose message contains each of the given fragments.
static void expect_err(const char *tpl, const char *ctx, const char *frag1, const char *frag2, int line) {
  char *got = render(tpl, ctx);
  int ok = strncmp(got, "ERR:", 4) == 0 && strstr(got, frag1) && (!frag2 || strstr(got, frag2));
  CHECK_MSG(ok, "line %d: template %s: got [%s], want an error with [%s] [%s]", line, tpl, got, frag1,
            frag2 ? frag2 : "");
  free(got);
}
#define EXPECT_ERR(tpl, ctx, f1, f2) expect_err(tpl, ctx, f1, f2, __LINE__)

static const struct { const char *tpl, *ctx, *want; } golden[] = {
    {"{{ 'a' }}  {% if true %}\n  yes\n{% endif %}\n  {# c #}\nend",
     "{}",
     "a    yes\nend"},
    {"<{%- if 1 -%}  x  {%- endif -%}>",
     "{}",
     "<x>"},
    {"  {%+ if 1 %}a{% endif +%}\nb",
     "{}",
     "  a\nb"},
    {"x  {{- ' y ' -}}  z",
     "{}",
     "x y z"},
    {"{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}/{{ loop.revindex }}:{{ m.role }};{% endfor %}",
     "{\"messages\": [{\"role\": \"user\"}, {\"role\": \"assistant\"}]}",
     "1/0/True/False/2/2:user;2/1/False/True/2/1:assistant;"},
    {"{% for x in [] %}a{% else %}empty{% endfor %}",
     "{}",
     "empty"},
    {"{% for k, v in {'a': 1, 'b': [2, 3]}.items() %}{{ k }}={{ v }},{% endfor %}",
     "{}",
     "a=1,b=[2, 3],"},
    {"{% for x in [1,2,3,4,5] if x is odd %}{{ x }}{{ loop.length }}{% endfor %}",
     "{}",
     "133353"},
    {"{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
     "{}",
     "0134"},
    {"{% set ns = namespace(n=0, s='') %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}",
     "{}",
     "3 012"},
    {"{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}",
     "{}",
     "21"},
    {"{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}",
     "{}",
     "Hi A! Hi B?"},
    {"{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inner{% endcall %}",
     "{}",
     "[inner]"},
    {"{{ '  hi  ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hello world' | capitalize }}|{{ 'hello wORLD-x' | title }}",
     "{}",
     "hi|AB|ab|Hello world|Hello World-X"},
    {"{{ 'a-b-c' | replace('-', '+') }}|{{ [1,2,3] | join(', ') }}|{{ [3,1,2] | sort | list }}|{{ [1,2,1,3] | unique | list }}|{{ [1,2,3] | reverse | list }}|{{ 'abc' | reverse }}",
     "{}",
     "a+b+c|1, 2, 3|[1, 2, 3]|[1, 2, 3]|[3, 2, 1]|cba"},
    {"{{ [1,2,3] | first }}{{ [1,2,3] | last }}{{ 'abc' | length }}{{ {'a':1} | length }}{{ undefined_thing | default('dflt') }}{{ '' | default('e', true) }}",
     "{}",
     "1331dflte"},
    {"{{ {'b': 1, 'a': [1, 2.5, '\303\251\"'], 'c': none, 'd': true} | tojson }}",
     "{}",
     "{\"b\": 1, \"a\": [1, 2.5, \"\303\251\\\"\"], \"c\": null, \"d\": true}"},
    {"{{ {'b': 1, 'a': [1, {'x': 'y'}]} | tojson(indent=2) }}",
     "{}",
     "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    {\n      \"x\": \"y\"\n    }\n  ]\n}"},
    {"{{ {'b': 1, 'a': 2} | tojson(separators=(',', ':'), sort_keys=true) }}",
     "{}",
     "{\"a\":2,\"b\":1}"},
    {"{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ msgs | rejectattr('role', 'equalto', 'user') | list | length }}",
     "{\"msgs\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"bot\", \"content\": \"b\"}, {\"role\": \"user\", \"content\": \"c\"}]}",
     "a,c|1"},
    {"{{ '3' | int + 1 }} {{ '2.5' | float }} {{ 7 | string }} {{ 1.0 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1e20 }} {{ 0.1 + 0.2 }}",
     "{}",
     "4 2.5 7 1.0 3.5 3 -4 2 1024 1e+20 0.30000000000000004"},
    {"{{ 'abcdef'[1:3] }}|{{ 'abcdef'[::-1] }}|{{ [1,2,3,4][1:] }}|{{ [1,2,3][-1] }}|{{ '\344\275\240\345\245\275\344\270\226\347\225\214'[1:3] }}|{{ 'abc'[0] }}",
     "{}",
     "bc|fedcba|[2, 3, 4]|3|\345\245\275\344\270\226|a"},
    {"{{ '  x  '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}|{{ 'a b  c'.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith('bc') }}|{{ 'aXa'.replace('a', 'b') }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}",
     "{}",
     "x|axx|xxa|['a', 'b', 'c']|['a', 'b', '', 'c']|True|True|bXb|ABab"},
    {"{{ d.get('a') }}|{{ d.get('z', 'no') }}|{{ d.keys() | list }}|{{ d.values() | list }}|{{ d.items() | list }}|{{ d }}",
     "{\"d\": {\"a\": 1, \"b\": \"x\"}}",
     "1|no|['a', 'b']|[1, 'x']|[('a', 1), ('b', 'x')]|{'a': 1, 'b': 'x'}"},
    {"{{ x is defined }}{{ y is undefined }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is sequence }}{{ 1 is number }}{{ 1 is equalto 1 }}{{ true is true }}{{ false is false }}{{ 2 is in [1, 2] }}{{ 3 is not in [1, 2] }}",
     "{\"x\": 1}",
     "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue"},
    {"{{ 1 and 2 }}|{{ 0 or 'b' }}|{{ not 0 }}|{{ 1 == 1.0 }}|{{ 1 != 2 }}|{{ 1 < 2 <= 2 }}|{{ 'a' in 'cat' }}|{{ 'z' not in ['a'] }}|{{ 'a' ~ 1 ~ none }}|{{ -(3) }}|{{ 'x' if false }}|{{ 'y' if 0 else 'n' }}",
     "{}",
     "2|b|True|True|True|True|True|True|a1None|-3||n"},
    {"{{ [1, 'a', none, true, 1.5, ('t',)] }}|{{ \"it's\" }}|{{ ['it\\'s', 'q\"'] }}",
     "{}",
     "[1, 'a', None, True, 1.5, ('t',)]|it's|[\"it's\", 'q\"']"},
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set s %}block {{ a }}{% endset %}[{{ s }}]{% with z = 5 %}{{ z }}{% endwith %}{% filter upper %}up{% endfilter %}",
     "{}",
     "12[block 1]5UP"},
    {"{{ undefined_var }}|{{ undefined_var | length }}|{% for x in undefined_var %}no{% endfor %}|{{ undefined_var is none }}",
     "{}",
     "|0||False"},
    {"{% raw %}{{ not rendered }}{% endraw %}",
     "{}",
     "{{ not rendered }}"},
    {"{{ 'line1\\nline2' | indent(2) }}|{{ 'a\\n\\nb' | indent(2, true, true) }}",
     "{}",
     "line1\n  line2|  a\n  \n  b"},
    {"a\r\nb\rc\n",
     "{}",
     "a\nb\nc"},
    {"{{ messages[0].content }}",
     "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"reasoning_content\": null}]}",
     "x"},
};

static void test_golden(void) {
  for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) expect(golden[i].tpl, golden[i].ctx, golden[i].want, (int)i);
}

static void test_context(void) {
  // transformers passes tools/documents (None by default) and add_generation_prompt
  EXPECT("{{ tools is defined }}{{ tools is none }}{{ documents is none }}{{ add_generation_prompt }}", "{}",
         "TrueTrueTrueFalse");
  // message keys with null values are dropped; reasoning fields are aliased
  EXPECT("{{ messages[0].content is defined }}|{{ messages[1].reasoning_content }}|{{ messages[1].thinking }}",
         "{\"messages\": [{\"role\": \"user\", \"content\": null}, {\"role\": \"assistant\", \"content\": \"a\", "
         "\"reasoning\": \"r\"}]}",
         "False|r|r");
  // ints stay ints, floats stay floats (Python's json), key order kept
  EXPECT("{{ x }} {{ y }} {{ d | tojson }}", "{\"x\": 1, \"y\": 1.0, \"d\": {\"z\": 1, \"a\": 2.50}}",
         "1 1.0 {\"z\": 1, \"a\": 2.5}");
  EXPECT_ERR("x", "{\"messages\": []}", "empty conversation", NULL);
  EXPECT_ERR("x", "[1]", "must be a JSON object", NULL);
  EXPECT_ERR("x", "{\"a\": ", "invalid JSON", NULL);

  lt_chat_template *t;
  lt_err err;
  CHECK(lt_chat_compile(&t, "{{ bos_token }}{{ messages[0].content }}{{ enable_thinking }}{{ add_generation_prompt }}"
                        "{{ tools | length }}", &err) == 0);
  char *out;
  size_t len;
  CHECK(lt_chat_render_request(t,
                               "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"add_generation_prompt\": "
                               "true, \"template_kwargs\": {\"enable_thinking\": false, \"bos_token\": \"<B>\"}, "
                               "\"tools\": [{}]}",
                               "{\"bos_token\": \"<s>\"}", &out, &len, &err) == 0);
  CHECK(strcmp(out, "<B>hiFalseTrue1") == 0);
  free(out);
  CHECK(lt_chat_render_request(t, "{\"add_generation_prompt\": true}", NULL, &out, &len, &err) != 0);
  CHECK(strstr(err.msg, "messages") != NULL);
  lt_chat_free(t);
}

static void test_errors(void) {
  // syntax errors name the construct and line:column
  EXPECT_ERR("a\n{% if x %}b", "{}", "1", "endif");
  EXPECT_ERR("ab\n  {% include 'x' %}", "{}", "at 2:6", "unsupported statement '{% include %}'");
  EXPECT_ERR("{{ x | nosuchfilter }}", "{}", "at 1:8", "unsupported filter 'nosuchfilter'");
  EXPECT_ERR("{{ x is nosuchtest }}", "{}", "at 1:9", "unsupported test 'nosuchtest'");
  EXPECT_ERR("{{ 'abc }}", "{}", "at 1:4", "unterminated string");
  EXPECT_ERR("{{ (1 }}", "{}", "1:", "expected");
  EXPECT_ERR("{% endfor %}", "{}", "at 1:4", "endfor");
  EXPECT_ERR("{{ x", "{}", "missing end", NULL);
  EXPECT_ERR("{# x", "{}", "comment", NULL);
  EXPECT_ERR("{% for x in y recursive %}{% endfor %}", "{}", "recursive", NULL);
  // runtime errors
  EXPECT_ERR("\n\n   {{ 1 + 'a' }}", "{}", "at 3:", "unsupported operand");
  EXPECT_ERR("{{ x.y.z }}", "{}", "'x' is undefined", NULL);
  EXPECT_ERR("{{ 1 // 0 }}", "{}", "division by zero", NULL);
  EXPECT_ERR("{{ messages.append(1) }}", "{\"messages\": [{}]}", "unsafe", NULL);
  EXPECT_ERR("{% set ns = namespace() %}{% set ns._x = 1 %}", "{}", "underscore", NULL);
  EXPECT_ERR("{{ f }}{% macro f() %}{% endmacro %}{{ f }}", "{}", "cannot print", NULL);
  EXPECT_ERR("{{ (1, 2) < 'a' }}", "{}", "not supported", NULL);
  EXPECT_ERR("{% break %}", "{}", "outside of a loop", NULL);
  // raise_exception: the message itself is the error
  EXPECT("{% if false %}{{ raise_exception('never') }}{% endif %}ok", "{}", "ok");
  char *got = render("{{ raise_exception('Roles must alternate ' ~ 2) }}", "{}");
  CHECK(strcmp(got, "ERR:Roles must alternate 2") == 0);
  free(got);
}

static void test_limits(void) {
  // deep nesting is an error, not a stack overflow
  size_t n = 5000;
  char *deep = malloc(n * 2 + 16);
  strcpy(deep, "{{ ");
  for (size_t i = 0; i < n; i++) strcat(deep, "(");
  strcat(deep, "1");
  for (size_t i = 0; i < n; i++) strcat(deep, ")");
  strcat(deep, " }}");
  EXPECT_ERR(deep, "{}", "nested too deeply", NULL);
  char *ifs = malloc(n * 12 + 16);
  ifs[0] = 0;
  for (size_t i = 0; i < n; i++) strcat(ifs, "{% if 1 %}");
  EXPECT_ERR(ifs, "{}", "nested too deeply", NULL);
  free(ifs);
  free(deep);
  // unbounded work is cut off
  EXPECT_ERR("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "{}", "steps", NULL);
  EXPECT_ERR("{{ range(1000000) }}", "{}", "Range too big", NULL);
  EXPECT_ERR("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "{}", "nested too deeply", NULL);
  EXPECT_ERR("{{ 'x' * 100000000 }}", "{}", "too large", NULL);
  EXPECT_ERR("{% set ns = namespace(s='xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') %}{% for i in range(30) %}"
             "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
             "{}", "MiB", NULL);
}

static void test_builtins(void) {
  CHECK(lt_chat_builtin("nope") == NULL);
  CHECK(strstr(lt_chat_builtin_names(), "alpaca") != NULL);
  const char *conv =
      "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_generation_prompt\": %s, \"messages\": ["
      "{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"Q1\"}, "
      "{\"role\": \"assistant\", \"content\": \"A1\"}, {\"role\": \"user\", \"content\": \"Q2\"}]}";
  char ctx_gen[512], ctx_nogen[512];
  snprintf(ctx_gen, sizeof ctx_gen, conv, "true");
  snprintf(ctx_nogen, sizeof ctx_nogen, conv, "false");
  struct { const char *name, *want_gen, *want_nogen; } b[] = {
      {"chatml",
       "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
       "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n",
       "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
       "<|im_start|>user\nQ2<|im_end|>\n"},
      {"qwen",
       "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
       "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n",
       NULL},
      {"llama3",
       "<s><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ1"
       "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|><|start_header_id|>user"
       "<|end_header_id|>\n\nQ2<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
       NULL},
      {"deepseek", "<s>S\n\nUser: Q1\n\nAssistant:A1</s>User: Q2\n\nAssistant:", "<s>S\n\nUser: Q1\n\nAssistant:A1</s>User: Q2\n\n"},
      {"alpaca", "S### Instruction:\nQ1\n\n### Response:\nA1</s>\n\n### Instruction:\nQ2\n\n### Response:\n", NULL},
  };
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
    const char *src = lt_chat_builtin(b[i].name);
    CHECK_MSG(src != NULL, "%s", b[i].name);
    if (!src) continue;
    expect(src, ctx_gen, b[i].want_gen, (int)i);
    if (b[i].want_nogen) expect(src, ctx_nogen, b[i].want_nogen, (int)i);
  }
  // defaults without a system message
  EXPECT(lt_chat_builtin("qwen"), "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
         "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
         "<|im_start|>user\nhi<|im_end|>\n");
  EXPECT(lt_chat_builtin("alpaca"),
         "{\"eos_token\": \"</s>\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": "
         "\"assistant\", \"content\": \"yo\"}]}",
         "Below is an instruction that describes a task. Write a response that appropriately completes the "
         "request.\n\n### Instruction:\nhi\n\n### Response:\nyo</s>\n\n");
}

static void write_file(const char *path, const char *text) {
  lt_err err;
  CHECK(lt_write_file_atomic(path, text, strlen(text), &err) == 0);
}

static void test_tokconfig(void) {
  lt_err err;
  char dir[512], path[700];
  snprintf(dir, sizeof dir, "%s/tokconfig_test", LT_TMPDIR);
  CHECK(lt_mkdirs(dir, &err) == 0);
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  write_file(path,
             "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\", \"pad_token\": null, "
             "\"add_bos_token\": true, \"add_eos_token\": false, \"tokenizer_class\": \"LlamaTokenizerFast\", "
             "\"model_max_length\": 1000000000000000019884624838656, "
             "\"chat_template\": [{\"name\": \"default\", \"template\": \"D\"}, {\"name\": \"tool_use\", \"template\": \"T\"}]}");
  lt_tokconfig c;
  CHECK(lt_tokconfig_load(&c, dir, &err) == 0);
  CHECK(c.bos_token && strcmp(c.bos_token, "<s>") == 0);
  CHECK(c.eos_token && strcmp(c.eos_token, "</s>") == 0);
  CHECK(c.pad_token == NULL && c.unk_token == NULL);
  CHECK(c.add_bos_token == 1 && c.add_eos_token == 0);
  CHECK(c.tokenizer_class && strcmp(c.tokenizer_class, "LlamaTokenizerFast") == 0);
  CHECK(c.model_max_length > 1e29);
  CHECK(c.n_templates == 2);
  CHECK(strcmp(lt_tokconfig_template(&c, NULL), "D") == 0);
  CHECK(strcmp(lt_tokconfig_template(&c, "tool_use"), "T") == 0);
  CHECK(lt_tokconfig_template(&c, "nope") == NULL);
  lt_tokconfig_free(&c);
  // tokenizer.json path -> its folder; chat_template.jinja replaces the config's templates
  snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
  write_file(path, "J");
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  write_file(path, "{}");
  CHECK(lt_tokconfig_load(&c, path, &err) == 0);
  CHECK(c.n_templates == 1 && strcmp(lt_tokconfig_template(&c, NULL), "J") == 0);
  lt_tokconfig_free(&c);
  // a string chat_template; absent fields
  snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
  remove(path);
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  write_file(path, "{\"chat_template\": \"S\"}");
  CHECK(lt_tokconfig_load(&c, dir, &err) == 0);
  CHECK(c.bos_token == NULL && c.add_bos_token == -1 && c.model_max_length == 0 && c.tokenizer_class == NULL);
  CHECK(strcmp(lt_tokconfig_template(&c, NULL), "S") == 0 && strcmp(c.template_name[0], "default") == 0);
  lt_tokconfig_free(&c);
  // errors
  write_file(path, "{\"bos_token\": 5}");
  CHECK(lt_tokconfig_load(&c, dir, &err) != 0 && strstr(err.msg, "bos_token"));
  write_file(path, "{not json");
  CHECK(lt_tokconfig_load(&c, dir, &err) != 0 && strstr(err.msg, "invalid JSON"));
  CHECK(lt_tokconfig_load(&c, "/nonexistent/dir", &err) != 0);
  // a missing tokenizer_config.json is not an error
  remove(path);
  CHECK(lt_tokconfig_load(&c, dir, &err) == 0 && c.n_templates == 0);
  lt_tokconfig_free(&c);
}

int main(void) {
  test_golden();
  test_context();
  test_errors();
  test_limits();
  test_builtins();
  test_tokconfig();
  TEST_MAIN_END();
}
