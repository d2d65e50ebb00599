// Saving: a PEFT adapter written by lmtune holds exactly the tensors PEFT wrote and reloads to the same logits;
// a merged export equals base + adapter; a full save round-trips.
#include <cjson/cJSON.h>
#include <sys/stat.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "test.h"

#define FIXDIR LT_FIXTURES "/models/qwen3_qknorm"

static void logits_of(lt_model *m, const int32_t *ids, int T, float *out) {
  lt_err err;
  CHECK_MSG(lt_model_logits(m, ids, T, out, &err) == 0, "%s", err.msg);
}

int main(void) {
  lt_err err;
  char out[512], out2[512], path[700];
  snprintf(out, sizeof out, "%s/save/adapter", LT_TMPDIR);
  snprintf(out2, sizeof out2, "%s/save/merged", LT_TMPDIR);
  lt_model *m;
  CHECK(lt_model_load(&m, FIXDIR, &err) == 0);
  CHECK(lt_model_save_adapter(m, out, NULL, &err) == -1 && strstr(err.msg, "no LoRA"));
  CHECK_MSG(lt_model_load_adapter(m, FIXDIR "/adapter", &err) == 0, "%s", err.msg);
  CHECK_MSG(lt_model_save_adapter(m, out, "Qwen/Qwen3-tiny", &err) == 0, "%s", err.msg);
  // tensors equal PEFT's own file, byte for byte
  lt_st_file a, b;
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", out);
  CHECK(lt_st_open(&a, FIXDIR "/adapter/adapter_model.safetensors", &err) == 0);
  CHECK_MSG(lt_st_open(&b, path, &err) == 0, "%s", err.msg);
  CHECK(a.n == b.n);
  for (int i = 0; i < a.n && i < b.n; i++) {
    CHECK(strcmp(a.t[i].name, b.t[i].name) == 0);
    CHECK(a.t[i].nbytes == b.t[i].nbytes && memcmp(a.t[i].data, b.t[i].data, a.t[i].nbytes) == 0);
  }
  CHECK(b.metadata_json && strstr(b.metadata_json, "\"format\"") && strstr(b.metadata_json, "\"pt\""));
  lt_st_close(&a);
  lt_st_close(&b);
  // config: the keys PEFT needs, with the values of the original
  char *text;
  size_t len;
  snprintf(path, sizeof path, "%s/adapter_config.json", out);
  CHECK(lt_read_file(path, &text, &len, &err) == 0);
  cJSON *c = cJSON_Parse(text);
  free(text);
  CHECK(strcmp(cJSON_GetObjectItem(c, "peft_type")->valuestring, "LORA") == 0);
  CHECK(cJSON_GetObjectItem(c, "r")->valueint == 8);
  CHECK(cJSON_GetObjectItem(c, "lora_alpha")->valuedouble == 16);
  CHECK(cJSON_IsTrue(cJSON_GetObjectItem(c, "use_rslora")));
  CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(c, "target_modules")) == 7);
  CHECK(strcmp(cJSON_GetObjectItem(c, "task_type")->valuestring, "CAUSAL_LM") == 0);
  CHECK(strcmp(cJSON_GetObjectItem(c, "base_model_name_or_path")->valuestring, "Qwen/Qwen3-tiny") == 0);
  cJSON_Delete(c);
  // reload: same logits; merged export: same logits without the adapter
  int32_t ids[6] = {1, 5, 9, 33, 2, 7};
  int V = 128;
  float *l0 = malloc(sizeof(float) * 6 * V), *l1 = malloc(sizeof(float) * 6 * V), *l2 = malloc(sizeof(float) * 6 * V);
  logits_of(m, ids, 6, l0);
  CHECK_MSG(lt_model_save_pretrained(m, out2, LT_DTYPE_F32, &err) == 0, "%s", err.msg);
  lt_model *r;
  CHECK(lt_model_load(&r, FIXDIR, &err) == 0);
  CHECK_MSG(lt_model_load_adapter(r, out, &err) == 0, "%s", err.msg);
  logits_of(r, ids, 6, l1);
  CHECK(memcmp(l0, l1, sizeof(float) * 6 * V) == 0);
  lt_model_free(r);
  CHECK_MSG(lt_model_load(&r, out2, &err) == 0, "%s", err.msg);
  logits_of(r, ids, 6, l2);
  double e = 0;
  for (int i = 0; i < 6 * V; i++) e = fmax(e, fabs(l2[i] - l0[i]));
  CHECK_MSG(e < 1e-4, "merged export logits differ by %g", e);
  lt_model_free(r);
  snprintf(path, sizeof path, "%s/config.json", out2);
  CHECK(lt_file_exists(path));
  // bf16 export of the same: within bf16 rounding
  CHECK(lt_model_save_pretrained(m, out2, LT_DTYPE_BF16, &err) == 0);
  CHECK(lt_model_load(&r, out2, &err) == 0);
  logits_of(r, ids, 6, l2);
  e = 0;
  for (int i = 0; i < 6 * V; i++) e = fmax(e, fabs(l2[i] - l0[i]));
  CHECK_MSG(e < 0.1, "bf16 merged export logits differ by %g", e);
  lt_model_info in;
  lt_model_get_info(r, &in);
  CHECK(strcmp(in.dtype, "BF16") == 0);
  lt_model_free(r);
  lt_model_free(m);
  // an unwritable destination is an error, not a crash
  CHECK(lt_model_load(&m, FIXDIR, &err) == 0);
  CHECK(lt_model_save_pretrained(m, "/proc/lmtune-no/such", -1, &err) == -1 && strstr(err.msg, "/proc"));
  lt_model_free(m);
  free(l0), free(l1), free(l2);
  TEST_MAIN_END();
}
