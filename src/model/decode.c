// Inference: KV cache, incremental decoding (the same layer forward as training), logits, sampling, generation.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "kernels/kernels.h"
#include "model/model.h"

#define DECODE_CHUNK 512  // prompt rows per pass: the weight panels are packed once per pass


static void carve_cache(const lt_model *m, lt_kvcache *kc, lt_carver *cv) {
  const lt_config *c = &m->cfg;
  int64_t R = kc->chunk, C = c->hidden, D = c->head_dim, HD = (int64_t)c->heads * D, KVD = kc->kvd, F = c->ffn;
  int r = lt_lora_max_r(m);
  kc->k = lt_carve(cv, FL((int64_t)c->layers * kc->max_len * KVD));
  kc->v = lt_carve(cv, FL((int64_t)c->layers * kc->max_len * KVD));
  lt_layer_acts *a = &kc->acts;
  a->att_bf16 = 0;  // decoding attention stays f32 (its scratch is sized for that)
  a->g16 = a->u16 = NULL;
  kc->x = a->x_in = lt_carve(cv, FL(R * C));
  a->x_mid = lt_carve(cv, FL(R * C));
  a->rstd1 = lt_carve(cv, FL(R));
  a->rstd2 = lt_carve(cv, FL(R));
  if (c->qk_norm) {
    a->qpre = lt_carve(cv, FL(R * HD));
    a->kpre = lt_carve(cv, FL(R * KVD));
    a->qrstd = lt_carve(cv, FL(R * c->heads));
    a->krstd = lt_carve(cv, FL(R * c->kv_heads));
  }
  a->q = lt_carve(cv, FL(R * HD));
  a->att = lt_carve(cv, FL(R * HD));
  a->lse = lt_carve(cv, FL(R * c->heads));
  a->g = lt_carve(cv, FL(R * F));
  a->u = lt_carve(cv, FL(R * F));
  for (int j = 0; j < 7; j++) a->xa[j] = r ? lt_carve(cv, FL(R * r)) : NULL;
  kc->xn = lt_carve(cv, FL(R * C));
  kc->h = lt_carve(cv, FL(R * F));
  kc->xnf = lt_carve(cv, FL(R * C));
  kc->att_scratch = lt_carve(cv, FL(lt_attention_scratch((int)R, kc->max_len)));
  kc->pos = lt_carve(cv, sizeof(int32_t) * (size_t)R);
  kc->gemm.max_mk = lt_model_max_mk(m, (int)R, 0);
  kc->gemm.threads = omp_get_max_threads();
  kc->gemm.buf = m->compute == LT_COMPUTE_BF16 ? lt_carve(cv, lt_gemm_bf16_scratch(kc->gemm.max_mk, kc->gemm.threads))
                                               : NULL;
}

int lt_kvcache_new(lt_kvcache **out, lt_model *m, int max_len, lt_err *err) {
  *out = NULL;
  if (max_len <= 0) return lt_errf(err, "KV cache length %d must be positive", max_len);
  if (lt_model_prepare(m, err)) return -1;
  lt_kvcache *kc = lt_alloc(sizeof *kc, err);
  if (!kc) return -1;
  kc->max_len = max_len;
  kc->layers = m->cfg.layers;
  kc->kvd = (int64_t)m->cfg.kv_heads * m->cfg.head_dim;
  kc->chunk = LT_MIN(max_len, DECODE_CHUNK);
  kc->threads = omp_get_max_threads();
  lt_carver cv = {NULL, 0};
  carve_cache(m, kc, &cv);
  kc->block = lt_alloc(cv.off, err);
  if (!kc->block) {
    lt_free(kc);
    return lt_err_prefix(err, "KV cache for %d tokens", max_len);
  }
  cv = (lt_carver){kc->block, 0};
  carve_cache(m, kc, &cv);
  *out = kc;
  return 0;
}

void lt_kvcache_free(lt_kvcache *c) {
  if (!c) return;
  lt_free(c->block);
  lt_free(c);
}

void lt_kvcache_reset(lt_kvcache *c) { c->len = 0; }
int lt_kvcache_len(const lt_kvcache *c) { return c->len; }

int lt_model_decode(lt_model *m, lt_kvcache *kc, const int32_t *ids, int n, float *logits, int all_logits,
                    lt_err *err) {
  const lt_config *c = &m->cfg;
  if (n <= 0) return lt_errf(err, "nothing to decode");
  if (kc->len + n > kc->max_len)
    return lt_errf(err, "sequence of %d tokens exceeds the KV cache (%d)", kc->len + n, kc->max_len);
  for (int i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= c->vocab)
      return lt_errf(err, "token id %d at position %d is outside the vocabulary [0, %d)", ids[i], i, c->vocab);
  if (lt_model_prepare(m, err)) return -1;
  if ((m->compute == LT_COMPUTE_BF16) != (kc->gemm.buf != NULL))
    return lt_errf(err, "the KV cache was made for another compute precision; make a new one");
  if (omp_get_max_threads() > kc->threads)
    return lt_errf(err, "the KV cache was made for %d threads and %d are set now; make a new one", kc->threads,
                   omp_get_max_threads());
  int C = c->hidden, V = c->vocab;
  lt_layer_acts *a = &kc->acts;
  for (int done = 0; done < n;) {
    int R = LT_MIN(kc->chunk, n - done), p0 = kc->len;
    for (int i = 0; i < R; i++) kc->pos[i] = p0 + i;
    lt_embed_lookup(m->embed, kc->x, ids + done, R);
    for (int l = 0; l < c->layers; l++) {
      a->k = kc->k + (int64_t)l * kc->max_len * kc->kvd;
      a->v = kc->v + (int64_t)l * kc->max_len * kc->kvd;
      a->kv_stride = 0;
      // the layer output overwrites x_in: x_in is no longer read once x_mid exists
      lt_layer_forward(m, l, a, kc->x, 1, R, p0, kc->pos, NULL, NULL, kc->xn, kc->h, kc->att_scratch, NULL, &kc->gemm, 0);
    }
    kc->len += R;
    done += R;
    float rstd[DECODE_CHUNK];
    if (all_logits) {
      lt_rmsnorm_forward(kc->xnf, rstd, kc->x, m->norm->w, R, C, c->rms_eps);
      lt_mm_forward(m->lm_head, logits + (int64_t)(done - R) * V, kc->xnf, R, 0, &kc->gemm);
    } else if (done == n) {
      lt_rmsnorm_forward(kc->xnf, rstd, kc->x + (int64_t)(R - 1) * C, m->norm->w, 1, C, c->rms_eps);
      lt_mm_forward(m->lm_head, logits, kc->xnf, 1, 0, &kc->gemm);
    }
  }
  return 0;
}

int lt_model_logits(lt_model *m, const int32_t *ids, int T, float *logits, lt_err *err) {
  lt_kvcache *kc;
  if (lt_kvcache_new(&kc, m, T, err)) return -1;
  int rc = lt_model_decode(m, kc, ids, T, logits, 1, err);
  lt_kvcache_free(kc);
  return rc;
}

// ---- sampling (transformers' order: repetition penalty, temperature, top-k, top-p) ----
typedef struct { float v; int i; } scored;
static int by_value_desc(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->v != y->v) return x->v < y->v ? 1 : -1;
  return x->i - y->i;
}

int lt_sample(const float *logits, int vocab, const lt_sampling *s, const int32_t *history, int n_history,
              uint64_t step, float *scratch, int32_t *out_id) {
  float *z = scratch;
  memcpy(z, logits, FL(vocab));
  if (s->repetition_penalty != 1.0f && s->repetition_penalty > 0.0f)
    for (int i = 0; i < n_history; i++) {
      int t = history[i];
      if (t < 0 || t >= vocab) continue;
      float v = logits[t];
      z[t] = v < 0 ? v * s->repetition_penalty : v / s->repetition_penalty;
    }
  if (s->temperature <= 0.0f) {  // greedy: first maximum, as torch.argmax
    int best = 0;
    for (int i = 1; i < vocab; i++)
      if (z[i] > z[best]) best = i;
    *out_id = best;
    return 0;
  }
  // sort descending (scratch holds vocab floats + vocab scored entries)
  scored *sc = (scored *)(void *)(z + vocab);
  for (int i = 0; i < vocab; i++) sc[i] = (scored){z[i] / s->temperature, i};
  qsort(sc, (size_t)vocab, sizeof *sc, by_value_desc);
  int keep = vocab;
  if (s->top_k > 0 && s->top_k < keep) {
    keep = s->top_k;
    while (keep < vocab && sc[keep].v == sc[keep - 1].v) keep++;  // ties with the k-th value stay, as in HF
  }
  double mx = sc[0].v, sum = 0;
  for (int i = 0; i < keep; i++) sum += exp(sc[i].v - mx);
  if (s->top_p > 0.0f && s->top_p < 1.0f) {
    // keep the smallest prefix whose probability mass reaches top_p (at least one token)
    double cum = 0;
    int k = 0;
    while (k < keep) {
      cum += exp(sc[k].v - mx) / sum;
      k++;
      if (cum >= s->top_p) break;
    }
    keep = k;
    sum = 0;
    for (int i = 0; i < keep; i++) sum += exp(sc[i].v - mx);
  }
  double u = (double)lt_rng_uniform(s->seed, 0x5a3d1e, step) * sum, acc = 0;
  for (int i = 0; i < keep; i++) {
    acc += exp(sc[i].v - mx);
    if (u < acc) {
      *out_id = sc[i].i;
      return 0;
    }
  }
  *out_id = sc[keep - 1].i;
  return 0;
}

static int is_eos(const lt_config *c, int id) {
  for (int i = 0; i < c->n_eos; i++)
    if (c->eos[i] == id) return 1;
  return 0;
}

int lt_generate(lt_model *m, const int32_t *prompt, int n_prompt, int max_new, const lt_sampling *s, int32_t *out,
                int *n_out, lt_err *err) {
  return lt_generate_cb(m, prompt, n_prompt, max_new, s, NULL, NULL, out, n_out, err);
}

int lt_generate_cb(lt_model *m, const int32_t *prompt, int n_prompt, int max_new, const lt_sampling *s,
                   int (*on_token)(int32_t id, void *user), void *user, int32_t *out, int *n_out, lt_err *err) {
  *n_out = 0;
  if (n_prompt <= 0) return lt_errf(err, "the prompt is empty");
  if (max_new <= 0) return 0;
  int V = m->cfg.vocab, total = n_prompt + max_new;
  lt_kvcache *kc = NULL;
  float *logits = lt_alloc(FL(V), err);
  float *scratch = lt_alloc(FL(V) + sizeof(scored) * (size_t)V, err);
  int32_t *hist = lt_alloc(sizeof(int32_t) * (size_t)total, err);
  int rc = -1;
  if (!logits || !scratch || !hist || lt_kvcache_new(&kc, m, total, err)) goto done;
  memcpy(hist, prompt, sizeof(int32_t) * (size_t)n_prompt);
  if (lt_model_decode(m, kc, prompt, n_prompt, logits, 0, err)) goto done;
  for (int i = 0; i < max_new; i++) {
    int32_t id;
    lt_sample(logits, V, s, hist, n_prompt + i, (uint64_t)i, scratch, &id);
    out[i] = id;
    hist[n_prompt + i] = id;
    *n_out = i + 1;
    if (on_token && on_token(id, user)) break;
    if (is_eos(&m->cfg, id) || i + 1 == max_new) break;
    if (lt_model_decode(m, kc, &id, 1, logits, 0, err)) goto done;
  }
  rc = 0;
done:
  lt_kvcache_free(kc);
  lt_free(logits);
  lt_free(scratch);
  lt_free(hist);
  return rc;
}
