// Jinja filters and tests (jinja2 3.1 semantics, with transformers' tojson), Python methods of str / dict / list
// the sandbox allows, and the globals transformers' chat-template environment provides (range, namespace, dict,
// raise_exception, strftime_now).
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "chat/jinja.h"

// ---------------------------------------------------------------- argument helpers
typedef struct fargs {
  jv *a;
  int n;
  const char **kn;
  jv *kv;
  int nk;
  int line, col;
  const char *fname;
} fargs;

// Argument by position or keyword; 1 if given.
static int arg(jctx *c, const fargs *f, int pos, const char *name, jv *out) {
  int found = 0;
  if (pos >= 0 && pos < f->n) {
    *out = f->a[pos];
    found = 1;
  }
  for (int i = 0; i < f->nk; i++)
    if (!strcmp(f->kn[i], name)) {
      if (found) jx_fail(c, f->line, f->col, "%s() got multiple values for argument '%s'", f->fname, name);
      *out = f->kv[i];
      found = 1;
    }
  return found;
}

static void check_args(jctx *c, const fargs *f, int maxpos, const char *const *names) {
  if (f->n > maxpos)
    jx_fail(c, f->line, f->col, "%s() takes at most %d positional argument%s (%d given)", f->fname, maxpos,
            maxpos == 1 ? "" : "s", f->n);
  for (int i = 0; i < f->nk; i++) {
    int ok = 0;
    for (int k = 0; names && names[k]; k++)
      if (!strcmp(names[k], f->kn[i])) ok = 1;
    if (!ok) jx_fail(c, f->line, f->col, "%s() got an unexpected keyword argument '%s'", f->fname, f->kn[i]);
  }
}

static jv need_str(jctx *c, const fargs *f, jv v, const char *what) {
  if (v.t != JV_STR) jx_fail(c, f->line, f->col, "%s: %s must be a string, not %s", f->fname, what, jv_type_name(v));
  return v;
}

static int is_none_or_undef(jv v) { return v.t == JV_NONE || v.t == JV_UNDEF; }

static jv str_of(jctx *c, const fargs *f, jv v) { return jv_as_str(c, v, f->line, f->col); }

// ---------------------------------------------------------------- string helpers
static int cp_in(uint32_t cp, jv chars) {
  for (size_t i = 0; i < chars.u.s.n;) {
    uint32_t x;
    i += jx_utf8_decode(chars.u.s.p, chars.u.s.n, i, &x);
    if (x == cp) return 1;
  }
  return 0;
}

jv jx_str_strip(jctx *c, jv s, jv chars, int left, int right) {
  (void)c;
  int ws = is_none_or_undef(chars);
  size_t a = 0, b = s.u.s.n;
  if (left)
    while (a < b) {
      uint32_t cp;
      size_t k = jx_utf8_decode(s.u.s.p, b, a, &cp);
      if (ws ? !jx_py_isspace(cp) : !cp_in(cp, chars)) break;
      a += k;
    }
  if (right)
    while (b > a) {
      size_t j = b - 1;
      while (j > a && ((unsigned char)s.u.s.p[j] & 0xC0) == 0x80) j--;
      uint32_t cp;
      jx_utf8_decode(s.u.s.p, b, j, &cp);
      if (ws ? !jx_py_isspace(cp) : !cp_in(cp, chars)) break;
      b = j;
    }
  return jv_strn(s.u.s.p + a, b - a);
}

typedef utf8proc_int32_t (*cp_map)(utf8proc_int32_t);

static jv map_cps(jctx *c, jv s, cp_map first, cp_map rest, int word_mode) {
  jbuf b = {0};
  int prev_cased = 0, first_done = 0;
  for (size_t i = 0; i < s.u.s.n;) {
    uint32_t cp;
    size_t k = jx_utf8_decode(s.u.s.p, s.u.s.n, i, &cp);
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
    int cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
    cp_map fn;
    if (word_mode) fn = prev_cased ? rest : first;  // str.title()
    else fn = first_done ? rest : first;            // str.capitalize() / upper / lower
    uint32_t m = fn ? (uint32_t)fn((utf8proc_int32_t)cp) : cp;
    jbuf_put_cp(c, &b, m);
    prev_cased = cased;
    first_done = 1;
    i += k;
  }
  return jv_buf(&b);
}

static jv str_upper(jctx *c, jv s) { return map_cps(c, s, utf8proc_toupper, utf8proc_toupper, 0); }
static jv str_lower(jctx *c, jv s) { return map_cps(c, s, utf8proc_tolower, utf8proc_tolower, 0); }
static jv str_capitalize(jctx *c, jv s) { return map_cps(c, s, utf8proc_totitle, utf8proc_tolower, 0); }
static jv str_title(jctx *c, jv s) { return map_cps(c, s, utf8proc_totitle, utf8proc_tolower, 1); }

static jv str_replace(jctx *c, jv s, jv old, jv rep, int64_t count) {
  jbuf b = {0};
  if (old.u.s.n == 0) {  // Python inserts `rep` around every character
    int64_t done = 0;
    for (size_t i = 0; i <= s.u.s.n;) {
      if (count < 0 || done < count) {
        jbuf_put(c, &b, rep.u.s.p, rep.u.s.n);
        done++;
      }
      if (i == s.u.s.n) break;
      uint32_t cp;
      size_t k = jx_utf8_decode(s.u.s.p, s.u.s.n, i, &cp);
      jbuf_put(c, &b, s.u.s.p + i, k);
      i += k;
    }
    return jv_buf(&b);
  }
  size_t i = 0;
  int64_t done = 0;
  while (i < s.u.s.n && (count < 0 || done < count)) {
    const char *hit = memmem(s.u.s.p + i, s.u.s.n - i, old.u.s.p, old.u.s.n);
    if (!hit) break;
    size_t h = (size_t)(hit - s.u.s.p);
    jbuf_put(c, &b, s.u.s.p + i, h - i);
    jbuf_put(c, &b, rep.u.s.p, rep.u.s.n);
    i = h + old.u.s.n;
    done++;
  }
  jbuf_put(c, &b, s.u.s.p + i, s.u.s.n - i);
  return jv_buf(&b);
}

static jv str_split(jctx *c, jv s, jv sep, int64_t maxsplit, int from_right, int line, int col) {
  jv out = jv_list_new(c, 0);
  const char *p = s.u.s.p;
  size_t n = s.u.s.n;
  if (is_none_or_undef(sep)) {
    // whitespace runs; leading/trailing whitespace ignored
    if (!from_right) {
      size_t i = 0;
      int64_t splits = 0;
      for (;;) {
        while (i < n) {
          uint32_t cp;
          size_t k = jx_utf8_decode(p, n, i, &cp);
          if (!jx_py_isspace(cp)) break;
          i += k;
        }
        if (i >= n) break;
        if (maxsplit >= 0 && splits >= maxsplit) {
          jv rest = jx_str_strip(c, jv_strn(p + i, n - i), jv_none(), 0, 1);
          jv_list_push(c, out, rest);
          break;
        }
        size_t j = i;
        while (j < n) {
          uint32_t cp;
          size_t k = jx_utf8_decode(p, n, j, &cp);
          if (jx_py_isspace(cp)) break;
          j += k;
        }
        jv_list_push(c, out, jv_strn(p + i, j - i));
        splits++;
        i = j;
      }
      return out;
    }
    // rsplit(): collect from the right, then reverse
    jv rev = jv_list_new(c, 0);
    size_t e = n;
    int64_t splits = 0;
    for (;;) {
      while (e > 0) {
        size_t j = e - 1;
        while (j > 0 && ((unsigned char)p[j] & 0xC0) == 0x80) j--;
        uint32_t cp;
        jx_utf8_decode(p, e, j, &cp);
        if (!jx_py_isspace(cp)) break;
        e = j;
      }
      if (e == 0) break;
      if (maxsplit >= 0 && splits >= maxsplit) {
        jv_list_push(c, rev, jx_str_strip(c, jv_strn(p, e), jv_none(), 1, 0));
        break;
      }
      size_t b = e;
      while (b > 0) {
        size_t j = b - 1;
        while (j > 0 && ((unsigned char)p[j] & 0xC0) == 0x80) j--;
        uint32_t cp;
        jx_utf8_decode(p, b, j, &cp);
        if (jx_py_isspace(cp)) break;
        b = j;
      }
      jv_list_push(c, rev, jv_strn(p + b, e - b));
      splits++;
      e = b;
    }
    for (size_t i = rev.u.l->n; i-- > 0;) jv_list_push(c, out, rev.u.l->v[i]);
    return out;
  }
  if (sep.t != JV_STR) jx_fail(c, line, col, "must be str or None, not %s", jv_type_name(sep));
  if (sep.u.s.n == 0) jx_fail(c, line, col, "empty separator");
  if (!from_right) {
    size_t i = 0;
    int64_t splits = 0;
    for (;;) {
      const char *hit = (maxsplit < 0 || splits < maxsplit) ? memmem(p + i, n - i, sep.u.s.p, sep.u.s.n) : NULL;
      if (!hit) {
        jv_list_push(c, out, jv_strn(p + i, n - i));
        break;
      }
      size_t h = (size_t)(hit - p);
      jv_list_push(c, out, jv_strn(p + i, h - i));
      i = h + sep.u.s.n;
      splits++;
    }
    return out;
  }
  jv rev = jv_list_new(c, 0);
  size_t e = n;
  int64_t splits = 0;
  for (;;) {
    long h = -1;
    if (maxsplit < 0 || splits < maxsplit)
      for (size_t j = e >= sep.u.s.n ? e - sep.u.s.n + 1 : 0; j-- > 0;)
        if (memcmp(p + j, sep.u.s.p, sep.u.s.n) == 0) {
          h = (long)j;
          break;
        }
    if (h < 0) {
      jv_list_push(c, rev, jv_strn(p, e));
      break;
    }
    jv_list_push(c, rev, jv_strn(p + h + sep.u.s.n, e - (size_t)h - sep.u.s.n));
    e = (size_t)h;
    splits++;
  }
  for (size_t i = rev.u.l->n; i-- > 0;) jv_list_push(c, out, rev.u.l->v[i]);
  return out;
}

static int is_line_break(uint32_t cp) {
  return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
         cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

static jv str_splitlines(jctx *c, jv s) {
  jv out = jv_list_new(c, 0);
  size_t i = 0, start = 0, n = s.u.s.n;
  while (i < n) {
    uint32_t cp;
    size_t k = jx_utf8_decode(s.u.s.p, n, i, &cp);
    if (is_line_break(cp)) {
      jv_list_push(c, out, jv_strn(s.u.s.p + start, i - start));
      i += k;
      if (cp == '\r' && i < n && s.u.s.p[i] == '\n') i++;
      start = i;
    } else {
      i += k;
    }
  }
  if (start < n) jv_list_push(c, out, jv_strn(s.u.s.p + start, n - start));
  return out;
}

static int prefix_match(jv s, jv pre, int suffix) {
  if (pre.u.s.n > s.u.s.n) return 0;
  const char *at = suffix ? s.u.s.p + s.u.s.n - pre.u.s.n : s.u.s.p;
  return memcmp(at, pre.u.s.p, pre.u.s.n) == 0;
}


// ---------------------------------------------------------------- methods
static const char *const str_methods[] = {
    "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "replace", "upper", "lower", "title",
    "capitalize", "find", "rfind", "count", "join", "splitlines", "isdigit", "isalpha", "isspace", "isalnum",
    "islower", "isupper", "removeprefix", "removesuffix", "index", "rindex", "format", "center", "ljust", "rjust",
    "zfill", "encode", "swapcase", "casefold", "partition", "rpartition", "expandtabs", "isnumeric", "isdecimal",
    "istitle", "isidentifier", "isprintable", "translate", "maketrans", "isascii", NULL};
static const char *const dict_methods[] = {"items", "keys", "values", "get", "copy", "pop", "popitem", "update",
                                           "setdefault", "clear", "fromkeys", NULL};
static const char *const list_methods[] = {"count", "index", "append", "extend", "insert", "pop", "remove", "sort",
                                           "reverse", "clear", "copy", NULL};

static int in_names(const char *const *names, const char *s) {
  for (int i = 0; names[i]; i++)
    if (!strcmp(names[i], s)) return 1;
  return 0;
}

int jx_is_method(jv self, const char *name) {
  if (self.t == JV_STR) return in_names(str_methods, name);
  if (self.t == JV_DICT) return in_names(dict_methods, name);
  if (self.t == JV_LIST) return in_names(list_methods, name);
  return 0;
}

static size_t byte_to_cp(jv s, size_t off) { return jx_utf8_count(s.u.s.p, off); }

static int64_t int_arg(jctx *c, const fargs *f, jv v, const char *what) {
  if (v.t != JV_INT && v.t != JV_BOOL)
    jx_fail(c, f->line, f->col, "%s: %s must be an integer, not %s", f->fname, what, jv_type_name(v));
  return v.u.i;
}

static jv str_method(jctx *c, jv s, const char *m, const fargs *f) {
  jv a0 = jv_undef(), a1 = jv_undef();
  if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
    check_args(c, f, 1, NULL);
    arg(c, f, 0, "chars", &a0);
    if (!is_none_or_undef(a0)) need_str(c, f, a0, "chars");
    return jx_str_strip(c, s, a0, m[0] != 'r', m[0] != 'l');
  }
  if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
    static const char *const kw[] = {"sep", "maxsplit", NULL};
    check_args(c, f, 2, kw);
    int64_t maxsplit = -1;
    arg(c, f, 0, "sep", &a0);
    if (arg(c, f, 1, "maxsplit", &a1)) maxsplit = int_arg(c, f, a1, "maxsplit");
    return str_split(c, s, a0, maxsplit, m[0] == 'r', f->line, f->col);
  }
  if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
    check_args(c, f, 1, NULL);
    if (!arg(c, f, 0, "prefix", &a0)) jx_fail(c, f->line, f->col, "%s() takes at least 1 argument", m);
    int suffix = m[0] == 'e';
    if (a0.t == JV_LIST && a0.u.l->is_tuple) {
      for (size_t i = 0; i < a0.u.l->n; i++)
        if (prefix_match(s, need_str(c, f, a0.u.l->v[i], "tuple item"), suffix)) return jv_bool(1);
      return jv_bool(0);
    }
    if (a0.t != JV_STR)
      jx_fail(c, f->line, f->col, "%s first arg must be str or a tuple of str, not %s", m, jv_type_name(a0));
    return jv_bool(prefix_match(s, a0, suffix));
  }
  if (!strcmp(m, "removeprefix") || !strcmp(m, "removesuffix")) {
    check_args(c, f, 1, NULL);
    if (!arg(c, f, 0, "prefix", &a0)) jx_fail(c, f->line, f->col, "%s() takes exactly one argument", m);
    need_str(c, f, a0, "argument");
    int suffix = m[6] == 's';
    if (!prefix_match(s, a0, suffix)) return s;
    return suffix ? jv_strn(s.u.s.p, s.u.s.n - a0.u.s.n) : jv_strn(s.u.s.p + a0.u.s.n, s.u.s.n - a0.u.s.n);
  }
  if (!strcmp(m, "replace")) {
    check_args(c, f, 3, NULL);
    jv a2 = jv_undef();
    if (!arg(c, f, 0, "old", &a0) || !arg(c, f, 1, "new", &a1))
      jx_fail(c, f->line, f->col, "replace() takes at least 2 arguments");
    int64_t count = -1;
    if (arg(c, f, 2, "count", &a2)) count = int_arg(c, f, a2, "count");
    return str_replace(c, s, need_str(c, f, a0, "old"), need_str(c, f, a1, "new"), count);
  }
  if (!strcmp(m, "upper")) return str_upper(c, s);
  if (!strcmp(m, "lower")) return str_lower(c, s);
  if (!strcmp(m, "title")) return str_title(c, s);
  if (!strcmp(m, "capitalize")) return str_capitalize(c, s);
  if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") || !strcmp(m, "rindex") ||
      !strcmp(m, "count")) {
    check_args(c, f, 1, NULL);
    if (!arg(c, f, 0, "sub", &a0)) jx_fail(c, f->line, f->col, "%s() takes at least 1 argument", m);
    need_str(c, f, a0, "argument");
    if (!strcmp(m, "count")) {
      if (a0.u.s.n == 0) return jv_int((int64_t)jx_utf8_count(s.u.s.p, s.u.s.n) + 1);
      int64_t k = 0;
      size_t i = 0;
      const char *hit;
      while ((hit = memmem(s.u.s.p + i, s.u.s.n - i, a0.u.s.p, a0.u.s.n)) != NULL) {
        k++;
        i = (size_t)(hit - s.u.s.p) + a0.u.s.n;
      }
      return jv_int(k);
    }
    long pos = -1;
    if (m[0] != 'r') {
      const char *hit = memmem(s.u.s.p, s.u.s.n, a0.u.s.p, a0.u.s.n);
      if (hit) pos = (long)(hit - s.u.s.p);
    } else if (a0.u.s.n <= s.u.s.n) {
      for (size_t j = s.u.s.n - a0.u.s.n + 1; j-- > 0;)
        if (memcmp(s.u.s.p + j, a0.u.s.p, a0.u.s.n) == 0) {
          pos = (long)j;
          break;
        }
    }
    if (pos < 0) {
      if (strstr(m, "index")) jx_fail(c, f->line, f->col, "substring not found");
      return jv_int(-1);
    }
    return jv_int((int64_t)byte_to_cp(s, (size_t)pos));
  }
  if (!strcmp(m, "join")) {
    check_args(c, f, 1, NULL);
    if (!arg(c, f, 0, "iterable", &a0)) jx_fail(c, f->line, f->col, "join() takes exactly one argument");
    jv l = jx_to_list(c, a0, f->line, f->col);
    jbuf b = {0};
    for (size_t i = 0; i < l.u.l->n; i++) {
      if (i) jbuf_put(c, &b, s.u.s.p, s.u.s.n);
      jv it = l.u.l->v[i];
      if (it.t != JV_STR)
        jx_fail(c, f->line, f->col, "sequence item %zu: expected str instance, %s found", i, jv_type_name(it));
      jbuf_put(c, &b, it.u.s.p, it.u.s.n);
    }
    return jv_buf(&b);
  }
  if (!strcmp(m, "splitlines")) return str_splitlines(c, s);
  if (!strncmp(m, "is", 2) && strcmp(m, "isidentifier") && strcmp(m, "isprintable") && strcmp(m, "istitle") &&
      strcmp(m, "isnumeric") && strcmp(m, "isdecimal")) {
    if (s.u.s.n == 0) return jv_bool(!strcmp(m, "isascii"));
    int any_cased = 0;
    for (size_t i = 0; i < s.u.s.n;) {
      uint32_t cp;
      i += jx_utf8_decode(s.u.s.p, s.u.s.n, i, &cp);
      utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
      int alpha = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
      int digit = cat == UTF8PROC_CATEGORY_ND;
      if (!strcmp(m, "isdigit") && !digit) return jv_bool(0);
      if (!strcmp(m, "isalpha") && !alpha) return jv_bool(0);
      if (!strcmp(m, "isalnum") && !alpha && !digit && cat != UTF8PROC_CATEGORY_NL && cat != UTF8PROC_CATEGORY_NO)
        return jv_bool(0);
      if (!strcmp(m, "isspace") && !jx_py_isspace(cp)) return jv_bool(0);
      if (!strcmp(m, "isascii") && cp > 0x7F) return jv_bool(0);
      if (!strcmp(m, "islower") || !strcmp(m, "isupper")) {
        if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) {
          if (m[2] == 'l') return jv_bool(0);
          any_cased = 1;
        } else if (cat == UTF8PROC_CATEGORY_LL) {
          if (m[2] == 'u') return jv_bool(0);
          any_cased = 1;
        }
      }
    }
    if (!strcmp(m, "islower") || !strcmp(m, "isupper")) return jv_bool(any_cased);
    return jv_bool(1);
  }
  jx_fail(c, f->line, f->col, "str.%s() is not supported", m);
}

static jv items_of(jctx *c, jv d) {
  jv l = jv_list_new(c, d.u.d->n);
  for (size_t i = 0; i < d.u.d->n; i++) {
    jv t = jv_list_new(c, 2);
    t.u.l->is_tuple = 1;
    jv_list_push(c, t, d.u.d->k[i]);
    jv_list_push(c, t, d.u.d->v[i]);
    jv_list_push(c, l, t);
  }
  return l;
}

jv jx_call_method(jctx *c, jv self, const char *name, jv *args, int nargs, const char **kwn, jv *kwv, int nkw,
                  int line, int col) {
  fargs f = {args, nargs, kwn, kwv, nkw, line, col, name};
  if (self.t == JV_STR) return str_method(c, self, name, &f);
  if (self.t == JV_DICT) {
    if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values") || !strcmp(name, "copy")) {
      check_args(c, &f, 0, NULL);
      if (!strcmp(name, "copy")) {
        jv d = jv_dict_new(c, self.u.d->n);
        for (size_t i = 0; i < self.u.d->n; i++) jv_dict_set(c, d, self.u.d->k[i], self.u.d->v[i]);
        return d;
      }
      if (name[0] == 'i') return items_of(c, self);
      jv l = jv_list_new(c, self.u.d->n);
      for (size_t i = 0; i < self.u.d->n; i++) jv_list_push(c, l, name[0] == 'k' ? self.u.d->k[i] : self.u.d->v[i]);
      return l;
    }
    if (!strcmp(name, "get")) {
      check_args(c, &f, 2, NULL);
      jv k = jv_undef(), def = jv_none(), v;
      if (!arg(c, &f, 0, "key", &k)) jx_fail(c, line, col, "get expected at least 1 argument, got 0");
      arg(c, &f, 1, "default", &def);
      return jv_dict_get(self, k, &v) ? v : def;
    }
    jx_fail(c, line, col, "access to dict.%s() is unsafe in the sandbox (templates cannot modify data)", name);
  }
  if (self.t == JV_LIST) {
    if (!strcmp(name, "count") || !strcmp(name, "index")) {
      check_args(c, &f, 1, NULL);
      jv x = jv_undef();
      if (!arg(c, &f, 0, "value", &x)) jx_fail(c, line, col, "%s() takes exactly one argument", name);
      int64_t k = 0;
      for (size_t i = 0; i < self.u.l->n; i++)
        if (jv_equal(self.u.l->v[i], x)) {
          if (name[0] == 'i') return jv_int((int64_t)i);
          k++;
        }
      if (name[0] == 'i') jx_fail(c, line, col, "list.index(x): x not in list");
      return jv_int(k);
    }
    if (!strcmp(name, "copy")) {
      jv l = jv_list_new(c, self.u.l->n);
      for (size_t i = 0; i < self.u.l->n; i++) jv_list_push(c, l, self.u.l->v[i]);
      return l;
    }
    jx_fail(c, line, col, "access to list.%s() is unsafe in the sandbox (templates cannot modify data)", name);
  }
  jx_fail(c, line, col, "'%s' object has no method '%s'", jv_type_name(self), name);
}

// ---------------------------------------------------------------- tests
static const char *const test_names[] = {
    "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number", "string", "mapping",
    "iterable", "sequence", "callable", "sameas", "equalto", "eq", "==", "ne", "!=", "lt", "<", "lessthan", "le",
    "<=", "gt", ">", "greaterthan", "ge", ">=", "in", "odd", "even", "divisibleby", "lower", "upper", "escaped",
    NULL};

int jx_has_test(const char *name) { return in_names(test_names, name); }

int jx_test(jctx *c, const char *name, jv v, jv *args, int nargs, int line, int col) {
  jv a = nargs > 0 ? args[0] : jv_undef();
#define NEED1()                                                                  \
  do {                                                                           \
    if (nargs != 1) jx_fail(c, line, col, "test '%s' takes one argument", name); \
  } while (0)
  if (!strcmp(name, "defined")) return v.t != JV_UNDEF;
  if (!strcmp(name, "undefined")) return v.t == JV_UNDEF;
  if (!strcmp(name, "none")) return v.t == JV_NONE;
  if (!strcmp(name, "boolean")) return v.t == JV_BOOL;
  if (!strcmp(name, "false")) return v.t == JV_BOOL && !v.u.i;
  if (!strcmp(name, "true")) return v.t == JV_BOOL && v.u.i;
  if (!strcmp(name, "integer")) return v.t == JV_INT;
  if (!strcmp(name, "float")) return v.t == JV_FLOAT;
  if (!strcmp(name, "number")) return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
  if (!strcmp(name, "string")) return v.t == JV_STR;
  if (!strcmp(name, "mapping")) return v.t == JV_DICT;
  if (!strcmp(name, "iterable")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
  if (!strcmp(name, "sequence")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
  if (!strcmp(name, "callable")) return v.t == JV_FUNC;
  if (!strcmp(name, "escaped")) return 0;
  if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
    if (v.t != JV_STR) v = jv_as_str(c, v, line, col);
    jv conv = name[0] == 'l' ? str_lower(c, v) : str_upper(c, v);
    return jv_equal(conv, v);
  }
  if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
    if (v.t != JV_INT && v.t != JV_BOOL) jx_fail(c, line, col, "test '%s' needs an integer", name);
    if (name[0] == 'o') return (v.u.i % 2) != 0;
    if (name[0] == 'e') return (v.u.i % 2) == 0;
    NEED1();
    if ((a.t != JV_INT && a.t != JV_BOOL) || a.u.i == 0) jx_fail(c, line, col, "divisibleby needs a non-zero integer");
    return v.u.i % a.u.i == 0;
  }
  NEED1();
  if (!strcmp(name, "sameas")) {
    if (v.t != a.t) return 0;
    if (v.t == JV_NONE || v.t == JV_UNDEF) return 1;
    if (v.t == JV_BOOL) return v.u.i == a.u.i;
    if (v.t == JV_LIST) return v.u.l == a.u.l;
    if (v.t == JV_DICT || v.t == JV_NS) return v.u.d == a.u.d;
    if (v.t == JV_INT) return v.u.i == a.u.i && v.u.i >= -5 && v.u.i <= 256;  // CPython small-int cache
    return 0;
  }
  if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "==")) return jv_equal(v, a);
  if (!strcmp(name, "ne") || !strcmp(name, "!=")) return !jv_equal(v, a);
  if (!strcmp(name, "in")) {
    if (a.t == JV_STR) {
      if (v.t != JV_STR) jx_fail(c, line, col, "'in <string>' requires string as left operand");
      return v.u.s.n == 0 || memmem(a.u.s.p, a.u.s.n, v.u.s.p, v.u.s.n) != NULL;
    }
    if (a.t == JV_LIST) {
      for (size_t i = 0; i < a.u.l->n; i++)
        if (jv_equal(a.u.l->v[i], v)) return 1;
      return 0;
    }
    if (a.t == JV_DICT) {
      jv o;
      return jv_dict_get(a, v, &o);
    }
    if (a.t == JV_UNDEF) return 0;
    jx_fail(c, line, col, "argument of type '%s' is not iterable", jv_type_name(a));
  }
  if (v.t == JV_UNDEF || a.t == JV_UNDEF) jx_fail(c, line, col, "comparison with an undefined value");
  int r = jv_compare(v, a);
  if (r == -2)
    jx_fail(c, line, col, "test '%s' not supported between '%s' and '%s'", name, jv_type_name(v), jv_type_name(a));
  if (!strcmp(name, "lt") || !strcmp(name, "<") || !strcmp(name, "lessthan")) return r < 0;
  if (!strcmp(name, "le") || !strcmp(name, "<=")) return r <= 0;
  if (!strcmp(name, "gt") || !strcmp(name, ">") || !strcmp(name, "greaterthan")) return r > 0;
  if (!strcmp(name, "ge") || !strcmp(name, ">=")) return r >= 0;
#undef NEED1
  jx_fail(c, line, col, "unsupported test '%s'", name);
}

// ---------------------------------------------------------------- filters
static const char *const filter_names[] = {
    "abs", "attr", "capitalize", "count", "default", "d", "dictsort", "escape", "e", "first", "float", "indent",
    "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace",
    "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique",
    "upper", "wordcount", NULL};

int jx_has_filter(const char *name) { return in_names(filter_names, name); }

// Attribute getter as jinja2's make_attrgetter: "a.b.0" walks items; integers index.
static jv get_path(jctx *c, jv v, jv attr, int line, int col) {
  if (attr.t == JV_INT) return jx_getitem(c, v, attr, line, col);
  if (attr.t != JV_STR) jx_fail(c, line, col, "attribute must be a string or an integer");
  const char *p = attr.u.s.p, *end = p + attr.u.s.n;
  while (p <= end) {
    const char *dot = memchr(p, '.', (size_t)(end - p));
    size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
    jv key = jv_strn(p, n);
    int isnum = n > 0;
    int64_t iv = 0;
    for (size_t i = 0; i < n; i++) {
      if (p[i] < '0' || p[i] > '9' || iv > (INT64_MAX - 9) / 10) {
        isnum = 0;
        break;
      }
      iv = iv * 10 + (p[i] - '0');
    }
    if (isnum) key = jv_int(iv);
    v = jx_getitem(c, v, key, line, col);
    if (!dot) break;
    p = dot + 1;
  }
  return v;
}

static jv sort_key(jctx *c, jv v, int case_sensitive) {
  if (!case_sensitive && v.t == JV_STR) return str_lower(c, v);
  return v;
}

static void stable_sort(jctx *c, jv *vals, jv *keys, size_t n, int reverse, int line, int col) {
  // insertion sort on keys (stable; lists in templates are short)
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0; j--) {
      int r = jv_compare(keys[j - 1], keys[j]);
      if (r == -2)
        jx_fail(c, line, col, "'<' not supported between instances of '%s' and '%s'", jv_type_name(keys[j - 1]),
                jv_type_name(keys[j]));
      if (reverse ? r >= 0 : r <= 0) break;
      jv t = keys[j];
      keys[j] = keys[j - 1];
      keys[j - 1] = t;
      t = vals[j];
      vals[j] = vals[j - 1];
      vals[j - 1] = t;
    }
}

static jv filter_select(jctx *c, jv v, const fargs *f, int by_attr, int keep_when) {
  jv l = jx_to_list(c, v, f->line, f->col);
  jv out = jv_list_new(c, 0);
  int first_test = by_attr ? 1 : 0;
  jv attr = jv_undef();
  if (by_attr && (f->n < 1 || (attr = f->a[0]).t == JV_UNDEF))
    jx_fail(c, f->line, f->col, "%s() needs an attribute name", f->fname);
  const char *test = NULL;
  if (f->n > first_test) {
    jv t = f->a[first_test];
    if (t.t != JV_STR) jx_fail(c, f->line, f->col, "%s(): the test name must be a string", f->fname);
    test = jx_strdup(c, t.u.s.p, t.u.s.n);
    if (!jx_has_test(test)) jx_fail(c, f->line, f->col, "unsupported test '%s'", test);
  }
  if (f->nk) jx_fail(c, f->line, f->col, "%s() takes no keyword arguments", f->fname);
  for (size_t i = 0; i < l.u.l->n; i++) {
    jv item = l.u.l->v[i];
    jv x = by_attr ? get_path(c, item, attr, f->line, f->col) : item;
    int r = test ? jx_test(c, test, x, f->a + first_test + 1, f->n - first_test - 1, f->line, f->col) : jv_truthy(x);
    if (r == keep_when) jv_list_push(c, out, item);
  }
  return out;
}

static jv do_tojson(jctx *c, jv v, const fargs *f) {
  static const char *const kw[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
  check_args(c, f, 4, kw);
  jv ea = jv_bool(0), ind = jv_none(), seps = jv_none(), sk = jv_bool(0);
  arg(c, f, 0, "ensure_ascii", &ea);
  arg(c, f, 1, "indent", &ind);
  arg(c, f, 2, "separators", &seps);
  arg(c, f, 3, "sort_keys", &sk);
  const char *indent = NULL, *item_sep = ", ", *key_sep = ": ";
  if (!is_none_or_undef(ind)) {
    if (ind.t == JV_INT || ind.t == JV_BOOL) {
      int64_t k = ind.u.i < 0 ? 0 : ind.u.i;
      if (k > 1000) jx_fail(c, f->line, f->col, "tojson: indent too large");
      char *s = jx_alloc(c, (size_t)k + 1);
      memset(s, ' ', (size_t)k);
      indent = s;
    } else if (ind.t == JV_STR) {
      indent = jx_strdup(c, ind.u.s.p, ind.u.s.n);
    } else {
      jx_fail(c, f->line, f->col, "tojson: indent must be an integer or a string");
    }
    item_sep = ",";
  }
  if (!is_none_or_undef(seps)) {
    if (seps.t != JV_LIST || seps.u.l->n != 2 || seps.u.l->v[0].t != JV_STR || seps.u.l->v[1].t != JV_STR)
      jx_fail(c, f->line, f->col, "tojson: separators must be a pair of strings");
    item_sep = jx_strdup(c, seps.u.l->v[0].u.s.p, seps.u.l->v[0].u.s.n);
    key_sep = jx_strdup(c, seps.u.l->v[1].u.s.p, seps.u.l->v[1].u.s.n);
  }
  jbuf b = {0};
  jv_to_json(c, &b, v, jv_truthy(ea), indent, item_sep, key_sep, jv_truthy(sk), f->line, f->col);
  return jv_buf(&b);
}

static jv to_int(jctx *c, jv v, jv def, int64_t base) {
  (void)c;
  if (v.t == JV_INT || v.t == JV_BOOL) return jv_int(v.u.i);
  if (v.t == JV_FLOAT) {
    if (!isfinite(v.u.f) || fabs(v.u.f) >= 9.2e18) return def;
    return jv_int((int64_t)v.u.f);
  }
  if (v.t == JV_STR) {
    char tmp[128];
    jv st = jx_str_strip(c, v, jv_none(), 1, 1);
    if (st.u.s.n == 0 || st.u.s.n >= sizeof tmp) return def;
    size_t k = 0;
    for (size_t i = 0; i < st.u.s.n; i++)
      if (st.u.s.p[i] != '_') tmp[k++] = st.u.s.p[i];
    tmp[k] = 0;
    char *end;
    errno = 0;
    long long r = strtoll(tmp, &end, (int)base);
    if (*end == 0 && errno == 0) return jv_int(r);
    double d = strtod(tmp, &end);  // jinja falls back to int(float(value))
    if (*end == 0 && isfinite(d) && fabs(d) < 9.2e18) return jv_int((int64_t)d);
    return def;
  }
  return def;
}

static jv to_float(jctx *c, jv v, jv def) {
  if (v.t == JV_INT || v.t == JV_BOOL) return jv_float((double)v.u.i);
  if (v.t == JV_FLOAT) return v;
  if (v.t == JV_STR) {
    char tmp[128];
    jv st = jx_str_strip(c, v, jv_none(), 1, 1);
    if (st.u.s.n == 0 || st.u.s.n >= sizeof tmp) return def;
    memcpy(tmp, st.u.s.p, st.u.s.n);
    tmp[st.u.s.n] = 0;
    char *end;
    double d = strtod(tmp, &end);
    if (*end == 0) return jv_float(d);
  }
  return def;
}

static jv do_indent(jctx *c, jv s, const fargs *f) {
  static const char *const kw[] = {"width", "first", "blank", NULL};
  check_args(c, f, 3, kw);
  jv w = jv_int(4), first = jv_bool(0), blank = jv_bool(0);
  arg(c, f, 0, "width", &w);
  arg(c, f, 1, "first", &first);
  arg(c, f, 2, "blank", &blank);
  jv ind;
  if (w.t == JV_STR) {
    ind = w;
  } else {
    int64_t k = int_arg(c, f, w, "width");
    if (k < 0) k = 0;
    if (k > 1000) jx_fail(c, f->line, f->col, "indent: width too large");
    char *p = jx_alloc(c, (size_t)k + 1);
    memset(p, ' ', (size_t)k);
    ind = jv_strn(p, (size_t)k);
  }
  jbuf tmp = {0};
  jbuf_put(c, &tmp, s.u.s.p, s.u.s.n);
  jbuf_putc(c, &tmp, '\n');
  jv lines = str_splitlines(c, jv_buf(&tmp));
  jbuf b = {0};
  if (first.t != JV_UNDEF && jv_truthy(first)) jbuf_put(c, &b, ind.u.s.p, ind.u.s.n);
  for (size_t i = 0; i < lines.u.l->n; i++) {
    jv ln = lines.u.l->v[i];
    if (i) {
      jbuf_putc(c, &b, '\n');
      if (ln.u.s.n || jv_truthy(blank)) jbuf_put(c, &b, ind.u.s.p, ind.u.s.n);
    }
    jbuf_put(c, &b, ln.u.s.p, ln.u.s.n);
  }
  return jv_buf(&b);
}

static jv do_title_filter(jctx *c, jv s) {
  // jinja2 do_title: split on runs of [-\s({\[<], capitalize each item's first character, lower the rest
  jbuf b = {0};
  size_t i = 0, n = s.u.s.n;
  while (i < n) {
    size_t j = i;
    int sep = -1;
    while (j < n) {
      uint32_t cp;
      size_t k = jx_utf8_decode(s.u.s.p, n, j, &cp);
      int is_sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || jx_py_isspace(cp);
      if (sep < 0) sep = is_sep;
      if (is_sep != sep) break;
      j += k;
    }
    jv item = jv_strn(s.u.s.p + i, j - i);
    jv cap = map_cps(c, item, utf8proc_toupper, utf8proc_tolower, 0);
    jbuf_put(c, &b, cap.u.s.p, cap.u.s.n);
    i = j;
  }
  return jv_buf(&b);
}

jv jx_filter(jctx *c, const char *name, jv v, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, int line,
             int col) {
  fargs F = {args, nargs, kwn, kwv, nkw, line, col, name};
  const fargs *f = &F;
  jv a0 = jv_undef(), a1 = jv_undef(), a2 = jv_undef();
  if (!strcmp(name, "tojson")) return do_tojson(c, v, f);
  if (!strcmp(name, "safe")) return v;
  if (!strcmp(name, "default") || !strcmp(name, "d")) {
    static const char *const kw[] = {"default_value", "boolean", NULL};
    check_args(c, f, 2, kw);
    jv def = jv_strn("", 0), boolean = jv_bool(0);
    arg(c, f, 0, "default_value", &def);
    arg(c, f, 1, "boolean", &boolean);
    if (v.t == JV_UNDEF || (jv_truthy(boolean) && !jv_truthy(v))) return def;
    return v;
  }
  if (!strcmp(name, "length") || !strcmp(name, "count")) {
    switch (v.t) {
      case JV_UNDEF: return jv_int(0);
      case JV_STR: return jv_int((int64_t)jx_utf8_count(v.u.s.p, v.u.s.n));
      case JV_LIST: return jv_int((int64_t)v.u.l->n);
      case JV_DICT: return jv_int((int64_t)v.u.d->n);
      default: jx_fail(c, line, col, "object of type '%s' has no len()", jv_type_name(v));
    }
  }
  if (!strcmp(name, "string")) return jv_as_str(c, v, line, col);
  if (!strcmp(name, "trim")) {
    check_args(c, f, 1, NULL);
    arg(c, f, 0, "chars", &a0);
    return jx_str_strip(c, str_of(c, f, v), a0, 1, 1);
  }
  if (!strcmp(name, "upper")) return str_upper(c, str_of(c, f, v));
  if (!strcmp(name, "lower")) return str_lower(c, str_of(c, f, v));
  if (!strcmp(name, "capitalize")) return str_capitalize(c, str_of(c, f, v));
  if (!strcmp(name, "title")) return do_title_filter(c, str_of(c, f, v));
  if (!strcmp(name, "replace")) {
    check_args(c, f, 3, NULL);
    if (!arg(c, f, 0, "old", &a0) || !arg(c, f, 1, "new", &a1)) jx_fail(c, line, col, "replace needs old and new");
    int64_t count = -1;
    if (arg(c, f, 2, "count", &a2) && a2.t != JV_NONE) count = int_arg(c, f, a2, "count");
    return str_replace(c, str_of(c, f, v), str_of(c, f, a0), str_of(c, f, a1), count);
  }
  if (!strcmp(name, "wordcount")) {
    jv s = str_of(c, f, v);
    int64_t k = 0;
    int in = 0;
    for (size_t i = 0; i < s.u.s.n;) {
      uint32_t cp;
      i += jx_utf8_decode(s.u.s.p, s.u.s.n, i, &cp);
      utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
      int w = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NO) || cp == '_';
      if (w && !in) k++;
      in = w;
    }
    return jv_int(k);
  }
  if (!strcmp(name, "indent")) return do_indent(c, str_of(c, f, v), f);
  if (!strcmp(name, "escape") || !strcmp(name, "e")) {
    jv s = str_of(c, f, v);
    jbuf b = {0};
    for (size_t i = 0; i < s.u.s.n; i++) {
      char ch = s.u.s.p[i];
      if (ch == '&') jbuf_put(c, &b, "&amp;", 5);
      else if (ch == '<') jbuf_put(c, &b, "&lt;", 4);
      else if (ch == '>') jbuf_put(c, &b, "&gt;", 4);
      else if (ch == '"') jbuf_put(c, &b, "&#34;", 5);
      else if (ch == '\'') jbuf_put(c, &b, "&#39;", 5);
      else jbuf_putc(c, &b, ch);
    }
    return jv_buf(&b);
  }
  if (!strcmp(name, "int")) {
    static const char *const kw[] = {"default", "base", NULL};
    check_args(c, f, 2, kw);
    jv def = jv_int(0), base = jv_int(10);
    arg(c, f, 0, "default", &def);
    arg(c, f, 1, "base", &base);
    return to_int(c, v, def, int_arg(c, f, base, "base"));
  }
  if (!strcmp(name, "float")) {
    jv def = jv_float(0.0);
    arg(c, f, 0, "default", &def);
    return to_float(c, v, def);
  }
  if (!strcmp(name, "abs")) {
    if (v.t == JV_INT || v.t == JV_BOOL) {
      if (v.u.i == INT64_MIN) jx_fail(c, line, col, "integer overflow");
      return jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
    }
    if (v.t == JV_FLOAT) return jv_float(fabs(v.u.f));
    jx_fail(c, line, col, "bad operand type for abs(): '%s'", jv_type_name(v));
  }
  if (!strcmp(name, "round")) {
    static const char *const kw[] = {"precision", "method", NULL};
    check_args(c, f, 2, kw);
    jv prec = jv_int(0), method = jv_strn("common", 6);
    arg(c, f, 0, "precision", &prec);
    arg(c, f, 1, "method", &method);
    double x = v.t == JV_FLOAT ? v.u.f : (v.t == JV_INT || v.t == JV_BOOL) ? (double)v.u.i : NAN;
    if (isnan(x) && v.t != JV_FLOAT) jx_fail(c, line, col, "round needs a number");
    double m = pow(10.0, (double)int_arg(c, f, prec, "precision"));
    double r;
    if (jv_is_str(method, "common")) r = nearbyint(x * m) / m;  // Python round(): half to even
    else if (jv_is_str(method, "ceil")) r = ceil(x * m) / m;
    else if (jv_is_str(method, "floor")) r = floor(x * m) / m;
    else jx_fail(c, line, col, "method must be common, ceil or floor");
    return jv_float(r);
  }
  if (!strcmp(name, "attr")) {
    if (!arg(c, f, 0, "name", &a0) || a0.t != JV_STR) jx_fail(c, line, col, "attr needs a name");
    return jx_getattr(c, v, jx_strdup(c, a0.u.s.p, a0.u.s.n), line, col);
  }
  if (!strcmp(name, "items")) {
    if (v.t == JV_UNDEF) return jv_list_new(c, 0);
    if (v.t != JV_DICT) jx_fail(c, line, col, "Can only get item pairs from a mapping.");
    return items_of(c, v);
  }
  if (!strcmp(name, "dictsort")) {
    static const char *const kw[] = {"case_sensitive", "by", "reverse", NULL};
    check_args(c, f, 3, kw);
    jv cs = jv_bool(0), by = jv_strn("key", 3), rev = jv_bool(0);
    arg(c, f, 0, "case_sensitive", &cs);
    arg(c, f, 1, "by", &by);
    arg(c, f, 2, "reverse", &rev);
    if (v.t != JV_DICT) jx_fail(c, line, col, "dictsort needs a mapping");
    int pos = jv_is_str(by, "key") ? 0 : jv_is_str(by, "value") ? 1 : -1;
    if (pos < 0) jx_fail(c, line, col, "You can only sort by either \"key\" or \"value\"");
    jv items = items_of(c, v);
    size_t n = items.u.l->n;
    jv *keys = jx_alloc(c, (n + 1) * sizeof(jv));
    for (size_t i = 0; i < n; i++) keys[i] = sort_key(c, items.u.l->v[i].u.l->v[pos], jv_truthy(cs));
    stable_sort(c, items.u.l->v, keys, n, jv_truthy(rev), line, col);
    return items;
  }
  if (!strcmp(name, "list")) {
    jv l = jx_to_list(c, v, line, col);
    if (l.u.l == v.u.l || (v.t == JV_LIST && l.u.l->is_tuple)) {
      jv copy = jv_list_new(c, l.u.l->n);
      for (size_t i = 0; i < l.u.l->n; i++) jv_list_push(c, copy, l.u.l->v[i]);
      return copy;
    }
    return l;
  }
  if (!strcmp(name, "first") || !strcmp(name, "last")) {
    jv l = jx_to_list(c, v, line, col);
    if (!l.u.l->n) {
      jv u = jv_undef();
      return u;
    }
    return name[0] == 'f' ? l.u.l->v[0] : l.u.l->v[l.u.l->n - 1];
  }
  if (!strcmp(name, "reverse")) {
    if (v.t == JV_STR) {
      jv chars = jx_to_list(c, v, line, col);
      jbuf b = {0};
      for (size_t i = chars.u.l->n; i-- > 0;) jbuf_put(c, &b, chars.u.l->v[i].u.s.p, chars.u.l->v[i].u.s.n);
      return jv_buf(&b);
    }
    jv l = jx_to_list(c, v, line, col);
    jv out = jv_list_new(c, l.u.l->n);
    for (size_t i = l.u.l->n; i-- > 0;) jv_list_push(c, out, l.u.l->v[i]);
    return out;
  }
  if (!strcmp(name, "join")) {
    static const char *const kw[] = {"d", "attribute", NULL};
    check_args(c, f, 2, kw);
    jv d = jv_strn("", 0), attr = jv_none();
    arg(c, f, 0, "d", &d);
    arg(c, f, 1, "attribute", &attr);
    d = str_of(c, f, d);
    jv l = jx_to_list(c, v, line, col);
    jbuf b = {0};
    for (size_t i = 0; i < l.u.l->n; i++) {
      if (i) jbuf_put(c, &b, d.u.s.p, d.u.s.n);
      jv it = l.u.l->v[i];
      if (!is_none_or_undef(attr)) it = get_path(c, it, attr, line, col);
      jv_to_str(c, &b, it, line, col);
    }
    return jv_buf(&b);
  }
  if (!strcmp(name, "sort") || !strcmp(name, "unique") || !strcmp(name, "min") || !strcmp(name, "max")) {
    int is_sort = name[0] == 's';
    static const char *const kw_sort[] = {"reverse", "case_sensitive", "attribute", NULL};
    static const char *const kw_other[] = {"case_sensitive", "attribute", NULL};
    check_args(c, f, is_sort ? 3 : 2, is_sort ? kw_sort : kw_other);
    jv rev = jv_bool(0), cs = jv_bool(0), attr = jv_none();
    if (is_sort) {
      arg(c, f, 0, "reverse", &rev);
      arg(c, f, 1, "case_sensitive", &cs);
      arg(c, f, 2, "attribute", &attr);
    } else {
      arg(c, f, 0, "case_sensitive", &cs);
      arg(c, f, 1, "attribute", &attr);
    }
    jv l = jx_to_list(c, v, line, col);
    size_t n = l.u.l->n;
    jv *vals = jx_alloc(c, (n + 1) * sizeof(jv)), *keys = jx_alloc(c, (n + 1) * sizeof(jv));
    for (size_t i = 0; i < n; i++) {
      vals[i] = l.u.l->v[i];
      jv k = is_none_or_undef(attr) ? vals[i] : get_path(c, vals[i], attr, line, col);
      keys[i] = sort_key(c, k, jv_truthy(cs));
    }
    if (!strcmp(name, "unique")) {
      jv out = jv_list_new(c, 0), seen = jv_list_new(c, 0);
      for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (size_t k = 0; k < seen.u.l->n && !dup; k++) dup = jv_equal(seen.u.l->v[k], keys[i]);
        if (!dup) {
          jv_list_push(c, seen, keys[i]);
          jv_list_push(c, out, vals[i]);
        }
      }
      return out;
    }
    if (!is_sort) {
      if (!n) return jv_undef();
      size_t best = 0;
      for (size_t i = 1; i < n; i++) {
        int r = jv_compare(keys[i], keys[best]);
        if (r == -2) jx_fail(c, line, col, "cannot compare '%s' and '%s'", jv_type_name(keys[i]), jv_type_name(keys[best]));
        if (name[1] == 'i' ? r < 0 : r > 0) best = i;
      }
      return vals[best];
    }
    stable_sort(c, vals, keys, n, jv_truthy(rev), line, col);
    jv out = jv_list_new(c, n);
    for (size_t i = 0; i < n; i++) jv_list_push(c, out, vals[i]);
    return out;
  }
  if (!strcmp(name, "sum")) {
    static const char *const kw[] = {"attribute", "start", NULL};
    check_args(c, f, 2, kw);
    jv attr = jv_none(), acc = jv_int(0);
    arg(c, f, 0, "attribute", &attr);
    arg(c, f, 1, "start", &acc);
    jv l = jx_to_list(c, v, line, col);
    for (size_t i = 0; i < l.u.l->n; i++) {
      jv x = is_none_or_undef(attr) ? l.u.l->v[i] : get_path(c, l.u.l->v[i], attr, line, col);
      if ((acc.t == JV_INT || acc.t == JV_BOOL) && (x.t == JV_INT || x.t == JV_BOOL)) {
        if (__builtin_add_overflow(acc.u.i, x.u.i, &acc.u.i)) jx_fail(c, line, col, "integer overflow");
        acc.t = JV_INT;
      } else if ((acc.t == JV_INT || acc.t == JV_FLOAT || acc.t == JV_BOOL) &&
                 (x.t == JV_INT || x.t == JV_FLOAT || x.t == JV_BOOL)) {
        acc = jv_float((acc.t == JV_FLOAT ? acc.u.f : (double)acc.u.i) + (x.t == JV_FLOAT ? x.u.f : (double)x.u.i));
      } else {
        jx_fail(c, line, col, "sum: unsupported operand types '%s' and '%s'", jv_type_name(acc), jv_type_name(x));
      }
    }
    return acc;
  }
  if (!strcmp(name, "map")) {
    jv l = jx_to_list(c, v, line, col);
    jv out = jv_list_new(c, l.u.l->n);
    jv attr;
    if (arg(c, f, -1, "attribute", &attr)) {
      jv def = jv_undef();
      for (int i = 0; i < nkw; i++)
        if (strcmp(kwn[i], "attribute") && strcmp(kwn[i], "default"))
          jx_fail(c, line, col, "map() got an unexpected keyword argument '%s'", kwn[i]);
      arg(c, f, -1, "default", &def);
      for (size_t i = 0; i < l.u.l->n; i++) {
        jv x = get_path(c, l.u.l->v[i], attr, line, col);
        if (x.t == JV_UNDEF && def.t != JV_UNDEF) x = def;
        jv_list_push(c, out, x);
      }
      return out;
    }
    if (nargs < 1 || args[0].t != JV_STR) jx_fail(c, line, col, "map() needs a filter name or attribute=");
    const char *fn = jx_strdup(c, args[0].u.s.p, args[0].u.s.n);
    if (!jx_has_filter(fn)) jx_fail(c, line, col, "unsupported filter '%s'", fn);
    for (size_t i = 0; i < l.u.l->n; i++)
      jv_list_push(c, out, jx_filter(c, fn, l.u.l->v[i], args + 1, nargs - 1, kwn, kwv, nkw, line, col));
    return out;
  }
  if (!strcmp(name, "select")) return filter_select(c, v, f, 0, 1);
  if (!strcmp(name, "reject")) return filter_select(c, v, f, 0, 0);
  if (!strcmp(name, "selectattr")) return filter_select(c, v, f, 1, 1);
  if (!strcmp(name, "rejectattr")) return filter_select(c, v, f, 1, 0);
  jx_fail(c, line, col, "unsupported filter '%s'", name);
}

// ---------------------------------------------------------------- globals
static const char *const builtin_names[] = {"range", "namespace", "dict", "raise_exception", "strftime_now", NULL};

int jx_is_builtin(const char *name) { return in_names(builtin_names, name); }

jv jx_call_builtin(jctx *c, const char *name, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, int line,
                   int col) {
  fargs F = {args, nargs, kwn, kwv, nkw, line, col, name};
  if (!strcmp(name, "raise_exception")) {
    jv msg = nargs > 0 ? args[0] : jv_undef();
    jv s = jv_as_str(c, msg, line, col);
    jx_raise(c, s.u.s.p, s.u.s.n);
  }
  if (!strcmp(name, "range")) {
    if (nkw) jx_fail(c, line, col, "range() takes no keyword arguments");
    int64_t a = 0, b, st = 1;
    if (nargs < 1 || nargs > 3) jx_fail(c, line, col, "range expected 1 to 3 arguments, got %d", nargs);
    for (int i = 0; i < nargs; i++)
      if (args[i].t != JV_INT && args[i].t != JV_BOOL)
        jx_fail(c, line, col, "'%s' object cannot be interpreted as an integer", jv_type_name(args[i]));
    if (nargs == 1) {
      b = args[0].u.i;
    } else {
      a = args[0].u.i;
      b = args[1].u.i;
      if (nargs == 3) st = args[2].u.i;
    }
    if (st == 0) jx_fail(c, line, col, "range() arg 3 must not be zero");
    double count = st > 0 ? ceil(((double)b - (double)a) / (double)st) : ceil(((double)a - (double)b) / (double)-st);
    if (count < 0) count = 0;
    if (count > JX_MAX_RANGE)
      jx_fail(c, line, col, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", JX_MAX_RANGE);
    jv l = jv_list_new(c, (size_t)count);
    for (int64_t i = a; st > 0 ? i < b : i > b; i += st) jv_list_push(c, l, jv_int(i));
    return l;
  }
  if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
    jv d = jv_dict_new(c, 0);
    if (nargs > 1) jx_fail(c, line, col, "%s() takes at most 1 positional argument", name);
    if (nargs == 1) {
      jv src = args[0];
      if (src.t == JV_DICT || src.t == JV_NS) {
        for (size_t i = 0; i < src.u.d->n; i++) jv_dict_set(c, d, src.u.d->k[i], src.u.d->v[i]);
      } else if (src.t == JV_LIST) {
        for (size_t i = 0; i < src.u.l->n; i++) {
          jv p = src.u.l->v[i];
          if (p.t != JV_LIST || p.u.l->n != 2) jx_fail(c, line, col, "%s(): sequence items must be pairs", name);
          jv_dict_set(c, d, p.u.l->v[0], p.u.l->v[1]);
        }
      } else {
        jx_fail(c, line, col, "%s(): cannot convert '%s' to a mapping", name, jv_type_name(src));
      }
    }
    for (int i = 0; i < nkw; i++) jv_dict_set(c, d, jv_str(c, kwn[i]), kwv[i]);
    if (name[0] == 'n') {
      for (size_t i = 0; i < d.u.d->n; i++)
        if (d.u.d->k[i].t == JV_STR && d.u.d->k[i].u.s.n && d.u.d->k[i].u.s.p[0] == '_')
          jx_fail(c, line, col, "Chat templates cannot store underscore-prefixed attributes on a namespace");
      d.t = JV_NS;
    }
    return d;
  }
  if (!strcmp(name, "strftime_now")) {
    static const char *const kw[] = {"format", NULL};
    check_args(c, &F, 1, kw);
    jv fmt = jv_undef();
    if (!arg(c, &F, 0, "format", &fmt) || fmt.t != JV_STR) jx_fail(c, line, col, "strftime_now needs a format string");
    char *cf = jx_strdup(c, fmt.u.s.p, fmt.u.s.n);
    time_t now = time(NULL);
    struct tm tmv;
    if (!localtime_r(&now, &tmv)) jx_fail(c, line, col, "strftime_now: cannot read the local time");
    size_t cap = fmt.u.s.n * 16 + 64;
    char *out = jx_alloc(c, cap);
    size_t k = fmt.u.s.n ? strftime(out, cap, cf, &tmv) : 0;
    return jv_strn(out, k);
  }
  jx_fail(c, line, col, "unsupported function '%s'", name);
}
