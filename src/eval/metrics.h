// Evaluation metrics, each equal to its Python reference:
//   BLEU            sacrebleu 2.6.0 corpus_bleu defaults (BLEU-4, smooth 'exp', brevity penalty, tokenize 13a or zh)
//   ROUGE-L         rouge_score 0.1.2 RougeScorer(['rougeL']) (default tokenizer; optional Porter stemmer = nltk's)
//   classification  scikit-learn 1.9.1 accuracy_score / precision_recall_fscore_support (zero_division=0) /
//                   confusion_matrix with a fixed label order
//   perplexity      exp(total NLL / token count)
// All texts are NUL-terminated UTF-8 (invalid UTF-8 is an error). No call prints; objects hold no global state.
#ifndef LT_EVAL_METRICS_H
#define LT_EVAL_METRICS_H
#include <stddef.h>
#include <stdint.h>

#include "lmtune.h"

// ---------------------------------------------------------------------------------------------------------------
// BLEU (bleu.c)

typedef enum {
  LT_BLEU_TOK_13A = 0, // sacrebleu tokenizer_13a (mteval-v13a): the default
  LT_BLEU_TOK_ZH,      // sacrebleu tokenizer_zh: CJK characters split, the rest as 13a's regexes
  LT_BLEU_TOK_NONE     // whitespace split only
} lt_bleu_tok;

#define LT_BLEU_ORDER 4

// Sufficient statistics, summed over segments (sacrebleu's per-segment stats list).
typedef struct lt_bleu_stats {
  int64_t sys_len, ref_len;
  int64_t correct[LT_BLEU_ORDER], total[LT_BLEU_ORDER];
} lt_bleu_stats;

typedef struct lt_bleu_result {
  double score;                      // 0..100
  double precisions[LT_BLEU_ORDER];  // 0..100, smoothed as sacrebleu reports them
  double bp;                         // brevity penalty
  int64_t sys_len, ref_len;
  int64_t counts[LT_BLEU_ORDER], totals[LT_BLEU_ORDER];
} lt_bleu_result;

// "13a" | "zh" | "none" -> kind.
int lt_bleu_tok_parse(const char *name, lt_bleu_tok *out, lt_err *err);
const char *lt_bleu_tok_name(lt_bleu_tok t);

// A tokenizer holds its compiled PCRE2 regexes and match buffers: one per thread.
typedef struct lt_bleu_tokenizer lt_bleu_tokenizer;
int lt_bleu_tokenizer_new(lt_bleu_tokenizer **out, lt_bleu_tok kind, lt_err *err);
void lt_bleu_tokenizer_free(lt_bleu_tokenizer *t);
// What sacrebleu's BLEU._preprocess_segment returns (rstrip, then the tokenizer): tokens joined by single spaces.
// *out is malloc'd (free()).
int lt_bleu_tokenize(lt_bleu_tokenizer *t, const char *line, char **out, lt_err *err);

// Add one segment's statistics: hypothesis against n_refs references (NULL entries are missing references, as
// sacrebleu's None; at least one must be present). Several references: n-gram counts clipped by the maximum over
// the references, reference length the closest to the hypothesis length (the shorter on ties), as sacrebleu.
int lt_bleu_add_segment(lt_bleu_tokenizer *t, const char *hyp, const char *const *refs, int n_refs,
                        lt_bleu_stats *acc, lt_err *err);
// sacrebleu BLEU.compute_bleu with smooth_method='exp', effective_order=False, max order 4.
void lt_bleu_compute(const lt_bleu_stats *s, lt_bleu_result *out);

// Corpus BLEU = sacrebleu.corpus_bleu(hyps, refs, tokenize=...). refs[r][i] is reference stream r for segment i
// (sacrebleu's layout); n >= 1 segments.
int lt_bleu_corpus(const char *const *hyps, const char *const *const *refs, int n_refs, size_t n, lt_bleu_tok tok,
                   lt_bleu_result *out, lt_err *err);

// ---------------------------------------------------------------------------------------------------------------
// ROUGE-L (rouge.c)

typedef struct lt_rouge_score { double precision, recall, fmeasure; } lt_rouge_score;

// rouge_score's default tokenizer: lowercase (Python str.lower), every run of characters other than [a-z0-9] is a
// separator; with use_stemmer, tokens longer than 3 characters go through nltk's PorterStemmer (NLTK_EXTENSIONS).
// Returns the tokens joined by single spaces (malloc'd) and their count.
int lt_rouge_tokenize(const char *text, int use_stemmer, char **out, int *n_tokens, lt_err *err);
// nltk PorterStemmer().stem(word) for a lowercase ASCII word; writes at most strlen(word) + 1 bytes to out.
int lt_porter_stem(const char *word, char *out, size_t cap, lt_err *err);

// RougeScorer(['rougeL'], use_stemmer).score(target, prediction)['rougeL'].
int lt_rouge_l(const char *target, const char *prediction, int use_stemmer, lt_rouge_score *out, lt_err *err);

// Per pair (score_multi over several references: the reference with the highest F, the first on ties) and the
// mean of each field over the corpus (summed in order, divided by n). per_pair may be NULL.
int lt_rouge_l_corpus(const char *const *preds, const char *const *const *refs, int n_refs, size_t n,
                      int use_stemmer, lt_rouge_score *per_pair, lt_rouge_score *mean, lt_err *err);

// ---------------------------------------------------------------------------------------------------------------
// Classification (classify.c)

typedef struct lt_classify_result {
  int n_labels;
  int64_t n;            // samples
  int64_t n_correct;
  int64_t n_other;      // predictions outside the label set (y_pred == -1): always wrong, in no column
  double accuracy;      // accuracy_score
  double *precision, *recall, *f1; // per label, precision_recall_fscore_support(average=None, zero_division=0)
  int64_t *support;     // true count per label
  int64_t *pred_count;  // predicted count per label
  double macro_precision, macro_recall, macro_f1;
  double micro_precision, micro_recall, micro_f1;
  double weighted_precision, weighted_recall, weighted_f1;
  int64_t *confusion;   // n_labels x n_labels, row = true label, column = predicted (confusion_matrix(labels=))
} lt_classify_result;

// y_true[i] in [0, n_labels); y_pred[i] in [0, n_labels) or -1 (a prediction outside the label set: counts as a
// false negative of the true label, as scikit-learn with labels= restricted to the set). n >= 1.
int lt_classify_metrics(const int32_t *y_true, const int32_t *y_pred, size_t n, int n_labels,
                        lt_classify_result *out, lt_err *err);
void lt_classify_result_free(lt_classify_result *r);

// ---------------------------------------------------------------------------------------------------------------
// Generation and language-model helpers (metrics.c)

// Fraction of pairs whose strings are byte-identical (no normalisation). n >= 1.
int lt_exact_match(const char *const *preds, const char *const *refs, size_t n, double *out, lt_err *err);

// Perplexity from per-token negative log-likelihood (natural log): exp(nll_sum / n_tokens); *mean_nll receives
// the mean (may be NULL). Sum the NLL in double over every scored token (for SFT data only response tokens) and
// count those tokens; n_tokens must be >= 1 and nll_sum finite and >= 0.
int lt_perplexity(double nll_sum, int64_t n_tokens, double *ppl, double *mean_nll, lt_err *err);

// numpy's float64 sum (np.add.reduce: pairwise summation with 8 accumulators per 128-element block), so means
// agree with numpy/scikit-learn to the last bit.
double lt_np_sum(const double *a, size_t n);

// Text files for the metrics: one segment per line (plain text; "\n" or "\r\n" ends a line) or JSON Lines when the
// path ends in .jsonl/.json (each line a JSON string, an array of strings = several references, or an object whose
// `field` member is such a value; field NULL tries "prediction", "pred", "output", "response", "reference", "ref",
// "target", "answer", "label", "text" in turn). *texts is an array of *n entries, each an array of *n_alt strings
// (NULL where a line has fewer alternatives); free with lt_texts_free. Empty files are an error.
typedef struct lt_texts {
  size_t n;      // lines
  int n_alt;     // max alternatives per line (1 unless arrays were given)
  char **s;      // s[i * n_alt + a]
} lt_texts;
int lt_texts_read(const char *path, const char *field, lt_texts *out, lt_err *err);
void lt_texts_free(lt_texts *t);

#endif
