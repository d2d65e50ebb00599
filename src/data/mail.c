// E-mail -> instruction set (see mail.h): RFC 822 header parsing and unfolding, RFC 2047 encoded words, MIME
// walking (multipart with boundary recovery, message/rfc822), quoted-printable and base64, charset conversion with
// iconv, HTML to text, whitespace normalisation and truncation. The set builder is in mail_set.c.
#include "data/mail.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <iconv.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/core.h"
#include "data/data.h"

// ------------------------------------------------------------------------------------------------ growable buffer

static void sb_putc(lt_sbuf *b, char c) { lt_sbuf_put(b, &c, 1); }

static void sb_cp(lt_sbuf *b, uint32_t cp) {
  char u[4];
  if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
  if (cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    u[0] = (char)cp;
    lt_sbuf_put(b, u, 1);
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    lt_sbuf_put(b, u, 2);
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    lt_sbuf_put(b, u, 3);
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    lt_sbuf_put(b, u, 4);
  }
}

// Hand the string over (never NULL unless out of memory, then err is set and the buffer freed).
static char *sb_take(lt_sbuf *b, const char *what, lt_err *err) {
  if (!b->oom && !b->p) lt_sbuf_put(b, "", 0);
  if (b->oom) {
    free(b->p);
    memset(b, 0, sizeof *b);
    lt_errf(err, "out of memory while %s", what);
    return NULL;
  }
  char *p = b->p;
  memset(b, 0, sizeof *b);
  return p;
}

// ------------------------------------------------------------------------------------------------ UTF-8, charsets

// Length of the valid UTF-8 sequence at s, or minus the length of the maximal invalid subpart (Unicode's
// recommended U+FFFD substitution, as Python's "replace").
static int utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  int len;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c == 0xE0) {
    len = 3;
    lo = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    len = 3;
  } else if (c == 0xED) {
    len = 3;
    hi = 0x9F;
  } else if (c == 0xF0) {
    len = 4;
    lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    len = 4;
  } else if (c == 0xF4) {
    len = 4;
    hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < len; k++) {
    if ((size_t)k >= n) return -k;
    unsigned d = s[k];
    if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return -k;
  }
  return len;
}

static int is_utf8(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    int l = utf8_seq(u + i, n - i);
    if (l < 0) return 0;
    i += (size_t)l;
  }
  return 1;
}

static int is_ascii(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] >= 0x80) return 0;
  return 1;
}

static void put_utf8_sanitized(lt_sbuf *b, const char *s, size_t n, int *defect) {
  const unsigned char *u = (const unsigned char *)s;
  size_t run = 0;  // start of the pending valid run
  for (size_t i = 0; i < n;) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    int l = utf8_seq(u + i, n - i);
    if (l > 0) {
      i += (size_t)l;
      continue;
    }
    lt_sbuf_put(b, s + run, i - run);
    sb_cp(b, 0xFFFD);
    *defect = 1;
    i += (size_t)(-l);
    run = i;
  }
  lt_sbuf_put(b, s + run, n - run);
}

static const uint16_t cp1252_hi[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

static uint32_t cp1252(unsigned char c) { return c >= 0x80 && c < 0xA0 ? cp1252_hi[c - 0x80] : c; }

static void put_cp1252(lt_sbuf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80)
      sb_putc(b, (char)c);
    else
      sb_cp(b, cp1252(c));
  }
}

enum { CS_UNDECLARED, CS_UTF8, CS_OTHER };

// Canonical charset name (lower case, trimmed, quotes removed) into name; returns its class. Names with characters
// iconv options could hide in ("//", spaces) or too long count as unknown (undeclared).
static int charset_class(const char *cs, char *name, size_t cap) {
  name[0] = 0;
  if (!cs) return CS_UNDECLARED;
  while (*cs == ' ' || *cs == '\t' || *cs == '"' || *cs == '\'') cs++;
  size_t n = strlen(cs);
  while (n && (cs[n - 1] == ' ' || cs[n - 1] == '\t' || cs[n - 1] == '"' || cs[n - 1] == '\'')) n--;
  if (n == 0 || n >= cap) return CS_UNDECLARED;
  for (size_t i = 0; i < n; i++) {
    char c = cs[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ':' ||
          c == '+' || c == '(' || c == ')'))
      return CS_UNDECLARED;
    name[i] = c;
  }
  name[n] = 0;
  static const char *const undeclared[] = {"us-ascii", "ascii", "us_ascii", "ansi_x3.4-1968", "iso646-us",
                                           "default", "default_charset", "unknown-8bit", "x-unknown", "unknown",
                                           "x-user-defined"};
  for (size_t i = 0; i < sizeof undeclared / sizeof *undeclared; i++)
    if (!strcmp(name, undeclared[i])) return CS_UNDECLARED;
  if (!strcmp(name, "utf-8") || !strcmp(name, "utf8")) return CS_UTF8;
  // names mailers use that iconv spells differently
  static const char *const alias[][2] = {{"ks_c_5601-1987", "cp949"}, {"ks_c_5601", "cp949"},
                                         {"ks_c_5601-1989", "cp949"}, {"ksc5601", "cp949"},
                                         {"chinesebig5", "big5"},     {"gb2312_charset", "gb2312"},
                                         {"x-gbk", "gbk"},            {"x-sjis", "sjis"},
                                         {"shift-jis", "sjis"},       {"x-euc-jp", "euc-jp"},
                                         {"x-euc-kr", "euc-kr"},      {"windows-874", "cp874"}};
  for (size_t i = 0; i < sizeof alias / sizeof *alias; i++)
    if (!strcmp(name, alias[i][0])) snprintf(name, cap, "%s", alias[i][1]);
  return CS_OTHER;
}

// Can the charset be converted (declared utf-8 / ascii count; an unknown name cannot)?
static int charset_known(const char *charset) {
  char name[64];
  int cls = charset_class(charset, name, sizeof name);
  if (cls != CS_OTHER) return 1;
  iconv_t cd = iconv_open("UTF-8", name);
  if (cd == (iconv_t)-1) return 0;
  iconv_close(cd);
  return 1;
}

// Charsets whose ASCII bytes mean ASCII (an all-ASCII text needs no conversion).
static int ascii_compatible(const char *name) {
  static const char *const pre[] = {"iso-8859", "iso8859", "iso_8859", "windows-", "cp125", "koi8", "latin",
                                    "gb2312", "gbk", "gb18030", "big5", "euc-", "ks_c_5601", "tis-620"};
  for (size_t i = 0; i < sizeof pre / sizeof *pre; i++)
    if (!strncmp(name, pre[i], strlen(pre[i]))) return 1;
  return 0;
}

// ISO-8859 charsets map bytes 0x80..0x9F to C1 controls; mail labelled so is windows-1252 in practice.
static int c1_as_cp1252(const char *name) {
  return !strncmp(name, "iso-8859", 8) || !strncmp(name, "iso8859", 7) || !strncmp(name, "iso_8859", 8) ||
         !strncmp(name, "latin", 5) || !strcmp(name, "l1");
}

// Undeclared bytes: ASCII or valid UTF-8 kept, anything else read as windows-1252.
static void put_undeclared(lt_sbuf *b, const char *s, size_t n, int *defect) {
  if (is_ascii(s, n) || is_utf8(s, n)) {
    lt_sbuf_put(b, s, n);
  } else {
    put_cp1252(b, s, n);
    *defect = 1;
  }
}

static void put_charset(lt_sbuf *b, const char *s, size_t n, const char *charset, int *defect) {
  char name[64];
  int cls = charset_class(charset, name, sizeof name);
  if (cls == CS_UNDECLARED) {
    put_undeclared(b, s, n, defect);
    return;
  }
  if (cls == CS_UTF8) {
    put_utf8_sanitized(b, s, n, defect);
    return;
  }
  if (ascii_compatible(name) && is_ascii(s, n)) {
    lt_sbuf_put(b, s, n);
    return;
  }
  size_t at = b->n;
  iconv_t cd = iconv_open("UTF-8", name);
  if (cd == (iconv_t)-1) {  // unknown to iconv
    put_undeclared(b, s, n, defect);
    *defect = 1;
    return;
  }
  char *in = (char *)s;
  size_t inleft = n, want = n * 4 + 16;
  while (inleft > 0 && !b->oom) {
    if (lt_sbuf_reserve(b, want)) break;
    char *out = b->p + b->n;
    size_t outleft = b->cap - b->n - 1, before = outleft;
    size_t r = iconv(cd, &in, &inleft, &out, &outleft);
    b->n += before - outleft;
    b->p[b->n] = 0;
    if (r != (size_t)-1) break;
    if (errno == E2BIG) {
      want = (b->cap - b->n) * 2 + 16;
      continue;
    }
    // EILSEQ / EINVAL: that byte is read as windows-1252, conversion resumes after it
    put_cp1252(b, in, 1);
    in++;
    inleft--;
    *defect = 1;
    iconv(cd, NULL, NULL, NULL, NULL);
  }
  iconv_close(cd);
  // C1 controls U+0080..U+009F are windows-1252 text mislabelled: read them so, as browsers do
  if (c1_as_cp1252(name) && !b->oom) {
    int c1 = 0;
    for (size_t i = at; i + 1 < b->n && !c1; i++)
      c1 = (unsigned char)b->p[i] == 0xC2 && (unsigned char)b->p[i + 1] < 0xA0;
    if (!c1) return;
    size_t len = b->n - at;
    char *copy = malloc(len);
    if (!copy) {
      b->oom = 1;
      return;
    }
    memcpy(copy, b->p + at, len);
    b->n = at;
    for (size_t i = 0; i < len; i++) {
      if ((unsigned char)copy[i] == 0xC2 && i + 1 < len && (unsigned char)copy[i + 1] < 0xA0) {
        sb_cp(b, cp1252((unsigned char)copy[++i]));
      } else {
        sb_putc(b, copy[i]);
      }
    }
    free(copy);
  }
}

static void drop_nul(lt_sbuf *b, size_t from) {
  size_t w = from;
  for (size_t i = from; i < b->n; i++)
    if (b->p[i]) b->p[w++] = b->p[i];
  b->n = w;
  if (b->p) b->p[w] = 0;
}

char *lt_mail_to_utf8(const char *s, size_t n, const char *charset, int *defect, lt_err *err) {
  int d = 0;
  lt_sbuf b = {0};
  put_charset(&b, s, n, charset, &d);
  drop_nul(&b, 0);
  if (defect) *defect = d;
  return sb_take(&b, "converting a charset", err);
}

// ------------------------------------------------------------------------------------------------ transfer decoding

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// binascii.a2b_qp (header=False): "=\n" soft breaks, "=XX", "==" -> "=", any other "=" kept.
static void qp_decode(lt_sbuf *b, const char *s, size_t n) {
  if (lt_sbuf_reserve(b, n)) return;
  char *o = b->p + b->n;
  size_t i = 0;
  while (i < n) {
    if (s[i] != '=') {
      *o++ = s[i++];
      continue;
    }
    i++;
    if (i >= n) break;
    if (s[i] == '\n' || s[i] == '\r') {
      if (s[i] != '\n')
        while (i < n && s[i] != '\n') i++;
      if (i < n) i++;
    } else if (s[i] == '=') {
      *o++ = '=';
      i++;
    } else if (i + 1 < n && hexval(s[i]) >= 0 && hexval(s[i + 1]) >= 0) {
      *o++ = (char)(hexval(s[i]) << 4 | hexval(s[i + 1]));
      i += 2;
    } else {
      *o++ = '=';
    }
  }
  b->n = (size_t)(o - b->p);
  b->p[b->n] = 0;
}

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// binascii.a2b_base64 (non-strict) as Python's email decodes parts: bytes outside the alphabet skipped, decoding
// stops at the first complete padding, a missing padding tolerated. defect: 1 garbage or bad padding, 2 a dangling
// single character (Python then gives up and keeps the encoded text).
static void b64_decode(lt_sbuf *b, const char *s, size_t n, int *defect) {
  if (lt_sbuf_reserve(b, n / 4 * 3 + 3)) return;
  unsigned char *o = (unsigned char *)b->p + b->n;
  int quad = 0, pads = 0, ended = 0;
  unsigned left = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '=') {
      if (quad >= 2 && quad + ++pads >= 4) {
        ended = 1;
        break;
      }
      continue;
    }
    int v = b64val(c);
    if (v < 0) {
      if (c != '\n' && c != '\r' && c != ' ' && c != '\t') *defect = LT_MAX(*defect, 1);
      continue;
    }
    pads = 0;
    switch (quad) {
      case 0:
        quad = 1;
        left = (unsigned)v;
        break;
      case 1:
        quad = 2;
        *o++ = (unsigned char)(left << 2 | (unsigned)v >> 4);
        left = (unsigned)v & 0x0F;
        break;
      case 2:
        quad = 3;
        *o++ = (unsigned char)(left << 4 | (unsigned)v >> 2);
        left = (unsigned)v & 0x03;
        break;
      default:
        quad = 0;
        *o++ = (unsigned char)(left << 6 | (unsigned)v);
        left = 0;
        break;
    }
  }
  if (!ended && quad == 1) *defect = 2;
  if (!ended && quad >= 2) *defect = LT_MAX(*defect, 1);
  b->n = (size_t)((char *)o - b->p);
  b->p[b->n] = 0;
}

char *lt_mail_qp_decode(const char *s, size_t n, size_t *out_len, lt_err *err) {
  lt_sbuf b = {0};
  qp_decode(&b, s, n);
  *out_len = b.n;
  return sb_take(&b, "decoding quoted-printable", err);
}

char *lt_mail_b64_decode(const char *s, size_t n, size_t *out_len, int *defect, lt_err *err) {
  lt_sbuf b = {0};
  int d = 0;
  b64_decode(&b, s, n, &d);
  *out_len = b.n;
  if (defect) *defect = d;
  return sb_take(&b, "decoding base64", err);
}

// ------------------------------------------------------------------------------------------------ RFC 2047

static int is_wsp(char c) { return c == ' ' || c == '\t'; }
// What str.lstrip() eats after the first space/tab of a folding-whitespace token (ASCII part).
static int is_py_space(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || (c >= 0x1C && c <= 0x1F); }

static const char *find2(const char *s, const char *e, char a, char b2) {
  for (const char *p = s; p + 1 < e; p++)
    if (p[0] == a && p[1] == b2) return p;
  return NULL;
}

// Does [s, e) contain =?charset?[qQbB]?...?= (Python's rfc2047_matcher)?
static int has_encoded_word(const char *s, const char *e) {
  for (const char *a = find2(s, e, '=', '?'); a; a = find2(a + 1, e, '=', '?')) {
    const char *q = a + 2;
    while (q < e && *q != '?') q++;
    // once no "?=" follows, none follows a later start either
    if (q + 2 < e && strchr("qQbB", q[1]) && q[2] == '?') return find2(q + 3, e, '?', '=') != NULL;
  }
  return 0;
}

// The first "?=" at or after `from`. Queries come with non-decreasing `from`, so the scans never overlap and a
// header full of "=?" stays linear.
typedef struct closer {
  const char *from, *pos;
} closer;

static const char *next_close(closer *c, const char *from, const char *e) {
  if (c->from && from >= c->from && (!c->pos || c->pos >= from)) return c->pos;
  c->from = from;
  c->pos = find2(from, e, '?', '=');
  return c->pos;
}

// '?' characters in [s, e), counted up to 3 (only "exactly 2" matters).
static int count_q(const char *s, const char *e) {
  int n = 0;
  while (s < e && n < 3 && (s = memchr(s, '?', (size_t)(e - s))) != NULL) {
    n++;
    s++;
  }
  return n;
}

// One encoded word at s (which starts with "=?"), as Python's get_encoded_word + _encoded_words.decode.
// Returns 1 (decoded text appended to out, *used = bytes consumed), 0 (no "?=" anywhere: not an encoded word),
// -1 (malformed).
static int encoded_word(const char *s, const char *e, closer *c1, closer *c2, lt_sbuf *out, size_t *used) {
  const char *rest = s + 2;
  const char *q = next_close(c1, rest, e);
  if (!q) return 0;
  const char *tok_end = q, *after = q + 2;
  int nq = count_q(rest, tok_end);
  if (e - after > 1 && hexval(after[0]) >= 0 && hexval(after[1]) >= 0 && nq < 2) {
    // the "?=" found was the one after the encoding letter followed by an =XX escape: take the next one
    const char *q2 = next_close(c2, after, e);
    tok_end = q2 ? q2 : e;
    after = q2 ? q2 + 2 : e;
    nq = count_q(rest, tok_end);
  }
  if (nq != 2) return -1;
  const char *q1 = memchr(rest, '?', (size_t)(tok_end - rest));
  const char *q2 = memchr(q1 + 1, '?', (size_t)(tok_end - q1 - 1));
  if (q2 - q1 != 2 || !strchr("qQbB", q1[1])) return -1;
  char charset[64];
  const char *cs_end = memchr(rest, '*', (size_t)(q1 - rest));
  if (!cs_end) cs_end = q1;
  size_t csl = (size_t)(cs_end - rest);
  if (csl >= sizeof charset) csl = 0;  // absurd name: treated as unknown
  memcpy(charset, rest, csl);
  charset[csl] = 0;
  const char *text = q2 + 1;
  size_t tn = (size_t)(tok_end - text);
  lt_sbuf raw = {0};
  if (q1[1] == 'q' || q1[1] == 'Q') {
    if (!lt_sbuf_reserve(&raw, tn)) {
      for (size_t i = 0; i < tn; i++) {
        if (text[i] == '_') {
          raw.p[raw.n++] = ' ';
        } else if (text[i] == '=' && i + 2 < tn && hexval(text[i + 1]) >= 0 && hexval(text[i + 2]) >= 0) {
          raw.p[raw.n++] = (char)(hexval(text[i + 1]) << 4 | hexval(text[i + 2]));
          i += 2;
        } else {
          raw.p[raw.n++] = text[i];
        }
      }
      raw.p[raw.n] = 0;
    }
  } else {
    int d = 0;
    b64_decode(&raw, text, tn, &d);
    if (d == 2) {  // Python keeps the encoded text when the length cannot be right
      raw.n = 0;
      lt_sbuf_put(&raw, text, tn);
    }
  }
  int defect = 0;
  if (!raw.oom) put_charset(out, raw.p ? raw.p : "", raw.n, charset, &defect);
  if (raw.oom) out->oom = 1;
  free(raw.p);
  *used = (size_t)(after - s);
  return 1;
}

static void decode_unstructured(lt_sbuf *out, const char *v, size_t n) {
  enum { T_NONE, T_FWS, T_EW, T_TEXT };
  int t1 = T_NONE, t2 = T_NONE;
  size_t fws_at = 0;
  const char *e = v + n;
  closer c1 = {NULL, NULL}, c2 = {NULL, NULL};
  size_t i = 0;
  while (i < n) {
    if (is_wsp(v[i])) {
      size_t j = i + 1;
      while (j < n && is_py_space(v[j])) j++;
      fws_at = out->n;
      lt_sbuf_put(out, v + i, j - i);
      t2 = t1;
      t1 = T_FWS;
      i = j;
      continue;
    }
    int valid_ew = 1;
    if (i + 1 < n && v[i] == '=' && v[i + 1] == '?') {
      size_t mark = out->n, used = 0;
      int r = encoded_word(v + i, e, &c1, &c2, out, &used);
      if (r == 1) {
        if (t1 == T_FWS && t2 == T_EW) {  // whitespace between two encoded words disappears
          size_t len = out->n - mark;
          if (!out->oom) memmove(out->p + fws_at, out->p + mark, len);
          out->n = fws_at + len;
          if (!out->oom) out->p[out->n] = 0;
        }
        t2 = t1;
        t1 = T_EW;
        i += used;
        continue;
      }
      if (r < 0) valid_ew = 0;
    }
    size_t j = i;
    while (j < n && !is_wsp(v[j])) j++;
    if (valid_ew && has_encoded_word(v + i, v + j)) {  // an encoded word glued to text: split before it
      const char *a = find2(v + i, e, '=', '?');
      if (a && a > v + i) j = (size_t)(a - v);
    }
    lt_sbuf_put(out, v + i, j - i);
    t2 = t1;
    t1 = T_TEXT;
    i = j;
  }
}

char *lt_mail_decode_header(const char *s, size_t n, const char *raw_charset, lt_err *err) {
  lt_sbuf raw = {0}, out = {0};
  int d = 0;
  if (is_utf8(s, n))
    lt_sbuf_put(&raw, s, n);
  else
    put_charset(&raw, s, n, raw_charset, &d);
  if (!raw.oom) decode_unstructured(&out, raw.p ? raw.p : "", raw.n);
  if (raw.oom) out.oom = 1;
  free(raw.p);
  drop_nul(&out, 0);
  return sb_take(&out, "decoding a header", err);
}

// ------------------------------------------------------------------------------------------------ lines, headers

typedef struct entity {
  const char *hb, *he;  // header block
  const char *bb, *be;  // body
} entity;

// End of the line at p (before its CR LF / CR / LF); *nx = the next line.
static const char *line_end(const char *p, const char *e, const char **nx) {
  const char *q = p;
  while (q < e && *q != '\n' && *q != '\r') q++;
  *nx = q;
  if (q < e) *nx = (*q == '\r' && q + 1 < e && q[1] == '\n') ? q + 2 : q + 1;
  return q;
}

// Python's feedparser headerRE: "From ", a field name then ':', or a continuation.
static int is_header_line(const char *p, const char *le) {
  if (p < le && is_wsp(*p)) return 1;
  if (le - p >= 5 && !memcmp(p, "From ", 5)) return 1;
  for (const char *q = p; q < le; q++) {
    unsigned char c = (unsigned char)*q;
    if (c == ':') return 1;
    if (c < 33 || c > 126) return 0;
  }
  return 0;
}

// Headers end at a blank line (consumed) or at the first line that is not a header (it starts the body).
static void split_entity(const char *b, const char *e, entity *en) {
  en->hb = b;
  const char *p = b;
  while (p < e) {
    const char *nx, *le = line_end(p, e, &nx);
    if (le == p) {
      en->he = p;
      en->bb = nx;
      en->be = e;
      return;
    }
    if (!is_header_line(p, le)) break;
    p = nx;
  }
  en->he = p;
  en->bb = p;
  en->be = e;
}

// The first `name` header's value unfolded as Python's policy.default gives it: text after the colon with leading
// blanks stripped, continuation lines appended with their leading whitespace, line breaks removed. 1 if present.
static int get_header(const entity *en, const char *name, lt_sbuf *out) {
  size_t nl = strlen(name);
  int matching = 0;
  out->n = 0;
  for (const char *p = en->hb; p < en->he;) {
    const char *nx, *le = line_end(p, en->he, &nx);
    if (is_wsp(*p)) {
      if (matching) lt_sbuf_put(out, p, (size_t)(le - p));
    } else {
      if (matching) return 1;
      if (!(le - p >= 5 && !memcmp(p, "From ", 5))) {
        const char *c = memchr(p, ':', (size_t)(le - p));
        if (c && (size_t)(c - p) == nl && !strncasecmp(p, name, nl)) {
          matching = 1;
          const char *v = c + 1;
          while (v < le && is_wsp(*v)) v++;
          lt_sbuf_put(out, v, (size_t)(le - v));
        }
      }
    }
    p = nx;
  }
  if (matching && !out->p) lt_sbuf_put(out, "", 0);
  return matching;
}

static void trim(const char **s, const char **e) {
  while (*s < *e && (is_wsp(**s) || **s == '\r' || **s == '\n')) (*s)++;
  while (*e > *s && (is_wsp((*e)[-1]) || (*e)[-1] == '\r' || (*e)[-1] == '\n')) (*e)--;
}

// Next ';'-separated segment of a parameter list (quotes respected as Python's _parseparam counts them).
static const char *param_segment_end(const char *s, const char *e) {
  int inq = 0;
  for (const char *p = s; p < e; p++) {
    if (*p == '\\' && inq && p + 1 < e) {
      p++;
      continue;
    }
    if (*p == '"') inq = !inq;
    if (*p == ';' && !inq) return p;
  }
  return e;
}

static void unquote_into(lt_sbuf *out, const char *s, const char *e) {
  if (e - s >= 2 && *s == '"' && e[-1] == '"') {
    for (const char *p = s + 1; p < e - 1; p++) {
      if (*p == '\\' && p + 1 < e - 1 && (p[1] == '\\' || p[1] == '"')) p++;
      sb_putc(out, *p);
    }
  } else if (e - s >= 2 && *s == '<' && e[-1] == '>') {
    lt_sbuf_put(out, s + 1, (size_t)(e - s - 2));
  } else {
    lt_sbuf_put(out, s, (size_t)(e - s));
  }
}

static void pct_decode_into(lt_sbuf *out, const char *s, const char *e) {
  for (const char *p = s; p < e; p++) {
    if (*p == '%' && e - p >= 3 && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
      sb_putc(out, (char)(hexval(p[1]) << 4 | hexval(p[2])));
      p += 2;
    } else {
      sb_putc(out, *p);
    }
  }
}

// Next "name=value" segment after *p (segment 0, the type, is skipped by starting after the first ';').
static int next_param(const char **p, const char *e, const char **ns, const char **ne, const char **vs,
                      const char **ve) {
  if (*p >= e) return 0;
  const char *se = param_segment_end(*p, e);
  const char *eq = memchr(*p, '=', (size_t)(se - *p));
  *ns = *p;
  *ne = eq ? eq : se;
  trim(ns, ne);
  *vs = eq ? eq + 1 : se;
  *ve = se;
  trim(vs, ve);
  *p = se < e ? se + 1 : e;
  return 1;
}

static void rfc2231_piece(lt_sbuf *out, const char *vs, const char *ve, int enc, int first) {
  lt_sbuf tmp = {0};
  unquote_into(&tmp, vs, ve);
  const char *ts = tmp.p ? tmp.p : "", *te = ts + tmp.n;
  if (enc && first) {  // charset'lang'value
    const char *a1 = memchr(ts, '\'', tmp.n);
    const char *a2 = a1 ? memchr(a1 + 1, '\'', (size_t)(te - a1 - 1)) : NULL;
    if (a2) ts = a2 + 1;
  }
  if (enc)
    pct_decode_into(out, ts, te);
  else
    lt_sbuf_put(out, ts, (size_t)(te - ts));
  if (tmp.oom) out->oom = 1;
  free(tmp.p);
}

// Parameter `pname` of a Content-Type / Content-Disposition value (first match, unquoted as Python's get_param;
// else RFC 2231 name*= or name*0=, name*1=... joined, %XX decoded, charset'lang' prefix dropped). 1 if present.
static int get_param(const char *v, size_t n, const char *pname, lt_sbuf *out) {
  size_t pl = strlen(pname);
  const char *e = v + n, *start = param_segment_end(v, e);
  start = start < e ? start + 1 : e;
  const char *ns, *ne, *vs, *ve;
  out->n = 0;
  for (const char *p = start; next_param(&p, e, &ns, &ne, &vs, &ve);)
    if ((size_t)(ne - ns) == pl && !strncasecmp(ns, pname, pl)) {
      unquote_into(out, vs, ve);
      if (!out->p) lt_sbuf_put(out, "", 0);
      return 1;
    }
  int found = 0;
  for (int piece = 0; piece < 256; piece++) {
    int got = 0;
    for (const char *p = start; !got && next_param(&p, e, &ns, &ne, &vs, &ve);) {
      if ((size_t)(ne - ns) <= pl || strncasecmp(ns, pname, pl) || ns[pl] != '*') continue;
      const char *q = ns + pl + 1;
      if (q == ne) {  // name*=charset'lang'value
        if (piece) continue;
        rfc2231_piece(out, vs, ve, 1, 1);
        if (!out->p) lt_sbuf_put(out, "", 0);
        return 1;
      }
      int num = 0, digits = 0, enc = 0;
      while (q < ne && *q >= '0' && *q <= '9' && digits < 4) {
        num = num * 10 + (*q++ - '0');
        digits++;
      }
      if (q < ne && *q == '*') {
        enc = 1;
        q++;
      }
      if (!digits || q != ne || num != piece) continue;
      rfc2231_piece(out, vs, ve, enc, piece == 0);
      got = 1;
    }
    if (!got) break;
    found = 1;
  }
  if (found && !out->p) lt_sbuf_put(out, "", 0);
  return found;
}

// Content type (lower case "type/sub") of an entity; the header value stays in hv for get_param.
static void content_type(const entity *en, const char *deflt, char *type, size_t cap, lt_sbuf *hv) {
  if (!get_header(en, "content-type", hv)) {
    snprintf(type, cap, "%s", deflt);
    hv->n = 0;
    return;
  }
  const char *s = hv->p, *e = s + hv->n;
  const char *se = param_segment_end(s, e);
  trim(&s, &se);
  const char *te = s;
  while (te < se && !is_wsp(*te) && *te != '(') te++;  // "text/plain charset=..." (missing ';') still counts
  size_t n = (size_t)(te - s), slashes = 0;
  for (size_t i = 0; i < n; i++) slashes += s[i] == '/';
  if (slashes != 1 || n == 0 || n >= cap) {
    snprintf(type, cap, "text/plain");
    return;
  }
  for (size_t i = 0; i < n; i++) type[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i]);
  type[n] = 0;
}

static int first_token_is(const char *v, size_t n, const char *word) {
  const char *s = v, *e = v + n;
  while (s < e && is_wsp(*s)) s++;
  size_t wl = strlen(word);
  if ((size_t)(e - s) < wl || strncasecmp(s, word, wl)) return 0;
  s += wl;
  return s == e || is_wsp(*s) || *s == ';' || *s == '(';
}

static int is_attachment(const entity *en, lt_sbuf *tmp) {
  return get_header(en, "content-disposition", tmp) && first_token_is(tmp->p, tmp->n, "attachment");
}

// ------------------------------------------------------------------------------------------------ HTML -> text

typedef struct entity_name {
  const char *name;
  uint16_t cp;
} entity_name;

// Latin-1 entities (&nbsp; .. &yuml;) are code points 160..255 in this order; they (and amp lt gt quot) also
// count without the semicolon, as browsers read them.
static const char *const latin1_names[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",    "copy",   "ordf",
    "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn", "sup2",   "sup3",   "acute",  "micro",
    "para",   "middot", "cedil",  "sup1",   "ordm",   "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave",
    "Aacute", "Acirc",  "Atilde", "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",
    "Igrave", "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde", "Ouml",
    "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",  "szlig",  "agrave", "aacute",
    "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil", "egrave", "eacute", "ecirc",  "euml",   "igrave",
    "iacute", "icirc",  "iuml",   "eth",    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide",
    "oslash", "ugrave", "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};

static const entity_name other_entities[] = {
    {"quot", 34},     {"amp", 38},      {"apos", 39},    {"lt", 60},       {"gt", 62},       {"OElig", 338},
    {"oelig", 339},   {"Scaron", 352},  {"scaron", 353}, {"Yuml", 376},    {"fnof", 402},    {"circ", 710},
    {"tilde", 732},   {"Alpha", 913},   {"Beta", 914},   {"Omega", 937},   {"alpha", 945},   {"beta", 946},
    {"gamma", 947},   {"delta", 948},   {"pi", 960},     {"mu", 956},      {"sigma", 963},   {"omega", 969},
    {"ensp", 8194},   {"emsp", 8195},   {"thinsp", 8201}, {"zwnj", 8204},  {"zwj", 8205},    {"lrm", 8206},
    {"rlm", 8207},    {"ndash", 8211},  {"mdash", 8212}, {"lsquo", 8216},  {"rsquo", 8217},  {"sbquo", 8218},
    {"ldquo", 8220},  {"rdquo", 8221},  {"bdquo", 8222}, {"dagger", 8224}, {"Dagger", 8225}, {"bull", 8226},
    {"hellip", 8230}, {"permil", 8240}, {"prime", 8242}, {"Prime", 8243},  {"lsaquo", 8249}, {"rsaquo", 8250},
    {"oline", 8254},  {"frasl", 8260},  {"euro", 8364},  {"trade", 8482},  {"larr", 8592},   {"uarr", 8593},
    {"rarr", 8594},   {"darr", 8595},   {"harr", 8596},  {"minus", 8722},  {"radic", 8730},  {"infin", 8734},
    {"asymp", 8776},  {"ne", 8800},     {"le", 8804},    {"ge", 8805},     {"spades", 9824}, {"clubs", 9827},
    {"hearts", 9829}, {"diams", 9830}};

static int is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// Entity at s ('&'); returns the bytes consumed (0: not an entity, the '&' is text) and the code point.
static size_t html_entity(const char *s, const char *e, uint32_t *cp) {
  const char *p = s + 1;
  if (p < e && *p == '#') {
    p++;
    int hex = p < e && (*p == 'x' || *p == 'X');
    if (hex) p++;
    uint32_t v = 0;
    const char *d = p;
    while (p < e && (hex ? hexval(*p) >= 0 : (*p >= '0' && *p <= '9'))) {
      if (v <= 0x10FFFF) v = v * (hex ? 16 : 10) + (uint32_t)(hex ? hexval(*p) : *p - '0');
      p++;
    }
    if (p == d) return 0;
    if (p < e && *p == ';') p++;
    if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) v = 0xFFFD;
    if (v >= 0x80 && v < 0xA0) v = cp1252((unsigned char)v);
    *cp = v;
    return (size_t)(p - s);
  }
  const char *ns = p;
  while (p < e && is_alnum(*p) && p - ns < 32) p++;
  size_t nl = (size_t)(p - ns);
  if (nl == 0) return 0;
  int semi = p < e && *p == ';';
  if (!semi && p < e && is_alnum(*p)) return 0;
  for (int i = 0; i < 96; i++)
    if (strlen(latin1_names[i]) == nl && !memcmp(latin1_names[i], ns, nl)) {
      *cp = 160 + (uint32_t)i;
      return nl + 1 + (size_t)semi;
    }
  for (size_t i = 0; i < sizeof other_entities / sizeof *other_entities; i++)
    if (strlen(other_entities[i].name) == nl && !memcmp(other_entities[i].name, ns, nl)) {
      if (!semi && other_entities[i].cp > 62) return 0;
      *cp = other_entities[i].cp;
      return nl + 1 + (size_t)semi;
    }
  return 0;
}

static const char *find_ci(const char *s, const char *e, const char *needle) {
  size_t nl = strlen(needle);
  for (const char *p = s; p + nl <= e; p++) {
    p = memchr(p, needle[0], (size_t)(e - p));
    if (!p || p + nl > e) return NULL;
    if (!strncasecmp(p, needle, nl)) return p;
  }
  return NULL;
}

static int name_in(const char *name, const char *const *list) {
  for (; *list; list++)
    if (!strcmp(name, *list)) return 1;
  return 0;
}

static void trim_trailing_spaces(lt_sbuf *b) {
  while (b->n && b->p[b->n - 1] == ' ') b->n--;
  if (b->p) b->p[b->n] = 0;
}

static void html_break(lt_sbuf *b, int lines) {
  trim_trailing_spaces(b);
  if (!b->n) return;
  int have = 0;
  while (have < lines && (size_t)have < b->n && b->p[b->n - 1 - (size_t)have] == '\n') have++;
  for (; have < lines; have++) sb_putc(b, '\n');
}

// Text between tags: entities decoded, whitespace collapsed unless in <pre>.
static void html_text(lt_sbuf *b, const char *p, const char *e, int pre) {
  while (p < e) {
    char c = *p;
    if (c == '&') {
      uint32_t cp;
      size_t used = html_entity(p, e, &cp);
      if (used) {
        sb_cp(b, cp);
        p += used;
        continue;
      }
    }
    if (!pre && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f')) {
      if (b->n && b->p[b->n - 1] != ' ' && b->p[b->n - 1] != '\n') sb_putc(b, ' ');
      p++;
      continue;
    }
    const char *r = p + 1;
    while (r < e && *r != '&' && *r != ' ' && *r != '\t' && *r != '\n' && *r != '\r' && *r != '\f') r++;
    lt_sbuf_put(b, p, (size_t)(r - p));
    p = r;
  }
}

static void html_to_text(lt_sbuf *b, const char *s, size_t n) {
  static const char *const para[] = {"p",  "h1",    "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table",
                                     "ul", "ol",    "dl", "form", "address", NULL};
  static const char *const line[] = {"div",     "tr",     "li",     "dt",    "dd",     "hr",   "center",
                                     "caption", "section", "article", "header", "footer", "nav", "aside",
                                     "main",    "figure", "figcaption", "fieldset", "legend", "option", "body",
                                     "html",    "tbody",  "thead",  "tfoot", "frame",  "noscript", "menu", NULL};
  const char *e = s + n, *p = s;
  int pre = 0, no_head_close = 0, no_body_tag = 0, no_title_end = 0;
  while (p < e) {
    char c = *p;
    if (c == '<') {
      if (e - p >= 4 && !memcmp(p, "<!--", 4)) {
        const char *q = find2(p + 4, e, '-', '-');
        while (q && !(q + 2 < e && q[2] == '>')) q = find2(q + 1, e, '-', '-');
        p = q ? q + 3 : e;
        continue;
      }
      if (p + 1 < e && (p[1] == '!' || p[1] == '?')) {
        const char *q = memchr(p, '>', (size_t)(e - p));
        p = q ? q + 1 : e;
        continue;
      }
      const char *q = p + 1;
      int closing = q < e && *q == '/';
      if (closing) q++;
      if (!(q < e && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')))) {  // "a < b": text
        sb_putc(b, '<');
        p++;
        continue;
      }
      char name[16];
      size_t nl = 0;
      while (q < e && (is_alnum(*q) || *q == ':' || *q == '-' || *q == '_')) {
        if (nl + 1 < sizeof name) name[nl++] = (char)((*q >= 'A' && *q <= 'Z') ? *q - 'A' + 'a' : *q);
        q++;
      }
      name[nl] = 0;
      // the end of the tag: '>' outside quoted attribute values
      const char *gt = NULL;
      for (const char *r = q; r < e; r++) {
        if (*r == '>') {
          gt = r;
          break;
        }
        if (*r == '=') {
          const char *v = r + 1;
          while (v < e && (is_wsp(*v) || *v == '\n' || *v == '\r')) v++;
          if (v < e && (*v == '"' || *v == '\'')) {
            const char *cl = memchr(v + 1, *v, (size_t)(e - v - 1));
            if (!cl) break;  // an unclosed quoted value runs to the end: the tag never ends
            r = cl;
          }
        }
      }
      if (!gt) break;  // an unterminated tag swallows the rest, as in a browser
      p = gt + 1;
      if (!closing && (!strcmp(name, "script") || !strcmp(name, "style") || !strcmp(name, "title"))) {
        char endtag[24];
        snprintf(endtag, sizeof endtag, "</%s", name);
        int is_title = !strcmp(name, "title");
        const char *x = is_title && no_title_end ? NULL : find_ci(p, e, endtag);
        if (x) {
          const char *xg = memchr(x, '>', (size_t)(e - x));
          p = xg ? xg + 1 : e;
        } else if (!is_title) {
          p = e;
        } else {
          no_title_end = 1;  // later titles need not search again
        }
        continue;
      }
      if (!closing && !strcmp(name, "head")) {  // skip to </head> or <body>, whichever comes first
        const char *x1 = no_head_close ? NULL : find_ci(p, e, "</head");
        const char *x2 = no_body_tag ? NULL : find_ci(p, x1 ? x1 : e, "<body");
        if (!x1) no_head_close = 1;  // searches from later positions would fail too
        if (!x1 && !x2) no_body_tag = 1;
        const char *x = x2 ? x2 : x1;
        if (x) p = x;
        continue;
      }
      if (!strcmp(name, "img")) {  // an image's alt text stands for it
        const char *alt = find_ci(q, gt, "alt=");
        if (alt && (alt == q || is_wsp(alt[-1]) || alt[-1] == '\n' || alt[-1] == '\r')) {
          const char *as = alt + 4, *ae;
          if (as < gt && (*as == '"' || *as == '\'')) {
            char qc = *as++;
            ae = memchr(as, qc, (size_t)(gt - as));
            if (!ae) ae = gt;
          } else {
            ae = as;
            while (ae < gt && !is_wsp(*ae) && *ae != '\n' && *ae != '\r') ae++;
          }
          if (ae > as) {
            if (b->n && b->p[b->n - 1] != ' ' && b->p[b->n - 1] != '\n') sb_putc(b, ' ');
            html_text(b, as, ae, pre);
            sb_putc(b, ' ');
          }
        }
        continue;
      }
      if (!strcmp(name, "br")) {
        trim_trailing_spaces(b);
        sb_putc(b, '\n');
      } else if (!strcmp(name, "td") || !strcmp(name, "th")) {
        if (b->n && b->p[b->n - 1] != ' ' && b->p[b->n - 1] != '\n') sb_putc(b, ' ');
      } else if (name_in(name, para)) {
        html_break(b, 2);
        if (!strcmp(name, "pre")) pre = closing ? LT_MAX(pre - 1, 0) : pre + 1;
      } else if (name_in(name, line)) {
        html_break(b, 1);
      }
      continue;
    }
    const char *t = p;
    while (t < e && *t != '<') t++;
    html_text(b, p, t, pre);
    p = t;
  }
}

char *lt_mail_html_to_text(const char *s, size_t n, lt_err *err) {
  lt_sbuf b = {0};
  html_to_text(&b, s, n);
  return sb_take(&b, "converting HTML", err);
}

// ------------------------------------------------------------------------------------------------ normalisation

static int space_at(const unsigned char *u, size_t n, size_t i, size_t *len) {
  *len = 1;
  unsigned char c = u[i];
  if (c == ' ' || c == '\t' || c == '\v' || c == '\f') return 1;
  if (c == 0xC2 && i + 1 < n && u[i + 1] == 0xA0) {
    *len = 2;
    return 1;
  }
  return 0;
}

static void normalize(lt_sbuf *b, const char *s, size_t n, int one_line) {
  const unsigned char *u = (const unsigned char *)s;
  size_t start = b->n;
  int nl = 0, sp = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = u[i];
    size_t len;
    if (c == '\n' || c == '\r') {
      i += (c == '\r' && i + 1 < n && u[i + 1] == '\n') ? 2 : 1;
      if (one_line)
        sp = 1;
      else
        nl++;
      continue;
    }
    if (space_at(u, n, i, &len)) {
      sp = 1;
      i += len;
      continue;
    }
    if (c < 0x20 || c == 0x7F) {
      i++;
      continue;
    }
    len = 1;
    if (c >= 0x80) {
      int l = utf8_seq(u + i, n - i);
      len = (size_t)(l > 0 ? l : -l);
    }
    if (b->n > start) {
      if (nl >= 2)
        lt_sbuf_put(b, "\n\n", 2);
      else if (nl == 1)
        sb_putc(b, '\n');
      else if (sp)
        sb_putc(b, ' ');
    }
    nl = sp = 0;
    lt_sbuf_put(b, s + i, len);
    i += len;
  }
}

char *lt_mail_normalize(const char *s, int one_line, lt_err *err) {
  lt_sbuf b = {0};
  normalize(&b, s, strlen(s), one_line);
  return sb_take(&b, "normalising whitespace", err);
}

size_t lt_mail_truncate_len(const char *s, size_t n, int max_chars) {
  if (max_chars <= 0) return n;
  // byte offsets of code points max-max/10 .. max
  size_t cps = 0, cut = n, i = 0;
  int lo = max_chars - max_chars / 10;
  size_t lo_off = 0;
  while (i < n) {
    if (cps == (size_t)lo) lo_off = i;
    if (cps == (size_t)max_chars) {
      cut = i;
      break;
    }
    i++;
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    cps++;
  }
  if (cut == n) return n;  // short enough
  size_t c = cut;
  for (size_t k = cut + 1; k-- > lo_off;) {
    if (s[k] == ' ' || s[k] == '\n' || s[k] == '\t') {
      c = k;
      break;
    }
  }
  while (c > 0 && (s[c - 1] == ' ' || s[c - 1] == '\n' || s[c - 1] == '\t')) c--;
  return c;
}

// ------------------------------------------------------------------------------------------------ message parsing

#define MAX_DEPTH 24
#define MAX_PARTS 512
#define MAX_EMBEDDED 16

typedef struct range {
  const char *s, *e;
} range;

typedef struct walk {
  entity plain, html;
  int have_plain, have_html;
  entity embedded[MAX_EMBEDDED];  // message/rfc822 parts, looked into when nothing else is found
  int n_embedded;
  int defects;
  lt_sbuf hv, tmp;
} walk;

// Delimiter line "--B" [ "--" ] [blanks] ? 0 no, 1 delimiter, 2 close delimiter.
static int delimiter(const char *p, const char *le, const char *bd, size_t bl) {
  if ((size_t)(le - p) < 2 + bl || p[0] != '-' || p[1] != '-' || memcmp(p + 2, bd, bl)) return 0;
  const char *q = p + 2 + bl;
  int close = 0;
  if (le - q >= 2 && q[0] == '-' && q[1] == '-') {
    close = 1;
    q += 2;
  }
  while (q < le && is_wsp(*q)) q++;
  return q == le ? 1 + close : 0;
}

// Parts between delimiters; the line break before a delimiter belongs to it. Returns the number of parts.
static int split_parts(const char *b, const char *e, const char *bd, size_t bl, range *parts, int *closed) {
  int np = 0, in_part = 0;
  const char *ps = NULL;
  *closed = 0;
  for (const char *p = b; p < e;) {
    const char *nx, *le = line_end(p, e, &nx);
    int d = delimiter(p, le, bd, bl);
    if (d) {
      if (in_part && np < MAX_PARTS) {
        const char *pe = p;
        if (pe > ps && pe[-1] == '\n') {
          pe--;
          if (pe > ps && pe[-1] == '\r') pe--;
        } else if (pe > ps && pe[-1] == '\r') {
          pe--;
        }
        parts[np++] = (range){ps, pe};
      }
      if (d == 2) {
        *closed = 1;
        return np;
      }
      in_part = 1;
      ps = nx;
    }
    p = nx;
  }
  if (in_part && np < MAX_PARTS) parts[np++] = (range){ps, e};
  return np;
}

// A multipart body without a usable boundary: the first "--token" line followed by a Content-* header is taken
// as the delimiter. Returns its length (the boundary starts at *bd) or 0.
static size_t guess_boundary(const char *b, const char *e, const char **bd) {
  for (const char *p = b; p < e;) {
    const char *nx, *le = line_end(p, e, &nx);
    if (le - p > 2 && p[0] == '-' && p[1] == '-' && !is_wsp(p[2])) {
      const char *te = le;
      while (te > p + 2 && is_wsp(te[-1])) te--;
      const char *nx2, *le2 = line_end(nx, e, &nx2);
      if (te - p <= 202 && le2 - nx >= 8 && !strncasecmp(nx, "content-", 8)) {
        *bd = p + 2;
        return (size_t)(te - p - 2);
      }
    }
    p = nx;
  }
  return 0;
}

static void find_body(walk *w, const entity *en, const char *deflt, int depth) {
  if (depth > MAX_DEPTH) {
    w->defects++;
    return;
  }
  char type[96];
  content_type(en, deflt, type, sizeof type, &w->hv);
  if (is_attachment(en, &w->tmp)) return;
  if (!strncmp(type, "text/", 5)) {
    if (!strcmp(type + 5, "plain") && !w->have_plain) {
      w->plain = *en;
      w->have_plain = 1;
    } else if (!strcmp(type + 5, "html") && !w->have_html) {
      w->html = *en;
      w->have_html = 1;
    }
    return;
  }
  if (!strcmp(type, "message/rfc822") || !strcmp(type, "message/news")) {
    if (w->n_embedded < MAX_EMBEDDED) split_entity(en->bb, en->be, &w->embedded[w->n_embedded++]);
    return;
  }
  if (strncmp(type, "multipart/", 10) != 0) return;
  const char *sub = type + 10;
  char bd[256];
  size_t bl = 0;
  if (w->hv.n && get_param(w->hv.p, w->hv.n, "boundary", &w->tmp)) {
    bl = w->tmp.n;
    while (bl && is_wsp(w->tmp.p[bl - 1])) bl--;
    if (bl >= sizeof bd) bl = 0;
    if (bl) memcpy(bd, w->tmp.p, bl);
  }
  range *parts = malloc(sizeof *parts * MAX_PARTS);
  if (!parts) {
    w->hv.oom = 1;
    return;
  }
  int closed = 0, np = bl ? split_parts(en->bb, en->be, bd, bl, parts, &closed) : 0;
  if (np == 0) {  // no boundary, or it never occurs: look for the delimiter the body really uses
    const char *g;
    size_t gl = guess_boundary(en->bb, en->be, &g);
    w->defects++;
    if (gl && gl < sizeof bd) {
      memcpy(bd, g, gl);
      bl = gl;
      np = split_parts(en->bb, en->be, bd, bl, parts, &closed);
    }
  }
  if (np == 0) {  // nothing to split: the body is the text
    if (!w->have_plain) {
      w->plain = *en;
      w->have_plain = 1;
    }
    free(parts);
    return;
  }
  if (!closed) w->defects++;
  const char *child_default = !strcmp(sub, "digest") ? "message/rfc822" : "text/plain";
  int lo = 0, hi = np;
  if (!strcmp(sub, "related")) {  // only the root part (start=<content-id>, else the first) holds the body
    hi = 1;
    if (w->hv.n && get_param(w->hv.p, w->hv.n, "start", &w->tmp) && w->tmp.n) {
      char start[256];
      size_t sl = LT_MIN(w->tmp.n, sizeof start - 1);
      memcpy(start, w->tmp.p, sl);
      start[sl] = 0;
      for (int i = 0; i < np; i++) {
        entity pe;
        split_entity(parts[i].s, parts[i].e, &pe);
        if (get_header(&pe, "content-id", &w->tmp) && w->tmp.n == sl && !memcmp(w->tmp.p, start, sl)) {
          lo = i;
          hi = i + 1;
          break;
        }
      }
    }
  }
  for (int i = lo; i < hi; i++) {
    entity pe;
    split_entity(parts[i].s, parts[i].e, &pe);
    find_body(w, &pe, child_default, depth + 1);
  }
  free(parts);
}

// <meta ... charset=X> in the first 4 KB of an HTML part that declares no charset.
static int sniff_meta_charset(const char *s, size_t n, char *out, size_t cap) {
  const char *e = s + LT_MIN(n, (size_t)4096);
  const char *p = find_ci(s, e, "charset=");
  if (!p) return 0;
  p += 8;
  while (p < e && (*p == '"' || *p == '\'' || is_wsp(*p))) p++;
  size_t k = 0;
  while (p < e && k + 1 < cap && (is_alnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == ':')) out[k++] = *p++;
  out[k] = 0;
  return k > 0;
}

// Transfer-decode and convert one text part; HTML becomes text. The charset used goes to cs.
static void decode_text_part(walk *w, const entity *en, int html, lt_sbuf *out, char *charset, size_t cap) {
  lt_sbuf raw = {0};
  const char *bs = en->bb;
  size_t bn = (size_t)(en->be - en->bb);
  const char *data = bs;
  size_t dn = bn;
  if (get_header(en, "content-transfer-encoding", &w->tmp)) {
    int d = 0;
    if (first_token_is(w->tmp.p, w->tmp.n, "quoted-printable")) {
      qp_decode(&raw, bs, bn);
      data = raw.p;
      dn = raw.n;
    } else if (first_token_is(w->tmp.p, w->tmp.n, "base64")) {
      b64_decode(&raw, bs, bn, &d);
      data = raw.p;
      dn = raw.n;
    }
    if (d) w->defects++;
  }
  if (raw.oom) {
    out->oom = 1;
    free(raw.p);
    return;
  }
  if (!data) data = "";
  char type[96];
  charset[0] = 0;
  content_type(en, "text/plain", type, sizeof type, &w->hv);
  if (w->hv.n && get_param(w->hv.p, w->hv.n, "charset", &w->tmp)) snprintf(charset, cap, "%s", w->tmp.p);
  char name[64];
  if (html && !is_utf8(data, dn) &&
      (charset_class(charset, name, sizeof name) == CS_UNDECLARED || !charset_known(charset))) {
    char sniffed[64];
    if (sniff_meta_charset(data, dn, sniffed, sizeof sniffed) && charset_known(sniffed))
      snprintf(charset, cap, "%s", sniffed);
  }
  int defect = 0;
  if (html) {
    lt_sbuf text = {0};
    put_charset(&text, data, dn, charset, &defect);
    drop_nul(&text, 0);
    if (text.oom) out->oom = 1;
    html_to_text(out, text.p ? text.p : "", text.n);
    free(text.p);
  } else {
    size_t at = out->n;
    put_charset(out, data, dn, charset, &defect);
    drop_nul(out, at);
  }
  w->defects += defect;
  free(raw.p);
}

// From: the first mailbox as "Display Name <addr>" (or "addr").
static char *format_from(const char *v, size_t n, const char *raw_charset, lt_err *err) {
  lt_sbuf u = {0}, name = {0}, addr = {0}, out = {0};
  int d = 0;
  if (is_utf8(v, n))
    lt_sbuf_put(&u, v, n);
  else
    put_charset(&u, v, n, raw_charset, &d);
  const char *s = u.p ? u.p : "", *e = s + u.n;
  // find '<' outside quotes and comments
  const char *lt = NULL, *cs = NULL, *ce = NULL;
  int depth = 0, inq = 0;
  for (const char *p = s; p < e; p++) {
    if (*p == '\\' && p + 1 < e && (inq || depth)) {
      p++;
      continue;
    }
    if (inq) {
      if (*p == '"') inq = 0;
      continue;
    }
    if (*p == '(') {
      if (depth++ == 0 && !cs) cs = p + 1;
      continue;
    }
    if (*p == ')' && depth) {
      if (--depth == 0 && !ce) ce = p;
      continue;
    }
    if (depth) continue;
    if (*p == '"') inq = 1;
    if (*p == '<') {
      lt = p;
      break;
    }
  }
  const char *ns = s, *ne = s;
  if (lt) {
    const char *gt = memchr(lt, '>', (size_t)(e - lt));
    const char *as = lt + 1, *ae = gt ? gt : e;
    trim(&as, &ae);
    lt_sbuf_put(&addr, as, (size_t)(ae - as));
    ns = s;
    ne = lt;
  } else {
    // the address is everything outside comments; a comment is the name
    depth = 0;
    for (const char *p = s; p < e; p++) {
      if (*p == '(') {
        depth++;
        continue;
      }
      if (*p == ')' && depth) {
        depth--;
        continue;
      }
      if (!depth) sb_putc(&addr, *p);
    }
    if (cs) {
      ns = cs;
      ne = ce ? ce : e;
    }
  }
  // display name: quotes removed (backslash escapes undone), comments dropped, encoded words decoded
  depth = 0;
  inq = 0;
  for (const char *p = ns; p < ne; p++) {
    if (*p == '\\' && p + 1 < ne) {
      sb_putc(&name, *++p);
      continue;
    }
    if (*p == '"') {
      inq = !inq;
      continue;
    }
    if (!inq && lt && *p == '(') {
      depth++;
      continue;
    }
    if (!inq && lt && *p == ')' && depth) {
      depth--;
      continue;
    }
    if (!depth) sb_putc(&name, *p);
  }
  char *dn = NULL, *nn = NULL, *na = NULL;
  if (!u.oom && !name.oom && !addr.oom) {
    dn = lt_mail_decode_header(name.p ? name.p : "", name.n, raw_charset, err);
    if (dn) nn = lt_mail_normalize(dn, 1, err);
    if (nn) na = lt_mail_normalize(addr.p ? addr.p : "", 1, err);
    if (na && nn) {
      // a decoded name may itself be quoted
      size_t l = strlen(nn);
      if (l >= 2 && nn[0] == '"' && nn[l - 1] == '"') {
        memmove(nn, nn + 1, l - 2);
        nn[l - 2] = 0;
      }
      if (*nn && *na && strcmp(nn, na) != 0) {
        lt_sbuf_puts(&out, nn);
        lt_sbuf_puts(&out, " <");
        lt_sbuf_puts(&out, na);
        sb_putc(&out, '>');
      } else {
        lt_sbuf_puts(&out, *na ? na : nn);
      }
    }
  } else {
    out.oom = 1;
  }
  int failed = (u.oom || name.oom || addr.oom || !na);
  free(u.p);
  free(name.p);
  free(addr.p);
  free(dn);
  free(nn);
  free(na);
  if (failed) {
    free(out.p);
    if (u.oom || name.oom || addr.oom) lt_errf(err, "out of memory while reading the From header");
    return NULL;
  }
  return sb_take(&out, "reading the From header", err);
}

void lt_mail_free(lt_mail *m) {
  if (!m) return;
  free(m->subject);
  free(m->from);
  free(m->body);
  memset(m, 0, sizeof *m);
}

int lt_mail_parse(const char *buf, size_t len, lt_mail *m, lt_err *err) {
  memset(m, 0, sizeof *m);
  walk *w = calloc(1, sizeof *w);
  if (!w) return lt_errf(err, "out of memory parsing a message");
  entity top;
  split_entity(buf, buf + len, &top);
  find_body(w, &top, "text/plain", 0);
  for (int i = 0; i < w->n_embedded && !w->have_plain && !w->have_html; i++) {
    entity emb = w->embedded[i];
    find_body(w, &emb, "text/plain", 1);
  }
  lt_sbuf body = {0};
  const entity *chosen = NULL;
  char cs[64] = "";
  if (w->have_plain) {
    chosen = &w->plain;
    m->body_kind = LT_MAIL_BODY_PLAIN;
    decode_text_part(w, &w->plain, 0, &body, cs, sizeof cs);
    // an empty text/plain alternative: the HTML one has the text
    int blank = 1;
    for (size_t i = 0; i < body.n && blank; i++)
      if (!(is_wsp(body.p[i]) || body.p[i] == '\n' || body.p[i] == '\r')) blank = 0;
    if (blank && w->have_html) {
      body.n = 0;
      if (body.p) body.p[0] = 0;
      chosen = NULL;
    }
  }
  if (!chosen && w->have_html) {
    chosen = &w->html;
    m->body_kind = LT_MAIL_BODY_HTML;
    decode_text_part(w, &w->html, 1, &body, cs, sizeof cs);
  }
  int rc = 0;
  m->body = sb_take(&body, "decoding the body", err);
  if (!m->body) rc = -1;
  lt_sbuf *hv = &w->hv;
  if (!rc) {
    if (get_header(&top, "subject", hv))
      m->subject = lt_mail_decode_header(hv->p ? hv->p : "", hv->n, cs, err);
    else
      m->subject = calloc(1, 1);
    if (!m->subject) rc = lt_errf(err, "out of memory decoding the Subject header");
  }
  if (!rc) {
    if (get_header(&top, "from", hv))
      m->from = format_from(hv->p ? hv->p : "", hv->n, cs, err);
    else
      m->from = calloc(1, 1);
    if (!m->from) rc = lt_errf(err, "out of memory reading the From header");
  }
  if (w->hv.oom || w->tmp.oom) rc = lt_errf(err, "out of memory parsing a message");
  m->defects = w->defects;
  free(w->hv.p);
  free(w->tmp.p);
  free(w);
  return rc;
}

char *lt_mail_record_input(const lt_mail *m, lt_err *err) {
  lt_sbuf b = {0};
  lt_sbuf_puts(&b, "From: ");
  normalize(&b, m->from ? m->from : "", m->from ? strlen(m->from) : 0, 1);
  lt_sbuf_puts(&b, "\nSubject: ");
  normalize(&b, m->subject ? m->subject : "", m->subject ? strlen(m->subject) : 0, 1);
  size_t at = b.n;
  lt_sbuf_puts(&b, "\n\n");
  size_t body_at = b.n;
  normalize(&b, m->body ? m->body : "", m->body ? strlen(m->body) : 0, 0);
  if (b.n == body_at) {
    b.n = at;
    if (b.p) b.p[at] = 0;
  }
  return sb_take(&b, "building a record", err);
}
