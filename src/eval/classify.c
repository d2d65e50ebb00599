// Classification metrics as scikit-learn 1.9.1 computes them (metrics/_classification.py): accuracy_score,
// precision_recall_fscore_support(labels=L, zero_division=0) for average None/'macro'/'micro'/'weighted', and
// confusion_matrix(labels=L). Per-class values come from integer counts with the same divisions; averages use
// numpy's summation order (lt_np_sum) so they agree to the last bit.
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "eval/metrics.h"

void lt_classify_result_free(lt_classify_result *r) {
  if (!r) return;
  free(r->precision);
  free(r->recall);
  free(r->f1);
  free(r->support);
  free(r->pred_count);
  free(r->confusion);
  memset(r, 0, sizeof *r);
}

// _prf_divide with zero_division=0
static double prf_div(double num, double den) { return den == 0 ? 0.0 : num / den; }

// numpy.average(a, weights=w) for w as float64: sum(a * w) / sum(w); ZeroDivisionError -> plain mean (_nanaverage).
static double wavg(const double *a, const int64_t *w, int k, double *tmp, double *tmpw) {
  for (int i = 0; i < k; i++) {
    tmpw[i] = (double)w[i];
    tmp[i] = a[i] * tmpw[i];
  }
  double scl = lt_np_sum(tmpw, (size_t)k);
  if (scl == 0.0) return lt_np_sum(a, (size_t)k) / (double)k;
  return lt_np_sum(tmp, (size_t)k) / scl;
}

int lt_classify_metrics(const int32_t *y_true, const int32_t *y_pred, size_t n, int n_labels,
                        lt_classify_result *out, lt_err *err) {
  memset(out, 0, sizeof *out);
  if (n == 0) return lt_errf(err, "classification metrics: no samples");
  if (n_labels < 1) return lt_errf(err, "classification metrics: empty label set");
  if ((size_t)n_labels > (size_t)1 << 15) return lt_errf(err, "classification metrics: too many labels (%d)", n_labels);
  for (size_t i = 0; i < n; i++) {
    if (y_true[i] < 0 || y_true[i] >= n_labels)
      return lt_errf(err, "sample %zu: true label index %d is not in the label set (0..%d)", i + 1, (int)y_true[i],
                     n_labels - 1);
    if (y_pred[i] < -1 || y_pred[i] >= n_labels)
      return lt_errf(err, "sample %zu: predicted label index %d is not in the label set (0..%d, or -1)", i + 1,
                     (int)y_pred[i], n_labels - 1);
  }
  size_t k = (size_t)n_labels;
  out->n_labels = n_labels;
  out->n = (int64_t)n;
  out->precision = calloc(k, sizeof(double));
  out->recall = calloc(k, sizeof(double));
  out->f1 = calloc(k, sizeof(double));
  out->support = calloc(k, sizeof(int64_t));
  out->pred_count = calloc(k, sizeof(int64_t));
  out->confusion = calloc(k * k, sizeof(int64_t));
  double *tmp = calloc(2 * k, sizeof(double));
  int64_t *tp = calloc(k, sizeof(int64_t));
  if (!out->precision || !out->recall || !out->f1 || !out->support || !out->pred_count || !out->confusion || !tmp ||
      !tp) {
    free(tmp);
    free(tp);
    lt_classify_result_free(out);
    return lt_errf(err, "out of memory (%d labels)", n_labels);
  }
  for (size_t i = 0; i < n; i++) {
    int t = y_true[i], p = y_pred[i];
    out->support[t]++;
    if (p < 0) {
      out->n_other++;
      continue;
    }
    out->pred_count[p]++;
    out->confusion[(size_t)t * k + (size_t)p]++;
    if (t == p) tp[t]++;
  }
  int64_t sum_tp = 0, sum_pred = 0, sum_true = 0;
  for (size_t c = 0; c < k; c++) {
    out->n_correct += tp[c];
    sum_tp += tp[c];
    sum_pred += out->pred_count[c];
    sum_true += out->support[c];
    out->precision[c] = prf_div((double)tp[c], (double)out->pred_count[c]);
    out->recall[c] = prf_div((double)tp[c], (double)out->support[c]);
    // f = (1 + beta^2) tp / (beta^2 true + pred), beta = 1
    out->f1[c] = prf_div(2.0 * (double)tp[c], 1.0 * (double)out->support[c] + (double)out->pred_count[c]);
  }
  out->accuracy = (double)out->n_correct / (double)n;
  out->micro_precision = prf_div((double)sum_tp, (double)sum_pred);
  out->micro_recall = prf_div((double)sum_tp, (double)sum_true);
  out->micro_f1 = prf_div(2.0 * (double)sum_tp, 1.0 * (double)sum_true + (double)sum_pred);
  out->macro_precision = lt_np_sum(out->precision, k) / (double)k;
  out->macro_recall = lt_np_sum(out->recall, k) / (double)k;
  out->macro_f1 = lt_np_sum(out->f1, k) / (double)k;
  out->weighted_precision = wavg(out->precision, out->support, n_labels, tmp, tmp + k);
  out->weighted_recall = wavg(out->recall, out->support, n_labels, tmp, tmp + k);
  out->weighted_f1 = wavg(out->f1, out->support, n_labels, tmp, tmp + k);
  free(tmp);
  free(tp);
  return 0;
}
