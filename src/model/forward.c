// The decoder: workspace, one layer's forward (training and cached decoding share it), the full training
// forward + fused LM-head loss, and the backward that walks the same steps in reverse.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "kernels/kernels.h"
#include "model/model.h"

// Rows per LM-head chunk: the (chunk, vocab) logits buffer stays within 128 MiB (at least 64 rows), in as few
// equal chunks as that allows: every chunk packs the whole LM-head weight twice (forward and input gradient).
// Rounded up to a multiple of 6 within that bound: the bf16 GEMM's row tiles (a shorter last tile runs at a
// fraction of the speed; each row's values do not depend on the chunking).
static int ce_chunk_rows(int64_t N, int V) {
  int64_t cap = LT_MAX(64, (32 << 20) / LT_MAX(V, 1)), chunks = (N + cap - 1) / cap;
  int64_t rows = LT_MAX(1, (N + chunks - 1) / LT_MAX(chunks, 1)), r6 = (rows + 5) / 6 * 6;
  return (int)(chunks > 1 && r6 <= cap ? r6 : rows);
}

// ---- matrix products with a frozen or trainable weight, in the model's compute precision ----
// the bf16 GEMM serves W: a bf16 view that is frozen or has a fresh bf16 shadow, and bf16 scratch
static int mm_bf16(const lt_param *w, const lt_gemm_scratch *gs) {
  return gs && gs->buf && w->bf && (!w->g || w->bf_shadow);
}

// x (N,in), W (out,in) -> y (N,out) (+)= x W^T
void lt_mm_forward(const lt_param *w, float *y, const float *x, int N, int accumulate, const lt_gemm_scratch *gs) {
  int out = (int)w->shape[0], in = (int)w->shape[1];
  if (mm_bf16(w, gs)) {
    lt_gemm_nt_out o = {y, w->bf, out, w->pk_nt, NULL, w->pk_nn};  // the NT copy, else panels from the NN copy
    lt_gemm_bf16_ex(&o, 1, x, N, in, accumulate, 0, gs);
  } else lt_linear_forward(y, x, w->w, NULL, N, in, out, accumulate);
}

// dy (N,out) -> dx (N,in) (+)= dy W
void lt_mm_backward_dx(const lt_param *w, float *dx, const float *dy, int N, int accumulate, const lt_gemm_scratch *gs) {
  int out = (int)w->shape[0], in = (int)w->shape[1];
  if (mm_bf16(w, gs)) lt_gemm_bf16_pk(dx, dy, w->bf, w->pk_nn, N, in, out, accumulate, 1, gs);
  else if (N > 0 && in > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, w->w, in,
                accumulate ? 1.0f : 0.0f, dx, in);
}

// ids (N) -> out (N,C) rows of the embedding, from its f32 or bf16 view
void lt_embed_lookup(const lt_param *e, float *out, const int32_t *ids, int N) {
  int C = (int)e->shape[1];
  if (e->w) {
    lt_embedding_forward(out, ids, e->w, N, C);
    return;
  }
  // A packed LM head (tied) serves its rows from the NT copy: the mapping's pages, dropped after packing, stay out
  // of memory (a row read from it maps a whole 2 MB folio where the page cache keeps large ones).
  // Each row gathers one value pair per 256-byte line there: the threads share the rows.
  if (e->pk_nt && lt_cpu_has_avx512bf16()) {
#pragma omp parallel for schedule(static) if (N >= 64)
    for (int i = 0; i < N; i++) lt_bf16_prepacked_row(out + (int64_t)i * C, e->pk_nt, C, ids[i]);
    return;
  }
  for (int i = 0; i < N; i++) {
    const uint16_t *row = e->bf + (int64_t)ids[i] * C;
    for (int c = 0; c < C; c++) out[(int64_t)i * C + c] = lt_bf16_to_f32(row[c]);
  }
}

static int64_t even(int64_t k) { return (k + 1) & ~(int64_t)1; }

int64_t lt_model_max_mk(const lt_model *m, int rows, int ce_chunk) {
  const lt_config *c = &m->cfg;
  int64_t k = even(LT_MAX(LT_MAX(c->hidden, c->heads * c->head_dim), c->ffn));
  // the LM head's chunk of ce_chunk rows, and its weight gradient's input rows (vocab x ce_chunk rounded up to even)
  return LT_MAX((int64_t)rows * k, even(ce_chunk) * even(LT_MAX(c->vocab, c->hidden)));
}


void lt_ws_free(lt_workspace *ws) {
  lt_free(ws->acts);
  lt_free(ws->block);
  memset(ws, 0, sizeof *ws);
}


static void carve_ws(const lt_model *m, lt_workspace *ws, lt_carver *cv, int B, int T) {
  const lt_config *c = &m->cfg;
  int64_t N = (int64_t)B * T, C = c->hidden, D = c->head_dim, HD = (int64_t)c->heads * D,
          KVD = (int64_t)c->kv_heads * D, F = c->ffn, r = lt_lora_max_r(m);
  int64_t maxin = LT_MAX(LT_MAX(C, HD), F);
  // With activation checkpointing every layer keeps only its input; the other activations live in one set that
  // each layer's forward overwrites (and backward refills by recomputing the layer).
  for (int l = 0; l < c->layers; l++) {
    lt_layer_acts *a = &ws->acts[l];
    if (m->grad_ckpt && l > 0) {
      float *x_in = lt_carve(cv, FL(N * C));
      *a = ws->acts[0];
      a->x_in = x_in;
      continue;
    }
    a->x_in = lt_carve(cv, FL(N * C));
    a->x_mid = lt_carve(cv, FL(N * C));
    a->rstd1 = lt_carve(cv, FL(N));
    a->rstd2 = lt_carve(cv, FL(N));
    if (c->qk_norm) {
      a->qpre = lt_carve(cv, FL(N * HD));
      a->kpre = lt_carve(cv, FL(N * KVD));
      a->qrstd = lt_carve(cv, FL(N * c->heads));
      a->krstd = lt_carve(cv, FL(N * c->kv_heads));
    }
    a->q = lt_carve(cv, FL(N * HD));
    a->k = lt_carve(cv, FL(N * KVD));
    a->v = lt_carve(cv, FL(N * KVD));
    a->kv_stride = T;
    a->att = lt_carve(cv, FL(N * HD));
    a->lse = lt_carve(cv, FL(N * c->heads));
    if (m->compute == LT_COMPUTE_BF16) {  // bf16 copies; the products' f32 outputs go to ws->dg, ws->du (below)
      a->g16 = lt_carve(cv, (size_t)(N * F) * 2);
      a->u16 = lt_carve(cv, (size_t)(N * F) * 2);
      a->g = a->u = NULL;
    } else {
      a->g = lt_carve(cv, FL(N * F));
      a->u = lt_carve(cv, FL(N * F));
      a->g16 = a->u16 = NULL;
    }
    for (int j = 0; j < 7; j++) a->xa[j] = m->layer[l].proj[j].lora ? lt_carve(cv, FL(N * r)) : NULL;
  }
  ws->x_out = lt_carve(cv, FL(N * C));
  ws->xnf = lt_carve(cv, FL(N * C));
  ws->rstdf = lt_carve(cv, FL(N));
  ws->xn = lt_carve(cv, FL(N * C));
  ws->h = lt_carve(cv, FL(N * F));
  ws->drop = lt_lora_has_dropout(m) ? lt_carve(cv, FL(N * maxin)) : NULL;  // LoRA dropout's masked input
  int att_bf = m->compute == LT_COMPUTE_BF16;  // training attention with bf16 products, as autocast
  for (int l = 0; l < c->layers; l++) ws->acts[l].att_bf16 = att_bf;
  ws->att_scratch = lt_carve(cv, FL(lt_attention_scratch_ex(T, T, c->heads, c->kv_heads, c->head_dim, att_bf)));
  ws->ce_chunk = ce_chunk_rows(N, c->vocab);
  ws->ce_scratch = lt_carve(cv, FL((int64_t)ws->ce_chunk * c->vocab));
  ws->dx = lt_carve(cv, FL(N * C));
  ws->dxn = lt_carve(cv, FL(N * C));
  ws->datt = lt_carve(cv, FL(N * HD));
  ws->dq = lt_carve(cv, FL(N * HD));
  ws->dk = lt_carve(cv, FL(N * KVD));
  ws->dv = lt_carve(cv, FL(N * KVD));
  ws->dg = lt_carve(cv, FL(N * F));
  ws->du = lt_carve(cv, FL(N * F));
  // Under bf16 training a layer's forward writes gate and up in f32 to dg, du (free until its backward's SwiGLU
  // step, and a checkpointed recompute finishes with them before that) and keeps them in bf16.
  for (int l = 0; l < c->layers; l++)
    if (ws->acts[l].g16) ws->acts[l].g = ws->dg, ws->acts[l].u = ws->du;
  ws->dh = lt_carve(cv, FL(N * LT_MAX(F, KVD)));
  ws->dxa = lt_carve(cv, FL(N * LT_MAX(r, 1)));
  ws->lora_bt_slot = r * LT_MAX(LT_MAX(C, F), LT_MAX(HD, KVD));
  ws->lora_bt = r > 0 ? lt_carve(cv, FL(3 * ws->lora_bt_slot)) : NULL;
  ws->lora_x2 = r > 0 ? lt_carve(cv, sizeof(uint32_t) * (size_t)(3 * N * ((r + 1) / 2))) : NULL;
  ws->lora_w2 = r > 0 ? lt_carve(cv, sizeof(uint32_t) * (size_t)(((LT_MAX(LT_MAX(C, F), LT_MAX(HD, KVD)) + 1) / 2) * r))
                      : NULL;
  ws->targets = lt_carve(cv, sizeof(int32_t) * (size_t)N);
  ws->pos = lt_carve(cv, sizeof(int32_t) * (size_t)N);
  ws->rope_tab = lt_carve(cv, FL(2 * N * (c->head_dim / 2)));
  ws->kmask = lt_carve(cv, (size_t)N);
  ws->gemm.max_mk = lt_model_max_mk(m, (int)N, ws->ce_chunk);
  ws->gemm.threads = omp_get_max_threads();
  ws->gemm.buf = m->compute == LT_COMPUTE_BF16 ? lt_carve(cv, lt_gemm_bf16_scratch(ws->gemm.max_mk, ws->gemm.threads))
                                               : NULL;
}

int lt_ws_reserve(lt_model *m, int B, int T, lt_err *err) {
  lt_workspace *ws = &m->ws;
  int threads = omp_get_max_threads();
  if (ws->block && ws->B == B && ws->T == T && ws->threads == threads && ws->ckpt == m->grad_ckpt &&
      ws->has_drop == lt_lora_has_dropout(m))
    return 0;
  lt_ws_free(ws);
  ws->acts = lt_alloc(sizeof(lt_layer_acts) * (size_t)m->cfg.layers, err);
  if (!ws->acts) return -1;
  lt_carver cv = {NULL, 0};
  carve_ws(m, ws, &cv, B, T);
  ws->block = lt_alloc(cv.off, err);
  if (!ws->block) {
    lt_ws_free(ws);
    return lt_err_prefix(err, "training workspace for batch %d x %d tokens", B, T);
  }
  cv = (lt_carver){ws->block, 0};
  carve_ws(m, ws, &cv, B, T);
  ws->B = B;
  ws->T = T;
  ws->threads = threads;
  ws->ckpt = m->grad_ckpt;
  ws->has_drop = lt_lora_has_dropout(m);
  ws->no_epilogue = getenv("LMTUNE_NO_FUSED_EPILOGUE") != NULL;  // tests compare the two ways
  ws->bytes = (int64_t)cv.off;
  return 0;
}

// ---- LoRA-aware projection ----
// Under bf16 compute with AVX512-BF16, the training workspace's products multiply LoRA's low-rank terms in bf16
// pairs with f32 sums, as autocast runs lora_A and lora_B in bf16: xa = drop(x) A^T and dxa = s dy B are rounded to
// bf16 (in place: the f32 kernels of gA and gB read the rounded values, as autocast's bf16 tensors), and so are s B
// and A for the terms xa (s B)^T and dxa A, added by vdpbf16ps in the GEMM's epilogue or in a separate pass
// (lt_gemm_bf16_lora_add) to the same bits. Elsewhere (f32 compute, decoding's few rows) they stay in f32.
static int lora_b16(const lt_model *m, const lt_gemm_scratch *gs, int N) {
  return gs == &m->ws.gemm && gs->buf && m->ws.lora_bt && m->ws.lora_x2 && N > 4 && lt_cpu_has_avx512bf16();
}

// Under lora_b16 with the input in bf16 rows (xb, N x in, in even): xa = xb A^T and dxa = s dyb B as skinny bf16
// products (lt_bf16_skinny) on A's and B's pairs along their long side; 0 when done that way (-1: the caller's f32
// kernel on the widened values instead).
static int lora_xa_skinny(lt_model *m, float *xa, const uint16_t *xb, const lt_lora *a, int N) {
  if (a->in % 2 || !m->ws.lora_w2) return -1;
  lt_bf16_pairs_rank(m->ws.lora_w2, a->A, a->in, a->r, 1.0f, 1);
  return lt_bf16_skinny(xa, (const uint32_t *)xb, a->in / 2, m->ws.lora_w2, N, a->in / 2, a->r, 1.0f);
}
static int lora_dxa_skinny(lt_model *m, float *dxa, const uint16_t *dyb, const lt_lora *a, int N) {
  if (a->out % 2 || !m->ws.lora_w2) return -1;
  lt_bf16_pairs_rank(m->ws.lora_w2, a->B, a->out, a->r, 1.0f, 0);
  return lt_bf16_skinny(dxa, (const uint32_t *)dyb, a->out / 2, m->ws.lora_w2, N, a->out / 2, a->r, a->scale);
}

// ... and gB += s dy^T xa as bf16 products (lt_lora_grad_b_bf16; xa's values are bf16 under lora_b16, dy's when the
// caller has its bf16 rows dyb), xa's pairs of rows in lora_x2 (free until the input gradient's pairs). 0 when done.
static int lora_gb_bf16(lt_model *m, const lt_lora *a, const uint16_t *dyb, const float *xa, int N) {
  size_t cap = sizeof(uint32_t) * (size_t)(3 * (int64_t)N * ((lt_lora_max_r(m) + 1) / 2));
  return lt_lora_grad_b_bf16(a->gB, dyb, xa, a->scale, N, a->out, a->r, m->ws.lora_x2, cap);
}

// ... and gA += dxa^T x from x's bf16 rows xb: as bf16 products (lt_lora_grad_a_bf16) under lora_b16, where dxa holds
// bf16 values, with dxa's pairs of rows in lora_x2 past its first N * r2 words (dxa's pairs along the rank, for the
// dxa A term, may be there); else the f32 kernel on xb's widened values.
static void lora_ga_b16(lt_model *m, const lt_lora *a, const float *dxa, const uint16_t *xb, int N) {
  int64_t r2 = (lt_lora_max_r(m) + 1) / 2;
  size_t cap = sizeof(uint32_t) * (size_t)(2 * N * r2);
  if (!lora_b16(m, &m->ws.gemm, N) || lt_lora_grad_a_bf16(a->gA, xb, dxa, N, a->in, a->r, m->ws.lora_x2 + N * r2, cap))
    lt_lora_grad_a_b16(a->gA, dxa, xb, N, a->in, a->r);
}

// x's bf16 rows for gA: xb when given, else (x16: x holds bf16 values) x converted into the GEMM's input rows, free
// once the projection's products are done; NULL otherwise. Both paths (fused or not) take the same rows.
static const uint16_t *ga_rows(lt_model *m, const float *x, const uint16_t *xb, int x16, int N, int in) {
  if (xb || !x16 || in % 2 || !lora_b16(m, &m->ws.gemm, N)) return xb;
  uint16_t *t = lt_gemm_bf16_act(&m->ws.gemm, N, in);
  if (t) lt_f32_to_bf16_n(t, x, (int64_t)N * in);
  return t;
}

// x (N,in) -> y (N,out) = x W^T + b + s * drop(x) A^T B^T ; xa (N,r) keeps drop(x) A^T for backward
// bias and LoRA terms of a projection whose base product y = x W^T is done
// x16: x holds bf16 values that the LoRA terms read as such (xn16_sem, down_h16_sem)
static void proj_tail(lt_model *m, int l, const lt_linear *p, float *y, const float *x, float *xa, int N, float *drop,
                      const lt_gemm_scratch *gs, int train, int x16) {
  if (p->b) lt_add_bias(y, p->b->w, N, p->out);
  const lt_lora *a = p->lora;
  if (!a) return;
  const float *xd = lt_lora_dropout(m, l, p->id, x, drop, N, p->in, train);
  uint16_t *xb = x16 && xd == x && lora_b16(m, gs, N) && p->in % 2 == 0 ? lt_gemm_bf16_act(gs, N, p->in) : NULL;
  if (xb) lt_f32_to_bf16_n(xb, x, (int64_t)N * p->in);  // (exact: the values are bf16) for the skinny product
  if (!xb || lora_xa_skinny(m, xa, xb, a, N)) lt_lora_xa(xa, xd, a->A, N, a->in, a->r);
  if (lora_b16(m, gs, N)) {
    uint32_t *x2 = m->ws.lora_x2, *b2 = (uint32_t *)m->ws.lora_bt;
    lt_bf16_pairs_rows(x2, xa, N, a->r);
    lt_bf16_pairs_rank(b2, a->B, a->r, a->out, a->scale, 1);
    lt_gemm_bf16_lora_add(y, a->out, x2, b2, a->out, N, a->out, (a->r + 1) / 2, 0);
  } else {
    lt_lora_up(y, xa, a->B, a->scale, N, a->out, a->r);
  }
}

// The bias and LoRA terms ride in the bf16 GEMM's epilogue (added while the output tile is in registers, in the
// order of the separate passes, so the values are the same) for the training workspace's many-row products.
static int epi_ok(const lt_model *m, const lt_gemm_scratch *gs, int N) {
  return gs == &m->ws.gemm && m->ws.lora_bt && !m->ws.no_epilogue && N > 4 && lt_cpu_has_avx512bf16();
}

// bt (r, out) = s * B^T, the values the separate LoRA pass multiplies by
static void lora_bt(float *bt, const lt_lora *a) {
  for (int j = 0; j < a->out; j++)
    for (int q = 0; q < a->r; q++) bt[(int64_t)q * a->out + j] = a->scale * a->B[(int64_t)j * a->r + q];
}

// n projections of the same input x (q, k, v; gate, up; or one): one bf16 GEMM call for the base products when all
// of them run in bf16 (x converted once, one parallel loop), then each one's bias and LoRA terms (in the GEMM's
// epilogue when epi_ok).
// x_ready: x's bf16 copy is already in the GEMM's input rows (lt_gemm_bf16_act), used when the products run there.
// y16 (or NULL): with the epilogue in use, output i goes to y16[i] in bf16 instead of y[i] (see lt_gemm_epi); the
// caller checks epi_ok first. xb (or NULL): x in bf16 rows, for the LoRA terms instead of x (x is then not read:
// the caller checks down_h16 or xn16_fast first).
static void proj_forward_n(lt_model *m, int l, const lt_linear *const *p, float *const *y, const float *x,
                           float *const *xa, int n, int N, float *drop, const lt_gemm_scratch *gs, int train,
                           int x_ready, uint16_t *const *y16, const uint16_t *xb, int x16) {
  int fused = n <= LT_GEMM_MULTI_MAX && n <= 3;  // 3: the workspace's s B^T slots
  for (int i = 0; i < n; i++) fused = fused && mm_bf16(p[i]->w, gs) && p[i]->in == p[0]->in;
  if (!fused) {
    for (int i = 0; i < n; i++) {
      lt_mm_forward(p[i]->w, y[i], x, N, 0, gs);
      proj_tail(m, l, p[i], y[i], x, xa[i], N, drop, gs, train, x16);
    }
    return;
  }
  lt_gemm_nt_out o[LT_GEMM_MULTI_MAX];
  lt_gemm_epi e[LT_GEMM_MULTI_MAX];
  int epi = epi_ok(m, gs, N);
  // x's bf16 rows for the LoRA terms' skinny products (x16: its values are bf16), which the GEMM then reads too
  if (epi && !xb && x16 && lora_b16(m, gs, N) && p[0]->in % 2 == 0) {
    uint16_t *ab = lt_gemm_bf16_act(gs, N, p[0]->in);
    if (ab && !x_ready) lt_f32_to_bf16_n(ab, x, (int64_t)N * p[0]->in);
    if (ab) xb = ab, x_ready = 1;
  }
  for (int i = 0; i < n; i++) {
    o[i] = (lt_gemm_nt_out){y[i], p[i]->w->bf, p[i]->out, p[i]->w->pk_nt, NULL, p[i]->w->pk_nn};
    if (!epi) continue;
    const lt_lora *a = p[i]->lora;
    e[i] = (lt_gemm_epi){p[i]->b ? p[i]->b->w : NULL, NULL, NULL, 0, 0, y16 ? y16[i] : NULL, NULL, NULL, 0};
    if (a && xb) {  // xa first (the epilogue multiplies it by s B^T)
      if (!lora_b16(m, gs, N) || lora_xa_skinny(m, xa[i], xb, a, N)) lt_lora_xa_b16(xa[i], xb, a->A, N, a->in, a->r);
    } else if (a) {
      const float *xd = lt_lora_dropout(m, l, p[i]->id, x, drop, N, p[i]->in, train);
      lt_lora_xa(xa[i], xd, a->A, N, a->in, a->r);
    }
    if (a && lora_b16(m, gs, N)) {  // pairs: xa (rounded in place) and s B^T
      int r2 = (a->r + 1) / 2;
      uint32_t *x2 = m->ws.lora_x2 + (int64_t)i * N * r2, *b2 = (uint32_t *)(m->ws.lora_bt + i * m->ws.lora_bt_slot);
      lt_bf16_pairs_rows(x2, xa[i], N, a->r);
      lt_bf16_pairs_rank(b2, a->B, a->r, a->out, a->scale, 1);
      e[i].xa2 = x2;
      e[i].bt2 = b2;
      e[i].r2 = r2;
      e[i].ldb = a->out;
    } else if (a) {
      float *bt = m->ws.lora_bt + i * m->ws.lora_bt_slot;
      lora_bt(bt, a);
      e[i].xa = xa[i];
      e[i].bt = bt;
      e[i].r = a->r;
      e[i].ldb = a->out;
    }
    if (e[i].bias || e[i].xa || e[i].xa2 || e[i].y16) o[i].epi = &e[i];
  }
  lt_gemm_bf16_ex(o, n, x_ready ? NULL : x, N, p[0]->in, 0, 0, gs);
  if (!epi)
    for (int i = 0; i < n; i++) proj_tail(m, l, p[i], y[i], x, xa[i], N, drop, gs, train, x16);
}

// Under bf16 training (gate and up kept in bf16) the down projection's LoRA terms read SwiGLU's output h rounded to
// bf16, as autocast's lora_A gets it, unless a LoRA dropout mask applies or its base weight or bias trains (their
// gradients read f32 h): down_h16_sem. The fast form, down_h16, keeps h in bf16 alone (the rows its GEMM reads)
// when the fused-epilogue path serves the projection; otherwise h is rounded in f32 storage (the same values).
static int down_h16_sem(lt_model *m, const lt_layer_acts *a, const lt_linear *p, int train) {
  return a->g16 && (!train || !lt_lora_has_dropout(m)) && !p->w->g && !(p->b && p->b->g);
}
static int down_h16(lt_model *m, const lt_layer_acts *a, const lt_linear *p, const lt_gemm_scratch *gs, int N,
                    int train) {
  return down_h16_sem(m, a, p, train) && epi_ok(m, gs, N) && mm_bf16(p->w, gs);
}

// The same for the projections reading a norm's output xn (q, k, v; gate, up): under bf16 compute their LoRA terms
// read xn rounded to bf16 unless a LoRA dropout mask applies (xn16_sem). The fast form (xn16_fast) keeps only the
// GEMM's bf16 input rows in the forward (the group's products run fused, with the epilogue) and a bf16 recompute
// in the backward (when no base weight or bias of the group trains); otherwise xn is rounded in f32 storage.
static int xn16_sem(lt_model *m, const lt_linear *const *p, int n, int train) {
  int lora = 0;
  for (int i = 0; i < n; i++) lora = lora || p[i]->lora;
  return lora && m->compute == LT_COMPUTE_BF16 && (!train || !lt_lora_has_dropout(m));
}
static int xn16_fast(lt_model *m, const lt_linear *const *p, int n, const lt_gemm_scratch *gs, int N, int train,
                     int backward) {
  if (!xn16_sem(m, p, n, train) || !epi_ok(m, gs, N) || n > 3 || p[0]->in % 2 || !lt_gemm_bf16_act(gs, N, p[0]->in))
    return 0;
  for (int i = 0; i < n; i++)
    if (!mm_bf16(p[i]->w, gs) || p[i]->in != p[0]->in || (backward && (p[i]->w->g || (p[i]->b && p[i]->b->g))))
      return 0;
  return 1;
}

// xn (N, in) = RMSNorm(x) for the group p (see xn16_fast): in bf16 rows alone into xb when fast (returned), else in
// f32 into xn (rounded to bf16 values under xn16_sem); NULL then
static uint16_t *norm_for(lt_model *m, const lt_linear *const *p, int n, float *xn, uint16_t *xb, float *rstd,
                          const float *x, const lt_param *w, int N, const lt_gemm_scratch *gs, int train,
                          int backward) {
  int C = m->cfg.hidden;
  if (xn16_fast(m, p, n, gs, N, train, backward)) {
    lt_rmsnorm_forward_b16(NULL, xb, rstd, x, w->w, N, C, m->cfg.rms_eps);
    return xb;
  }
  lt_rmsnorm_forward(xn, rstd, x, w->w, N, C, m->cfg.rms_eps);
  if (xn16_sem(m, p, n, train)) lt_round_bf16(xn, (int64_t)N * C);
  return NULL;
}

// Full fine-tuning's dW, db += for dy (N,out), x (N,in). Under bf16 compute the weight gradient comes from bf16
// products (x's copy in the LM head's scratch, free during the layers' backward), as autocast's; otherwise sgemm.
// Runs after the projection's input-gradient product: it takes the GEMM's input rows.
static void weight_grads(lt_model *m, const lt_linear *p, const float *dy, const float *x, int N) {
  float *dw = p->w->g;
  if (dw && mm_bf16(p->w, &m->ws.gemm) &&
      lt_gemm_bf16_wgrad(dw, dy, x, N, p->out, p->in, (uint16_t *)m->ws.ce_scratch,
                         sizeof(float) * (size_t)m->ws.ce_chunk * (size_t)m->cfg.vocab, &m->ws.gemm))
    dw = NULL;
  if (dw || (p->b && p->b->g)) lt_linear_backward(NULL, dw, p->b ? p->b->g : NULL, dy, x, p->w->w, N, p->in, p->out);
}

// dy (N,out) -> dx (N,in) += (= when !acc), dW/db += (full), gA/gB += (LoRA). dxa: (N,r) scratch; drop: (N,in)
// scratch.
// dyb (or NULL): dy's bf16 rows, already made (in the GEMM's input rows, lt_gemm_bf16_act, or elsewhere), for the
// fused product. xb (or NULL, only with down_h16 or xn16_fast): x in bf16 rows, read instead of x. dx16 (or NULL,
// only with down_h16 and !acc): the input gradient goes there in bf16 (dx is then only scratch). no_ga (the fused
// path only): gA is left to the caller, from dxa. x16: x holds bf16 values (xn16_sem, down_h16_sem; see ga_rows).
static void proj_backward_in(lt_model *m, int l, const lt_linear *p, float *dx, int acc, const float *dy,
                             const float *x, const float *xa, int N, float *drop, float *dxa, const uint16_t *dyb,
                             const uint16_t *xb, uint16_t *dx16, int dy16, int no_ga, int x16) {
  const lt_lora *a = p->lora;
  const float *xd = a ? lt_lora_dropout(m, l, p->id, x, drop, N, p->in, 1) : x;  // drop(x)
  int b16 = a && lora_b16(m, &m->ws.gemm, N), r2 = a ? (a->r + 1) / 2 : 0;
  uint32_t *x2 = m->ws.lora_x2, *a2 = (uint32_t *)m->ws.lora_bt;  // dxa's and A's pairs under b16
  // dy16: the LoRA terms read dy rounded to bf16, as autocast's gradients of bf16 outputs (the gate and up
  // gradients are bf16 values already): dxa and gB from its bf16 rows by bf16 products (the rows converted into the
  // GEMM's input rows when not given; the product then reads them: the conversion it would make)
  int sk = b16 && dy16 && a->out % 2 == 0;
  uint16_t *dyc = sk && !dyb ? lt_gemm_bf16_act(&m->ws.gemm, N, a->out) : NULL;
  if (dx && a && xd == x && mm_bf16(p->w, &m->ws.gemm) && epi_ok(m, &m->ws.gemm, N)) {
    // dxa first; dx = dy W (+ dx) + dxa A in one product (A is the epilogue's (r, in) matrix as stored)
    if (dyc) {  // (the product reads them too)
      lt_f32_to_bf16_n(dyc, dy, (int64_t)N * a->out);
      dyb = dyc;
    }
    if (dyb && sk && lora_dxa_skinny(m, dxa, dyb, a, N) == 0) {  // dxa and gB both from bf16 products
      if (lora_gb_bf16(m, a, dyb, xa, N) != 0)
        lt_lora_up_backward_b16(a->gB, NULL, dyb, xa, a->B, a->scale, N, a->out, a->r);
    } else if (dyb) lt_lora_up_backward_b16(a->gB, dxa, dyb, xa, a->B, a->scale, N, a->out, a->r);
    else lt_lora_up_backward(a->gB, dxa, dy, xa, a->B, a->scale, N, a->out, a->r);
    lt_gemm_epi e = {NULL, dxa, a->A, a->r, a->in, acc ? NULL : dx16, NULL, NULL, 0};
    if (b16) {
      lt_bf16_pairs_rows(x2, dxa, N, a->r);
      lt_bf16_pairs_rank(a2, a->A, a->r, a->in, 1.0f, 0);
      e = (lt_gemm_epi){NULL, NULL, NULL, 0, a->in, acc ? NULL : dx16, x2, a2, r2};
    }
    lt_gemm_nt_out o = {dx, p->w->bf, p->in, p->w->pk_nn, &e, NULL};
    if (!dyb || !lt_gemm_bf16_ex_act(&o, 1, (const uint32_t *)dyb, N, p->out, acc, 1, &m->ws.gemm))
      lt_gemm_bf16_ex(&o, 1, dy, N, p->out, acc, 1, &m->ws.gemm);
    if (no_ga) return;
    const uint16_t *xg = ga_rows(m, x, xb, x16, N, a->in);
    if (xg) lora_ga_b16(m, a, dxa, xg, N);
    else lt_lora_down_backward(a->gA, NULL, dxa, x, a->A, N, a->in, a->r, 1);
    return;
  }
  if (dx) lt_mm_backward_dx(p->w, dx, dy, N, acc, &m->ws.gemm);
  if (!a) return;
  // gB (out,r) += s dy^T xa ; dxa (N,r) = s dy B ; gA (r,in) += dxa^T drop(x) ; dx += drop'(dxa A)
  if (dyc) lt_f32_to_bf16_n(dyc, dy, (int64_t)N * a->out);
  if (sk && (dyb || dyc) && lora_dxa_skinny(m, dxa, dyb ? dyb : dyc, a, N) == 0) {  // as the fused path
    if (lora_gb_bf16(m, a, dyb ? dyb : dyc, xa, N) != 0)
      lt_lora_up_backward_b16(a->gB, NULL, dyb ? dyb : dyc, xa, a->B, a->scale, N, a->out, a->r);
  } else lt_lora_up_backward(a->gB, dxa, dy, xa, a->B, a->scale, N, a->out, a->r);
  if (b16) {
    lt_bf16_pairs_rows(x2, dxa, N, a->r);
    if (dx) lt_bf16_pairs_rank(a2, a->A, a->r, a->in, 1.0f, 0);
  }
  if (xb && !dx) {  // (xb comes only with the fused path, which takes every case with dx)
    lora_ga_b16(m, a, dxa, xb, N);
  } else if (b16) {  // gA, then dxa A in pairs (through the dropout mask when there is one)
    const uint16_t *xg = xd == x ? ga_rows(m, x, xb, x16, N, a->in) : NULL;
    if (xg) lora_ga_b16(m, a, dxa, xg, N);  // as the fused path
    else lt_lora_down_backward(a->gA, NULL, dxa, xd, a->A, N, a->in, a->r, 1);
    if (dx && xd == x) {
      lt_gemm_bf16_lora_add(dx, a->in, x2, a2, a->in, N, a->in, r2, 0);
    } else if (dx) {
      lt_gemm_bf16_lora_add(drop, a->in, x2, a2, a->in, N, a->in, r2, 1);
      lt_lora_dropout(m, l, p->id, drop, drop, N, a->in, 1);
      lt_add_inplace(dx, drop, (int64_t)N * a->in);
    }
  } else if (!dx || xd == x) {
    lt_lora_down_backward(a->gA, dx, dxa, xd, a->A, N, a->in, a->r, 1);
  } else {  // through the dropout mask: the same mask and 1/(1-p) applied to the incoming gradient
    lt_lora_down_backward(a->gA, drop, dxa, xd, a->A, N, a->in, a->r, 0);
    lt_lora_dropout(m, l, p->id, drop, drop, N, a->in, 1);
    lt_add_inplace(dx, drop, (int64_t)N * a->in);
  }
}

static void proj_backward(lt_model *m, int l, const lt_linear *p, float *dx, int acc, const float *dy, const float *x,
                          const float *xa, int N, float *drop, float *dxa, const uint16_t *dyb, const uint16_t *xb,
                          int dy16, int x16) {
  proj_backward_in(m, l, p, dx, acc, dy, x, xa, N, drop, dxa, dyb, xb, NULL, dy16, 0, x16);
  if (p->w->g || (p->b && p->b->g)) weight_grads(m, p, dy, x, N);
}

// ---- one decoder layer ----
// x_in (N,C) -> x_out (N,C); N = B*T rows at positions pos; keys/values written at rows p0.. of a->k/a->v
void lt_layer_forward(lt_model *m, int l, lt_layer_acts *a, float *x_out, int B, int T, int p0, const int32_t *pos,
                      const float *rope_tab, const uint8_t *kmask, float *xn, float *h, float *att_scratch,
                      float *drop, const lt_gemm_scratch *gs, int train) {
  const lt_config *c = &m->cfg;
  const lt_layer *L = &m->layer[l];
  int N = B * T, C = c->hidden, D = c->head_dim, H = c->heads, KV = c->kv_heads, HD = H * D, KVD = KV * D;
  float *kdst = a->k + (int64_t)p0 * KVD, *vdst = a->v + (int64_t)p0 * KVD;
  int g16_direct = 0;
  // attention block (the norm's output straight into the products' bf16 input rows when xn16_fast)
  {
    const lt_linear *p[3] = {&L->proj[LT_Q], &L->proj[LT_K], &L->proj[LT_V]};
    float *y[3] = {c->qk_norm ? a->qpre : a->q, c->qk_norm ? a->kpre : kdst, vdst};
    float *xa[3] = {a->xa[LT_Q], a->xa[LT_K], a->xa[LT_V]};
    uint16_t *xb = norm_for(m, p, 3, xn, lt_gemm_bf16_act(gs, N, C), a->rstd1, a->x_in, L->ln1, N, gs, train, 0);
    proj_forward_n(m, l, p, y, xn, xa, 3, N, drop, gs, train, xb != NULL, NULL, xb, xn16_sem(m, p, 3, train));
  }
  if (c->qk_norm) {
    lt_rmsnorm_forward(a->q, a->qrstd, a->qpre, L->qn->w, N * H, D, c->rms_eps);
    lt_rmsnorm_forward(kdst, a->krstd, a->kpre, L->kn->w, N * KV, D, c->rms_eps);
  }
  if (rope_tab) {
    lt_rope_forward_tab(a->q, rope_tab, N, H, D);
    lt_rope_forward_tab(kdst, rope_tab, N, KV, D);
  } else {
    lt_rope_forward(a->q, pos, m->inv_freq, N, H, D);
    lt_rope_forward(kdst, pos, m->inv_freq, N, KV, D);
  }
  for (int b = 0; b < B; b++) {
    int64_t kv0 = (int64_t)b * a->kv_stride * KVD;
    lt_attention_forward_ex(a->att + (int64_t)b * T * HD, a->lse + (int64_t)b * H * T, a->q + (int64_t)b * T * HD,
                            a->k + kv0, a->v + kv0, kmask ? kmask + (int64_t)b * (p0 + T) : NULL, T, p0, H, KV, D,
                            c->sliding_window, a->att_bf16, att_scratch);
  }
  {
    const lt_linear *p[1] = {&L->proj[LT_O]};
    float *y[1] = {a->x_mid}, *xa[1] = {a->xa[LT_O]};
    proj_forward_n(m, l, p, y, a->att, xa, 1, N, drop, gs, train, 0, NULL, NULL, 0);
  }
  lt_add_inplace(a->x_mid, a->x_in, (int64_t)N * C);
  // MLP block
  {
    const lt_linear *p[2] = {&L->proj[LT_GATE], &L->proj[LT_UP]};
    float *y[2] = {a->g, a->u};
    float *xa[2] = {a->xa[LT_GATE], a->xa[LT_UP]};
    uint16_t *y16[2] = {a->g16, a->u16};
    uint16_t *xb = norm_for(m, p, 2, xn, lt_gemm_bf16_act(gs, N, C), a->rstd2, a->x_mid, L->ln2, N, gs, train, 0);
    // under bf16 training with the fused epilogue the products write gate and up in bf16 themselves
    g16_direct = a->g16 && epi_ok(m, gs, N) && mm_bf16(p[0]->w, gs) && mm_bf16(p[1]->w, gs) && p[0]->in == p[1]->in;
    proj_forward_n(m, l, p, y, xn, xa, 2, N, drop, gs, train, xb != NULL, g16_direct ? y16 : NULL, xb,
                   xn16_sem(m, p, 2, train));
  }
  // under bf16 training SwiGLU also writes h's bf16 copy straight into the down product's input rows
  uint16_t *hb = a->g16 && c->ffn % 32 == 0 ? lt_gemm_bf16_act(gs, N, c->ffn) : NULL;
  // ... and then only there when the down projection takes h in bf16 alone
  int h16 = g16_direct && hb && down_h16(m, a, &L->proj[LT_DOWN], gs, N, train);
  if (g16_direct) lt_swiglu_forward_bh(h16 ? NULL : h, hb, a->g16, a->u16, N * c->ffn);
  else if (a->g16) lt_swiglu_forward_keep(h, hb, a->g16, a->u16, a->g, a->u, N * c->ffn);
  else lt_swiglu_forward(h, a->g, a->u, N * c->ffn);
  if (!h16 && L->proj[LT_DOWN].lora && down_h16_sem(m, a, &L->proj[LT_DOWN], train))
    lt_round_bf16(h, (int64_t)N * c->ffn);
  {
    const lt_linear *p[1] = {&L->proj[LT_DOWN]};
    float *y[1] = {x_out}, *xa[1] = {a->xa[LT_DOWN]};
    proj_forward_n(m, l, p, y, h, xa, 1, N, drop, gs, train, hb != NULL, NULL, h16 ? hb : NULL,
                   p[0]->lora && down_h16_sem(m, a, p[0], train));
  }
  lt_add_inplace(x_out, a->x_mid, (int64_t)N * C);
}

// dx (N,C): dL/dx_out on entry, dL/dx_in on return.
static void layer_backward(lt_model *m, int l, lt_layer_acts *a, int B, int T) {
  lt_workspace *ws = &m->ws;
  const lt_config *c = &m->cfg;
  const lt_layer *L = &m->layer[l];
  int N = B * T, C = c->hidden, D = c->head_dim, H = c->heads, KV = c->kv_heads, HD = H * D, KVD = KV * D,
      F = c->ffn;
  float *dx = ws->dx;
  // MLP block: recompute xn2 (bf16 rows in xn's storage when xn16_fast) and h (for the down projection's LoRA or
  // weight gradients; in bf16 when down_h16)
  const lt_linear *pgu[2] = {&L->proj[LT_GATE], &L->proj[LT_UP]};
  const uint16_t *xnb2 =
      norm_for(m, pgu, 2, ws->xn, (uint16_t *)ws->xn, a->rstd2, a->x_mid, L->ln2, N, &ws->gemm, 1, 1);
  int xs2 = xn16_sem(m, pgu, 2, 1);
  const lt_linear *pd = &L->proj[LT_DOWN], *pg = &L->proj[LT_GATE], *pu = &L->proj[LT_UP];
  int h16 = pd->lora && down_h16(m, a, pd, &ws->gemm, N, 1);
  // SwiGLU's backward writes dg's copy into the gate product's input rows, du's into h's storage (free by then) for
  // the up product when its fused LoRA path will read it.
  uint16_t *dgb = a->g16 && F % 32 == 0 ? lt_gemm_bf16_act(&ws->gemm, N, F) : NULL;
  uint16_t *dub = dgb && pu->lora && !lt_lora_has_dropout(m) && mm_bf16(pu->w, &ws->gemm) && epi_ok(m, &ws->gemm, N)
                      ? (uint16_t *)ws->h
                      : NULL;
  // Under bf16 training the gate and up LoRA terms read dg, du rounded to bf16 (autocast's gradients of bf16
  // outputs): from dgb, dub on the fused path, which then needs no f32 copies at all; else rounded in place.
  int lora16 = a->g16 && !lt_lora_has_dropout(m);
  int only16 = dgb && dub && lora16 && pg->lora && mm_bf16(pg->w, &ws->gemm) && !pg->w->g && !(pg->b && pg->b->g) &&
               !pu->w->g && !(pu->b && pu->b->g);
  // h in bf16 (down_h16): made by that same SwiGLU pass, into dg's storage (unused then), when it makes the bf16
  // copies alone; the down projection's gA waits for it. Otherwise recomputed here into h's storage.
  int hlate = h16 && only16 && lt_cpu_has_avx512bf16();
  uint16_t *hb = h16 ? (uint16_t *)(hlate ? (void *)ws->dg : (void *)ws->h) : NULL;
  if (h16 && !hlate) lt_swiglu_forward_bh(NULL, hb, a->g16, a->u16, N * F);
  else if (!h16 && (pd->lora || pd->w->g || (pd->b && pd->b->g))) {
    if (a->g16) lt_swiglu_forward_b(ws->h, a->g16, a->u16, N * F);
    else lt_swiglu_forward(ws->h, a->g, a->u, N * F);
    if (pd->lora && down_h16_sem(m, a, pd, 1)) lt_round_bf16(ws->h, (int64_t)N * F);
  }
  // ... and its input gradient dh: in bf16 (as autocast's) when h is, into the second half of h's storage
  uint16_t *dh16 = h16 ? (uint16_t *)ws->h + (int64_t)N * F : NULL;
  proj_backward_in(m, l, pd, ws->dh, 0, dx, ws->h, a->xa[LT_DOWN], N, ws->drop, ws->dxa, NULL, hlate ? NULL : hb, dh16,
                   0, hlate, down_h16_sem(m, a, pd, 1));
  if (pd->w->g || (pd->b && pd->b->g)) weight_grads(m, pd, dx, ws->h, N);  // (f32 h: down_h16 excludes this)
  if (!h16 && pd->lora && down_h16_sem(m, a, pd, 1)) lt_round_bf16(ws->dh, (int64_t)N * F);
  if (hlate) {
    lt_swiglu_backward_b16h(dgb, dub, hb, dh16, a->g16, a->u16, N * F);
    lora_ga_b16(m, pd->lora, ws->dxa, hb, N);
  } else if (a->g16) {
    lt_swiglu_backward_b2(only16 ? NULL : ws->dg, dgb, only16 ? NULL : ws->du, dub, ws->dh, dh16, a->g16, a->u16,
                          N * F);
  } else {
    lt_swiglu_backward_ex(ws->dg, ws->du, ws->dh, a->g, a->u, N * F, 0);
  }
  if (lora16 && !only16 && (pg->lora || pu->lora)) {
    lt_round_bf16(ws->dg, (int64_t)N * F);
    lt_round_bf16(ws->du, (int64_t)N * F);
  }
  proj_backward(m, l, &L->proj[LT_GATE], ws->dxn, 0, ws->dg, ws->xn, a->xa[LT_GATE], N, ws->drop, ws->dxa, dgb,
                xnb2, lora16, xs2);
  proj_backward(m, l, pu, ws->dxn, 1, ws->du, ws->xn, a->xa[LT_UP], N, ws->drop, ws->dxa, dub, xnb2, lora16, xs2);
  lt_rmsnorm_backward(dx, L->ln2->g, ws->dxn, a->x_mid, L->ln2->w, a->rstd2, N, C);
  // attention block
  const lt_linear *pqkv[3] = {&L->proj[LT_Q], &L->proj[LT_K], &L->proj[LT_V]};
  const uint16_t *xnb1 =
      norm_for(m, pqkv, 3, ws->xn, (uint16_t *)ws->xn, a->rstd1, a->x_in, L->ln1, N, &ws->gemm, 1, 1);
  int xs1 = xn16_sem(m, pqkv, 3, 1);
  // (the o, q, k and v LoRA terms read their gradients rounded to bf16 too: lora16)
  proj_backward(m, l, &L->proj[LT_O], ws->datt, 0, dx, a->att, a->xa[LT_O], N, ws->drop, ws->dxa, NULL, NULL, lora16,
                0);
  lt_zero(ws->dq, (int64_t)N * HD);
  lt_zero(ws->dk, (int64_t)N * KVD);
  lt_zero(ws->dv, (int64_t)N * KVD);
  for (int b = 0; b < B; b++) {
    int64_t o = (int64_t)b * T * HD, kv = (int64_t)b * T * KVD;
    lt_attention_backward_ex(ws->dq + o, ws->dk + kv, ws->dv + kv, ws->datt + o, a->att + o,
                             a->lse + (int64_t)b * H * T, a->q + o, a->k + kv, a->v + kv, ws->kmask + (int64_t)b * T, T,
                             0, H, KV, D, c->sliding_window, a->att_bf16, ws->att_scratch);
  }
  lt_rope_backward_tab(ws->dq, ws->rope_tab, N, H, D);
  lt_rope_backward_tab(ws->dk, ws->rope_tab, N, KV, D);
  float *dq = ws->dq, *dk = ws->dk;
  if (c->qk_norm) {  // datt is free now: it takes dL/dqpre; dh takes dL/dkpre
    memset(ws->datt, 0, FL((int64_t)N * HD));
    memset(ws->dh, 0, FL((int64_t)N * KVD));
    lt_rmsnorm_backward(ws->datt, L->qn->g, ws->dq, a->qpre, L->qn->w, a->qrstd, N * H, D);
    lt_rmsnorm_backward(ws->dh, L->kn->g, ws->dk, a->kpre, L->kn->w, a->krstd, N * KV, D);
    dq = ws->datt;
    dk = ws->dh;
  }
  // the first layer's input gradient only feeds a trainable embedding (the norm's own gradient needs it too)
  float *dxn = l > 0 || m->embed->g || L->ln1->g ? ws->dxn : NULL;
  proj_backward(m, l, &L->proj[LT_Q], dxn, 0, dq, ws->xn, a->xa[LT_Q], N, ws->drop, ws->dxa, NULL, xnb1, lora16,
                xs1);
  proj_backward(m, l, &L->proj[LT_K], dxn, 1, dk, ws->xn, a->xa[LT_K], N, ws->drop, ws->dxa, NULL, xnb1, lora16,
                xs1);
  proj_backward(m, l, &L->proj[LT_V], dxn, 1, ws->dv, ws->xn, a->xa[LT_V], N, ws->drop, ws->dxa, NULL, xnb1,
                lora16, xs1);
  if (dxn) lt_rmsnorm_backward(dx, L->ln1->g, dxn, a->x_in, L->ln1->w, a->rstd1, N, C);
}

static int check_batch(const lt_model *m, const int32_t *ids, const int32_t *mask, const int32_t *labels, int B, int T,
                       lt_err *err) {
  if (B <= 0 || T <= 0) return lt_errf(err, "batch shape %d x %d must be positive", B, T);
  if ((int64_t)B * T > (1 << 26)) return lt_errf(err, "batch of %d x %d tokens is too large", B, T);
  for (int64_t i = 0; i < (int64_t)B * T; i++) {
    if (ids[i] < 0 || ids[i] >= m->cfg.vocab)
      return lt_errf(err, "token id %d at batch row %lld, position %lld is outside the vocabulary [0, %d)", ids[i],
                     (long long)(i / T), (long long)(i % T), m->cfg.vocab);
    if (labels && labels[i] != -100 && (labels[i] < 0 || labels[i] >= m->cfg.vocab))
      return lt_errf(err, "label %d at batch row %lld, position %lld is neither -100 nor a token id", labels[i],
                     (long long)(i / T), (long long)(i % T));
    if (mask && mask[i] != 0 && mask[i] != 1)
      return lt_errf(err, "attention mask value %d at batch row %lld must be 0 or 1", mask[i], (long long)(i / T));
  }
  return 0;
}

// Sum of the token losses over valid shifted labels (*sum, *n_valid_out); gradients scaled by 1/denom, or by
// 1/n_valid when denom <= 0 (the mean loss).
static int loss_impl(lt_model *m, const int32_t *ids, const int32_t *mask, const int32_t *labels, int B, int T,
                     int backward, double denom, double *loss_sum, int *n_valid_out, lt_err *err) {
  *loss_sum = 0.0;
  if (n_valid_out) *n_valid_out = 0;
  if (!labels) return lt_errf(err, "labels are required for the loss");
  if (check_batch(m, ids, mask, labels, B, T, err)) return -1;
  if (backward && m->mode == LT_TRAIN_FROZEN) return lt_errf(err, "nothing to train: the model is frozen");
  if (lt_model_prepare(m, err) || lt_ws_reserve(m, B, T, err)) return -1;
  // Training in bf16: the LM head (the largest matrix, used by two products per row chunk) is packed once.
  if (backward && m->ws.gemm.buf && m->lm_head->bf && !m->lm_head->g && lt_cpu_has_avx512bf16() &&
      lt_param_pack(m->lm_head, err))
    return -1;
  // ... and every layer's frozen matrices once, in the NN form (the forward builds its panels from it) and where
  // lt_model_pack_nt says so (every one for short steps, some for longer ones) the NT form too: the products stop
  // packing them, and the mapped originals leave memory (the packed copies take their place)
  if (backward && m->ws.gemm.buf && lt_cpu_has_avx512bf16()) {
    for (int l = 0; l < m->cfg.layers; l++)
      for (int j = 0; j < 7; j++) {
        lt_param *w = m->layer[l].proj[j].w;
        int nt = lt_model_pack_nt(m, (int64_t)B * T, j);
        if (w && w->bf && !w->g && w->ndim == 2 && (nt ? lt_param_pack(w, err) : lt_param_pack_nn(w, err)))
          return -1;
      }
  }
  lt_workspace *ws = &m->ws;
  const lt_config *c = &m->cfg;
  int N = B * T, C = c->hidden;
  int n_valid = 0;
  for (int i = 0; i < N; i++) {
    int t = i % T;
    ws->pos[i] = t;
    ws->kmask[i] = mask ? (uint8_t)mask[i] : 1;
    ws->targets[i] = t + 1 < T ? labels[i + 1] : -100;  // transformers shifts labels left by one
    if (ws->targets[i] != -100) n_valid++;
  }
  lt_rope_table(ws->rope_tab, ws->pos, m->inv_freq, N, c->head_dim);
  lt_embed_lookup(m->embed, ws->acts[0].x_in, ids, N);
  for (int l = 0; l < c->layers; l++) {
    float *x_out = l + 1 < c->layers ? ws->acts[l + 1].x_in : ws->x_out;
    lt_layer_forward(m, l, &ws->acts[l], x_out, B, T, 0, ws->pos, ws->rope_tab, ws->kmask, ws->xn, ws->h,
                     ws->att_scratch, ws->drop, &ws->gemm, backward);
  }
  lt_rmsnorm_forward(ws->xnf, ws->rstdf, ws->x_out, m->norm->w, N, C, c->rms_eps);
  if (n_valid == 0) {
    m->step++;
    return 0;  // nothing to learn from this batch: loss 0, no gradient
  }
  // The LM head only runs on rows with a label (the last position never has one; in SFT the prompt rows drop out
  // too): gather them into ws->xn, compute loss and dL/dx there (into ws->dx), scatter the gradient into ws->dxn.
  if (n_valid_out) *n_valid_out = n_valid;
  float scale = denom > 0 ? (float)(1.0 / denom) : 1.0f / (float)n_valid;
  int32_t *rows = ws->pos;  // positions are not needed until backward: reuse as the row index
  for (int i = 0, k = 0; i < N; i++)
    if (ws->targets[i] != -100) {
      memcpy(ws->xn + (int64_t)k * C, ws->xnf + (int64_t)i * C, FL(C));
      rows[k] = i;
      ws->targets[k++] = ws->targets[i];
    }
  if (backward) memset(ws->dx, 0, FL((int64_t)n_valid * C));
  const lt_param *hw = m->lm_head;
  const uint16_t *hbf = ws->gemm.buf && hw->bf && (!hw->g || hw->bf_shadow) ? hw->bf : NULL;
  const uint32_t *hpk[2] = {hbf ? hw->pk_nt : NULL, hbf ? hw->pk_nn : NULL};
  double sum = lt_lmhead_ce_ex(backward ? ws->dx : NULL, backward ? hw->g : NULL, ws->xn, hw->w, hbf, hpk, &ws->gemm,
                               ws->targets, n_valid, C, c->vocab, scale, ws->ce_scratch, ws->ce_chunk);
  *loss_sum = sum;
  if (backward) {
    memset(ws->dxn, 0, FL((int64_t)N * C));
    for (int k = 0; k < n_valid; k++) memcpy(ws->dxn + (int64_t)rows[k] * C, ws->dx + (int64_t)k * C, FL(C));
    for (int i = 0; i < N; i++) ws->pos[i] = i % T;  // restored: layer backward applies RoPE at these positions
    memset(ws->dx, 0, FL((int64_t)N * C));
    lt_rmsnorm_backward(ws->dx, m->norm->g, ws->dxn, ws->x_out, m->norm->w, ws->rstdf, N, C);
    for (int l = c->layers - 1; l >= 0; l--) {
      // checkpointing: refill the shared activations from the layer's input (the last layer's are still there);
      // ws->x_out is free once the final norm's backward has run
      if (m->grad_ckpt && l + 1 < c->layers)
        lt_layer_forward(m, l, &ws->acts[l], ws->x_out, B, T, 0, ws->pos, ws->rope_tab, ws->kmask, ws->xn, ws->h,
                         ws->att_scratch, ws->drop, &ws->gemm, 1);
      layer_backward(m, l, &ws->acts[l], B, T);
    }
    if (m->embed->g) {  // transformers' nn.Embedding(padding_idx=pad_token_id) gives the pad row no gradient
      for (int i = 0; i < N; i++)
        if (ids[i] != c->pad_id) lt_add_inplace(m->embed->g + (int64_t)ids[i] * C, ws->dx + (int64_t)i * C, C);
    }
  }
  m->step++;
  return 0;
}

int lt_model_loss(lt_model *m, const int32_t *ids, const int32_t *mask, const int32_t *labels, int B, int T,
                  int backward, float *loss, lt_err *err) {
  double sum;
  int n_valid;
  *loss = 0.0f;
  if (loss_impl(m, ids, mask, labels, B, T, backward, 0.0, &sum, &n_valid, err)) return -1;
  *loss = n_valid ? (float)(sum / n_valid) : 0.0f;
  return 0;
}

int lt_model_loss_sum(lt_model *m, const int32_t *ids, const int32_t *mask, const int32_t *labels, int B, int T,
                      int backward, double denom, double *loss_sum, int *n_valid, lt_err *err) {
  if (!(denom > 0)) {
    *loss_sum = 0.0;
    if (n_valid) *n_valid = 0;
    return lt_errf(err, "loss denominator %g must be positive", denom);
  }
  return loss_impl(m, ids, mask, labels, B, T, backward, denom, loss_sum, n_valid, err);
}
