// trainer_state.json in transformers' TrainerState format (keys sorted, as save_to_json writes them) and
// metrics.jsonl (every log entry on one line); both written atomically.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "train/trainer.h"

static int write_text(const char *path, char *text, lt_err *err) {
  if (!text) return lt_errf(err, "%s: out of memory", path);
  size_t n = strlen(text);
  char *t = realloc(text, n + 2);
  if (!t) {
    free(text);
    return lt_errf(err, "%s: out of memory", path);
  }
  t[n] = '\n';
  t[n + 1] = 0;
  int rc = lt_write_file_atomic(path, t, n + 1, err);
  free(t);
  return rc;
}

int lt_state_write(const lt_trainer_state *s, const char *path, lt_err *err) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return lt_errf(err, "%s: out of memory", path);
  if (s->has_best) cJSON_AddNumberToObject(o, "best_global_step", (double)s->best_global_step);
  else cJSON_AddNullToObject(o, "best_global_step");
  if (s->has_best) cJSON_AddNumberToObject(o, "best_metric", s->best_metric);
  else cJSON_AddNullToObject(o, "best_metric");
  if (s->best_model_checkpoint[0]) cJSON_AddStringToObject(o, "best_model_checkpoint", s->best_model_checkpoint);
  else cJSON_AddNullToObject(o, "best_model_checkpoint");
  cJSON_AddNumberToObject(o, "epoch", s->epoch);
  cJSON_AddNumberToObject(o, "eval_steps", s->eval_steps);
  cJSON_AddNumberToObject(o, "global_step", (double)s->global_step);
  cJSON_AddFalseToObject(o, "is_hyper_param_search");
  cJSON_AddTrueToObject(o, "is_local_process_zero");
  cJSON_AddTrueToObject(o, "is_world_process_zero");
  cJSON *hist = s->log_history ? cJSON_Duplicate(s->log_history, 1) : cJSON_CreateArray();
  cJSON_AddItemToObject(o, "log_history", hist);
  cJSON_AddNumberToObject(o, "logging_steps", s->logging_steps);
  cJSON_AddNumberToObject(o, "max_steps", (double)s->max_steps);
  cJSON_AddNumberToObject(o, "num_input_tokens_seen", (double)s->num_input_tokens_seen);
  cJSON_AddNumberToObject(o, "num_train_epochs", s->num_train_epochs);
  cJSON_AddNumberToObject(o, "save_steps", s->save_steps);
  cJSON *cbs = cJSON_AddObjectToObject(o, "stateful_callbacks");
  if (s->es_patience > 0) {
    cJSON *es = cJSON_AddObjectToObject(cbs, "EarlyStoppingCallback");
    cJSON *args = cJSON_AddObjectToObject(es, "args");
    cJSON_AddNumberToObject(args, "early_stopping_patience", s->es_patience);
    cJSON_AddNumberToObject(args, "early_stopping_threshold", s->es_threshold);
    cJSON *attr = cJSON_AddObjectToObject(es, "attributes");
    cJSON_AddNumberToObject(attr, "early_stopping_patience_counter", s->es_counter);
  }
  cJSON *tc = cJSON_AddObjectToObject(cbs, "TrainerControl");
  cJSON *args = cJSON_AddObjectToObject(tc, "args");
  cJSON_AddFalseToObject(args, "should_epoch_stop");
  cJSON_AddFalseToObject(args, "should_evaluate");
  cJSON_AddFalseToObject(args, "should_log");
  cJSON_AddFalseToObject(args, "should_save");
  cJSON_AddBoolToObject(args, "should_training_stop", s->should_training_stop);
  cJSON_AddObjectToObject(tc, "attributes");
  cJSON_AddNumberToObject(o, "total_flos", 0);
  cJSON_AddNumberToObject(o, "train_batch_size", s->train_batch_size);
  cJSON_AddNullToObject(o, "trial_name");
  cJSON_AddNullToObject(o, "trial_params");
  if (!hist) {
    cJSON_Delete(o);
    return lt_errf(err, "%s: out of memory", path);
  }
  int rc = write_text(path, cJSON_Print(o), err);
  cJSON_Delete(o);
  return rc;
}

static double num_or(const cJSON *o, const char *k, double dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

int lt_state_read(lt_trainer_state *s, const char *path, lt_err *err) {
  memset(s, 0, sizeof *s);
  char *text;
  size_t len;
  if (lt_read_file(path, &text, &len, err)) return -1;
  cJSON *o = cJSON_ParseWithLength(text, len);
  free(text);
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return lt_errf(err, "%s: not a JSON object", path);
  }
  const cJSON *gs = cJSON_GetObjectItemCaseSensitive(o, "global_step");
  const cJSON *lh = cJSON_GetObjectItemCaseSensitive(o, "log_history");
  if (!cJSON_IsNumber(gs) || gs->valuedouble < 0 || !cJSON_IsArray(lh)) {
    cJSON_Delete(o);
    return lt_errf(err, "%s: missing or bad \"global_step\" / \"log_history\"", path);
  }
  s->global_step = (int64_t)gs->valuedouble;
  s->epoch = num_or(o, "epoch", 0);
  s->max_steps = (int64_t)num_or(o, "max_steps", 0);
  s->logging_steps = (int)num_or(o, "logging_steps", 500);
  s->eval_steps = (int)num_or(o, "eval_steps", 500);
  s->save_steps = (int)num_or(o, "save_steps", 500);
  s->train_batch_size = (int)num_or(o, "train_batch_size", 0);
  s->num_train_epochs = (int)num_or(o, "num_train_epochs", 0);
  s->num_input_tokens_seen = (int64_t)num_or(o, "num_input_tokens_seen", 0);
  const cJSON *bm = cJSON_GetObjectItemCaseSensitive(o, "best_metric");
  if (cJSON_IsNumber(bm)) {
    s->has_best = 1;
    s->best_metric = bm->valuedouble;
    s->best_global_step = (int64_t)num_or(o, "best_global_step", 0);
  }
  const cJSON *bc = cJSON_GetObjectItemCaseSensitive(o, "best_model_checkpoint");
  if (cJSON_IsString(bc)) snprintf(s->best_model_checkpoint, sizeof s->best_model_checkpoint, "%s", bc->valuestring);
  const cJSON *es = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(o, "stateful_callbacks"), "EarlyStoppingCallback");
  if (es) {
    const cJSON *attr = cJSON_GetObjectItemCaseSensitive(es, "attributes");
    s->es_counter = (int)num_or(attr, "early_stopping_patience_counter", 0);
  }
  s->log_history = cJSON_DetachItemFromObjectCaseSensitive(o, "log_history");
  cJSON_Delete(o);
  return 0;
}

void lt_state_free(lt_trainer_state *s) {
  cJSON_Delete(s->log_history);
  s->log_history = NULL;
}

int lt_metrics_write(const cJSON *log_history, const char *path, lt_err *err) {
  lt_atomic_file af;
  if (lt_atomic_open(&af, path, err)) return -1;
  const cJSON *e;
  int bad = 0;
  cJSON_ArrayForEach(e, log_history) {
    char *line = cJSON_PrintUnformatted(e);
    if (!line || fprintf(af.fp, "%s\n", line) < 0) bad = 1;
    free(line);
  }
  if (bad) {
    lt_atomic_abort(&af);
    return lt_errf(err, "%s: write failed", path);
  }
  return lt_atomic_commit(&af, err);
}
