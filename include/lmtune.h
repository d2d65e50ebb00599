// lmtune public API: load Hugging Face checkpoints, run Llama-family models forward/backward with LoRA, generate.
#ifndef LMTUNE_H
#define LMTUNE_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

#define LMTUNE_VERSION "0.1.0"

// Every fallible call returns 0 on success, -1 on failure with a message in err.
typedef struct lt_err { char msg[1024]; } lt_err;

typedef enum {
  LT_DTYPE_F32 = 0, LT_DTYPE_F16, LT_DTYPE_BF16, LT_DTYPE_F64, LT_DTYPE_I64, LT_DTYPE_I32,
  LT_DTYPE_I16, LT_DTYPE_I8, LT_DTYPE_U8, LT_DTYPE_BOOL, LT_DTYPE_COUNT
} lt_dtype;

typedef struct lt_model lt_model;     // config + weights + trainable registry
typedef struct lt_kvcache lt_kvcache; // per-sequence key/value cache for decoding

typedef enum { LT_TRAIN_FROZEN = 0, LT_TRAIN_LORA, LT_TRAIN_FULL } lt_train_mode;

// Compute precision of the matrix products with frozen weights. F32: weights widened to f32, OpenBLAS sgemm
// (bit-for-bit the reference path). BF16: frozen weights stay bf16 (the mapping itself when stored bf16) and
// activations are rounded to bf16 with f32 accumulation, as PyTorch's bf16 autocast; norms, softmax, losses,
// LoRA and optimizer state stay f32. Trainable full weights always use f32.
typedef enum { LT_COMPUTE_F32 = 0, LT_COMPUTE_BF16 } lt_compute;

// LoRA targets are a bitmask over the seven projections.
enum {
  LT_LORA_Q = 1 << 0, LT_LORA_K = 1 << 1, LT_LORA_V = 1 << 2, LT_LORA_O = 1 << 3,
  LT_LORA_GATE = 1 << 4, LT_LORA_UP = 1 << 5, LT_LORA_DOWN = 1 << 6, LT_LORA_ALL = 0x7f
};

typedef struct lt_lora_config {
  int r;
  float alpha;
  float dropout;
  int use_rslora;
  unsigned targets;   // LT_LORA_* mask
  uint64_t seed;      // init of A and the dropout stream
} lt_lora_config;

// Parse "q_proj,v_proj" (or "all") into a target mask.
int lt_lora_parse_targets(const char *list, unsigned *mask, lt_err *err);

// Load a Hugging Face model folder (config.json + safetensors, single or sharded).
int lt_model_load(lt_model **out, const char *dir, lt_err *err);
// Create a new model from DIR/config.json alone, initialised as transformers' _init_weights does: Linear and
// Embedding weights ~ normal(0, initializer_range (0.02 when absent)), biases 0, RMSNorm weights 1, the
// pad_token_id row of the embedding 0, tied embeddings shared. Every weight is owned f32 memory ("F32"); the values
// depend only on the seed.
int lt_model_init(lt_model **out, const char *dir, uint64_t seed, lt_err *err);
void lt_model_free(lt_model *m);

// Choose the compute precision (default F32); call before the first forward.
int lt_model_set_compute(lt_model *m, lt_compute c, lt_err *err);
// Activation checkpointing (transformers' gradient_checkpointing): training keeps only each layer's input and
// recomputes the layer's activations during backward (about one more forward pass, a fraction of the memory).
// Off by default; gradients are the same either way.
int lt_model_set_grad_checkpointing(lt_model *m, int on, lt_err *err);

// Make parameters trainable. Full: every weight gets f32 storage and gradients. LoRA: fresh adapters as PEFT
// initialises them (A Kaiming-uniform, B zero). Frozen: nothing trains.
int lt_model_set_train_mode(lt_model *m, lt_train_mode mode, const lt_lora_config *lora, lt_err *err);
// Load a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) as the trainable set,
// with the whole modules it saved (modules_to_save: embed_tokens, lm_head) replacing the base weights.
int lt_model_load_adapter(lt_model *m, const char *dir, lt_err *err);
// Beside a LoRA adapter, also train these whole modules (comma-separated: embed_tokens, lm_head), as PEFT's
// modules_to_save / LLaMA-Factory's additional_target; a tied embedding trains as one matrix.
int lt_lora_train_modules(lt_model *m, const char *list, lt_err *err);
// The modules trained whole beside the adapter, comma-separated into out; returns their count.
int lt_lora_modules_to_save(const lt_model *m, char *out, size_t cap);

// Save the LoRA adapter as a PEFT folder (adapter_config.json + adapter_model.safetensors, PEFT key names).
int lt_model_save_adapter(lt_model *m, const char *dir, const char *base_model_name_or_path, lt_err *err);
// Save a Hugging Face model folder: every weight (trainable values for full fine-tuning; W + scale * B A merged
// for LoRA) as model.safetensors in `dtype` (an lt_dtype: F32, BF16 or F16; -1 keeps each weight's stored dtype),
// plus config.json, generation_config.json and tokenizer files copied from the source folder.
int lt_model_save_pretrained(lt_model *m, const char *dir, int dtype, lt_err *err);

// Logits for one sequence: ids (T) -> logits (T, vocab).
int lt_model_logits(lt_model *m, const int32_t *ids, int T, float *logits, lt_err *err);

// Training step pieces: batch (B, T) of ids, attention mask (1 = token, 0 = padding; may be NULL) and labels
// (unshifted, as in transformers: -100 ignored). Computes the mean loss over valid shifted labels, and with
// backward != 0 accumulates gradients into the trainable parameters.
int lt_model_loss(lt_model *m, const int32_t *ids, const int32_t *mask, const int32_t *labels, int B, int T,
                  int backward, float *loss, lt_err *err);
// The same with an explicit denominator, as transformers' Trainer scales each micro-batch of an accumulation window
// (num_items_in_batch): *loss_sum = sum of the token losses over the valid shifted labels of this batch, *n_valid
// their count (may be NULL); with backward != 0 the gradients of (sum / denom) are accumulated. denom > 0.
int lt_model_loss_sum(lt_model *m, const int32_t *ids, const int32_t *mask, const int32_t *labels, int B, int T,
                      int backward, double denom, double *loss_sum, int *n_valid, lt_err *err);
// Zeroes the gradients. Also marks the trainable values as changed (see lt_model_params_updated).
void lt_model_zero_grad(lt_model *m);
// Call after changing trainable values in place (an optimizer step, loading values): under bf16 compute, the
// bf16 copies of trainable matrices are refreshed before the next product.
void lt_model_params_updated(lt_model *m);

// Trainable parameter registry.
int lt_model_num_params(const lt_model *m);        // all base weights
int64_t lt_model_param_count(const lt_model *m);   // total base elements
int lt_model_num_trainable(const lt_model *m);
// i-th trainable tensor: name (PEFT/HF naming), f32 values and gradient, element count, shape.
int lt_model_trainable(const lt_model *m, int i, const char **name, float **w, float **g, int64_t *numel,
                       int64_t shape[2]);

// Generation.
typedef struct lt_sampling {
  float temperature;        // 0 = greedy
  int top_k;                // 0 = off
  float top_p;              // 1 = off
  float repetition_penalty; // 1 = off
  uint64_t seed;
} lt_sampling;

int lt_kvcache_new(lt_kvcache **out, lt_model *m, int max_len, lt_err *err);
void lt_kvcache_free(lt_kvcache *c);
void lt_kvcache_reset(lt_kvcache *c);
int lt_kvcache_len(const lt_kvcache *c);
// Feed n tokens; writes logits (n, vocab) if all_logits else (1, vocab) for the last token.
int lt_model_decode(lt_model *m, lt_kvcache *c, const int32_t *ids, int n, float *logits, int all_logits,
                    lt_err *err);
int lt_sample(const float *logits, int vocab, const lt_sampling *s, const int32_t *history, int n_history,
              uint64_t step, float *scratch, int32_t *out_id);
// Generate up to max_new tokens after prompt; stops on any EOS id. out receives new ids; *n_out their count.
int lt_generate(lt_model *m, const int32_t *prompt, int n_prompt, int max_new, const lt_sampling *s,
                int32_t *out, int *n_out, lt_err *err);
// The same, calling on_token(id, user) after each new token (a non-zero return stops generation).
int lt_generate_cb(lt_model *m, const int32_t *prompt, int n_prompt, int max_new, const lt_sampling *s,
                   int (*on_token)(int32_t id, void *user), void *user, int32_t *out, int *n_out, lt_err *err);

// Model facts.
typedef struct lt_model_info {
  const char *architecture;
  const char *model_type;
  const char *dtype;  // storage dtype of the weights
  int vocab, hidden, layers, heads, kv_heads, head_dim, ffn;
  int tied;
  int64_t params;
  int n_eos;
  const int32_t *eos_ids;
} lt_model_info;
void lt_model_get_info(const lt_model *m, lt_model_info *info);

const char *lt_dtype_name(lt_dtype t);

// NumPy .npy (v1.0) float32 writer, C order, written atomically.
int lt_npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim, lt_err *err);

#ifdef __cplusplus
}
#endif
#endif
