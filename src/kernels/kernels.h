// Kernels: each op's forward and backward side by side. All tensors are f32, row-major, contiguous unless a
// stride is given. Conventions: backward functions ACCUMULATE (+=) into every gradient they are given
// (dx, dw, db ...); any gradient pointer may be NULL to skip it. Shapes in the comment above each pair.
#ifndef LT_KERNELS_H
#define LT_KERNELS_H
#include <stdint.h>

#include "kernels/gemm.h"

// ---- linear (BLAS) ----
// x (N,C), w (OC,C), b (OC) or NULL -> y (N,OC) = x w^T + b ; y is overwritten (beta=0) unless accumulate
void lt_linear_forward(float *y, const float *x, const float *w, const float *b, int N, int C, int OC, int accumulate);
// dy (N,OC) -> dx (N,C) += dy w ; dw (OC,C) += dy^T x ; db (OC) += sum_n dy
void lt_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int N, int C,
                        int OC);

// ---- LoRA's low-rank products (f32; AVX-512 kernels, OpenBLAS otherwise) ----
// x (N,in), A (r,in) -> xa (N,r) = x A^T
void lt_lora_xa(float *xa, const float *x, const float *A, int N, int in, int r);
// xa (N,r), B (out,r) -> y (N,out) += s xa B^T
void lt_lora_up(float *y, const float *xa, const float *B, float s, int N, int out, int r);
// dy (N,out) -> gB (out,r) += s dy^T xa ; dxa (N,r) = s dy B (dxa NULL: gB alone)
void lt_lora_up_backward(float *gB, float *dxa, const float *dy, const float *xa, const float *B, float s, int N,
                         int out, int r);
// dxa (N,r) -> gA (r,in) += dxa^T x ; dx (N,in) (+)= dxa A (overwritten unless accumulate; dx may be NULL)
void lt_lora_down_backward(float *gA, float *dx, const float *dxa, const float *x, const float *A, int N, int in,
                           int r, int accumulate);
// The same products with x given in bf16 (rows of in values, widened exactly; f32 arithmetic): xa = x A^T, and
// gA (r,in) += dxa^T x alone (the input gradient then rides in the GEMM's epilogue)
void lt_lora_xa_b16(float *xa, const uint16_t *x, const float *A, int N, int in, int r);
void lt_lora_grad_a_b16(float *gA, const float *dxa, const uint16_t *x, int N, int in, int r);
// lt_lora_up_backward with dy given in bf16 rows (N, out), widened exactly (the AVX-512 path gives the bits
// lt_lora_up_backward gives on the widened values); dxa NULL: gB alone
void lt_lora_up_backward_b16(float *gB, float *dxa, const uint16_t *dyb, const float *xa, const float *B, float s,
                             int N, int out, int r);
// gB (out,r) += s dyb^T xa as bf16 products with f32 sums (vdpbf16ps over pairs of rows), for xa holding bf16
// values (LoRA under bf16 compute): xa's pairs of rows are built in xp (ceil(N/2) x r values of 32 bits within
// xp_bytes). 0 when done; -1 (gB untouched) without AVX512-BF16 or with xp too small.
int lt_lora_grad_b_bf16(float *gB, const uint16_t *dyb, const float *xa, float s, int N, int out, int r, uint32_t *xp,
                        size_t xp_bytes);
// gA (r,in) += dxa^T xb the same way, for dxa holding bf16 values: dxa's pairs of rows in xp (as above)
int lt_lora_grad_a_bf16(float *gA, const uint16_t *xb, const float *dxa, int N, int in, int r, uint32_t *xp,
                        size_t xp_bytes);

// ---- embedding ----
// ids (N), wte (V,C) -> out (N,C)
void lt_embedding_forward(float *out, const int32_t *ids, const float *wte, int N, int C);
// dout (N,C) -> dwte (V,C) += scatter
void lt_embedding_backward(float *dwte, const float *dout, const int32_t *ids, int N, int C);

// ---- RMSNorm (as transformers LlamaRMSNorm: y = w * (x * rsqrt(mean(x^2) + eps))) ----
// x (N,C), w (C) -> y (N,C), rstd (N)
void lt_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int N, int C, float eps);
// The same with y also (or only: y NULL) in bf16 rows yb (2 * ceil(C/2) values per row), rounded as the bf16 GEMM's
// input conversion rounds: the next product's input rows. AVX512-BF16 only.
void lt_rmsnorm_forward_b16(float *y, uint16_t *yb, float *rstd, const float *x, const float *w, int N, int C,
                            float eps);
// dy (N,C) -> dx (N,C) +=, dw (C) +=
void lt_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd, int N,
                         int C);

// ---- RoPE (rotate_half convention: pairs (i, i + D/2)) ----
// angle(p, i) = (float)p * inv_freq[i], computed in f32 as transformers does.
// x (N, nh, D) rotated in place at positions pos (N)
void lt_rope_forward(float *x, const int32_t *pos, const float *inv_freq, int N, int nh, int D);
// dx (N, nh, D) in place: applies the inverse rotation (the transpose), turning dy into dx
void lt_rope_backward(float *dx, const int32_t *pos, const float *inv_freq, int N, int nh, int D);
// The cosines of the angles at positions pos (N) as those two take them, tab[n * D/2 + i], then the sines at
// tab[(N + n) * D/2 + i] (2 * N * D/2 floats), and the two rotations reading them (the same bits)
void lt_rope_table(float *tab, const int32_t *pos, const float *inv_freq, int N, int D);
void lt_rope_forward_tab(float *x, const float *tab, int N, int nh, int D);
void lt_rope_backward_tab(float *dx, const float *tab, int N, int nh, int D);

// ---- SwiGLU: h = silu(g) * u ----
// g (n), u (n) -> h (n)
void lt_swiglu_forward(float *h, const float *g, const float *u, int n);
// dh (n) -> dg (n) +=, du (n) +=
void lt_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int n);
// the same, overwriting dg and du instead when !accumulate (no zeroing pass first)
void lt_swiglu_backward_ex(float *dg, float *du, const float *dh, const float *g, const float *u, int n,
                           int accumulate);
// Gate and up kept in bf16 (training under bf16 compute): g16, u16 (n) = bf16(g), bf16(u) (nearest even) and h (n)
// from the rounded values; h recomputed from them; dg, du (n) = (not +=) the gradients at them. Each gives the bits
// the f32 function gives on the widened values. hb, dgb (optional): h, dg also in bf16, rounded as the bf16 GEMM
// rounds its input (lt_gemm_bf16_act rows when the row length is a multiple of 32), for the next product.
void lt_swiglu_forward_keep(float *h, uint16_t *hb, uint16_t *g16, uint16_t *u16, const float *g, const float *u,
                            int n);
void lt_swiglu_forward_b(float *h, const uint16_t *g16, const uint16_t *u16, int n);
// The same into h (when not NULL) and/or hb = h in bf16 (the GEMM's input rows; with AVX512-BF16 rounded by its
// conversion instruction; without it hb needs h)
void lt_swiglu_forward_bh(float *h, uint16_t *hb, const uint16_t *g16, const uint16_t *u16, int n);
void lt_swiglu_backward_b(float *dg, uint16_t *dgb, float *du, const float *dh, const uint16_t *g16,
                          const uint16_t *u16, int n);
// The same, and dub (optional) = du in bf16, rounded as dgb; dh16 (optional): dh in bf16, read instead of dh (dh is
// then scratch for its widening when the fast path is not available). dg and du may both be NULL (only the bf16
// copies wanted) when dgb and dub are given and the CPU has AVX512-BF16.
void lt_swiglu_backward_b2(float *dg, uint16_t *dgb, float *du, uint16_t *dub, float *dh, const uint16_t *dh16,
                           const uint16_t *g16, const uint16_t *u16, int n);
// dgb, dub only, from dh16, and hb = h in bf16 (lt_swiglu_forward_bh's bits), in one pass: -1 (nothing done) without
// AVX512-BF16
int lt_swiglu_backward_b16h(uint16_t *dgb, uint16_t *dub, uint16_t *hb, const uint16_t *dh16, const uint16_t *g16,
                            const uint16_t *u16, int n);

// ---- causal self-attention for one sequence, grouped-query ----
// q (T, H*D) rows are queries at positions p0..p0+T-1; k, v (L, KV*D) with L = p0 + T keys at positions 0..L-1.
// Causal; kmask (L) optional (0 = padding key, excluded); window > 0 keeps only keys with qpos - kpos < window.
// Scale 1/sqrt(D). Head h reads kv head h / (H/KV). -> out (T, H*D), lse (H, T) log-sum-exp of each score row.
// scratch: at least lt_attention_scratch(T, L) floats (forward and backward); the size is
// omp_get_max_threads() * 2 * min(T, 64) * L, so size it under the same OpenMP thread setting as the calls.
// Rows with no visible key give zeros and lse = -inf.
int64_t lt_attention_scratch(int T, int L);
// The same for the _ex functions (bf16 = 1: products in bf16 when the CPU has AVX512-BF16, f32 otherwise).
int64_t lt_attention_scratch_ex(int T, int L, int H, int KV, int D, int bf16);
void lt_attention_forward_ex(float *out, float *lse, const float *q, const float *k, const float *v,
                             const uint8_t *kmask, int T, int p0, int H, int KV, int D, int window, int bf16,
                             float *scratch);
void lt_attention_backward_ex(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                              const float *q, const float *k, const float *v, const uint8_t *kmask, int T, int p0,
                              int H, int KV, int D, int window, int bf16, float *scratch);
void lt_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const uint8_t *kmask,
                          int T, int p0, int H, int KV, int D, int window, float *scratch);
// dout (T, H*D) -> dq (T, H*D) +=, dk (L, KV*D) +=, dv (L, KV*D) += ; recomputes probabilities from lse.
void lt_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                           const float *q, const float *k, const float *v, const uint8_t *kmask, int T, int p0, int H,
                           int KV, int D, int window, float *scratch);

// ---- cross-entropy over logits ----
// logits (N,V), targets (N) (-100 = ignored) -> losses (N) (0 where ignored); returns the number of valid rows
int lt_crossentropy_forward(float *losses, const float *logits, const int32_t *targets, int N, int V);
// dlogits (N,V) += scale * (softmax(logits) - onehot(target)) for valid rows
void lt_crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets, int N, int V, float scale);

// ---- fused LM head + cross-entropy, chunked over rows (never a full (N,V) logits buffer) ----
// x (N,C), w (V,C), targets (N) -> returns the summed loss over valid rows. If dx or dw is given, accumulates
// dx (N,C) += scale * dlogits w and dw (V,C) += scale * dlogits^T x. scratch: chunk * V floats.
double lt_lmhead_ce(float *dx, float *dw, const float *x, const float *w, const int32_t *targets, int N, int C, int V,
                    float scale, float *scratch, int chunk);
// The same with the LM head's products in bf16 (wbf: its bf16 values) through the bf16 GEMM, and the loss on the
// logits rounded to bf16 (autocast's bf16 LM head output, widened by the loss): with dL/dx alone, or no gradient,
// the product writes them in bf16 alone; otherwise they are rounded as read, the same values. wpk: NULL, or
// {NT, NN} pre-packed forms of wbf (either NULL).
double lt_lmhead_ce_ex(float *dx, float *dw, const float *x, const float *w, const uint16_t *wbf,
                       const uint32_t *const *wpk, const lt_gemm_scratch *gs, const int32_t *targets, int N, int C, int V, float scale,
                       float *scratch, int chunk);

// ---- AdamW (torch.optim.AdamW semantics) ----
// w, g, m, v (n); vmax (n) or NULL (amsgrad when given); t = step number starting at 1. Decoupled decay
// w -= lr*wd*w first; denom = sqrt(v or vmax)/sqrt(1 - beta2^t) + eps; w -= lr/(1 - beta1^t) * m / denom.
#define LT_ADAMW_PAR (1 << 15)  // lt_adamw_step runs multi-threaded above this many elements
void lt_adamw_step(float *w, const float *g, float *m, float *v, float *vmax, int64_t n, float lr, float beta1,
                   float beta2, float eps, float weight_decay, int64_t t);

// ---- elementwise helpers ----
void lt_zero(float *x, int64_t n);                                    // x = 0 (multi-threaded)
void lt_add_inplace(float *y, const float *x, int64_t n);            // y += x
void lt_scale_add(float *y, const float *x, float a, int64_t n);     // y += a x
void lt_add_bias(float *y, const float *b, int N, int C);            // y (N,C) += b (C)
void lt_round_bf16(float *x, int64_t n);                              // x = bf16(x) in f32 storage

#endif
