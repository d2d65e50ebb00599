// Jinja parser: tokens -> AST, following jinja2/parser.py's grammar and operator precedence
// (condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary -,+ < postfix . [] () < | filter, is test).
#include <stdio.h>
#include <string.h>

#include "chat/jinja.h"

typedef struct parser {
  jctx *c;
  jtoken *t;
  size_t n, i;
  int depth;
} parser;

static jtoken *cur(parser *P) { return &P->t[P->i]; }
static jtoken *peek(parser *P, size_t k) { return &P->t[P->i + k < P->n ? P->i + k : P->n - 1]; }
static void adv(parser *P) {
  if (P->i + 1 < P->n) P->i++;
}

static const char *tok_desc(jtoken *t) {
  switch (t->type) {
    case TK_EOF: return "end of template";
    case TK_TEXT: return "template text";
    case TK_VAR_BEGIN: return "'{{'";
    case TK_VAR_END: return "'}}'";
    case TK_BLOCK_BEGIN: return "'{%'";
    case TK_BLOCK_END: return "'%}'";
    case TK_NAME: return t->p;
    case TK_STRING: return "string literal";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    case TK_OP: return t->p;
  }
  return "token";
}

_Noreturn static void perr(parser *P, jtoken *t, const char *what) {
  jx_fail(P->c, t->line, t->col, "%s (got %s)", what, tok_desc(t));
}

static int is_op(jtoken *t, const char *op) { return t->type == TK_OP && strcmp(t->p, op) == 0; }
static int is_name(jtoken *t, const char *nm) { return t->type == TK_NAME && strcmp(t->p, nm) == 0; }

static void expect_op(parser *P, const char *op) {
  if (!is_op(cur(P), op)) {
    char msg[64];
    snprintf(msg, sizeof msg, "expected '%s'", op);
    perr(P, cur(P), msg);
  }
  adv(P);
}

static const char *expect_name(parser *P) {
  if (cur(P)->type != TK_NAME) perr(P, cur(P), "expected a name");
  const char *s = cur(P)->p;
  adv(P);
  return s;
}

static void expect_block_end(parser *P) {
  if (cur(P)->type != TK_BLOCK_END) perr(P, cur(P), "expected end of block tag '%}'");
  adv(P);
}

static jnode *mk(parser *P, jnode_kind k, jtoken *at) {
  jnode *n = jx_alloc(P->c, sizeof *n);
  n->kind = k;
  n->line = at->line;
  n->col = at->col;
  return n;
}

static void nodes_push(jctx *c, jnodes *l, jnode *n) {
  if ((l->n & (l->n - 1)) == 0) {  // grow at powers of two
    int cap = l->n ? l->n * 2 : 1;
    jnode **nv = jx_alloc(c, (size_t)cap * sizeof *nv);
    if (l->n) memcpy(nv, l->v, (size_t)l->n * sizeof *nv);
    l->v = nv;
  }
  l->v[l->n++] = n;
}

static void names_push(jctx *c, const char ***arr, int n, const char *s) {
  if ((n & (n - 1)) == 0) {
    int cap = n ? n * 2 : 1;
    const char **nv = jx_alloc(c, (size_t)cap * sizeof *nv);
    if (n) memcpy(nv, *arr, (size_t)n * sizeof *nv);
    *arr = nv;
  }
  (*arr)[n] = s;
}

static void enter(parser *P) {
  if (++P->depth > JX_MAX_PARSE_DEPTH)
    jx_fail(P->c, cur(P)->line, cur(P)->col, "template nested too deeply (more than %d levels)", JX_MAX_PARSE_DEPTH);
}
static void leave(parser *P) { P->depth--; }

static jnode *parse_expr(parser *P);  // condexpr
static jnode *parse_or(parser *P);
static jnode *parse_unary(parser *P, int with_filter);
static jnode *parse_primary(parser *P);
static jnode *parse_postfix(parser *P, jnode *n);

// Arguments of a call / filter / test, after '(' up to ')'.
static void parse_args(parser *P, jnode *n) {
  expect_op(P, "(");
  int kw_seen = 0;
  while (!is_op(cur(P), ")")) {
    if (n->l1.n || n->l2.n) expect_op(P, ",");
    if (is_op(cur(P), ")")) break;
    if (is_op(cur(P), "*") || is_op(cur(P), "**")) perr(P, cur(P), "*args / **kwargs in calls are not supported");
    if (cur(P)->type == TK_NAME && is_op(peek(P, 1), "=")) {
      const char *k = cur(P)->p;
      adv(P);
      adv(P);
      names_push(P->c, &n->names, n->l2.n, k);
      nodes_push(P->c, &n->l2, parse_expr(P));
      kw_seen = 1;
    } else {
      if (kw_seen) perr(P, cur(P), "positional argument after keyword argument");
      nodes_push(P->c, &n->l1, parse_expr(P));
    }
  }
  adv(P);
}

static jnode *parse_filter(parser *P, jnode *arg) {
  jtoken *at = cur(P);
  jnode *f = mk(P, N_FILTER, at);
  const char *nm = expect_name(P);
  while (is_op(cur(P), ".")) {  // dotted filter names
    adv(P);
    const char *more = expect_name(P);
    size_t a = strlen(nm), b = strlen(more);
    char *s = jx_alloc(P->c, a + b + 2);
    memcpy(s, nm, a);
    s[a] = '.';
    memcpy(s + a + 1, more, b + 1);
    nm = s;
  }
  if (!jx_has_filter(nm)) jx_fail(P->c, at->line, at->col, "unsupported filter '%s'", nm);
  f->name = nm;
  f->a = arg;
  if (is_op(cur(P), "(")) parse_args(P, f);
  return f;
}

static jnode *parse_test(parser *P, jnode *arg) {
  jtoken *at = cur(P);
  jnode *t = mk(P, N_TEST, at);
  adv(P);  // 'is'
  if (is_name(cur(P), "not")) {
    t->flag = 1;
    adv(P);
  }
  jtoken *nt = cur(P);
  const char *nm = expect_name(P);
  if (!jx_has_test(nm)) jx_fail(P->c, nt->line, nt->col, "unsupported test '%s'", nm);
  t->name = nm;
  t->a = arg;
  jtoken *c = cur(P);
  if (is_op(c, "(")) {
    parse_args(P, t);
  } else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INT || c->type == TK_FLOAT ||
              is_op(c, "[") || is_op(c, "{")) &&
             !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
    if (is_name(c, "is")) perr(P, c, "you cannot chain multiple tests with 'is'");
    jnode *a = parse_postfix(P, parse_primary(P));
    nodes_push(P->c, &t->l1, a);
  }
  return t;
}

static jnode *parse_filter_expr(parser *P, jnode *n) {
  for (;;) {
    if (is_op(cur(P), "|")) {
      adv(P);
      n = parse_filter(P, n);
    } else if (is_name(cur(P), "is")) {
      n = parse_test(P, n);
    } else if (is_op(cur(P), "(")) {
      jnode *call = mk(P, N_CALL, cur(P));
      call->a = n;
      parse_args(P, call);
      n = call;
    } else {
      return n;
    }
  }
}

static jnode *parse_subscript(parser *P, jnode *obj, jtoken *at) {
  // [expr] or [start:stop:step]
  jnode *parts[3] = {NULL, NULL, NULL};
  int colons = 0;
  if (!is_op(cur(P), ":")) parts[0] = parse_expr(P);
  if (is_op(cur(P), ":")) {
    colons = 1;
    adv(P);
    if (!is_op(cur(P), "]") && !is_op(cur(P), ":")) parts[1] = parse_expr(P);
    if (is_op(cur(P), ":")) {
      colons = 2;
      adv(P);
      if (!is_op(cur(P), "]")) parts[2] = parse_expr(P);
    }
  }
  expect_op(P, "]");
  jnode *n;
  if (!colons) {
    n = mk(P, N_GETITEM, at);
    n->b = parts[0];
  } else {
    n = mk(P, N_SLICE, at);
    n->b = parts[0];
    n->c = parts[1];
    n->d = parts[2];
  }
  n->a = obj;
  return n;
}

static jnode *parse_postfix(parser *P, jnode *n) {
  for (;;) {
    jtoken *at = cur(P);
    if (is_op(at, ".")) {
      adv(P);
      if (cur(P)->type == TK_NAME) {
        jnode *g = mk(P, N_GETATTR, at);
        g->a = n;
        g->name = cur(P)->p;
        adv(P);
        n = g;
      } else if (cur(P)->type == TK_INT) {
        jnode *g = mk(P, N_GETITEM, at);
        g->a = n;
        g->b = mk(P, N_CONST, cur(P));
        g->b->val = jv_int(cur(P)->i);
        adv(P);
        n = g;
      } else {
        perr(P, cur(P), "expected an attribute name after '.'");
      }
    } else if (is_op(at, "[")) {
      adv(P);
      n = parse_subscript(P, n, at);
    } else if (is_op(at, "(")) {
      jnode *call = mk(P, N_CALL, at);
      call->a = n;
      parse_args(P, call);
      n = call;
    } else {
      return n;
    }
  }
}

static jnode *parse_primary(parser *P) {
  enter(P);
  jtoken *t = cur(P);
  jnode *n;
  if (t->type == TK_NAME) {
    const char *s = t->p;
    n = mk(P, N_CONST, t);
    if (!strcmp(s, "true") || !strcmp(s, "True")) n->val = jv_bool(1);
    else if (!strcmp(s, "false") || !strcmp(s, "False")) n->val = jv_bool(0);
    else if (!strcmp(s, "none") || !strcmp(s, "None")) n->val = jv_none();
    else {
      n->kind = N_NAME;
      n->name = s;
    }
    adv(P);
  } else if (t->type == TK_STRING) {
    jbuf b = {0};
    while (cur(P)->type == TK_STRING) {  // adjacent literals concatenate
      jbuf_put(P->c, &b, cur(P)->p, cur(P)->n);
      adv(P);
    }
    n = mk(P, N_CONST, t);
    n->val = jv_buf(&b);
  } else if (t->type == TK_INT || t->type == TK_FLOAT) {
    n = mk(P, N_CONST, t);
    n->val = t->type == TK_INT ? jv_int(t->i) : jv_float(t->f);
    adv(P);
  } else if (is_op(t, "(")) {
    adv(P);
    if (is_op(cur(P), ")")) {
      adv(P);
      n = mk(P, N_TUPLE, t);
    } else {
      jnode *first = parse_expr(P);
      if (is_op(cur(P), ",")) {
        n = mk(P, N_TUPLE, t);
        nodes_push(P->c, &n->l1, first);
        while (is_op(cur(P), ",")) {
          adv(P);
          if (is_op(cur(P), ")")) break;
          nodes_push(P->c, &n->l1, parse_expr(P));
        }
      } else {
        n = first;
      }
      expect_op(P, ")");
    }
  } else if (is_op(t, "[")) {
    adv(P);
    n = mk(P, N_LIST, t);
    while (!is_op(cur(P), "]")) {
      if (n->l1.n) expect_op(P, ",");
      if (is_op(cur(P), "]")) break;
      nodes_push(P->c, &n->l1, parse_expr(P));
    }
    adv(P);
  } else if (is_op(t, "{")) {
    adv(P);
    n = mk(P, N_DICT, t);
    while (!is_op(cur(P), "}")) {
      if (n->l1.n) expect_op(P, ",");
      if (is_op(cur(P), "}")) break;
      nodes_push(P->c, &n->l1, parse_expr(P));
      expect_op(P, ":");
      nodes_push(P->c, &n->l2, parse_expr(P));
    }
    adv(P);
  } else {
    perr(P, t, "expected an expression");
  }
  leave(P);
  return n;
}

static jnode *parse_unary(parser *P, int with_filter) {
  enter(P);
  jtoken *t = cur(P);
  jnode *n;
  if (is_op(t, "-") || is_op(t, "+")) {
    adv(P);
    n = mk(P, is_op(t, "-") ? N_NEG : N_POS, t);
    n->a = parse_unary(P, 0);
  } else {
    n = parse_primary(P);
  }
  n = parse_postfix(P, n);
  if (with_filter) n = parse_filter_expr(P, n);
  leave(P);
  return n;
}

static jnode *binop(parser *P, jtoken *at, const char *op, jnode *a, jnode *b) {
  jnode *n = mk(P, N_BINOP, at);
  n->name = op;
  n->a = a;
  n->b = b;
  return n;
}

static jnode *parse_pow(parser *P) {
  jnode *n = parse_unary(P, 1);
  while (is_op(cur(P), "**")) {
    jtoken *at = cur(P);
    adv(P);
    n = binop(P, at, "**", n, parse_unary(P, 1));
  }
  return n;
}

static jnode *parse_math2(parser *P) {
  jnode *n = parse_pow(P);
  while (is_op(cur(P), "*") || is_op(cur(P), "/") || is_op(cur(P), "//") || is_op(cur(P), "%")) {
    jtoken *at = cur(P);
    adv(P);
    n = binop(P, at, at->p, n, parse_pow(P));
  }
  return n;
}

static jnode *parse_concat(parser *P) {
  jnode *n = parse_math2(P);
  if (!is_op(cur(P), "~")) return n;
  jnode *c = mk(P, N_CONCAT, cur(P));
  nodes_push(P->c, &c->l1, n);
  while (is_op(cur(P), "~")) {
    adv(P);
    nodes_push(P->c, &c->l1, parse_math2(P));
  }
  return c;
}

static jnode *parse_math1(parser *P) {
  jnode *n = parse_concat(P);
  while (is_op(cur(P), "+") || is_op(cur(P), "-")) {
    jtoken *at = cur(P);
    adv(P);
    n = binop(P, at, at->p, n, parse_concat(P));
  }
  return n;
}

static jnode *parse_compare(parser *P) {
  jtoken *at = cur(P);
  jnode *first = parse_math1(P);
  jnode *cmp = NULL;
  for (;;) {
    jtoken *t = cur(P);
    const char *op = NULL;
    if (t->type == TK_OP && (!strcmp(t->p, "==") || !strcmp(t->p, "!=") || !strcmp(t->p, "<") ||
                             !strcmp(t->p, ">") || !strcmp(t->p, "<=") || !strcmp(t->p, ">="))) {
      op = t->p;
      adv(P);
    } else if (is_name(t, "in")) {
      op = "in";
      adv(P);
    } else if (is_name(t, "not") && is_name(peek(P, 1), "in")) {
      op = "not in";
      adv(P);
      adv(P);
    } else {
      break;
    }
    if (!cmp) {
      cmp = mk(P, N_COMPARE, at);
      cmp->a = first;
    }
    names_push(P->c, &cmp->ops, cmp->l1.n, op);
    nodes_push(P->c, &cmp->l1, parse_math1(P));
  }
  return cmp ? cmp : first;
}

static jnode *parse_not(parser *P) {
  if (is_name(cur(P), "not")) {
    enter(P);
    jnode *n = mk(P, N_NOT, cur(P));
    adv(P);
    n->a = parse_not(P);
    leave(P);
    return n;
  }
  return parse_compare(P);
}

static jnode *parse_and(parser *P) {
  jnode *n = parse_not(P);
  while (is_name(cur(P), "and")) {
    jnode *a = mk(P, N_AND, cur(P));
    adv(P);
    a->a = n;
    a->b = parse_not(P);
    n = a;
  }
  return n;
}

static jnode *parse_or(parser *P) {
  jnode *n = parse_and(P);
  while (is_name(cur(P), "or")) {
    jnode *o = mk(P, N_OR, cur(P));
    adv(P);
    o->a = n;
    o->b = parse_and(P);
    n = o;
  }
  return n;
}

static jnode *parse_expr(parser *P) {
  enter(P);
  jnode *n = parse_or(P);
  while (is_name(cur(P), "if")) {
    jnode *c = mk(P, N_COND, cur(P));
    adv(P);
    c->a = parse_or(P);
    c->b = n;
    if (is_name(cur(P), "else")) {
      adv(P);
      c->c = parse_expr(P);
    }
    n = c;
  }
  leave(P);
  return n;
}

// expr [, expr ...] -> tuple when a comma is present (as in {{ a, b }} or {% set x = 1, 2 %}).
static jnode *parse_tuple_expr(parser *P, int condexpr) {
  jtoken *at = cur(P);
  jnode *first = condexpr ? parse_expr(P) : parse_or(P);
  if (!is_op(cur(P), ",")) return first;
  jnode *t = mk(P, N_TUPLE, at);
  nodes_push(P->c, &t->l1, first);
  while (is_op(cur(P), ",")) {
    adv(P);
    if (cur(P)->type == TK_BLOCK_END || cur(P)->type == TK_VAR_END || is_name(cur(P), "if")) break;
    nodes_push(P->c, &t->l1, condexpr ? parse_expr(P) : parse_or(P));
  }
  return t;
}

// Assignment target: name, (a, b), a, b, or (with_ns) name.attr.
static jnode *parse_target(parser *P, int with_ns) {
  jtoken *at = cur(P);
  jnode *t;
  if (with_ns && cur(P)->type == TK_NAME && is_op(peek(P, 1), ".") && peek(P, 2)->type == TK_NAME) {
    t = mk(P, N_NSREF, at);
    t->a = mk(P, N_NAME, at);
    t->a->name = cur(P)->p;
    t->name = peek(P, 2)->p;
    adv(P);
    adv(P);
    adv(P);
    return t;
  }
  int paren = 0;
  if (is_op(cur(P), "(")) {
    paren = 1;
    adv(P);
  }
  t = mk(P, N_TUPLE, at);
  for (;;) {
    jtoken *nt = cur(P);
    jnode *nm = mk(P, N_NAME, nt);
    nm->name = expect_name(P);
    if (!strcmp(nm->name, "true") || !strcmp(nm->name, "false") || !strcmp(nm->name, "none") ||
        !strcmp(nm->name, "True") || !strcmp(nm->name, "False") || !strcmp(nm->name, "None"))
      jx_fail(P->c, nt->line, nt->col, "cannot assign to '%s'", nm->name);
    nodes_push(P->c, &t->l1, nm);
    if (!is_op(cur(P), ",")) break;
    adv(P);
    if (cur(P)->type != TK_NAME) break;
  }
  if (paren) expect_op(P, ")");
  if (t->l1.n == 1 && !paren) return t->l1.v[0];
  return t;
}

static jnodes parse_body(parser *P, const char *const *ends, int nends);

static int at_end_tag(parser *P, const char *const *ends, int nends) {
  if (cur(P)->type != TK_BLOCK_BEGIN) return 0;
  jtoken *nm = peek(P, 1);
  if (nm->type != TK_NAME) return 0;
  for (int i = 0; i < nends; i++)
    if (!strcmp(nm->p, ends[i])) return 1;
  return 0;
}

// Consumes "{% name" of an end/middle tag and returns name.
static const char *take_tag(parser *P) {
  adv(P);
  const char *s = cur(P)->p;
  adv(P);
  return s;
}

static void parse_macro_params(parser *P, jnode *m) {
  // names in m->names (parallel to m->l1 defaults; NULL for none)
  expect_op(P, "(");
  int n = 0, seen_default = 0;
  while (!is_op(cur(P), ")")) {
    if (n) expect_op(P, ",");
    if (is_op(cur(P), ")")) break;
    jtoken *nt = cur(P);
    const char *nm = expect_name(P);
    names_push(P->c, &m->names, n, nm);
    jnode *def = NULL;
    if (is_op(cur(P), "=")) {
      adv(P);
      def = parse_expr(P);
      seen_default = 1;
    } else if (seen_default) {
      jx_fail(P->c, nt->line, nt->col, "non-default argument '%s' follows a default argument", nm);
    }
    nodes_push(P->c, &m->l1, def);
    n++;
  }
  adv(P);
}

static jnode *parse_statement(parser *P) {
  jtoken *begin = cur(P);
  adv(P);  // {%
  jtoken *kw = cur(P);
  if (kw->type != TK_NAME) perr(P, kw, "expected a statement name after '{%'");
  const char *k = kw->p;
  enter(P);
  jnode *n = NULL;
  (void)begin;
  if (!strcmp(k, "if")) {
    adv(P);
    n = mk(P, N_IF, kw);
    n->a = parse_tuple_expr(P, 1);
    expect_block_end(P);
    jnode *cur_if = n;
    static const char *const ends[] = {"elif", "else", "endif"};
    for (;;) {
      cur_if->l1 = parse_body(P, ends, 3);
      jtoken *tagtok = peek(P, 1);
      const char *tag = take_tag(P);
      if (!strcmp(tag, "elif")) {
        jnode *e = mk(P, N_IF, tagtok);
        e->a = parse_tuple_expr(P, 1);
        expect_block_end(P);
        nodes_push(P->c, &cur_if->l2, e);
        cur_if = e;
      } else if (!strcmp(tag, "else")) {
        expect_block_end(P);
        static const char *const endif[] = {"endif"};
        cur_if->l2 = parse_body(P, endif, 1);
        take_tag(P);
        expect_block_end(P);
        break;
      } else {
        expect_block_end(P);
        break;
      }
    }
  } else if (!strcmp(k, "for")) {
    adv(P);
    n = mk(P, N_FOR, kw);
    n->a = parse_target(P, 0);
    if (!is_name(cur(P), "in")) perr(P, cur(P), "expected 'in' in a for loop");
    adv(P);
    n->b = parse_tuple_expr(P, 0);
    if (is_name(cur(P), "if")) {
      adv(P);
      n->c = parse_expr(P);
    }
    if (is_name(cur(P), "recursive")) jx_fail(P->c, cur(P)->line, cur(P)->col, "recursive for loops are not supported");
    expect_block_end(P);
    static const char *const ends[] = {"endfor", "else"};
    n->l1 = parse_body(P, ends, 2);
    if (!strcmp(take_tag(P), "else")) {
      expect_block_end(P);
      n->flag = 1;
      static const char *const endfor[] = {"endfor"};
      n->l2 = parse_body(P, endfor, 1);
      take_tag(P);
    }
    expect_block_end(P);
  } else if (!strcmp(k, "set")) {
    adv(P);
    jnode *target = parse_target(P, 1);
    if (is_op(cur(P), "=")) {
      adv(P);
      n = mk(P, N_SET, kw);
      n->a = target;
      n->b = parse_tuple_expr(P, 1);
      expect_block_end(P);
    } else {
      n = mk(P, N_SET_BLOCK, kw);
      n->a = target;
      if (target->kind == N_TUPLE) perr(P, cur(P), "a block set needs a single name");
      jnode *f = NULL;
      while (is_op(cur(P), "|")) {  // {% set x | filter %}
        adv(P);
        f = parse_filter(P, f);
      }
      n->b = f;
      expect_block_end(P);
      static const char *const ends[] = {"endset"};
      n->l1 = parse_body(P, ends, 1);
      take_tag(P);
      expect_block_end(P);
    }
  } else if (!strcmp(k, "macro")) {
    adv(P);
    n = mk(P, N_MACRO, kw);
    n->name = expect_name(P);
    parse_macro_params(P, n);
    expect_block_end(P);
    static const char *const ends[] = {"endmacro"};
    n->l2 = parse_body(P, ends, 1);
    take_tag(P);
    if (cur(P)->type == TK_NAME) adv(P);  // {% endmacro name %}
    expect_block_end(P);
  } else if (!strcmp(k, "call")) {
    adv(P);
    n = mk(P, N_CALL_BLOCK, kw);
    jnode *caller = mk(P, N_MACRO, kw);
    caller->name = "caller";
    if (is_op(cur(P), "(")) parse_macro_params(P, caller);
    n->a = parse_expr(P);
    if (n->a->kind != N_CALL) jx_fail(P->c, n->a->line, n->a->col, "expected a call in {%% call %%}");
    expect_block_end(P);
    static const char *const ends[] = {"endcall"};
    caller->l2 = parse_body(P, ends, 1);
    n->b = caller;
    take_tag(P);
    expect_block_end(P);
  } else if (!strcmp(k, "filter")) {
    adv(P);
    n = mk(P, N_FILTER_BLOCK, kw);
    jnode *f = NULL;
    do {
      if (f) adv(P);
      f = parse_filter(P, f);
    } while (is_op(cur(P), "|"));
    n->a = f;
    expect_block_end(P);
    static const char *const ends[] = {"endfilter"};
    n->l1 = parse_body(P, ends, 1);
    take_tag(P);
    expect_block_end(P);
  } else if (!strcmp(k, "with")) {
    adv(P);
    n = mk(P, N_WITH, kw);
    while (cur(P)->type != TK_BLOCK_END) {
      if (n->l2.n) expect_op(P, ",");
      jnode *t = parse_target(P, 0);
      expect_op(P, "=");
      nodes_push(P->c, &n->l2, t);
      nodes_push(P->c, &n->l2, parse_expr(P));
    }
    expect_block_end(P);
    static const char *const ends[] = {"endwith"};
    n->l1 = parse_body(P, ends, 1);
    take_tag(P);
    expect_block_end(P);
  } else if (!strcmp(k, "generation")) {
    // transformers' AssistantTracker: the body renders as is (in its own scope, as a call block's body).
    adv(P);
    n = mk(P, N_SCOPE_BODY, kw);
    expect_block_end(P);
    static const char *const ends[] = {"endgeneration"};
    n->l1 = parse_body(P, ends, 1);
    take_tag(P);
    expect_block_end(P);
  } else if (!strcmp(k, "break") || !strcmp(k, "continue")) {
    adv(P);
    n = mk(P, !strcmp(k, "break") ? N_BREAK : N_CONTINUE, kw);
    expect_block_end(P);
  } else if (!strcmp(k, "elif") || !strcmp(k, "else") || !strncmp(k, "end", 3)) {
    jx_fail(P->c, kw->line, kw->col, "unexpected '{%% %s %%}' (no open block it could close)", k);
  } else {
    jx_fail(P->c, kw->line, kw->col, "unsupported statement '{%% %s %%}'", k);
  }
  leave(P);
  return n;
}

static jnodes parse_body(parser *P, const char *const *ends, int nends) {
  jnodes body = {0};
  jtoken *start = cur(P);
  for (;;) {
    jtoken *t = cur(P);
    if (t->type == TK_EOF) {
      if (nends) {
        jx_fail(P->c, start->line, start->col, "unexpected end of template: missing '{%% %s %%}'", ends[nends - 1]);
      }
      return body;
    }
    if (t->type == TK_TEXT) {
      jnode *n = mk(P, N_TEXT, t);
      n->val = jv_strn(t->p, t->n);
      nodes_push(P->c, &body, n);
      adv(P);
    } else if (t->type == TK_VAR_BEGIN) {
      adv(P);
      jnode *n = mk(P, N_OUTPUT, t);
      n->a = parse_tuple_expr(P, 1);
      if (cur(P)->type != TK_VAR_END) perr(P, cur(P), "expected end of print statement '}}'");
      adv(P);
      nodes_push(P->c, &body, n);
    } else if (t->type == TK_BLOCK_BEGIN) {
      if (nends && at_end_tag(P, ends, nends)) return body;
      nodes_push(P->c, &body, parse_statement(P));
    } else {
      perr(P, t, "unexpected token");
    }
  }
}

jnodes jx_parse(jctx *c, jtoken *toks, size_t ntoks) {
  parser P = {c, toks, ntoks, 0, 0};
  return parse_body(&P, NULL, 0);
}
