// Jinja evaluator: statements write to the current output buffer, expressions produce values with Python
// semantics. Scoping follows jinja2: every for-loop iteration, macro call, with block and call-block body gets a
// fresh scope over its parent (a `set` inside a loop does not leak out: templates use namespace() for that);
// if-blocks share their enclosing scope.
#include <math.h>
#include <string.h>

#include "chat/jinja.h"

// ---------------------------------------------------------------- scopes
jscope *jx_scope_new(jctx *c, jscope *parent) {
  jscope *s = jx_alloc(c, sizeof *s);
  s->parent = parent;
  return s;
}

void jx_scope_set(jctx *c, jscope *s, const char *name, jv v) {
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->k[i], name)) {
      s->v[i] = v;
      return;
    }
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    const char **nk = jx_alloc(c, cap * sizeof *nk);
    jv *nv = jx_alloc(c, cap * sizeof *nv);
    if (s->n) {
      memcpy(nk, s->k, s->n * sizeof *nk);
      memcpy(nv, s->v, s->n * sizeof *nv);
    }
    s->k = nk;
    s->v = nv;
    s->cap = cap;
  }
  s->k[s->n] = name;
  s->v[s->n] = v;
  s->n++;
}

int jx_lookup(jctx *c, const char *name, jv *out) {
  for (jscope *s = c->scope; s; s = s->parent)
    for (size_t i = s->n; i-- > 0;)
      if (!strcmp(s->k[i], name)) {
        *out = s->v[i];
        return 1;
      }
  if (jx_is_builtin(name)) {
    *out = jv_func_builtin(c, name);
    return 1;
  }
  return 0;
}

static void step(jctx *c, int line, int col) {
  if (++c->steps > JX_MAX_STEPS)
    jx_fail(c, line, col, "template ran for more than %ld steps (infinite loop?)", JX_MAX_STEPS);
}

_Noreturn static void undefined_error(jctx *c, jv u, int line, int col) {
  if (u.u.s.p) jx_fail(c, line, col, "'%.*s' is undefined", (int)u.u.s.n, u.u.s.p);
  jx_fail(c, line, col, "use of an undefined value");
}

static jv mk_undef(const char *name, size_t n) {
  jv u = jv_undef();
  u.u.s.p = name;
  u.u.s.n = n;
  return u;
}

// ---------------------------------------------------------------- item / attribute access
static int dict_method_name(const char *name) {
  static const char *const m[] = {"items", "keys", "values", "get", "copy", "pop", "popitem", "update", "setdefault",
                                  "clear", "fromkeys"};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (!strcmp(m[i], name)) return 1;
  return 0;
}

static jv loop_attr(jctx *c, jv lv, const char *name, int line, int col) {
  jloop *L = lv.u.loop;
  int64_t len = (int64_t)L->items.u.l->n, i0 = (int64_t)L->index0;
  if (!strcmp(name, "index")) return jv_int(i0 + 1);
  if (!strcmp(name, "index0")) return jv_int(i0);
  if (!strcmp(name, "revindex")) return jv_int(len - i0);
  if (!strcmp(name, "revindex0")) return jv_int(len - i0 - 1);
  if (!strcmp(name, "first")) return jv_bool(i0 == 0);
  if (!strcmp(name, "last")) return jv_bool(i0 == len - 1);
  if (!strcmp(name, "length")) return jv_int(len);
  if (!strcmp(name, "depth")) return jv_int(L->depth0 + 1);
  if (!strcmp(name, "depth0")) return jv_int(L->depth0);
  if (!strcmp(name, "previtem"))
    return i0 > 0 ? L->items.u.l->v[i0 - 1] : mk_undef("there is no previous item", 25);
  if (!strcmp(name, "nextitem"))
    return i0 + 1 < len ? L->items.u.l->v[i0 + 1] : mk_undef("there is no next item", 21);
  if (!strcmp(name, "cycle")) {
    jv f = jv_func_builtin(c, "cycle");
    f.u.fn->kind = JF_LOOP_CYCLE;
    f.u.fn->loop = L;
    return f;
  }
  jx_fail(c, line, col, "loop.%s is not supported", name);
}

jv jx_getattr(jctx *c, jv obj, const char *name, int line, int col) {
  switch (obj.t) {
    case JV_UNDEF: undefined_error(c, obj, line, col);
    case JV_DICT: {
      if (dict_method_name(name)) return jv_method(c, obj, name);
      jv v;
      if (jv_dict_gets(obj, name, &v)) return v;
      return mk_undef(name, strlen(name));
    }
    case JV_NS: {
      jv v;
      if (jv_dict_gets(obj, name, &v)) return v;
      return mk_undef(name, strlen(name));
    }
    case JV_LOOP: return loop_attr(c, obj, name, line, col);
    default:
      if (jx_is_method(obj, name)) return jv_method(c, obj, name);
      return mk_undef(name, strlen(name));
  }
}

static int as_index(jv k, int64_t *out) {
  if (k.t == JV_INT || k.t == JV_BOOL) {
    *out = k.u.i;
    return 1;
  }
  return 0;
}

// Byte offsets of code points of a string (n+1 entries).
static size_t *cp_offsets(jctx *c, jv s, size_t *count) {
  size_t n = jx_utf8_count(s.u.s.p, s.u.s.n);
  size_t *off = jx_alloc(c, (n + 1) * sizeof *off);
  size_t k = 0;
  for (size_t i = 0; i < s.u.s.n; i++)
    if (((unsigned char)s.u.s.p[i] & 0xC0) != 0x80) off[k++] = i;
  off[n] = s.u.s.n;
  *count = n;
  return off;
}

jv jx_getitem(jctx *c, jv obj, jv key, int line, int col) {
  int64_t idx;
  switch (obj.t) {
    case JV_UNDEF: undefined_error(c, obj, line, col);
    case JV_DICT: {
      jv v;
      if (jv_dict_get(obj, key, &v)) return v;
      break;
    }
    case JV_LIST:
      if (as_index(key, &idx)) {
        int64_t n = (int64_t)obj.u.l->n;
        if (idx < 0) idx += n;
        if (idx >= 0 && idx < n) return obj.u.l->v[idx];
        return mk_undef("list index out of range", 24);
      }
      break;
    case JV_STR:
      if (as_index(key, &idx)) {
        size_t n;
        size_t *off = cp_offsets(c, obj, &n);
        if (idx < 0) idx += (int64_t)n;
        if (idx >= 0 && idx < (int64_t)n) return jv_strn(obj.u.s.p + off[idx], off[idx + 1] - off[idx]);
        return mk_undef("string index out of range", 25);
      }
      break;
    default: break;
  }
  if (key.t == JV_STR) {
    char *name = jx_strdup(c, key.u.s.p, key.u.s.n);
    if (obj.t == JV_DICT) {
      if (dict_method_name(name)) return jv_method(c, obj, name);
      return mk_undef(name, key.u.s.n);
    }
    return jx_getattr(c, obj, name, line, col);
  }
  return mk_undef("item", 4);
}

// Python slice indices for a sequence of length n.
static void slice_indices(jctx *c, jv start, jv stop, jv stepv, int64_t n, int64_t *s0, int64_t *s1, int64_t *st,
                          int line, int col) {
  int64_t step = 1;
  if (stepv.t != JV_NONE && stepv.t != JV_UNDEF) {
    if (!as_index(stepv, &step)) jx_fail(c, line, col, "slice indices must be integers or None");
    if (step == 0) jx_fail(c, line, col, "slice step cannot be zero");
  }
  int64_t lo, hi;
  if (step > 0) {
    lo = 0;
    hi = n;
  } else {
    lo = -1;
    hi = n - 1;
  }
  int64_t a = step > 0 ? lo : hi, b = step > 0 ? hi : lo;
  if (start.t != JV_NONE && start.t != JV_UNDEF) {
    if (!as_index(start, &a)) jx_fail(c, line, col, "slice indices must be integers or None");
    if (a < 0) {
      a += n;
      if (a < lo) a = lo;
    } else if (a > hi) {
      a = hi;
    }
  }
  if (stop.t != JV_NONE && stop.t != JV_UNDEF) {
    if (!as_index(stop, &b)) jx_fail(c, line, col, "slice indices must be integers or None");
    if (b < 0) {
      b += n;
      if (b < lo) b = lo;
    } else if (b > hi) {
      b = hi;
    }
  }
  *s0 = a;
  *s1 = b;
  *st = step;
}

jv jx_slice(jctx *c, jv obj, jv start, jv stop, jv stepv, int line, int col) {
  int64_t a, b, st;
  if (obj.t == JV_LIST) {
    slice_indices(c, start, stop, stepv, (int64_t)obj.u.l->n, &a, &b, &st, line, col);
    jv out = jv_list_new(c, 0);
    out.u.l->is_tuple = obj.u.l->is_tuple;
    for (int64_t i = a; st > 0 ? i < b : i > b; i += st) jv_list_push(c, out, obj.u.l->v[i]);
    return out;
  }
  if (obj.t == JV_STR) {
    size_t n;
    size_t *off = cp_offsets(c, obj, &n);
    slice_indices(c, start, stop, stepv, (int64_t)n, &a, &b, &st, line, col);
    if (st == 1) return b > a ? jv_strn(obj.u.s.p + off[a], off[b] - off[a]) : jv_strn("", 0);
    jbuf buf = {0};
    for (int64_t i = a; st > 0 ? i < b : i > b; i += st) jbuf_put(c, &buf, obj.u.s.p + off[i], off[i + 1] - off[i]);
    return jv_buf(&buf);
  }
  if (obj.t == JV_UNDEF) undefined_error(c, obj, line, col);
  jx_fail(c, line, col, "'%s' object is not subscriptable", jv_type_name(obj));
}

// ---------------------------------------------------------------- calls
static jv call_macro(jctx *c, jfunc *f, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, int line,
                     int col) {
  jnode *m = f->macro;
  if (c->depth >= JX_MAX_CALL_DEPTH)
    jx_fail(c, line, col, "macro calls nested too deeply (more than %d levels)", JX_MAX_CALL_DEPTH);
  jscope *s = jx_scope_new(c, f->closure);
  int np = m->l1.n;
  jv varargs = jv_list_new(c, 0), kwargs = jv_dict_new(c, 0);
  varargs.u.l->is_tuple = 1;
  jv *vals = jx_alloc(c, (size_t)(np + 1) * sizeof *vals);
  char *set = jx_alloc(c, (size_t)np + 1);
  for (int i = 0; i < nargs; i++) {
    if (i < np) {
      vals[i] = args[i];
      set[i] = 1;
    } else {
      jv_list_push(c, varargs, args[i]);
    }
  }
  for (int k = 0; k < nkw; k++) {
    int found = 0;
    for (int i = 0; i < np; i++)
      if (!strcmp(m->names[i], kwn[k])) {
        if (set[i]) jx_fail(c, line, col, "macro '%s' got multiple values for argument '%s'", f->name, kwn[k]);
        vals[i] = kwv[k];
        set[i] = 1;
        found = 1;
      }
    if (!found) jv_dict_set(c, kwargs, jv_str(c, kwn[k]), kwv[k]);
  }
  jscope *saved_scope = c->scope;
  jbuf *saved_out = c->out;
  jloop *saved_loop = c->cur_loop;
  jbuf out = {0};
  c->scope = s;
  c->depth++;
  for (int i = 0; i < np; i++) {
    jv v;
    if (set[i]) v = vals[i];
    else if (m->l1.v[i]) v = jx_eval(c, m->l1.v[i]);
    else v = mk_undef(m->names[i], strlen(m->names[i]));
    jx_scope_set(c, s, m->names[i], v);
  }
  jx_scope_set(c, s, "varargs", varargs);
  jx_scope_set(c, s, "kwargs", kwargs);
  if (f->caller.t != JV_UNDEF) jx_scope_set(c, s, "caller", f->caller);
  c->out = &out;
  c->cur_loop = NULL;
  jx_exec_body(c, m->l2);
  c->loop_ctl = 0;
  c->out = saved_out;
  c->scope = saved_scope;
  c->cur_loop = saved_loop;
  c->depth--;
  return jv_buf(&out);
}

jv jx_call_value(jctx *c, jv fn, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, int line, int col) {
  if (fn.t == JV_UNDEF) undefined_error(c, fn, line, col);
  if (fn.t != JV_FUNC) jx_fail(c, line, col, "'%s' object is not callable", jv_type_name(fn));
  jfunc *f = fn.u.fn;
  switch (f->kind) {
    case JF_BUILTIN: return jx_call_builtin(c, f->name, args, nargs, kwn, kwv, nkw, line, col);
    case JF_METHOD: return jx_call_method(c, f->self, f->name, args, nargs, kwn, kwv, nkw, line, col);
    case JF_MACRO: return call_macro(c, f, args, nargs, kwn, kwv, nkw, line, col);
    case JF_LOOP_CYCLE:
      if (nargs == 0) jx_fail(c, line, col, "loop.cycle() needs at least one argument");
      return args[f->loop->index0 % (size_t)nargs];
  }
  jx_fail(c, line, col, "object is not callable");
}

static void eval_args(jctx *c, jnode *n, jv **args, jv **kwv) {
  *args = jx_alloc(c, (size_t)(n->l1.n + 1) * sizeof(jv));
  *kwv = jx_alloc(c, (size_t)(n->l2.n + 1) * sizeof(jv));
  for (int i = 0; i < n->l1.n; i++) (*args)[i] = jx_eval(c, n->l1.v[i]);
  for (int i = 0; i < n->l2.n; i++) (*kwv)[i] = jx_eval(c, n->l2.v[i]);
}

static jv eval_call(jctx *c, jnode *n, jv caller) {
  jv *args, *kwv;
  jnode *callee = n->a;
  if (callee->kind == N_GETATTR) {
    jv obj = jx_eval(c, callee->a);
    if (obj.t != JV_UNDEF && obj.t != JV_NS && obj.t != JV_LOOP && jx_is_method(obj, callee->name)) {
      eval_args(c, n, &args, &kwv);
      return jx_call_method(c, obj, callee->name, args, n->l1.n, n->names, kwv, n->l2.n, n->line, n->col);
    }
    jv fn = jx_getattr(c, obj, callee->name, callee->line, callee->col);
    eval_args(c, n, &args, &kwv);
    return jx_call_value(c, fn, args, n->l1.n, n->names, kwv, n->l2.n, n->line, n->col);
  }
  jv fn = jx_eval(c, callee);
  if (fn.t == JV_UNDEF && callee->kind == N_NAME)
    jx_fail(c, callee->line, callee->col, "'%s' is undefined (unsupported function?)", callee->name);
  eval_args(c, n, &args, &kwv);
  if (caller.t != JV_UNDEF) {
    if (fn.t != JV_FUNC || fn.u.fn->kind != JF_MACRO) jx_fail(c, n->line, n->col, "{%% call %%} needs a macro");
    jv copy = fn;
    copy.u.fn = jx_alloc(c, sizeof(jfunc));
    *copy.u.fn = *fn.u.fn;
    copy.u.fn->caller = caller;
    fn = copy;
  }
  return jx_call_value(c, fn, args, n->l1.n, n->names, kwv, n->l2.n, n->line, n->col);
}

// ---------------------------------------------------------------- operators
static int is_num(jv v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }
static double num(jv v) { return v.t == JV_FLOAT ? v.u.f : (double)v.u.i; }

static jv concat_lists(jctx *c, jv a, jv b) {
  jv out = jv_list_new(c, a.u.l->n + b.u.l->n);
  out.u.l->is_tuple = a.u.l->is_tuple;
  for (size_t i = 0; i < a.u.l->n; i++) jv_list_push(c, out, a.u.l->v[i]);
  for (size_t i = 0; i < b.u.l->n; i++) jv_list_push(c, out, b.u.l->v[i]);
  return out;
}

static jv repeat(jctx *c, jv seq, int64_t times, int line, int col) {
  if (times < 0) times = 0;
  if (seq.t == JV_STR) {
    if (seq.u.s.n && (uint64_t)times > JX_MAX_OUTPUT / seq.u.s.n) jx_fail(c, line, col, "string repetition too large");
    jbuf b = {0};
    for (int64_t i = 0; i < times; i++) jbuf_put(c, &b, seq.u.s.p, seq.u.s.n);
    return jv_buf(&b);
  }
  if (seq.u.l->n && (uint64_t)times > 10000000 / seq.u.l->n) jx_fail(c, line, col, "list repetition too large");
  jv out = jv_list_new(c, 0);
  for (int64_t i = 0; i < times; i++)
    for (size_t k = 0; k < seq.u.l->n; k++) jv_list_push(c, out, seq.u.l->v[k]);
  return out;
}

static jv binop(jctx *c, const char *op, jv a, jv b, int line, int col) {
  if (a.t == JV_UNDEF) undefined_error(c, a, line, col);
  if (b.t == JV_UNDEF) undefined_error(c, b, line, col);
  int ints = (a.t == JV_INT || a.t == JV_BOOL) && (b.t == JV_INT || b.t == JV_BOOL);
  if (!strcmp(op, "+")) {
    if (ints) {
      int64_t r;
      if (__builtin_add_overflow(a.u.i, b.u.i, &r)) jx_fail(c, line, col, "integer overflow");
      return jv_int(r);
    }
    if (is_num(a) && is_num(b)) return jv_float(num(a) + num(b));
    if (a.t == JV_STR && b.t == JV_STR) {
      jbuf buf = {0};
      jbuf_put(c, &buf, a.u.s.p, a.u.s.n);
      jbuf_put(c, &buf, b.u.s.p, b.u.s.n);
      return jv_buf(&buf);
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.u.l->is_tuple == b.u.l->is_tuple) return concat_lists(c, a, b);
  } else if (!strcmp(op, "-")) {
    if (ints) {
      int64_t r;
      if (__builtin_sub_overflow(a.u.i, b.u.i, &r)) jx_fail(c, line, col, "integer overflow");
      return jv_int(r);
    }
    if (is_num(a) && is_num(b)) return jv_float(num(a) - num(b));
  } else if (!strcmp(op, "*")) {
    if (ints) {
      int64_t r;
      if (__builtin_mul_overflow(a.u.i, b.u.i, &r)) jx_fail(c, line, col, "integer overflow");
      return jv_int(r);
    }
    if (is_num(a) && is_num(b)) return jv_float(num(a) * num(b));
    if ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL)) return repeat(c, a, b.u.i, line, col);
    if ((b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL)) return repeat(c, b, a.u.i, line, col);
  } else if (!strcmp(op, "/")) {
    if (is_num(a) && is_num(b)) {
      if (num(b) == 0) jx_fail(c, line, col, "division by zero");
      return jv_float(num(a) / num(b));
    }
  } else if (!strcmp(op, "//") || !strcmp(op, "%")) {
    int mod = op[0] == '%';
    if (ints) {
      if (b.u.i == 0) jx_fail(c, line, col, mod ? "integer modulo by zero" : "integer division by zero");
      if (a.u.i == INT64_MIN && b.u.i == -1) {
        if (mod) return jv_int(0);
        jx_fail(c, line, col, "integer overflow");
      }
      int64_t q = a.u.i / b.u.i, r = a.u.i % b.u.i;
      if (r != 0 && ((r < 0) != (b.u.i < 0))) {
        q -= 1;
        r += b.u.i;
      }
      return jv_int(mod ? r : q);
    }
    if (is_num(a) && is_num(b)) {
      double x = num(a), y = num(b);
      if (y == 0) jx_fail(c, line, col, "float division by zero");
      double r = fmod(x, y);
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
      return jv_float(mod ? r : floor(x / y));
    }
    if (mod && a.t == JV_STR) jx_fail(c, line, col, "printf-style '%%' string formatting is not supported");
  } else if (!strcmp(op, "**")) {
    if (ints && b.u.i >= 0) {
      int64_t r = 1, base = a.u.i;
      for (int64_t e = b.u.i; e > 0; e--)
        if (__builtin_mul_overflow(r, base, &r)) jx_fail(c, line, col, "integer overflow");
      return jv_int(r);
    }
    if (is_num(a) && is_num(b)) return jv_float(pow(num(a), num(b)));
  }
  jx_fail(c, line, col, "unsupported operand types for %s: '%s' and '%s'", op, jv_type_name(a), jv_type_name(b));
}

static int contains(jctx *c, jv container, jv item, int line, int col) {
  switch (container.t) {
    case JV_STR:
      if (item.t != JV_STR)
        jx_fail(c, line, col, "'in <string>' requires string as left operand, not %s", jv_type_name(item));
      if (item.u.s.n == 0) return 1;
      return memmem(container.u.s.p, container.u.s.n, item.u.s.p, item.u.s.n) != NULL;
    case JV_LIST:
      for (size_t i = 0; i < container.u.l->n; i++)
        if (jv_equal(container.u.l->v[i], item)) return 1;
      return 0;
    case JV_DICT: {
      jv v;
      return jv_dict_get(container, item, &v);
    }
    case JV_UNDEF: return 0;
    default: jx_fail(c, line, col, "argument of type '%s' is not iterable", jv_type_name(container));
  }
}

static int compare_op(jctx *c, const char *op, jv a, jv b, int line, int col) {
  if (!strcmp(op, "==")) return jv_equal(a, b);
  if (!strcmp(op, "!=")) return !jv_equal(a, b);
  if (!strcmp(op, "in")) return contains(c, b, a, line, col);
  if (!strcmp(op, "not in")) return !contains(c, b, a, line, col);
  if (a.t == JV_UNDEF) undefined_error(c, a, line, col);
  if (b.t == JV_UNDEF) undefined_error(c, b, line, col);
  int r = jv_compare(a, b);
  if (r == -2)
    jx_fail(c, line, col, "'%s' not supported between instances of '%s' and '%s'", op, jv_type_name(a),
            jv_type_name(b));
  if (!strcmp(op, "<")) return r < 0;
  if (!strcmp(op, ">")) return r > 0;
  if (!strcmp(op, "<=")) return r <= 0;
  return r >= 0;
}

// ---------------------------------------------------------------- expressions
static jv eval_filter(jctx *c, jnode *n, jv hole) {
  jv v = n->a ? eval_filter(c, n->a, hole) : hole;
  if (n->kind != N_FILTER) return jx_eval(c, n);
  jv *args, *kwv;
  eval_args(c, n, &args, &kwv);
  return jx_filter(c, n->name, v, args, n->l1.n, n->names, kwv, n->l2.n, n->line, n->col);
}

jv jx_eval(jctx *c, jnode *n) {
  step(c, n->line, n->col);
  switch (n->kind) {
    case N_CONST: return n->val;
    case N_NAME: {
      jv v;
      if (jx_lookup(c, n->name, &v)) return v;
      return mk_undef(n->name, strlen(n->name));
    }
    case N_TUPLE: case N_LIST: {
      jv l = jv_list_new(c, (size_t)n->l1.n);
      l.u.l->is_tuple = n->kind == N_TUPLE;
      for (int i = 0; i < n->l1.n; i++) jv_list_push(c, l, jx_eval(c, n->l1.v[i]));
      return l;
    }
    case N_DICT: {
      jv d = jv_dict_new(c, (size_t)n->l1.n);
      for (int i = 0; i < n->l1.n; i++) {
        jv k = jx_eval(c, n->l1.v[i]);
        if (k.t == JV_LIST && !k.u.l->is_tuple) jx_fail(c, n->l1.v[i]->line, n->l1.v[i]->col, "unhashable type: 'list'");
        if (k.t == JV_DICT) jx_fail(c, n->l1.v[i]->line, n->l1.v[i]->col, "unhashable type: 'dict'");
        jv_dict_set(c, d, k, jx_eval(c, n->l2.v[i]));
      }
      return d;
    }
    case N_GETATTR: return jx_getattr(c, jx_eval(c, n->a), n->name, n->line, n->col);
    case N_GETITEM: {
      jv obj = jx_eval(c, n->a);
      return jx_getitem(c, obj, jx_eval(c, n->b), n->line, n->col);
    }
    case N_SLICE: {
      jv obj = jx_eval(c, n->a);
      jv a = n->b ? jx_eval(c, n->b) : jv_none(), b = n->c ? jx_eval(c, n->c) : jv_none(),
         s = n->d ? jx_eval(c, n->d) : jv_none();
      return jx_slice(c, obj, a, b, s, n->line, n->col);
    }
    case N_CALL: return eval_call(c, n, jv_undef());
    case N_FILTER: return eval_filter(c, n, jv_undef());
    case N_TEST: {
      jv v = jx_eval(c, n->a);
      jv *args = jx_alloc(c, (size_t)(n->l1.n + 1) * sizeof(jv));
      for (int i = 0; i < n->l1.n; i++) args[i] = jx_eval(c, n->l1.v[i]);
      if (n->l2.n) jx_fail(c, n->line, n->col, "keyword arguments to tests are not supported");
      int r = jx_test(c, n->name, v, args, n->l1.n, n->line, n->col);
      return jv_bool(n->flag ? !r : r);
    }
    case N_NEG: case N_POS: {
      jv v = jx_eval(c, n->a);
      if (v.t == JV_UNDEF) undefined_error(c, v, n->line, n->col);
      if (n->kind == N_POS && is_num(v)) return v.t == JV_BOOL ? jv_int(v.u.i) : v;
      if (v.t == JV_INT || v.t == JV_BOOL) {
        if (v.u.i == INT64_MIN) jx_fail(c, n->line, n->col, "integer overflow");
        return jv_int(-v.u.i);
      }
      if (v.t == JV_FLOAT) return jv_float(-v.u.f);
      jx_fail(c, n->line, n->col, "bad operand type for unary %c: '%s'", n->kind == N_NEG ? '-' : '+',
              jv_type_name(v));
    }
    case N_NOT: return jv_bool(!jv_truthy(jx_eval(c, n->a)));
    case N_BINOP: {
      jv a = jx_eval(c, n->a);
      jv b = jx_eval(c, n->b);
      return binop(c, n->name, a, b, n->line, n->col);
    }
    case N_COMPARE: {
      jv a = jx_eval(c, n->a);
      for (int i = 0; i < n->l1.n; i++) {
        jv b = jx_eval(c, n->l1.v[i]);
        if (!compare_op(c, n->ops[i], a, b, n->l1.v[i]->line, n->l1.v[i]->col)) return jv_bool(0);
        a = b;
      }
      return jv_bool(1);
    }
    case N_AND: {
      jv a = jx_eval(c, n->a);
      return jv_truthy(a) ? jx_eval(c, n->b) : a;
    }
    case N_OR: {
      jv a = jx_eval(c, n->a);
      return jv_truthy(a) ? a : jx_eval(c, n->b);
    }
    case N_COND:
      if (jv_truthy(jx_eval(c, n->a))) return jx_eval(c, n->b);
      return n->c ? jx_eval(c, n->c) : mk_undef("the inline if-expression evaluated to false and no else section was defined", 74);
    case N_CONCAT: {
      jbuf b = {0};
      for (int i = 0; i < n->l1.n; i++) jv_to_str(c, &b, jx_eval(c, n->l1.v[i]), n->line, n->col);
      return jv_buf(&b);
    }
    default: jx_fail(c, n->line, n->col, "internal error: not an expression");
  }
}

// ---------------------------------------------------------------- statements
static void assign(jctx *c, jnode *target, jv v) {
  if (target->kind == N_NAME) {
    jx_scope_set(c, c->scope, target->name, v);
  } else if (target->kind == N_TUPLE) {
    if (v.t == JV_STR) {  // unpacking a string gives its characters
      jv l = jv_list_new(c, 0);
      for (size_t i = 0; i < v.u.s.n;) {
        uint32_t cp;
        size_t k = jx_utf8_decode(v.u.s.p, v.u.s.n, i, &cp);
        jv_list_push(c, l, jv_strn(v.u.s.p + i, k));
        i += k;
      }
      v = l;
    } else if (v.t == JV_DICT) {
      jv l = jv_list_new(c, v.u.d->n);
      for (size_t i = 0; i < v.u.d->n; i++) jv_list_push(c, l, v.u.d->k[i]);
      v = l;
    }
    if (v.t != JV_LIST) jx_fail(c, target->line, target->col, "cannot unpack non-iterable %s object", jv_type_name(v));
    if (v.u.l->n != (size_t)target->l1.n)
      jx_fail(c, target->line, target->col, "cannot unpack %zu values into %d names", v.u.l->n, target->l1.n);
    for (int i = 0; i < target->l1.n; i++) assign(c, target->l1.v[i], v.u.l->v[i]);
  } else if (target->kind == N_NSREF) {
    jv ns;
    if (!jx_lookup(c, target->a->name, &ns) || ns.t != JV_NS)
      jx_fail(c, target->line, target->col, "cannot assign attribute on non-namespace object '%s'", target->a->name);
    if (target->name[0] == '_')
      jx_fail(c, target->line, target->col,
              "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '%s'",
              target->name);
    jv_dict_set(c, ns, jv_str(c, target->name), v);
  } else {
    jx_fail(c, target->line, target->col, "cannot assign to this expression");
  }
}


static jv capture(jctx *c, jnodes body) {
  jbuf *saved = c->out;
  jbuf b = {0};
  c->out = &b;
  jx_exec_body(c, body);
  c->out = saved;
  return jv_buf(&b);
}

static void exec_for(jctx *c, jnode *n) {
  jv src = jx_to_list(c, jx_eval(c, n->b), n->b->line, n->b->col);
  jv items = src;
  if (n->c) {  // {% for x in y if cond %}: filter first (loop.length counts the kept items)
    items = jv_list_new(c, 0);
    jscope *saved = c->scope;
    for (size_t i = 0; i < src.u.l->n; i++) {
      c->scope = jx_scope_new(c, saved);
      assign(c, n->a, src.u.l->v[i]);
      int keep = jv_truthy(jx_eval(c, n->c));
      c->scope = saved;
      if (keep) jv_list_push(c, items, src.u.l->v[i]);
    }
  }
  jscope *saved = c->scope;
  jloop *saved_loop = c->cur_loop;
  if (items.u.l->n == 0) {
    if (n->flag) {
      c->scope = jx_scope_new(c, saved);
      jx_exec_body(c, n->l2);
      c->scope = saved;
    }
    return;
  }
  jloop *L = jx_alloc(c, sizeof *L);
  L->items = items;
  L->parent = saved_loop;
  L->depth0 = 0;
  jv lv = {0};
  lv.t = JV_LOOP;
  lv.u.loop = L;
  size_t count = items.u.l->n;  // the list may not change while iterating (values are immutable here)
  jscope *it = NULL;
  for (size_t i = 0; i < count; i++) {
    step(c, n->line, n->col);
    L->index0 = i;
    // Each iteration starts from a fresh scope; its memory is recycled unless a macro captured it.
    if (it && !it->captured) it->n = 0;
    else it = jx_scope_new(c, saved);
    c->scope = it;
    c->cur_loop = L;
    jx_scope_set(c, c->scope, "loop", lv);
    assign(c, n->a, items.u.l->v[i]);
    jx_exec_body(c, n->l1);
    c->scope = saved;
    c->cur_loop = saved_loop;
    if (c->loop_ctl == 1) {
      c->loop_ctl = 0;
      break;
    }
    c->loop_ctl = 0;
  }
}

static void exec_stmt(jctx *c, jnode *n) {
  step(c, n->line, n->col);
  switch (n->kind) {
    case N_TEXT: jbuf_put(c, c->out, n->val.u.s.p, n->val.u.s.n); return;
    case N_OUTPUT: jv_to_str(c, c->out, jx_eval(c, n->a), n->line, n->col); return;
    case N_IF:
      if (jv_truthy(jx_eval(c, n->a))) jx_exec_body(c, n->l1);
      else jx_exec_body(c, n->l2);
      return;
    case N_FOR: exec_for(c, n); return;
    case N_SET: assign(c, n->a, jx_eval(c, n->b)); return;
    case N_SET_BLOCK: {
      jv v = capture(c, n->l1);
      if (n->b) v = eval_filter(c, n->b, v);
      assign(c, n->a, v);
      return;
    }
    case N_MACRO: {
      jv f = jv_func_builtin(c, n->name);
      f.u.fn->kind = JF_MACRO;
      f.u.fn->macro = n;
      f.u.fn->closure = c->scope;
      for (jscope *s = c->scope; s; s = s->parent) s->captured = 1;
      jx_scope_set(c, c->scope, n->name, f);
      return;
    }
    case N_CALL_BLOCK: {
      jv caller = jv_func_builtin(c, "caller");
      caller.u.fn->kind = JF_MACRO;
      caller.u.fn->macro = n->b;
      caller.u.fn->closure = c->scope;
      for (jscope *s = c->scope; s; s = s->parent) s->captured = 1;
      jv r = eval_call(c, n->a, caller);
      jv_to_str(c, c->out, r, n->line, n->col);
      return;
    }
    case N_BREAK: case N_CONTINUE:
      if (!c->cur_loop) jx_fail(c, n->line, n->col, "'%s' outside of a loop", n->kind == N_BREAK ? "break" : "continue");
      c->loop_ctl = n->kind == N_BREAK ? 1 : 2;
      return;
    case N_FILTER_BLOCK: {
      jscope *saved = c->scope;
      c->scope = jx_scope_new(c, saved);
      jv v = capture(c, n->l1);
      c->scope = saved;
      jv_to_str(c, c->out, eval_filter(c, n->a, v), n->line, n->col);
      return;
    }
    case N_WITH: {
      jscope *saved = c->scope;
      int np = n->l2.n / 2;
      jv *vals = jx_alloc(c, (size_t)(np + 1) * sizeof *vals);
      for (int i = 0; i < np; i++) vals[i] = jx_eval(c, n->l2.v[2 * i + 1]);
      c->scope = jx_scope_new(c, saved);
      for (int i = 0; i < np; i++) assign(c, n->l2.v[2 * i], vals[i]);
      jx_exec_body(c, n->l1);
      c->scope = saved;
      return;
    }
    case N_SCOPE_BODY: {
      jscope *saved = c->scope;
      c->scope = jx_scope_new(c, saved);
      jloop *saved_loop = c->cur_loop;
      c->cur_loop = NULL;  // like a call block's body: break/continue cannot cross it
      jx_exec_body(c, n->l1);
      c->cur_loop = saved_loop;
      c->scope = saved;
      return;
    }
    default: jx_fail(c, n->line, n->col, "internal error: not a statement");
  }
}

void jx_exec_body(jctx *c, jnodes body) {
  for (int i = 0; i < body.n; i++) {
    exec_stmt(c, body.v[i]);
    if (c->loop_ctl) return;
  }
}
