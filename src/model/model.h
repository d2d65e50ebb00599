// model: config, weights, trainable registry, LoRA, the decoder forward/backward, KV cache.
#ifndef LT_MODEL_H
#define LT_MODEL_H
#include <stdint.h>
#include "core/core.h"
#include "io/safetensors.h"
#include "kernels/gemm.h"

typedef enum { LT_ARCH_LLAMA = 0, LT_ARCH_QWEN2, LT_ARCH_QWEN3, LT_ARCH_MISTRAL } lt_arch;
typedef enum { LT_ROPE_DEFAULT = 0, LT_ROPE_LINEAR, LT_ROPE_LLAMA3 } lt_rope_type;

#define LT_MAX_EOS 8

typedef struct lt_config {
  lt_arch arch;
  char architecture[64];
  char model_type[32];
  int vocab, hidden, layers, heads, kv_heads, head_dim, ffn, max_pos;
  float rms_eps, rope_theta;
  lt_rope_type rope_type;
  float rope_factor, rope_low_freq, rope_high_freq;
  int rope_orig_max_pos;
  int tied;
  int qkv_bias, o_bias, mlp_bias, qk_norm;
  int sliding_window;  // 0 = none
  int bos_id, pad_id;
  float init_std;  // initializer_range (0 or absent: 0.02), used by lt_model_init
  int n_eos;
  int32_t eos[LT_MAX_EOS];
} lt_config;

// Parse config.json (and generation_config.json when present) from a model folder.
int lt_config_load(lt_config *c, const char *dir, lt_err *err);
// inv_freq (head_dim/2) for the config's RoPE variant, as transformers computes it.
void lt_rope_inv_freq(const lt_config *c, float *inv_freq);

// A base weight: stored tensor (mmap view) plus an f32 view used for compute.
typedef struct lt_param {
  char name[112];
  int ndim;
  int64_t shape[2];
  int64_t numel;
  lt_dtype dtype;          // stored dtype
  const lt_st_tensor *st;  // stored tensor; NULL for a new model (lt_model_init), whose w is always owned
  float *w;                // f32 values: the mapping itself (F32, aligned), an owned copy, or NULL
  int owned;               // w is ours to free
  const uint16_t *bf;      // bf16 values for bf16 compute: the mapping itself (BF16) or an owned copy
  int bf_owned;
  int bf_shadow;           // bf is a bf16 copy of the trainable f32 w, refreshed before use when m->bf_stale
  float *g;                // gradient (full fine-tuning only)
  uint32_t *pk_nt, *pk_nn; // bf packed for the bf16 GEMM (lt_bf16_prepack) while training, or NULL
} lt_param;

typedef struct lt_lora {
  char nameA[160], nameB[160];  // PEFT keys
  int r, in, out;
  float scale;
  float *A, *B;    // A (r,in), B (out,r)
  float *gA, *gB;  // gradients
} lt_lora;

typedef struct lt_linear {
  lt_param *w;     // (out,in)
  lt_param *b;     // (out) or NULL
  lt_lora *lora;   // or NULL
  int in, out;
  int id;          // 0..6: q,k,v,o,gate,up,down
} lt_linear;

typedef struct lt_layer {
  lt_param *ln1, *ln2, *qn, *kn;
  lt_linear proj[7];  // q, k, v, o, gate, up, down
} lt_layer;

enum { LT_Q = 0, LT_K, LT_V, LT_O, LT_GATE, LT_UP, LT_DOWN };

typedef struct lt_trainable {
  const char *name;
  float *w, *g;
  int64_t numel;
  int64_t shape[2];
  int decay;  // weight decay applies (not to biases and norms)
} lt_trainable;

// Per-layer activations kept for backward (training) or reused scratch (inference).
typedef struct lt_layer_acts {
  float *x_in;   // (N,C) residual input
  float *x_mid;  // (N,C) residual after attention
  float *rstd1, *rstd2;  // (N)
  float *qpre, *kpre;    // (N,H*D), (N,KV*D) before q/k norm (qk_norm only)
  float *qrstd, *krstd;  // (N*H), (N*KV)
  float *q;      // (N,H*D) after norm + rope
  float *k, *v;  // base of (rows, KV*D) storage; batch b uses rows from b*kv_stride
  int64_t kv_stride;  // rows between batch elements (T in training, 0 with a cache)
  int att_bf16;       // attention products in bf16 (training under bf16 compute)
  float *att;    // (N,H*D) attention output (input of o_proj)
  float *lse;    // (B,H,T)
  float *g, *u;  // (N,F); under bf16 training, the shared f32 outputs of the products (ws->dg, ws->du)
  uint16_t *g16, *u16;  // (N,F) gate and up kept in bf16 for backward (bf16 training), else NULL
  float *xa[7];  // LoRA intermediates (N,r)
} lt_layer_acts;

typedef struct lt_workspace {
  int B, T;           // shape the training buffers were sized for
  int threads;        // OpenMP threads the per-thread scratch was sized for
  int ckpt, has_drop; // sized for activation checkpointing / with the LoRA dropout buffer
  int64_t bytes;
  lt_layer_acts *acts;  // per layer
  float *x_out, *xnf, *rstdf;  // final residual, final norm output, its rstd
  // shared scratch
  float *xn, *h, *drop;  // (N,C), (N,F), (N,max(in))
  float *att_scratch;
  float *ce_scratch;
  int ce_chunk;
  // backward scratch
  float *dx, *dxn, *datt, *dq, *dk, *dv, *dg, *du, *dh, *dxa;
  float *lora_bt;  // 3 slots of lora_bt_slot floats: s * B^T (r, out) of up to three LoRA projections (forward.c),
                   // or in bf16 pairs along r (r/2, out) (and A's pairs (r/2, in) in backward) under lora_b16
  uint32_t *lora_x2;  // 3 slots of N * ((r + 1) / 2): xa (or dxa) in bf16 pairs along r, under lora_b16
  uint32_t *lora_w2;  // A or B in bf16 pairs along its long side ((features + 1) / 2, r), under lora_b16
  int64_t lora_bt_slot;
  int no_epilogue;  // LMTUNE_NO_FUSED_EPILOGUE was set at reservation: bias and LoRA terms as separate passes
  int32_t *targets, *pos;
  float *rope_tab;  // RoPE's cosines and sines at pos (lt_rope_table), made once per step
  uint8_t *kmask;
  lt_gemm_scratch gemm;
  void *block;   // single allocation backing everything above
} lt_workspace;

struct lt_model {
  lt_config cfg;
  char dir[4096];
  lt_weights weights;
  int nparams;
  lt_param *params;
  lt_param *embed, *norm, *lm_head;  // lm_head == embed when tied
  lt_layer *layer;
  float *inv_freq;
  lt_compute compute;
  int grad_ckpt;    // activation checkpointing (lt_model_set_grad_checkpointing)
  int views_ready;  // f32/bf16 views match compute and train mode
  int bf_stale;     // trainable values changed since their bf16 copies were made
  lt_train_mode mode;
  lt_lora_config lora_cfg;
  lt_lora *loras;  // layers * 7 slots, r == 0 when absent
  int ntrain;
  lt_trainable *train;
  uint64_t step;   // dropout stream counter
  lt_workspace ws;
};

struct lt_kvcache {
  int max_len, len, layers;
  int threads;  // OpenMP threads the per-thread scratch was sized for
  int64_t kvd;
  float *k, *v;  // (layers, max_len, KV*D)
  // inference scratch for up to `chunk` rows
  int chunk;
  lt_layer_acts acts;
  float *xn, *h, *ybuf, *att_scratch, *x, *xnf;
  int32_t *pos;
  lt_gemm_scratch gemm;
  void *block;
};

// model.c: lt_model_init with only the first `layers` decoder layers (layers <= 0: all), for measurements.
int lt_model_init_layers(lt_model **out, const char *dir, int layers, uint64_t seed, lt_err *err);
// model.c: create the f32 / bf16 weight views the compute mode and train mode need.
int lt_model_prepare(lt_model *m, lt_err *err);
// Pre-packed panels of a frozen bf16 matrix (both NT and NN forms, about 4 bytes per element in all; or the NN form
// alone, 2 bytes, the NT panels then built from it), and their release; lt_model_prepare releases them when the
// matrix is trained or the compute leaves bf16. Packing drops a mapped matrix's pages from memory.
int lt_param_pack(lt_param *p, lt_err *err);
int lt_param_pack_nn(lt_param *p, lt_err *err);
void lt_param_unpack(lt_param *p);
// 1 when a training step of `rows` tokens keeps projection j's frozen matrix (LT_Q..LT_DOWN) in the NT form as well
// as the NN form (forward.c packs them so; lt_plan counts it): building the forward product's NT panels from the NN
// form costs each matrix about 0.5 ms per 8.7 MB, 5-6% of its product at 512 rows, so the copies (as much memory
// again as the NN form, 0.7 GB for a 0.5B model) are kept for every projection of steps of at most
// LT_PACK_NT_ROWS rows; above it for the attention projections and the down projection only (measured 2-4% of their
// products at 2048 rows, against 1-2% for gate and up: 12.4 of the 29.8 MB a Qwen2.5-0.5B layer would take), and
// never under activation checkpointing (which asks for memory before speed).
#define LT_PACK_NT_ROWS 1024
int lt_model_pack_nt(const lt_model *m, int64_t rows, int j);

// forward.c
// y (N,out) (+)= x W^T with W's f32 or bf16 view; dx (N,in) (+)= dy W
void lt_mm_forward(const lt_param *w, float *y, const float *x, int N, int accumulate, const lt_gemm_scratch *gs);
void lt_mm_backward_dx(const lt_param *w, float *dx, const float *dy, int N, int accumulate, const lt_gemm_scratch *gs);
void lt_embed_lookup(const lt_param *e, float *out, const int32_t *ids, int N);
// Largest M*K any matrix product of the model sees with M rows of activations (and the LM head's chunk).
int64_t lt_model_max_mk(const lt_model *m, int rows, int ce_chunk);
int lt_ws_reserve(lt_model *m, int B, int T, lt_err *err);
void lt_ws_free(lt_workspace *ws);
// One decoder layer forward on N = B*T rows at positions p0.. (kmask (B, p0+T) or NULL).
// rope_tab: lt_rope_table at pos, or NULL (the rotations compute their angles).
void lt_layer_forward(lt_model *m, int l, lt_layer_acts *a, float *x_out, int B, int T, int p0, const int32_t *pos,
                      const float *rope_tab, const uint8_t *kmask, float *xn, float *h, float *att_scratch,
                      float *drop, const lt_gemm_scratch *gs, int train);

#define FL(n) ((size_t)(n) * sizeof(float))

// lora.c
int lt_lora_max_r(const lt_model *m);  // largest adapter rank (0 without LoRA)
int lt_lora_alloc(lt_model *m, const lt_lora_config *cfg, lt_err *err);
void lt_lora_free(lt_model *m);
int lt_registry_build(lt_model *m, lt_err *err);
int lt_lora_has_dropout(const lt_model *m);  // training applies LoRA dropout (needs the workspace's drop buffer)
// Apply dropout for (layer, proj) to x (N,in) into out; returns out, or x itself when no dropout.
const float *lt_lora_dropout(const lt_model *m, int l, int proj, const float *x, float *out, int N, int in, int train);

#endif
