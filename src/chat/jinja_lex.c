// Jinja lexer with the environment transformers uses for chat templates: trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False, newlines normalized to "\n", string literals decoded as Python's unicode-escape.
// Mirrors jinja2/lexer.py: `{%-`/`-%}` strip all whitespace, `{%+`/`+%}` disable lstrip/trim, lstrip applies to
// block and comment tags (not `{{`), and only when the tag starts its line (or follows a tag that ended a line).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja.h"

typedef struct lexer {
  jctx *c;
  const char *s;
  size_t n;
  jtoken *v;
  size_t nv, cap;
  // incremental line:column tracking (positions are visited in increasing order)
  size_t lc_pos, lc_line_start;
  int lc_line;
} lexer;

static void where(lexer *L, size_t pos, int *line, int *col) {
  if (pos < L->lc_pos) {  // rewind (rare): start over
    L->lc_pos = 0;
    L->lc_line = 1;
    L->lc_line_start = 0;
  }
  for (size_t i = L->lc_pos; i < pos && i < L->n; i++)
    if (L->s[i] == '\n') {
      L->lc_line++;
      L->lc_line_start = i + 1;
    }
  L->lc_pos = pos;
  *line = L->lc_line;
  *col = (int)jx_utf8_count(L->s + L->lc_line_start, pos - L->lc_line_start) + 1;
}

static jtoken *push(lexer *L, int type, size_t pos) {
  if (L->nv == L->cap) {
    size_t cap = L->cap ? L->cap * 2 : 256;
    jtoken *nv = jx_alloc(L->c, cap * sizeof *nv);
    if (L->nv) memcpy(nv, L->v, L->nv * sizeof *nv);
    L->v = nv;
    L->cap = cap;
  }
  jtoken *t = &L->v[L->nv++];
  memset(t, 0, sizeof *t);
  t->type = type;
  where(L, pos, &t->line, &t->col);
  return t;
}

_Noreturn static void lex_fail(lexer *L, size_t pos, const char *msg) {
  int line, col;
  where(L, pos, &line, &col);
  jx_fail(L->c, line, col, "%s", msg);
}

// Whitespace (Python \s) length at s[i], 0 if none.
static size_t ws_at(const char *s, size_t n, size_t i) {
  if (i >= n) return 0;
  uint32_t cp;
  size_t k = jx_utf8_decode(s, n, i, &cp);
  return jx_py_isspace(cp) ? k : 0;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
  size_t k;
  while ((k = ws_at(s, n, i)) != 0) i += k;
  return i;
}

// End of text after rstrip() (Python whitespace).
static size_t rstrip_end(const char *s, size_t start, size_t end) {
  while (end > start) {
    size_t j = end - 1;
    while (j > start && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    uint32_t cp;
    jx_utf8_decode(s, end, j, &cp);
    if (!jx_py_isspace(cp)) break;
    end = j;
  }
  return end;
}

// Text before a tag at `tag` (from `start`), with the tag's sign applied.
static void emit_text(lexer *L, size_t start, size_t tag, char sign, int lstrip_ok, int line_starting) {
  size_t end = tag;
  if (sign == '-') {
    end = rstrip_end(L->s, start, tag);
  } else if (sign != '+' && lstrip_ok) {
    size_t l_pos = start;
    for (size_t i = tag; i > start; i--)
      if (L->s[i - 1] == '\n') {
        l_pos = i;
        break;
      }
    if ((l_pos > start || line_starting) && l_pos < tag) {
      size_t i = l_pos;
      while (i < tag) {
        size_t k = ws_at(L->s, tag, i);
        if (!k) break;
        i += k;
      }
      if (i == tag) end = l_pos;
    }
  }
  if (end > start) {
    jtoken *t = push(L, TK_TEXT, start);
    t->p = L->s + start;
    t->n = end - start;
  }
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

// Python unicode-escape decoding of a string literal body.
static void decode_string(lexer *L, size_t pos, const char *s, size_t n, jtoken *t) {
  jbuf b = {0};
  for (size_t i = 0; i < n;) {
    if (s[i] != '\\' || i + 1 >= n) {
      jbuf_putc(L->c, &b, s[i++]);
      continue;
    }
    char e = s[i + 1];
    i += 2;
    switch (e) {
      case '\n': break;
      case '\\': jbuf_putc(L->c, &b, '\\'); break;
      case '\'': jbuf_putc(L->c, &b, '\''); break;
      case '"': jbuf_putc(L->c, &b, '"'); break;
      case 'a': jbuf_putc(L->c, &b, '\a'); break;
      case 'b': jbuf_putc(L->c, &b, '\b'); break;
      case 'f': jbuf_putc(L->c, &b, '\f'); break;
      case 'n': jbuf_putc(L->c, &b, '\n'); break;
      case 'r': jbuf_putc(L->c, &b, '\r'); break;
      case 't': jbuf_putc(L->c, &b, '\t'); break;
      case 'v': jbuf_putc(L->c, &b, '\v'); break;
      case 'x': case 'u': case 'U': {
        int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int k = 0; k < nd; k++) {
          int h = i + (size_t)k < n ? hexval(s[i + (size_t)k]) : -1;
          if (h < 0) lex_fail(L, pos, "truncated \\xXX / \\uXXXX / \\UXXXXXXXX escape in a string literal");
          cp = cp * 16 + (uint32_t)h;
        }
        i += (size_t)nd;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
          lex_fail(L, pos, "escape in a string literal is not a valid Unicode scalar value");
        jbuf_put_cp(L->c, &b, cp);
        break;
      }
      case 'N': lex_fail(L, pos, "\\N{...} escapes in string literals are not supported");
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = (uint32_t)(e - '0');
          for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++) cp = cp * 8 + (uint32_t)(s[i++] - '0');
          jbuf_put_cp(L->c, &b, cp);
        } else {
          jbuf_putc(L->c, &b, '\\');
          jbuf_putc(L->c, &b, e);
        }
    }
  }
  t->p = b.p ? b.p : "";
  t->n = b.n;
}

static int is_name_start(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }
static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

// Digits with optional single underscores between them; returns the end.
static size_t scan_digits(const char *s, size_t n, size_t i) {
  if (i >= n || !is_digit(s[i])) return i;
  while (i < n) {
    if (is_digit(s[i])) i++;
    else if (s[i] == '_' && i + 1 < n && is_digit(s[i + 1])) i++;
    else break;
  }
  return i;
}

static void number(lexer *L, size_t *pos) {
  const char *s = L->s;
  size_t n = L->n, i = *pos, start = i;
  char tmp[128];
  size_t k = 0;
  // float: digits ( (.digits)? e[+-]?digits | .digits ), not preceded by '.'
  if (!(start > 0 && s[start - 1] == '.')) {
    size_t d = scan_digits(s, n, i), j = d;
    int is_float = 0;
    if (j + 1 < n && s[j] == '.' && is_digit(s[j + 1])) {
      j = scan_digits(s, n, j + 1);
      is_float = 1;
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
      size_t e = j + 1;
      if (e < n && (s[e] == '+' || s[e] == '-')) e++;
      if (e < n && is_digit(s[e])) {
        j = scan_digits(s, n, e);
        is_float = 1;
      }
    }
    if (is_float) {
      for (size_t q = start; q < j && k < sizeof tmp - 1; q++)
        if (s[q] != '_') tmp[k++] = s[q];
      tmp[k] = 0;
      jtoken *t = push(L, TK_FLOAT, start);
      t->f = strtod(tmp, NULL);
      *pos = j;
      return;
    }
  }
  int base = 10;
  size_t j = i;
  if (s[i] == '0' && i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X' || s[i + 1] == 'o' || s[i + 1] == 'O' ||
                                   s[i + 1] == 'b' || s[i + 1] == 'B')) {
    char b = (char)(s[i + 1] | 0x20);
    base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
    j = i + 2;
    while (j < n && (hexval(s[j]) >= 0 && hexval(s[j]) < base ? 1 : (s[j] == '_' && j + 1 < n && hexval(s[j + 1]) >= 0)))
      j++;
    if (j == i + 2) lex_fail(L, start, "bad integer literal");
  } else {
    j = scan_digits(s, n, i);
  }
  uint64_t v = 0;
  for (size_t q = (base == 10 ? i : i + 2); q < j; q++) {
    if (s[q] == '_') continue;
    int h = hexval(s[q]);
    if (v > (UINT64_C(0x7FFFFFFFFFFFFFFF) - (uint64_t)h) / (uint64_t)base)
      lex_fail(L, start, "integer literal out of the 64-bit range");
    v = v * (uint64_t)base + (uint64_t)h;
  }
  jtoken *t = push(L, TK_INT, start);
  t->i = (int64_t)v;
  *pos = j;
}

static const char *const ops2[] = {"//", "**", "==", "!=", ">=", "<="};
static const char ops1[] = "+-/*%~[](){}|.,:;=<>";

// Tokens of one {{ }} or {% %} tag starting after its opening (and sign). Returns the position after the end,
// sets *line_starting.
static size_t lex_tag(lexer *L, size_t pos, int is_block, int *line_starting) {
  const char *s = L->s;
  size_t n = L->n;
  int depth = 0;
  char stack[JX_MAX_PARSE_DEPTH];
  for (;;) {
    if (pos >= n) lex_fail(L, pos, is_block ? "missing end of block tag '%}'" : "missing end of variable tag '}}'");
    if (depth == 0) {
      if (is_block) {
        if (!strncmp(s + pos, "+%}", 3)) {
          push(L, TK_BLOCK_END, pos);
          *line_starting = 0;
          return pos + 3;
        }
        if (!strncmp(s + pos, "-%}", 3)) {
          push(L, TK_BLOCK_END, pos);
          size_t e = skip_ws(s, n, pos + 3);
          *line_starting = e > pos + 3 && s[e - 1] == '\n';
          return e;
        }
        if (!strncmp(s + pos, "%}", 2)) {
          push(L, TK_BLOCK_END, pos);
          size_t e = pos + 2;
          if (e < n && s[e] == '\n') e++;
          *line_starting = s[e - 1] == '\n';
          return e;
        }
      } else {
        if (!strncmp(s + pos, "-}}", 3)) {
          push(L, TK_VAR_END, pos);
          size_t e = skip_ws(s, n, pos + 3);
          *line_starting = e > pos + 3 && s[e - 1] == '\n';
          return e;
        }
        if (!strncmp(s + pos, "}}", 2)) {
          push(L, TK_VAR_END, pos);
          *line_starting = 0;
          return pos + 2;
        }
      }
    }
    size_t k = ws_at(s, n, pos);
    if (k) {
      pos += k;
      continue;
    }
    char ch = s[pos];
    if (is_digit(ch)) {
      number(L, &pos);
    } else if (is_name_start(ch)) {
      size_t j = pos;
      while (j < n && (is_name_start(s[j]) || is_digit(s[j]))) j++;
      jtoken *t = push(L, TK_NAME, pos);
      t->p = jx_strdup(L->c, s + pos, j - pos);
      t->n = j - pos;
      pos = j;
    } else if (ch == '\'' || ch == '"') {
      size_t j = pos + 1;
      while (j < n && s[j] != ch) j += (s[j] == '\\' && j + 1 < n) ? 2 : 1;
      if (j >= n) lex_fail(L, pos, "unterminated string literal");
      jtoken *t = push(L, TK_STRING, pos);
      decode_string(L, pos, s + pos + 1, j - pos - 1, t);
      pos = j + 1;
    } else {
      const char *op = NULL;
      size_t oplen = 0;
      for (size_t q = 0; q < sizeof ops2 / sizeof ops2[0]; q++)
        if (!strncmp(s + pos, ops2[q], 2)) {
          op = ops2[q];
          oplen = 2;
          break;
        }
      if (!op && strchr(ops1, ch) && ch) {
        op = s + pos;
        oplen = 1;
      }
      if (!op) {
        char msg[64];
        if ((unsigned char)ch < 0x80) snprintf(msg, sizeof msg, "unexpected character '%c'", ch);
        else snprintf(msg, sizeof msg, "unexpected non-ASCII character");
        lex_fail(L, pos, msg);
      }
      if (oplen == 1 && (ch == '(' || ch == '[' || ch == '{')) {
        if (depth >= JX_MAX_PARSE_DEPTH) lex_fail(L, pos, "brackets nested too deeply");
        stack[depth++] = ch == '(' ? ')' : ch == '[' ? ']' : '}';
      } else if (oplen == 1 && (ch == ')' || ch == ']' || ch == '}')) {
        if (depth == 0) {
          char msg[32];
          snprintf(msg, sizeof msg, "unexpected '%c'", ch);
          lex_fail(L, pos, msg);
        }
        if (stack[depth - 1] != ch) {
          char msg[48];
          snprintf(msg, sizeof msg, "unexpected '%c', expected '%c'", ch, stack[depth - 1]);
          lex_fail(L, pos, msg);
        }
        depth--;
      }
      jtoken *t = push(L, TK_OP, pos);
      t->p = jx_strdup(L->c, s + pos, oplen);
      t->n = oplen;
      pos += oplen;
    }
  }
}

// {% raw %} at `tag` (sign already known): returns 1 and handles it if this tag is a raw block.
static int try_raw(lexer *L, size_t tag, size_t start, char sign, int *line_starting, size_t *pos_out) {
  const char *s = L->s;
  size_t n = L->n, i = tag + 2 + (sign ? 1 : 0);
  i = skip_ws(s, n, i);
  if (n - i < 3 || strncmp(s + i, "raw", 3) != 0) return 0;
  i += 3;
  size_t j = skip_ws(s, n, i);
  size_t body;
  if (!strncmp(s + j, "-%}", 3)) body = skip_ws(s, n, j + 3);
  else if (!strncmp(s + j, "%}", 2)) body = j + 2;
  else return 0;
  if (j == i && is_name_start(s[i])) return 0;  // e.g. {% rawx %}
  emit_text(L, start, tag, sign, 1, *line_starting);
  // find {%(-|+|)\s*endraw\s*(+%}|-%}\s*|%}\n?)
  for (size_t q = body; q + 1 < n; q++) {
    if (s[q] != '{' || s[q + 1] != '%') continue;
    size_t r = q + 2;
    char esign = 0;
    if (r < n && (s[r] == '-' || s[r] == '+')) esign = s[r++];
    r = skip_ws(s, n, r);
    if (n - r < 6 || strncmp(s + r, "endraw", 6) != 0) continue;
    r = skip_ws(s, n, r + 6);
    size_t e;
    int ls;
    if (!strncmp(s + r, "+%}", 3)) {
      e = r + 3;
      ls = 0;
    } else if (!strncmp(s + r, "-%}", 3)) {
      e = skip_ws(s, n, r + 3);
      ls = e > r + 3 && s[e - 1] == '\n';
    } else if (!strncmp(s + r, "%}", 2)) {
      e = r + 2;
      if (e < n && s[e] == '\n') e++;
      ls = s[e - 1] == '\n';
    } else {
      continue;
    }
    emit_text(L, body, q, esign, 1, 0);
    *line_starting = ls;
    *pos_out = e;
    return 1;
  }
  lex_fail(L, tag, "missing end of raw directive ({% endraw %})");
}

int jx_lex(jctx *c, const char *source, size_t len, jtoken **toks, size_t *ntoks) {
  // Normalize newlines and drop one trailing newline (keep_trailing_newline=False).
  char *s = jx_alloc(c, len + 1);
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (source[i] == '\r') {
      s[n++] = '\n';
      if (i + 1 < len && source[i + 1] == '\n') i++;
    } else {
      s[n++] = source[i];
    }
  }
  if (n > 0 && s[n - 1] == '\n') n--;
  s[n] = 0;
  c->src = s;
  lexer L = {c, s, n, NULL, 0, 0, 0, 0, 1};
  size_t pos = 0;
  int line_starting = 1;
  while (pos < n) {
    // next tag start
    size_t tag = pos;
    int kind = 0;  // '{', '%', '#'
    for (; tag + 1 < n; tag++)
      if (s[tag] == '{' && (s[tag + 1] == '{' || s[tag + 1] == '%' || s[tag + 1] == '#')) {
        kind = s[tag + 1];
        break;
      }
    if (!kind) {
      jtoken *t = push(&L, TK_TEXT, pos);
      t->p = s + pos;
      t->n = n - pos;
      break;
    }
    char sign = (tag + 2 < n && (s[tag + 2] == '-' || s[tag + 2] == '+')) ? s[tag + 2] : 0;
    if (kind == '%') {
      size_t after;
      if (try_raw(&L, tag, pos, sign, &line_starting, &after)) {
        pos = after;
        continue;
      }
    }
    emit_text(&L, pos, tag, sign, kind != '{', line_starting);
    size_t body = tag + 2 + (sign ? 1 : 0);
    if (kind == '#') {
      size_t q = body, e = 0;
      for (; q + 1 < n; q++) {
        if (s[q] == '+' && q + 2 < n && s[q + 1] == '#' && s[q + 2] == '}') {
          e = q + 3;
          line_starting = 0;
          break;
        }
        if (s[q] == '-' && q + 2 < n && s[q + 1] == '#' && s[q + 2] == '}') {
          e = skip_ws(s, n, q + 3);
          line_starting = e > q + 3 && s[e - 1] == '\n';
          break;
        }
        if (s[q] == '#' && s[q + 1] == '}') {
          e = q + 2;
          if (e < n && s[e] == '\n') e++;
          line_starting = s[e - 1] == '\n';
          break;
        }
      }
      if (!e) lex_fail(&L, tag, "missing end of comment tag '#}'");
      pos = e;
      continue;
    }
    push(&L, kind == '{' ? TK_VAR_BEGIN : TK_BLOCK_BEGIN, tag);
    pos = lex_tag(&L, body, kind == '%', &line_starting);
  }
  push(&L, TK_EOF, n);
  *toks = L.v;
  *ntoks = L.nv;
  return 0;
}
