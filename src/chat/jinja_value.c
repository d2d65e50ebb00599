// Jinja values: arena, strings, lists, ordered dicts, Python semantics of truth/equality/ordering, str()/repr(),
// JSON in (ints vs floats kept apart, key order kept) and out (json.dumps as transformers' tojson calls it).
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "chat/jinja.h"

// ---------------------------------------------------------------- arena
struct jarena_block {
  jarena_block *next;
  size_t size, off;
  max_align_t data[];
};
#define JARENA_BLOCK (64u << 10)

void jarena_init(jarena *a, size_t limit) {
  a->head = NULL;
  a->used = 0;
  a->limit = limit;
  a->failed = 0;
}

void jarena_free(jarena *a) {
  jarena_block *b = a->head;
  while (b) {
    jarena_block *n = b->next;
    free(b);
    b = n;
  }
  a->head = NULL;
  a->used = 0;
}

void *jarena_alloc(jarena *a, size_t n) {
  size_t al = sizeof(max_align_t);
  if (n > a->limit) {
    a->failed = 1;
    return NULL;
  }
  n = (n + al - 1) / al * al;
  if (n == 0) n = al;
  jarena_block *b = a->head;
  if (!b || b->size - b->off < n) {
    size_t size = n > JARENA_BLOCK / 2 ? n : JARENA_BLOCK;
    if (a->used + size > a->limit) {
      a->failed = 1;
      return NULL;
    }
    jarena_block *nb = malloc(sizeof *nb + size);
    if (!nb) {
      a->failed = 1;
      return NULL;
    }
    nb->size = size;
    nb->off = 0;
    a->used += size;
    if (b && size != JARENA_BLOCK) {
      // Big dedicated block: keep the current block at the head for small allocations.
      nb->next = b->next;
      b->next = nb;
    } else {
      nb->next = b;
      a->head = nb;
    }
    b = nb;
  }
  void *p = (char *)b->data + b->off;
  b->off += n;
  memset(p, 0, n);
  return p;
}

// ---------------------------------------------------------------- errors
static void line_col_msg(int line, int col, char *out, size_t cap) {
  if (line > 0) snprintf(out, cap, " at %d:%d", line, col);
  else out[0] = 0;
}

void jx_fail(jctx *c, int line, int col, const char *fmt, ...) {
  char msg[900], where[64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  line_col_msg(line, col, where, sizeof where);
  if (c->err) snprintf(c->err->msg, sizeof c->err->msg, "chat template%s: %s", where, msg);
  longjmp(c->jb, 1);
}

void jx_raise(jctx *c, const char *msg, size_t n) {
  if (c->err) {
    size_t m = n < sizeof c->err->msg - 1 ? n : sizeof c->err->msg - 1;
    memcpy(c->err->msg, msg, m);
    c->err->msg[m] = 0;
  }
  longjmp(c->jb, 2);
}

void *jx_alloc(jctx *c, size_t n) {
  void *p = jarena_alloc(c->ar, n);
  if (!p) jx_fail(c, 0, 0, "out of memory (a template may use at most %zu MiB)", c->ar->limit >> 20);
  return p;
}

char *jx_strdup(jctx *c, const char *s, size_t n) {
  char *d = jx_alloc(c, n + 1);
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

// ---------------------------------------------------------------- buffers
static void jbuf_reserve(jctx *c, jbuf *b, size_t extra) {
  if (b->n + extra <= b->cap) return;
  if (b->n + extra > JX_MAX_OUTPUT)
    jx_fail(c, 0, 0, "output longer than %u MiB", JX_MAX_OUTPUT >> 20);
  size_t cap = b->cap ? b->cap * 2 : 256;
  while (cap < b->n + extra) cap *= 2;
  char *p = jx_alloc(c, cap);
  if (b->n) memcpy(p, b->p, b->n);
  b->p = p;
  b->cap = cap;
}

void jbuf_put(jctx *c, jbuf *b, const char *s, size_t n) {
  if (!n) return;
  jbuf_reserve(c, b, n);
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

void jbuf_putc(jctx *c, jbuf *b, char ch) { jbuf_put(c, b, &ch, 1); }

void jbuf_printf(jctx *c, jbuf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  jbuf_put(c, b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

// ---------------------------------------------------------------- UTF-8
size_t jx_utf8_decode(const char *s, size_t n, size_t i, uint32_t *cp) {
  const unsigned char *u = (const unsigned char *)s;
  unsigned char b0 = u[i];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  int len = (b0 >= 0xF0) ? 4 : (b0 >= 0xE0) ? 3 : (b0 >= 0xC0) ? 2 : 1;
  if (len == 1 || i + (size_t)len > n) {
    *cp = b0;
    return 1;
  }
  uint32_t v = b0 & (0xFF >> (len + 1));
  for (int k = 1; k < len; k++) v = (v << 6) | (u[i + (size_t)k] & 0x3F);
  *cp = v;
  return (size_t)len;
}

void jbuf_put_cp(jctx *c, jbuf *b, uint32_t cp) {
  char t[4];
  size_t n;
  if (cp < 0x80) {
    t[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    t[0] = (char)(0xC0 | (cp >> 6));
    t[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    t[0] = (char)(0xE0 | (cp >> 12));
    t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    t[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    t[0] = (char)(0xF0 | (cp >> 18));
    t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    t[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  jbuf_put(c, b, t, n);
}

// Python's str.isspace() (also what re's \s matches in str patterns).
int jx_py_isspace(uint32_t cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F)) return 1;
  if (cp < 0x85) return 0;
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000: return 1;
    default: return cp >= 0x2000 && cp <= 0x200A;
  }
}

size_t jx_utf8_count(const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) k++;
  return k;
}

// ---------------------------------------------------------------- constructors
jv jv_str(jctx *c, const char *s) {
  size_t n = strlen(s);
  return jv_strn(jx_strdup(c, s, n), n);
}

jv jv_buf(jbuf *b) { return jv_strn(b->p ? b->p : "", b->n); }

jv jv_list_new(jctx *c, size_t cap) {
  jv v = {0};
  v.t = JV_LIST;
  v.u.l = jx_alloc(c, sizeof(jlist));
  if (cap) {
    v.u.l->v = jx_alloc(c, cap * sizeof(jv));
    v.u.l->cap = cap;
  }
  return v;
}

void jv_list_push(jctx *c, jv list, jv item) {
  jlist *l = list.u.l;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    jv *nv = jx_alloc(c, cap * sizeof(jv));
    if (l->n) memcpy(nv, l->v, l->n * sizeof(jv));
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = item;
}

jv jv_dict_new(jctx *c, size_t cap) {
  jv v = {0};
  v.t = JV_DICT;
  v.u.d = jx_alloc(c, sizeof(jdict));
  if (cap) {
    v.u.d->k = jx_alloc(c, cap * sizeof(jv));
    v.u.d->v = jx_alloc(c, cap * sizeof(jv));
    v.u.d->cap = cap;
  }
  return v;
}

static long dict_find(const jdict *d, jv key) {
  for (size_t i = 0; i < d->n; i++)
    if (jv_equal(d->k[i], key)) return (long)i;
  return -1;
}

void jv_dict_set(jctx *c, jv dict, jv key, jv val) {
  jdict *d = dict.u.d;
  long i = dict_find(d, key);
  if (i >= 0) {
    d->v[i] = val;
    return;
  }
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 4;
    jv *nk = jx_alloc(c, cap * sizeof(jv)), *nv = jx_alloc(c, cap * sizeof(jv));
    if (d->n) {
      memcpy(nk, d->k, d->n * sizeof(jv));
      memcpy(nv, d->v, d->n * sizeof(jv));
    }
    d->k = nk;
    d->v = nv;
    d->cap = cap;
  }
  d->k[d->n] = key;
  d->v[d->n] = val;
  d->n++;
}

int jv_dict_get(jv dict, jv key, jv *out) {
  long i = dict_find(dict.u.d, key);
  if (i < 0) return 0;
  *out = dict.u.d->v[i];
  return 1;
}

int jv_dict_gets(jv dict, const char *key, jv *out) {
  jv k = jv_strn(key, strlen(key));
  return jv_dict_get(dict, k, out);
}

jv jv_func_builtin(jctx *c, const char *name) {
  jv v = {0};
  v.t = JV_FUNC;
  v.u.fn = jx_alloc(c, sizeof(jfunc));
  v.u.fn->kind = JF_BUILTIN;
  v.u.fn->name = name;
  return v;
}

jv jv_method(jctx *c, jv self, const char *name) {
  jv v = {0};
  v.t = JV_FUNC;
  v.u.fn = jx_alloc(c, sizeof(jfunc));
  v.u.fn->kind = JF_METHOD;
  v.u.fn->name = name;
  v.u.fn->self = self;
  return v;
}

// ---------------------------------------------------------------- semantics
int jv_truthy(jv v) {
  switch (v.t) {
    case JV_UNDEF: case JV_NONE: return 0;
    case JV_BOOL: case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s.n != 0;
    case JV_LIST: return v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return 1;
  }
}

static int is_num(jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }

int jv_equal(jv a, jv b) {
  if (is_num(a) && is_num(b)) {
    if (a.t == JV_FLOAT || b.t == JV_FLOAT) {
      double x = a.t == JV_FLOAT ? a.u.f : (double)a.u.i, y = b.t == JV_FLOAT ? b.u.f : (double)b.u.i;
      return x == y;
    }
    return a.u.i == b.u.i;
  }
  if (a.t != b.t) {
    return 0;
  }
  switch (a.t) {
    case JV_UNDEF: case JV_NONE: return 1;
    case JV_STR: return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case JV_LIST:
      if (a.u.l->n != b.u.l->n || a.u.l->is_tuple != b.u.l->is_tuple) return 0;
      for (size_t i = 0; i < a.u.l->n; i++)
        if (!jv_equal(a.u.l->v[i], b.u.l->v[i])) return 0;
      return 1;
    case JV_DICT:
      if (a.u.d->n != b.u.d->n) return 0;
      for (size_t i = 0; i < a.u.d->n; i++) {
        jv o;
        if (!jv_dict_get(b, a.u.d->k[i], &o) || !jv_equal(a.u.d->v[i], o)) return 0;
      }
      return 1;
    case JV_NS: return a.u.d == b.u.d;
    case JV_FUNC: return a.u.fn == b.u.fn;
    case JV_LOOP: return a.u.loop == b.u.loop;
    default: return 0;
  }
}

int jv_is_str(jv v, const char *s) {
  size_t n = strlen(s);
  return v.t == JV_STR && v.u.s.n == n && memcmp(v.u.s.p, s, n) == 0;
}

int jv_compare(jv a, jv b) {
  if (is_num(a) && is_num(b)) {
    if (a.t == JV_FLOAT || b.t == JV_FLOAT) {
      double x = a.t == JV_FLOAT ? a.u.f : (double)a.u.i, y = b.t == JV_FLOAT ? b.u.f : (double)b.u.i;
      return x < y ? -1 : x > y ? 1 : 0;
    }
    return a.u.i < b.u.i ? -1 : a.u.i > b.u.i ? 1 : 0;
  }
  if (a.t == JV_STR && b.t == JV_STR) {
    size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
    int r = memcmp(a.u.s.p, b.u.s.p, n);  // UTF-8 byte order is code point order
    if (r) return r < 0 ? -1 : 1;
    return a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n ? 1 : 0;
  }
  if (a.t == JV_LIST && b.t == JV_LIST && a.u.l->is_tuple == b.u.l->is_tuple) {
    size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
    for (size_t i = 0; i < n; i++) {
      if (jv_equal(a.u.l->v[i], b.u.l->v[i])) continue;
      return jv_compare(a.u.l->v[i], b.u.l->v[i]);
    }
    return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n ? 1 : 0;
  }
  return -2;
}

const char *jv_type_name(jv v) {
  switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return v.u.l->is_tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_FUNC: return v.u.fn->kind == JF_MACRO ? "Macro" : "function";
    case JV_LOOP: return "LoopContext";
  }
  return "object";
}

// ---------------------------------------------------------------- float formatting (Python repr)
void jx_format_float(char *out, size_t cap, double f) {
  if (isnan(f)) {
    snprintf(out, cap, "nan");
    return;
  }
  if (isinf(f)) {
    snprintf(out, cap, f < 0 ? "-inf" : "inf");
    return;
  }
  char tmp[64];
  int prec;
  for (prec = 1; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
    if (strtod(tmp, NULL) == f) break;
  }
  // tmp: [-]d[.ddd]e[+-]XX
  char digits[32];
  int nd = 0, neg = 0;
  const char *p = tmp;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9') digits[nd++] = *p;
  int exp10 = atoi(p + 1);
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  digits[nd] = 0;
  char *o = out;
  size_t room = cap;
#define EMIT(...)                                   \
  do {                                              \
    int _k = snprintf(o, room, __VA_ARGS__);        \
    if (_k < 0 || (size_t)_k >= room) return;       \
    o += _k;                                        \
    room -= (size_t)_k;                             \
  } while (0)
  if (neg) EMIT("-");
  if (exp10 < -4 || exp10 >= 16) {
    EMIT("%c", digits[0]);
    if (nd > 1) EMIT(".%s", digits + 1);
    EMIT("e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
  } else if (exp10 >= 0) {
    for (int i = 0; i <= exp10; i++) EMIT("%c", i < nd ? digits[i] : '0');
    EMIT(".");
    if (nd > exp10 + 1) EMIT("%s", digits + exp10 + 1);
    else EMIT("0");
  } else {
    EMIT("0.");
    for (int i = 0; i < -exp10 - 1; i++) EMIT("0");
    EMIT("%s", digits);
  }
#undef EMIT
}

// ---------------------------------------------------------------- str / repr
static int py_printable(uint32_t cp) {
  if (cp == ' ') return 1;
  if (cp < 0x20 || cp == 0x7F) return 0;
  if (cp < 0x7F) return 1;
  utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
  switch (cat) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
      return 0;
    default: return 1;
  }
}

static void repr_str(jctx *c, jbuf *b, const char *s, size_t n) {
  int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
  char q = (has_sq && !has_dq) ? '"' : '\'';
  jbuf_putc(c, b, q);
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t k = jx_utf8_decode(s, n, i, &cp);
    if (cp == (uint32_t)q || cp == '\\') {
      jbuf_putc(c, b, '\\');
      jbuf_putc(c, b, (char)cp);
    } else if (cp == '\n') {
      jbuf_put(c, b, "\\n", 2);
    } else if (cp == '\r') {
      jbuf_put(c, b, "\\r", 2);
    } else if (cp == '\t') {
      jbuf_put(c, b, "\\t", 2);
    } else if (!py_printable(cp)) {
      if (cp < 0x100) jbuf_printf(c, b, "\\x%02x", cp);
      else if (cp < 0x10000) jbuf_printf(c, b, "\\u%04x", cp);
      else jbuf_printf(c, b, "\\U%08x", cp);
    } else {
      jbuf_put(c, b, s + i, k);
    }
    i += k;
  }
  jbuf_putc(c, b, q);
}

void jv_repr(jctx *c, jbuf *b, jv v, int line, int col) {
  switch (v.t) {
    case JV_STR: repr_str(c, b, v.u.s.p, v.u.s.n); return;
    case JV_LIST: {
      jlist *l = v.u.l;
      jbuf_putc(c, b, l->is_tuple ? '(' : '[');
      for (size_t i = 0; i < l->n; i++) {
        if (i) jbuf_put(c, b, ", ", 2);
        jv_repr(c, b, l->v[i], line, col);
      }
      if (l->is_tuple && l->n == 1) jbuf_putc(c, b, ',');
      jbuf_putc(c, b, l->is_tuple ? ')' : ']');
      return;
    }
    case JV_DICT: {
      jdict *d = v.u.d;
      jbuf_putc(c, b, '{');
      for (size_t i = 0; i < d->n; i++) {
        if (i) jbuf_put(c, b, ", ", 2);
        jv_repr(c, b, d->k[i], line, col);
        jbuf_put(c, b, ": ", 2);
        jv_repr(c, b, d->v[i], line, col);
      }
      jbuf_putc(c, b, '}');
      return;
    }
    case JV_UNDEF: jbuf_put(c, b, "Undefined", 9); return;
    default: jv_to_str(c, b, v, line, col);
  }
}

void jv_to_str(jctx *c, jbuf *b, jv v, int line, int col) {
  char tmp[64];
  switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: jbuf_put(c, b, "None", 4); return;
    case JV_BOOL: if (v.u.i) jbuf_put(c, b, "True", 4); else jbuf_put(c, b, "False", 5); return;
    case JV_INT: jbuf_printf(c, b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT: jx_format_float(tmp, sizeof tmp, v.u.f); jbuf_put(c, b, tmp, strlen(tmp)); return;
    case JV_STR: jbuf_put(c, b, v.u.s.p, v.u.s.n); return;
    case JV_LIST: case JV_DICT: jv_repr(c, b, v, line, col); return;
    case JV_NS: {
      jbuf_put(c, b, "<Namespace {", 12);
      jdict *d = v.u.d;
      for (size_t i = 0; i < d->n; i++) {
        if (i) jbuf_put(c, b, ", ", 2);
        jv_repr(c, b, d->k[i], line, col);
        jbuf_put(c, b, ": ", 2);
        jv_repr(c, b, d->v[i], line, col);
      }
      jbuf_put(c, b, "}>", 2);
      return;
    }
    default:
      jx_fail(c, line, col, "cannot print a %s object (its Python text is not deterministic)", jv_type_name(v));
  }
}

jv jv_as_str(jctx *c, jv v, int line, int col) {
  if (v.t == JV_STR) return v;
  jbuf b = {0};
  jv_to_str(c, &b, v, line, col);
  return jv_buf(&b);
}

// ---------------------------------------------------------------- JSON out
static void json_str(jctx *c, jbuf *b, const char *s, size_t n, int ensure_ascii) {
  jbuf_putc(c, b, '"');
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t k = jx_utf8_decode(s, n, i, &cp);
    switch (cp) {
      case '"': jbuf_put(c, b, "\\\"", 2); break;
      case '\\': jbuf_put(c, b, "\\\\", 2); break;
      case '\n': jbuf_put(c, b, "\\n", 2); break;
      case '\r': jbuf_put(c, b, "\\r", 2); break;
      case '\t': jbuf_put(c, b, "\\t", 2); break;
      case '\b': jbuf_put(c, b, "\\b", 2); break;
      case '\f': jbuf_put(c, b, "\\f", 2); break;
      default:
        if (cp < 0x20) {
          jbuf_printf(c, b, "\\u%04x", cp);
        } else if (cp >= 0x7F && ensure_ascii) {
          if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            jbuf_printf(c, b, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
          } else {
            jbuf_printf(c, b, "\\u%04x", cp);
          }
        } else {
          jbuf_put(c, b, s + i, k);
        }
    }
    i += k;
  }
  jbuf_putc(c, b, '"');
}

typedef struct json_opts {
  int ensure_ascii, sort_keys, line, col;
  const char *indent, *item_sep, *key_sep;
} json_opts;

static void json_nl(jctx *c, jbuf *b, const json_opts *o, int level) {
  jbuf_putc(c, b, '\n');
  for (int i = 0; i < level; i++) jbuf_put(c, b, o->indent, strlen(o->indent));
}

static void json_val(jctx *c, jbuf *b, jv v, const json_opts *o, int level) {
  char tmp[64];
  if (level > JX_MAX_PARSE_DEPTH) jx_fail(c, o->line, o->col, "tojson: value nested too deeply");
  switch (v.t) {
    case JV_NONE: jbuf_put(c, b, "null", 4); return;
    case JV_BOOL: if (v.u.i) jbuf_put(c, b, "true", 4); else jbuf_put(c, b, "false", 5); return;
    case JV_INT: jbuf_printf(c, b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT:
      if (isnan(v.u.f)) jbuf_put(c, b, "NaN", 3);
      else if (isinf(v.u.f)) jbuf_put(c, b, v.u.f < 0 ? "-Infinity" : "Infinity", v.u.f < 0 ? 9 : 8);
      else {
        jx_format_float(tmp, sizeof tmp, v.u.f);
        jbuf_put(c, b, tmp, strlen(tmp));
      }
      return;
    case JV_STR: json_str(c, b, v.u.s.p, v.u.s.n, o->ensure_ascii); return;
    case JV_LIST: {
      jlist *l = v.u.l;
      if (!l->n) {
        jbuf_put(c, b, "[]", 2);
        return;
      }
      jbuf_putc(c, b, '[');
      for (size_t i = 0; i < l->n; i++) {
        if (i) jbuf_put(c, b, o->item_sep, strlen(o->item_sep));
        if (o->indent) json_nl(c, b, o, level + 1);
        json_val(c, b, l->v[i], o, level + 1);
      }
      if (o->indent) json_nl(c, b, o, level);
      jbuf_putc(c, b, ']');
      return;
    }
    case JV_DICT: {
      jdict *d = v.u.d;
      if (!d->n) {
        jbuf_put(c, b, "{}", 2);
        return;
      }
      size_t *ord = jx_alloc(c, d->n * sizeof *ord);
      for (size_t i = 0; i < d->n; i++) ord[i] = i;
      if (o->sort_keys)  // insertion sort: stable, dicts are small
        for (size_t i = 1; i < d->n; i++)
          for (size_t j = i; j > 0; j--) {
            int r = jv_compare(d->k[ord[j - 1]], d->k[ord[j]]);
            if (r == -2) jx_fail(c, o->line, o->col, "tojson: cannot sort keys of different types");
            if (r <= 0) break;
            size_t t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
          }
      jbuf_putc(c, b, '{');
      for (size_t i = 0; i < d->n; i++) {
        jv k = d->k[ord[i]];
        if (i) jbuf_put(c, b, o->item_sep, strlen(o->item_sep));
        if (o->indent) json_nl(c, b, o, level + 1);
        if (k.t == JV_STR) {
          json_str(c, b, k.u.s.p, k.u.s.n, o->ensure_ascii);
        } else if (k.t == JV_INT || k.t == JV_FLOAT || k.t == JV_BOOL || k.t == JV_NONE) {
          jbuf b2 = {0};
          json_val(c, &b2, k, o, level + 1);
          json_str(c, b, b2.p, b2.n, o->ensure_ascii);
        } else {
          jx_fail(c, o->line, o->col, "tojson: keys must be str, int, float, bool or None, not %s", jv_type_name(k));
        }
        jbuf_put(c, b, o->key_sep, strlen(o->key_sep));
        json_val(c, b, d->v[ord[i]], o, level + 1);
      }
      if (o->indent) json_nl(c, b, o, level);
      jbuf_putc(c, b, '}');
      return;
    }
    default:
      jx_fail(c, o->line, o->col, "tojson: Object of type %s is not JSON serializable", jv_type_name(v));
  }
}

void jv_to_json(jctx *c, jbuf *b, jv v, int ensure_ascii, const char *indent, const char *item_sep,
                const char *key_sep, int sort_keys, int line, int col) {
  json_opts o = {ensure_ascii, sort_keys, line, col, indent, item_sep, key_sep};
  json_val(c, b, v, &o, 0);
}

// ---------------------------------------------------------------- JSON in
typedef struct jp {
  jctx *c;
  const char *s;
  size_t n, i;
  char *msg;
  size_t msgcap;
  int depth;
} jp;

static int jp_err(jp *p, const char *what) {
  snprintf(p->msg, p->msgcap, "invalid JSON at byte %zu: %s", p->i, what);
  return -1;
}

static void jp_ws(jp *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static int hex4(const char *s, uint32_t *out) {
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    char ch = s[k];
    v <<= 4;
    if (ch >= '0' && ch <= '9') v |= (uint32_t)(ch - '0');
    else if (ch >= 'a' && ch <= 'f') v |= (uint32_t)(ch - 'a' + 10);
    else if (ch >= 'A' && ch <= 'F') v |= (uint32_t)(ch - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static int jp_string(jp *p, jv *out) {
  jbuf b = {0};
  p->i++;  // opening quote
  for (;;) {
    if (p->i >= p->n) return jp_err(p, "unterminated string");
    unsigned char ch = (unsigned char)p->s[p->i];
    if (ch == '"') {
      p->i++;
      break;
    }
    if (ch < 0x20) return jp_err(p, "control character in string");
    if (ch != '\\') {
      size_t j = p->i;
      while (j < p->n && p->s[j] != '"' && p->s[j] != '\\' && (unsigned char)p->s[j] >= 0x20) j++;
      jbuf_put(p->c, &b, p->s + p->i, j - p->i);
      p->i = j;
      continue;
    }
    if (p->i + 1 >= p->n) return jp_err(p, "bad escape");
    char e = p->s[p->i + 1];
    p->i += 2;
    switch (e) {
      case '"': jbuf_putc(p->c, &b, '"'); break;
      case '\\': jbuf_putc(p->c, &b, '\\'); break;
      case '/': jbuf_putc(p->c, &b, '/'); break;
      case 'b': jbuf_putc(p->c, &b, '\b'); break;
      case 'f': jbuf_putc(p->c, &b, '\f'); break;
      case 'n': jbuf_putc(p->c, &b, '\n'); break;
      case 'r': jbuf_putc(p->c, &b, '\r'); break;
      case 't': jbuf_putc(p->c, &b, '\t'); break;
      case 'u': {
        uint32_t cp;
        if (p->i + 4 > p->n || hex4(p->s + p->i, &cp)) return jp_err(p, "bad \\u escape");
        p->i += 4;
        if (cp >= 0xD800 && cp < 0xDC00) {
          uint32_t lo;
          if (p->i + 6 <= p->n && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u' && !hex4(p->s + p->i + 2, &lo) &&
              lo >= 0xDC00 && lo < 0xE000) {
            p->i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else {
            return jp_err(p, "lone surrogate in \\u escape (not representable as UTF-8)");
          }
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          return jp_err(p, "lone surrogate in \\u escape (not representable as UTF-8)");
        }
        jbuf_put_cp(p->c, &b, cp);
        break;
      }
      default: return jp_err(p, "bad escape");
    }
  }
  *out = jv_buf(&b);
  return 0;
}

static int jp_value(jp *p, jv *out) {
  jp_ws(p);
  if (p->i >= p->n) return jp_err(p, "unexpected end");
  if (++p->depth > JX_MAX_PARSE_DEPTH) return jp_err(p, "nested too deeply");
  char ch = p->s[p->i];
  int rc = 0;
  if (ch == '{') {
    *out = jv_dict_new(p->c, 0);
    p->i++;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
      p->i++;
    } else {
      for (;;) {
        jv k, v;
        jp_ws(p);
        if (p->i >= p->n || p->s[p->i] != '"') return jp_err(p, "expected a string key");
        if (jp_string(p, &k)) return -1;
        jp_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') return jp_err(p, "expected ':'");
        p->i++;
        if (jp_value(p, &v)) return -1;
        jv_dict_set(p->c, *out, k, v);
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
          p->i++;
          continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
          p->i++;
          break;
        }
        return jp_err(p, "expected ',' or '}'");
      }
    }
  } else if (ch == '[') {
    *out = jv_list_new(p->c, 0);
    p->i++;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
      p->i++;
    } else {
      for (;;) {
        jv v;
        if (jp_value(p, &v)) return -1;
        jv_list_push(p->c, *out, v);
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
          p->i++;
          continue;
        }
        if (p->i < p->n && p->s[p->i] == ']') {
          p->i++;
          break;
        }
        return jp_err(p, "expected ',' or ']'");
      }
    }
  } else if (ch == '"') {
    rc = jp_string(p, out);
  } else if (p->n - p->i >= 4 && memcmp(p->s + p->i, "true", 4) == 0) {
    *out = jv_bool(1);
    p->i += 4;
  } else if (p->n - p->i >= 5 && memcmp(p->s + p->i, "false", 5) == 0) {
    *out = jv_bool(0);
    p->i += 5;
  } else if (p->n - p->i >= 4 && memcmp(p->s + p->i, "null", 4) == 0) {
    *out = jv_none();
    p->i += 4;
  } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
    size_t j = p->i, start = p->i;
    int is_float = 0;
    if (p->s[j] == '-') j++;
    if (j >= p->n || p->s[j] < '0' || p->s[j] > '9') return jp_err(p, "bad number");
    if (p->s[j] == '0') j++;
    else while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') j++;
    if (j < p->n && p->s[j] == '.') {
      is_float = 1;
      j++;
      if (j >= p->n || p->s[j] < '0' || p->s[j] > '9') return jp_err(p, "bad number");
      while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') j++;
    }
    if (j < p->n && (p->s[j] == 'e' || p->s[j] == 'E')) {
      is_float = 1;
      j++;
      if (j < p->n && (p->s[j] == '+' || p->s[j] == '-')) j++;
      if (j >= p->n || p->s[j] < '0' || p->s[j] > '9') return jp_err(p, "bad number");
      while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') j++;
    }
    char tmp[400];
    if (j - start >= sizeof tmp) return jp_err(p, "number too long");
    memcpy(tmp, p->s + start, j - start);
    tmp[j - start] = 0;
    if (is_float) {
      *out = jv_float(strtod(tmp, NULL));
    } else {
      errno = 0;
      long long v = strtoll(tmp, NULL, 10);
      if (errno == ERANGE) return jp_err(p, "integer out of the 64-bit range");
      *out = jv_int(v);
    }
    p->i = j;
  } else if (p->n - p->i >= 3 && memcmp(p->s + p->i, "NaN", 3) == 0) {
    *out = jv_float(NAN);
    p->i += 3;
  } else if (p->n - p->i >= 8 && memcmp(p->s + p->i, "Infinity", 8) == 0) {
    *out = jv_float(INFINITY);
    p->i += 8;
  } else if (p->n - p->i >= 9 && memcmp(p->s + p->i, "-Infinity", 9) == 0) {
    *out = jv_float(-INFINITY);
    p->i += 9;
  } else {
    return jp_err(p, "unexpected character");
  }
  p->depth--;
  return rc;
}

int jv_from_json(jctx *c, const char *text, size_t len, jv *out, char *msg, size_t msgcap) {
  jp p = {c, text, len, 0, msg, msgcap, 0};
  if (jp_value(&p, out)) return -1;
  jp_ws(&p);
  if (p.i != p.n) return jp_err(&p, "extra data after the value");
  return 0;
}

// The items a for-loop or list() sees: a list itself, a dict's keys, a string's characters; undefined is empty.
jv jx_to_list(jctx *c, jv v, int line, int col) {
  switch (v.t) {
    case JV_LIST: return v;
    case JV_UNDEF: return jv_list_new(c, 0);
    case JV_DICT: {
      jv l = jv_list_new(c, v.u.d->n);
      for (size_t i = 0; i < v.u.d->n; i++) jv_list_push(c, l, v.u.d->k[i]);
      return l;
    }
    case JV_STR: {
      jv l = jv_list_new(c, 0);
      for (size_t i = 0; i < v.u.s.n;) {
        uint32_t cp;
        size_t k = jx_utf8_decode(v.u.s.p, v.u.s.n, i, &cp);
        jv_list_push(c, l, jv_strn(v.u.s.p + i, k));
        i += k;
      }
      return l;
    }
    default: jx_fail(c, line, col, "'%s' object is not iterable", jv_type_name(v));
  }
}
