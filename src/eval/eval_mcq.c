// Multiple-choice CSV files (MMLU / C-Eval / CMMLU layouts) and lm-evaluation-harness's MMLU prompt (see evaltask.h).
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "data/csv.h"
#include "eval/evaltask.h"
#include "eval/text.h"

enum { COL_Q = 0, COL_A, COL_B, COL_C, COL_D, COL_ANS, N_COLS };
static const char *const col_names[N_COLS] = {"question", "A", "B", "C", "D", "answer"};

// s without surrounding ASCII whitespace equals name, case-insensitively.
static int cell_is(const char *s, const char *name) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s), k = strlen(name);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  return n == k && strncasecmp(s, name, k) == 0;
}

void lt_mcq_subject(const char *file_name, char *out, size_t cap) {
  const char *base = strrchr(file_name, '/');
  base = base ? base + 1 : file_name;
  size_t n = strlen(base);
  static const char *const suffixes[] = {"_test.csv", "_val.csv", "_dev.csv", ".csv"};
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    size_t k = strlen(suffixes[i]);
    if (n > k && strcmp(base + n - k, suffixes[i]) == 0) {
      n -= k;
      break;
    }
  }
  if (cap == 0) return;
  if (n >= cap) n = cap - 1;
  memcpy(out, base, n);
  out[n] = 0;
}

void lt_mcq_free(lt_mcq_file *f) {
  if (!f) return;
  free(f->q);
  if (f->csv) {
    lt_csv_free(f->csv);
    free(f->csv);
  }
  memset(f, 0, sizeof *f);
}

int lt_mcq_read(const char *path, lt_mcq_file *out, lt_err *err) {
  memset(out, 0, sizeof *out);
  lt_mcq_subject(path, out->subject, sizeof out->subject);
  lt_csv *csv = calloc(1, sizeof *csv);
  if (!csv) return lt_errf(err, "out of memory");
  if (lt_csv_read(path, csv, err)) {
    free(csv);
    return -1;
  }
  out->csv = csv;
  int idx[N_COLS], first = 0;
  if (csv->n_rows == 0) {
    lt_errf(err, "%s: no questions (the file is empty)", path);
    goto fail;
  }
  const lt_csv_row *h = &csv->rows[0];
  int header = 0;
  for (int j = 0; j < h->n; j++) header |= cell_is(h->f[j], "question");
  if (header) {
    first = 1;
    for (int c = 0; c < N_COLS; c++) {
      idx[c] = -1;
      for (int j = 0; j < h->n && idx[c] < 0; j++)
        if (cell_is(h->f[j], col_names[c])) idx[c] = j;
      if (idx[c] < 0) {
        lt_errf(err, "%s:%d: the header has no \"%s\" column (a multiple-choice file needs question, A, B, C, D and "
                "answer columns; the header has %d columns)", path, h->line, col_names[c], h->n);
        goto fail;
      }
    }
  } else {
    for (int c = 0; c < N_COLS; c++) idx[c] = c;  // MMLU: question,A,B,C,D,answer
  }
  out->q = calloc((size_t)csv->n_rows, sizeof *out->q);
  if (!out->q) {
    lt_errf(err, "out of memory");
    goto fail;
  }
  for (int r = first; r < csv->n_rows; r++) {
    const lt_csv_row *row = &csv->rows[r];
    lt_mcq_question *q = &out->q[out->n];
    for (int c = 0; c < N_COLS; c++)
      if (idx[c] >= row->n) {
        lt_errf(err, "%s:%d: the record has %d field%s; column %d (\"%s\") is missing%s", path, row->line, row->n,
                row->n == 1 ? "" : "s", idx[c] + 1, col_names[c],
                header ? "" : " (a file without a header row needs question,A,B,C,D,answer)");
        goto fail;
      }
    q->question = row->f[idx[COL_Q]];
    for (int c = 0; c < 4; c++) q->choice[c] = row->f[idx[COL_A + c]];
    const char *a = row->f[idx[COL_ANS]];
    while (*a == ' ' || *a == '\t') a++;
    size_t n = strlen(a);
    while (n && (a[n - 1] == ' ' || a[n - 1] == '\t' || a[n - 1] == '\r' || a[n - 1] == '\n')) n--;
    int ans = n == 1 ? (a[0] >= 'A' && a[0] <= 'D' ? a[0] - 'A' : a[0] >= 'a' && a[0] <= 'd' ? a[0] - 'a' : -1) : -1;
    if (ans < 0) {
      lt_errf(err, "%s:%d:%d: field \"%s\" is \"%.40s\"; it must be one of A, B, C, D", path,
              row->fline[idx[COL_ANS]], row->col[idx[COL_ANS]], header ? h->f[idx[COL_ANS]] : "answer",
              row->f[idx[COL_ANS]]);
      goto fail;
    }
    q->answer = ans;
    q->line = row->line;
    out->n++;
  }
  if (out->n == 0) {
    lt_errf(err, "%s: no questions (only a header row)", path);
    goto fail;
  }
  return 0;
fail:
  lt_mcq_free(out);
  return -1;
}

typedef struct {
  char *s;
  size_t n, cap;
  int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = LT_MAX(b->cap * 2, b->n + n + 256);
    char *p = realloc(b->s, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->s = p;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}
static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

// Python's str.strip() (Unicode whitespace).
static void put_stripped(sbuf *b, const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t len = strlen(s), i = 0, end = len, start;
  uint32_t cp;
  while (i < len) {
    size_t k = lt_utf8_next(u + i, len - i, &cp);
    if (!k || !lt_py_isspace(cp)) break;
    i += k;
  }
  start = i;
  size_t last_end = start;  // end of the last non-space character
  while (i < len) {
    size_t k = lt_utf8_next(u + i, len - i, &cp);
    if (!k) k = 1, cp = 0;
    i += k;
    if (!lt_py_isspace(cp)) last_end = i;
  }
  end = last_end;
  put(b, s + start, end - start);
}

static void put_question(sbuf *b, const lt_mcq_question *q) {
  put_stripped(b, q->question);
  static const char *const tags[4] = {"\nA. ", "\nB. ", "\nC. ", "\nD. "};
  for (int c = 0; c < 4; c++) {
    puts_(b, tags[c]);
    puts_(b, q->choice[c]);
  }
  puts_(b, "\nAnswer:");
}

int lt_mcq_prompt(const char *subject, const lt_mcq_question *shots, int n_shots, const lt_mcq_question *q,
                  char **out, lt_err *err) {
  *out = NULL;
  sbuf b = {0};
  puts_(&b, "The following are multiple choice questions (with answers) about ");
  size_t at = b.n;
  puts_(&b, subject);
  for (size_t i = at; !b.oom && i < b.n; i++)
    if (b.s[i] == '_') b.s[i] = ' ';
  puts_(&b, ".\n\n");
  for (int k = 0; k < n_shots; k++) {
    put_question(&b, &shots[k]);
    char ans[4] = {' ', (char)('A' + shots[k].answer), 0, 0};
    puts_(&b, ans);
    puts_(&b, "\n\n");
  }
  put_question(&b, q);
  if (b.oom) {
    free(b.s);
    return lt_errf(err, "out of memory building a prompt");
  }
  *out = b.s;
  return 0;
}
