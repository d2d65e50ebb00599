// Internal header of the Jinja2-subset interpreter behind chat templates (not installed, not public API).
// Memory: everything a compiled template or a render allocates lives in an arena freed at once; runtime errors
// unwind with longjmp to the render entry point (only arena memory is live across evaluation, so nothing leaks).
#ifndef LT_JINJA_H
#define LT_JINJA_H
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "lmtune.h"

// ---- limits (templates are untrusted input) ----
#define JX_MAX_PARSE_DEPTH 200        // nesting of expressions and blocks
#define JX_MAX_CALL_DEPTH 100         // macro / call-block recursion
#define JX_MAX_OUTPUT (64u << 20)     // bytes of rendered text
#define JX_MAX_ARENA ((size_t)1 << 30) // bytes of memory one render may use
#define JX_MAX_STEPS 20000000L        // evaluation steps (loop iterations + expression nodes)
#define JX_MAX_RANGE 100000           // as jinja2's sandbox MAX_RANGE

// ---- arena ----
typedef struct jarena_block jarena_block;
typedef struct jarena {
  jarena_block *head;
  size_t used, limit;  // total bytes allocated, cap
  int failed;          // set when an allocation failed (out of memory or over the cap)
} jarena;
void jarena_init(jarena *a, size_t limit);
void jarena_free(jarena *a);
void *jarena_alloc(jarena *a, size_t n);  // zeroed; NULL on failure (sets a->failed)

// ---- values ----
typedef enum {
  JV_UNDEF = 0, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC, JV_LOOP
} jv_type;

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct jloop jloop;

typedef struct jv {
  uint8_t t;
  union {
    int64_t i;  // BOOL, INT
    double f;
    struct { const char *p; size_t n; } s;  // STR (UTF-8, not NUL-ended); UNDEF: the name, for messages
    jlist *l;
    jdict *d;  // DICT, NS
    jfunc *fn;
    jloop *loop;
  } u;
} jv;

struct jlist { jv *v; size_t n, cap; int is_tuple; };
struct jdict { jv *k, *v; size_t n, cap; };

struct jnode;
struct jscope;
enum { JF_BUILTIN = 1, JF_METHOD, JF_MACRO, JF_LOOP_CYCLE };
struct jfunc {
  int kind;
  const char *name;       // builtin / method name, macro name
  jv self;                // METHOD: the object
  struct jnode *macro;    // MACRO: the macro (or call-block caller) node
  struct jscope *closure; // MACRO: scope where defined
  jv caller;              // MACRO: `caller` for call blocks (UNDEF when none)
  jloop *loop;            // LOOP_CYCLE
};
struct jloop {
  jv items;               // LIST of the (filtered) items
  size_t index0;
  struct jloop *parent;
  int depth0;
};

static inline jv jv_undef(void) { jv v = {0}; return v; }
static inline jv jv_none(void) { jv v = {0}; v.t = JV_NONE; return v; }
static inline jv jv_bool(int b) { jv v = {0}; v.t = JV_BOOL; v.u.i = b ? 1 : 0; return v; }
static inline jv jv_int(int64_t i) { jv v = {0}; v.t = JV_INT; v.u.i = i; return v; }
static inline jv jv_float(double f) { jv v = {0}; v.t = JV_FLOAT; v.u.f = f; return v; }
static inline jv jv_strn(const char *p, size_t n) { jv v = {0}; v.t = JV_STR; v.u.s.p = p; v.u.s.n = n; return v; }

// Growable byte buffer in the arena.
typedef struct jbuf { char *p; size_t n, cap; } jbuf;

// ---- the interpreter state shared by parse and eval (errors unwind to jb) ----
typedef struct jctx {
  jarena *ar;
  lt_err *err;
  jmp_buf jb;
  const char *src;          // normalized template source (for line:column)
  // render state
  struct jscope *scope;
  struct jscope *globals;   // context variables + top-level sets
  jbuf *out;
  long steps;
  int depth;
  int loop_ctl;             // 0, 1 = break, 2 = continue
  jloop *cur_loop;
} jctx;

_Noreturn void jx_fail(jctx *c, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
_Noreturn void jx_raise(jctx *c, const char *msg, size_t n);  // raise_exception: the message as the error
void *jx_alloc(jctx *c, size_t n);
char *jx_strdup(jctx *c, const char *s, size_t n);  // NUL-ended copy

void jbuf_put(jctx *c, jbuf *b, const char *s, size_t n);
void jbuf_putc(jctx *c, jbuf *b, char ch);
void jbuf_printf(jctx *c, jbuf *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

jv jv_str(jctx *c, const char *s);  // copies a NUL-ended string
jv jv_buf(jbuf *b);                 // the buffer's bytes as a string value (no copy)
jv jv_list_new(jctx *c, size_t cap);
void jv_list_push(jctx *c, jv list, jv item);
jv jv_dict_new(jctx *c, size_t cap);
void jv_dict_set(jctx *c, jv dict, jv key, jv val);  // replaces in place, keeps insertion order
int jv_dict_get(jv dict, jv key, jv *out);           // 1 if found
int jv_dict_gets(jv dict, const char *key, jv *out); // by C-string key
jv jv_func_builtin(jctx *c, const char *name);
jv jv_method(jctx *c, jv self, const char *name);

int jv_truthy(jv v);
int jv_equal(jv a, jv b);
int jv_is_str(jv v, const char *s);  // a string equal to s
const char *jv_type_name(jv v);      // python-ish: 'str', 'int', 'dict', ...
// Python-style str() / repr() appended to a buffer; fails on values Python would print non-deterministically.
void jv_to_str(jctx *c, jbuf *b, jv v, int line, int col);
void jv_repr(jctx *c, jbuf *b, jv v, int line, int col);
jv jv_as_str(jctx *c, jv v, int line, int col);  // str(v) as a string value (strings returned as is)
void jx_format_float(char *out, size_t cap, double f);  // Python repr of a float
// json.dumps(v, ensure_ascii, indent (<0: None; or indent_str when non-NULL), separators, sort_keys).
void jv_to_json(jctx *c, jbuf *b, jv v, int ensure_ascii, const char *indent, const char *item_sep,
                const char *key_sep, int sort_keys, int line, int col);
// Parse JSON text into values (objects keep key order; ints stay ints as Python's json does). -1 on error.
int jv_from_json(jctx *c, const char *text, size_t len, jv *out, char *msg, size_t msgcap);
// Python ordering (<): -2 if the types cannot be ordered, else -1/0/1.
int jv_compare(jv a, jv b);

// UTF-8 helpers.
size_t jx_utf8_decode(const char *s, size_t n, size_t i, uint32_t *cp);  // bytes used (>= 1)
void jbuf_put_cp(jctx *c, jbuf *b, uint32_t cp);
int jx_py_isspace(uint32_t cp);
size_t jx_utf8_count(const char *s, size_t n);

// ---- lexer / parser ----
enum {
  TK_EOF = 0, TK_TEXT, TK_VAR_BEGIN, TK_VAR_END, TK_BLOCK_BEGIN, TK_BLOCK_END, TK_NAME, TK_STRING, TK_INT,
  TK_FLOAT, TK_OP
};
typedef struct jtoken {
  int type;
  int line, col;
  const char *p;  // TEXT/STRING: decoded bytes; NAME/OP: the text (NUL-ended)
  size_t n;
  int64_t i;
  double f;
} jtoken;

// Normalize newlines (\r\n, \r -> \n), drop one trailing newline, tokenize with trim_blocks + lstrip_blocks.
int jx_lex(jctx *c, const char *source, size_t len, jtoken **toks, size_t *ntoks);

typedef struct jnodes { struct jnode **v; int n; } jnodes;
typedef enum {
  // statements
  N_TEXT = 1, N_OUTPUT, N_IF, N_FOR, N_SET, N_SET_BLOCK, N_MACRO, N_CALL_BLOCK, N_BREAK, N_CONTINUE,
  N_FILTER_BLOCK, N_WITH, N_SCOPE_BODY,
  // expressions
  N_CONST, N_NAME, N_TUPLE, N_LIST, N_DICT, N_GETATTR, N_GETITEM, N_SLICE, N_CALL, N_FILTER, N_TEST, N_NEG,
  N_POS, N_NOT, N_BINOP, N_COMPARE, N_AND, N_OR, N_COND, N_CONCAT, N_NSREF
} jnode_kind;

typedef struct jnode {
  jnode_kind kind;
  int line, col;
  const char *name;     // NAME, GETATTR, FILTER, TEST, MACRO, NSREF attr; BINOP/COMPARE: operator text
  jv val;               // CONST
  struct jnode *a, *b, *c, *d;
  jnodes l1, l2;        // bodies, arguments, items
  const char **names;   // kwarg names (parallel to l2) / macro parameter names (parallel to l1 defaults)
  int flag;             // TEST: negated; FOR: has else; CALL: ...
  const char **ops;     // COMPARE operators (parallel to l1)
} jnode;

// Parse tokens into a body (list of statements). Errors: jx_fail with the token's line:column.
jnodes jx_parse(jctx *c, jtoken *toks, size_t ntoks);

// ---- evaluator ----
typedef struct jscope {
  struct jscope *parent;
  const char **k;
  jv *v;
  size_t n, cap;
  int captured;  // a macro closure refers to this scope: it may not be recycled
} jscope;
jscope *jx_scope_new(jctx *c, jscope *parent);
void jx_scope_set(jctx *c, jscope *s, const char *name, jv v);
int jx_lookup(jctx *c, const char *name, jv *out);

void jx_exec_body(jctx *c, jnodes body);
jv jx_eval(jctx *c, jnode *n);
jv jx_call_value(jctx *c, jv fn, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, int line, int col);

// filters / tests / methods / globals (jinja_filters.c)
jv jx_filter(jctx *c, const char *name, jv v, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, int line,
             int col);
int jx_test(jctx *c, const char *name, jv v, jv *args, int nargs, int line, int col);
int jx_has_filter(const char *name);
int jx_has_test(const char *name);
jv jx_call_method(jctx *c, jv self, const char *name, jv *args, int nargs, const char **kwn, jv *kwv, int nkw,
                  int line, int col);
int jx_is_method(jv self, const char *name);
jv jx_call_builtin(jctx *c, const char *name, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, int line,
                   int col);
int jx_is_builtin(const char *name);

// Python-like helpers on strings
jv jx_str_strip(jctx *c, jv s, jv chars, int left, int right);
jv jx_slice(jctx *c, jv obj, jv start, jv stop, jv step, int line, int col);
jv jx_getitem(jctx *c, jv obj, jv key, int line, int col);
jv jx_to_list(jctx *c, jv v, int line, int col);  // for-loop / list(): list, dict keys, string chars
jv jx_getattr(jctx *c, jv obj, const char *name, int line, int col);

#endif
