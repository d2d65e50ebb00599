// ROUGE-L exactly as rouge_score 0.1.2 (rouge_scorer.py, tokenize.py) with nltk 3.x's PorterStemmer
// (nltk/stem/porter.py, mode NLTK_EXTENSIONS) for use_stemmer.
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "eval/metrics.h"
#include "eval/text.h"

// ---- nltk PorterStemmer (NLTK_EXTENSIONS) on lowercase ASCII ----

typedef struct { char *w; int n; } word;

static int is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// PorterStemmer._is_consonant
static int is_cons(const char *w, int i) {
  if (is_vowel(w[i])) return 0;
  if (w[i] == 'y') {
    int neg = 0;
    while (i > 0 && w[i] == 'y') {
      neg = !neg;
      i--;
    }
    return (!is_vowel(w[i])) != neg;
  }
  return 1;
}

// _measure: occurrences of "vc" in the consonant/vowel sequence of w[0..n).
static int measure(const char *w, int n) {
  int m = 0;
  for (int i = 0; i + 1 < n; i++) m += !is_cons(w, i) && is_cons(w, i + 1);
  return m;
}

static int contains_vowel(const char *w, int n) {
  for (int i = 0; i < n; i++)
    if (!is_cons(w, i)) return 1;
  return 0;
}

static int ends_double_consonant(const char *w, int n) { return n >= 2 && w[n - 1] == w[n - 2] && is_cons(w, n - 1); }

static int ends_cvc(const char *w, int n) {
  return (n >= 3 && is_cons(w, n - 3) && !is_cons(w, n - 2) && is_cons(w, n - 1) && w[n - 1] != 'w' &&
          w[n - 1] != 'x' && w[n - 1] != 'y') ||
         (n == 2 && !is_cons(w, 0) && is_cons(w, 1));
}

static int ends_with(const word *x, const char *suf) {
  int k = (int)strlen(suf);
  return x->n >= k && !memcmp(x->w + x->n - k, suf, (size_t)k);
}

enum { C_NONE, C_MPOS, C_MGT1, C_ION, C_LOGI, C_Y, C_E, C_DOUBLE, C_LL };

typedef struct { const char *suf, *rep; int cond; } rule;

// One rule's condition on the stem w[0..stem) of the word x (x->n is the whole word).
static int cond_ok(int cond, const word *x, int stem) {
  const char *w = x->w;
  switch (cond) {
    case C_NONE: return 1;
    case C_MPOS: return measure(w, stem) > 0;
    case C_MGT1: return measure(w, stem) > 1;
    case C_ION: return measure(w, stem) > 1 && stem > 0 && (w[stem - 1] == 's' || w[stem - 1] == 't');
    case C_LOGI: return measure(w, x->n - 3) > 0;  // NLTK: lambda stem: self._has_positive_measure(word[:-3])
    case C_Y: return stem > 1 && is_cons(w, stem - 1);
    case C_E: return measure(w, stem) == 1 && ends_cvc(w, stem);
    case C_DOUBLE: return w[x->n - 1] != 'l' && w[x->n - 1] != 's' && w[x->n - 1] != 'z';
    case C_LL: return measure(w, x->n - 1) > 1;
  }
  return 0;
}

static void set_tail(word *x, int stem, const char *rep) {
  size_t k = strlen(rep);
  memmove(x->w + stem, rep, k);
  x->n = stem + (int)k;
  x->w[x->n] = 0;
}

// PorterStemmer._apply_rule_list: the first rule whose suffix matches decides.
static void apply_rules(word *x, const rule *rules, size_t nr) {
  for (size_t i = 0; i < nr; i++) {
    const rule *r = &rules[i];
    if (!strcmp(r->suf, "*d")) {
      if (ends_double_consonant(x->w, x->n)) {
        // stem + intermediate_stem[-1], i.e. one letter of the double consonant dropped
        if (cond_ok(r->cond, x, x->n - 2)) {
          x->n -= 1;
          x->w[x->n] = 0;
        }
        return;
      }
      continue;
    }
    if (ends_with(x, r->suf)) {
      int stem = x->n - (int)strlen(r->suf);
      if (cond_ok(r->cond, x, stem)) set_tail(x, stem, r->rep);
      return;
    }
  }
}

#define NR(a) (sizeof(a) / sizeof((a)[0]))

static void step1a(word *x) {
  if (ends_with(x, "ies") && x->n == 4) {
    set_tail(x, x->n - 3, "ie");
    return;
  }
  static const rule r[] = {{"sses", "ss", C_NONE}, {"ies", "i", C_NONE}, {"ss", "ss", C_NONE}, {"s", "", C_NONE}};
  apply_rules(x, r, NR(r));
}

static void step1b(word *x) {
  if (ends_with(x, "ied")) {
    set_tail(x, x->n - 3, x->n == 4 ? "ie" : "i");
    return;
  }
  if (ends_with(x, "eed")) {
    if (measure(x->w, x->n - 3) > 0) set_tail(x, x->n - 3, "ee");
    return;
  }
  int ok = 0;
  static const char *const sfx[] = {"ed", "ing"};
  for (int i = 0; i < 2; i++)
    if (ends_with(x, sfx[i])) {
      int stem = x->n - (int)strlen(sfx[i]);
      if (contains_vowel(x->w, stem)) {
        x->n = stem;
        x->w[stem] = 0;
        ok = 1;
        break;
      }
    }
  if (!ok) return;
  static const rule r[] = {{"at", "ate", C_NONE}, {"bl", "ble", C_NONE}, {"iz", "ize", C_NONE},
                           {"*d", "", C_DOUBLE}, {"", "e", C_E}};
  apply_rules(x, r, NR(r));
}

static void step1c(word *x) {
  static const rule r[] = {{"y", "i", C_Y}};
  apply_rules(x, r, NR(r));
}

static void step2(word *x) {
  if (ends_with(x, "alli") && measure(x->w, x->n - 4) > 0) {
    set_tail(x, x->n - 4, "al");
    step2(x);
    return;
  }
  static const rule r[] = {
      {"ational", "ate", C_MPOS}, {"tional", "tion", C_MPOS}, {"enci", "ence", C_MPOS}, {"anci", "ance", C_MPOS},
      {"izer", "ize", C_MPOS},    {"bli", "ble", C_MPOS},     {"alli", "al", C_MPOS},    {"entli", "ent", C_MPOS},
      {"eli", "e", C_MPOS},       {"ousli", "ous", C_MPOS},   {"ization", "ize", C_MPOS}, {"ation", "ate", C_MPOS},
      {"ator", "ate", C_MPOS},    {"alism", "al", C_MPOS},    {"iveness", "ive", C_MPOS}, {"fulness", "ful", C_MPOS},
      {"ousness", "ous", C_MPOS}, {"aliti", "al", C_MPOS},    {"iviti", "ive", C_MPOS},  {"biliti", "ble", C_MPOS},
      {"fulli", "ful", C_MPOS},   {"logi", "log", C_LOGI}};
  apply_rules(x, r, NR(r));
}

static void step3(word *x) {
  static const rule r[] = {{"icate", "ic", C_MPOS}, {"ative", "", C_MPOS}, {"alize", "al", C_MPOS},
                           {"iciti", "ic", C_MPOS}, {"ical", "ic", C_MPOS}, {"ful", "", C_MPOS},
                           {"ness", "", C_MPOS}};
  apply_rules(x, r, NR(r));
}

static void step4(word *x) {
  static const rule r[] = {{"al", "", C_MGT1},   {"ance", "", C_MGT1}, {"ence", "", C_MGT1}, {"er", "", C_MGT1},
                           {"ic", "", C_MGT1},   {"able", "", C_MGT1}, {"ible", "", C_MGT1}, {"ant", "", C_MGT1},
                           {"ement", "", C_MGT1}, {"ment", "", C_MGT1}, {"ent", "", C_MGT1},  {"ion", "", C_ION},
                           {"ou", "", C_MGT1},   {"ism", "", C_MGT1},  {"ate", "", C_MGT1},  {"iti", "", C_MGT1},
                           {"ous", "", C_MGT1},  {"ive", "", C_MGT1},  {"ize", "", C_MGT1}};
  apply_rules(x, r, NR(r));
}

static void step5a(word *x) {
  if (!ends_with(x, "e")) return;
  int stem = x->n - 1, m = measure(x->w, stem);
  if (m > 1 || (m == 1 && !ends_cvc(x->w, stem))) {
    x->n = stem;
    x->w[stem] = 0;
  }
}

static void step5b(word *x) {
  static const rule r[] = {{"ll", "l", C_LL}};
  apply_rules(x, r, NR(r));
}

int lt_porter_stem(const char *in, char *out, size_t cap, lt_err *err) {
  size_t len = strlen(in);
  if (cap < len + 1) return lt_errf(err, "Porter stemmer: output buffer too small");
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)in[i] >= 0x80 || (in[i] >= 'A' && in[i] <= 'Z'))
      return lt_errf(err, "Porter stemmer: \"%s\" is not a lowercase ASCII word", in);
  static const char *const pool[][2] = {
      {"sky", "sky"},       {"skies", "sky"},      {"dying", "die"},         {"lying", "lie"},
      {"tying", "tie"},     {"news", "news"},      {"innings", "inning"},    {"inning", "inning"},
      {"outings", "outing"}, {"outing", "outing"}, {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},     {"proceed", "proceed"}, {"exceed", "exceed"},   {"succeed", "succeed"}};
  for (size_t i = 0; i < NR(pool); i++)
    if (!strcmp(in, pool[i][0])) {
      memmove(out, pool[i][1], strlen(pool[i][1]) + 1);
      return 0;
    }
  memmove(out, in, len + 1);  // in may be out
  if (len <= 2) return 0;
  word x = {out, (int)len};
  step1a(&x);
  step1b(&x);
  step1c(&x);
  step2(&x);
  step3(&x);
  step4(&x);
  step5a(&x);
  step5b(&x);
  return 0;
}

// ---- tokenizer ----

int lt_rouge_tokenize(const char *text, int use_stemmer, char **out, int *n_tokens, lt_err *err) {
  *out = NULL;
  *n_tokens = 0;
  if (!text) return lt_errf(err, "ROUGE: NULL text");
  size_t len = strlen(text);
  size_t bad = lt_utf8_check(text, len);
  if (bad) return lt_errf(err, "invalid UTF-8 at byte %zu", bad - 1);
  // Lowercased text never grows here: only ASCII letters and digits survive, each from >= 1 byte.
  char *o = malloc(len + 2), *tok = malloc(len + 2);
  if (!o || !tok) {
    free(o);
    free(tok);
    return lt_errf(err, "out of memory");
  }
  size_t on = 0, tn = 0;
  int nt = 0;
  const unsigned char *u = (const unsigned char *)text;
  for (size_t i = 0; i <= len;) {
    uint32_t cp = 0;
    size_t k = 1;
    if (i < len) k = lt_utf8_next(u + i, len - i, &cp);
    // str.lower() then [^a-z0-9]+ -> ' ': the only non-ASCII code points whose lowercase holds [a-z0-9] are
    // U+0130 (-> 'i' + U+0307, which then separates) and U+212A KELVIN SIGN (-> 'k'), checked over all of Unicode.
    char c = 0;
    int sep_after = 0;
    if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) c = (char)cp;
    else if (cp >= 'A' && cp <= 'Z') c = (char)(cp - 'A' + 'a');
    else if (cp == 0x212A) c = 'k';
    else if (cp == 0x130) { c = 'i'; sep_after = 1; }
    if (i == len) c = 0;
    if (c) tok[tn++] = c;
    if ((!c || sep_after) && tn) {
      tok[tn] = 0;
      if (use_stemmer && tn > 3) {
        int rc = lt_porter_stem(tok, tok, tn + 1, err);
        if (rc) {
          free(o);
          free(tok);
          return -1;
        }
        tn = strlen(tok);
      }
      if (tn) {  // VALID_TOKEN_RE: non-empty [a-z0-9]+
        if (on) o[on++] = ' ';
        memcpy(o + on, tok, tn);
        on += tn;
        nt++;
      }
      tn = 0;
    }
    if (i == len) break;
    i += k;
  }
  o[on] = 0;
  free(tok);
  *out = o;
  *n_tokens = nt;
  return 0;
}

// ---- LCS ----

typedef struct { const char *s; int len; } tspan;

static int spans(const char *s, int n, tspan **out, lt_err *err) {
  tspan *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  if (!v) return lt_errf(err, "out of memory (%d tokens)", n);
  int k = 0;
  const char *p = s;
  while (k < n) {
    const char *e = strchr(p, ' ');
    int l = e ? (int)(e - p) : (int)strlen(p);
    v[k].s = p;
    v[k].len = l;
    k++;
    p += l + 1;
  }
  *out = v;
  return 0;
}

static int lcs_len(const tspan *a, int na, const tspan *b, int nb, int *res, lt_err *err) {
  int *prev = calloc((size_t)nb + 1, sizeof *prev), *cur = calloc((size_t)nb + 1, sizeof *cur);
  if (!prev || !cur) {
    free(prev);
    free(cur);
    return lt_errf(err, "out of memory (LCS of %d x %d tokens)", na, nb);
  }
  for (int i = 1; i <= na; i++) {
    for (int j = 1; j <= nb; j++) {
      if (a[i - 1].len == b[j - 1].len && !memcmp(a[i - 1].s, b[j - 1].s, (size_t)a[i - 1].len))
        cur[j] = prev[j - 1] + 1;
      else
        cur[j] = prev[j] > cur[j - 1] ? prev[j] : cur[j - 1];
    }
    int *t = prev;
    prev = cur;
    cur = t;
  }
  *res = prev[nb];
  free(prev);
  free(cur);
  return 0;
}

// rouge_scorer._score_lcs on token strings.
static int score_tokens(const char *tt, int nt, const char *pt, int np, lt_rouge_score *out, lt_err *err) {
  out->precision = out->recall = out->fmeasure = 0;
  if (!nt || !np) return 0;
  tspan *a = NULL, *b = NULL;
  int lcs = 0;
  if (spans(tt, nt, &a, err) || spans(pt, np, &b, err) || lcs_len(a, nt, b, np, &lcs, err)) {
    free(a);
    free(b);
    return -1;
  }
  free(a);
  free(b);
  double p = (double)lcs / (double)np, r = (double)lcs / (double)nt;
  out->precision = p;
  out->recall = r;
  out->fmeasure = p + r > 0 ? 2 * p * r / (p + r) : 0.0;  // scoring.fmeasure
  return 0;
}

int lt_rouge_l(const char *target, const char *prediction, int use_stemmer, lt_rouge_score *out, lt_err *err) {
  char *tt = NULL, *pt = NULL;
  int nt, np;
  if (lt_rouge_tokenize(target, use_stemmer, &tt, &nt, err)) return lt_err_prefix(err, "ROUGE reference");
  if (lt_rouge_tokenize(prediction, use_stemmer, &pt, &np, err)) {
    free(tt);
    return lt_err_prefix(err, "ROUGE prediction");
  }
  int rc = score_tokens(tt, nt, pt, np, out, err);
  free(tt);
  free(pt);
  return rc;
}

int lt_rouge_l_corpus(const char *const *preds, const char *const *const *refs, int n_refs, size_t n,
                      int use_stemmer, lt_rouge_score *per_pair, lt_rouge_score *mean, lt_err *err) {
  memset(mean, 0, sizeof *mean);
  if (n == 0) return lt_errf(err, "ROUGE: no pairs");
  if (n_refs < 1) return lt_errf(err, "ROUGE: no reference stream");
  double sp = 0, sr = 0, sf = 0;
  for (size_t i = 0; i < n; i++) {
    lt_rouge_score best = {0, 0, 0};
    int have = 0;
    for (int r = 0; r < n_refs; r++) {
      if (!refs[r][i]) continue;
      lt_rouge_score s;
      if (lt_rouge_l(refs[r][i], preds[i], use_stemmer, &s, err)) return lt_err_prefix(err, "pair %zu", i + 1);
      if (!have || s.fmeasure > best.fmeasure) best = s;  // np.argmax: the first maximum
      have = 1;
    }
    if (!have) return lt_errf(err, "ROUGE: pair %zu has no reference", i + 1);
    if (per_pair) per_pair[i] = best;
    sp += best.precision;
    sr += best.recall;
    sf += best.fmeasure;
  }
  mean->precision = sp / (double)n;
  mean->recall = sr / (double)n;
  mean->fmeasure = sf / (double)n;
  return 0;
}
