/* llm_ollama.c — the Ollama provider (llm.h): POST /api/chat with "format"
 * set to the JSON schema (or "json" in fallback mode), "options" and
 * "keep_alive"; a single JSON reply or an NDJSON stream ending with
 * "done": true; GET /api/tags for the models, /api/version.
 * Base URL: configuration, else OLLAMA_HOST, else http://127.0.0.1:11434. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/jsonbuf.h"
#include "obra/llm.h"

static char *chat_body(const obra_llm *c, const obra_llm_chat_opts *o, int fallback) {
  cJSON *b = cJSON_CreateObject();
  if (b == NULL) return NULL;
  cJSON_AddStringToObject(b, "model", obra_llm_model(c));
  cJSON_AddItemReferenceToObject(b, "messages", (cJSON *)o->messages);   /* printed, not copied */
  cJSON_AddBoolToObject(b, "stream", o->stream ? 1 : 0);
  if (o->schema) {
    if (fallback) cJSON_AddStringToObject(b, "format", "json");
    else cJSON_AddItemReferenceToObject(b, "format", (cJSON *)o->schema);
  }
  const cJSON *copts = obra_llm_options(c);
  cJSON *opts = copts ? cJSON_Duplicate(copts, 1) : cJSON_CreateObject();
  if (o->temperature >= 0) {
    cJSON_DeleteItemFromObjectCaseSensitive(opts, "temperature");
    cJSON_AddNumberToObject(opts, "temperature", o->temperature);
  }
  if (o->max_tokens > 0) {
    cJSON_DeleteItemFromObjectCaseSensitive(opts, "num_predict");
    cJSON_AddNumberToObject(opts, "num_predict", (double)o->max_tokens);
  }
  if (opts && opts->child) cJSON_AddItemToObject(b, "options", opts);
  else cJSON_Delete(opts);
  const char *ka = obra_llm_keep_alive(c);
  if (ka) {
    char *end;
    double secs = strtod(ka, &end);
    if (end != ka && *end == '\0') cJSON_AddNumberToObject(b, "keep_alive", secs);
    else cJSON_AddStringToObject(b, "keep_alive", ka);
  }
  char *s = obra_json_print(b);
  cJSON_Delete(b);
  return s;
}

static double ns_to_ms(const cJSON *j, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  return cJSON_IsNumber(v) ? v->valuedouble / 1e6 : -1;
}

static long count(const cJSON *j, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

/* One reply object (whole, or one line of a stream) into r. */
static int take(obra_llm_reply *r, const cJSON *j, char *err, size_t errlen) {
  if (!cJSON_IsObject(j)) { snprintf(err, errlen, "expected a JSON object"); return -1; }
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  if (cJSON_IsString(e)) { snprintf(r->error, sizeof r->error, "%s", e->valuestring); return 0; }
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
  if (cJSON_IsString(model)) snprintf(r->model, sizeof r->model, "%s", model->valuestring);
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
  const cJSON *done = cJSON_GetObjectItemCaseSensitive(j, "done");
  if (!cJSON_IsString(content) && !cJSON_IsTrue(done)) {
    snprintf(err, errlen, "a reply without message.content");
    return -1;
  }
  if (cJSON_IsString(content)) obra_llm_reply_append(r, content->valuestring, strlen(content->valuestring));
  if (cJSON_IsTrue(done)) {
    r->finished = 1;
    r->usage.prompt_tokens = count(j, "prompt_eval_count");
    r->usage.completion_tokens = count(j, "eval_count");
    r->usage.total_ms = ns_to_ms(j, "total_duration");
    r->usage.load_ms = ns_to_ms(j, "load_duration");
    r->usage.prompt_ms = ns_to_ms(j, "prompt_eval_duration");
    r->usage.eval_ms = ns_to_ms(j, "eval_duration");
  }
  return 0;
}

static int parse(obra_llm_reply *r, const char *body, size_t len, char *err, size_t errlen) {
  cJSON *j = cJSON_ParseWithLength(body, len);
  if (j == NULL) { snprintf(err, errlen, "the body is not JSON"); return -1; }
  int rc = take(r, j, err, errlen);
  if (rc == 0 && !r->error[0]) {
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "message"))) {
      snprintf(err, errlen, "a reply without message");
      rc = -1;
    }
    r->finished = 1;
  }
  cJSON_Delete(j);
  return rc;
}

static int feed(obra_llm_reply *r, const char *line, size_t len, char *err, size_t errlen) {
  cJSON *j = cJSON_ParseWithLength(line, len);
  if (j == NULL) { snprintf(err, errlen, "a stream line is not JSON: %.60s", line); return -1; }
  int rc = take(r, j, err, errlen);
  cJSON_Delete(j);
  return rc;
}

static cJSON *parse_models(const char *body, size_t len) {
  cJSON *j = cJSON_ParseWithLength(body, len);
  const cJSON *models = cJSON_GetObjectItemCaseSensitive(j, "models"), *it;
  if (!cJSON_IsArray(models)) { cJSON_Delete(j); return NULL; }
  cJSON *out = cJSON_CreateArray();
  cJSON_ArrayForEach(it, models) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
    if (!cJSON_IsString(name)) name = cJSON_GetObjectItemCaseSensitive(it, "model");
    if (cJSON_IsString(name)) cJSON_AddItemToArray(out, cJSON_CreateString(name->valuestring));
  }
  cJSON_Delete(j);
  return out;
}

/* Servers older than structured outputs reject a schema in "format". */
static int refused_schema(long status, const char *body) {
  return status == 400 && body && strstr(body, "format") != NULL;
}

const obra_llm_provider obra_llm_ollama = {
  .name = "ollama",
  .env_url = "OLLAMA_HOST",
  .default_url = "http://127.0.0.1:11434",
  .chat_path = "/api/chat",
  .models_path = "/api/tags",
  .version_path = "/api/version",
  .chat_body = chat_body,
  .parse = parse,
  .feed = feed,
  .parse_models = parse_models,
  .refused_schema = refused_schema,
};
