/* llm_openai.c — the OpenAI-compatible provider (llm.h): POST
 * /v1/chat/completions (llama.cpp server, vLLM, LM Studio, OpenAI) with
 * response_format json_schema, falling back to json_object where a server
 * refuses it; a JSON reply or an SSE stream ending with "data: [DONE]" (usage
 * requested through stream_options); GET /v1/models.
 * Base URL: configuration, else OPENAI_BASE_URL, else http://127.0.0.1:8080/v1
 * (a local llama.cpp server: nothing leaves the machine unless configured). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "obra/jsonbuf.h"
#include "obra/llm.h"

static char *chat_body(const obra_llm *c, const obra_llm_chat_opts *o, int fallback) {
  cJSON *b = cJSON_CreateObject();
  if (b == NULL) return NULL;
  cJSON_AddStringToObject(b, "model", obra_llm_model(c));
  cJSON_AddItemReferenceToObject(b, "messages", (cJSON *)o->messages);   /* printed, not copied */
  cJSON_AddBoolToObject(b, "stream", o->stream ? 1 : 0);
  if (o->stream) {
    cJSON *so = cJSON_AddObjectToObject(b, "stream_options");
    cJSON_AddBoolToObject(so, "include_usage", 1);
  }
  /* Sampling options: the Ollama names map onto the OpenAI ones. */
  const cJSON *opts = obra_llm_options(c);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(opts, "temperature");
  const cJSON *np = cJSON_GetObjectItemCaseSensitive(opts, "num_predict");
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(opts, "max_tokens");
  const cJSON *seed = cJSON_GetObjectItemCaseSensitive(opts, "seed");
  const cJSON *top_p = cJSON_GetObjectItemCaseSensitive(opts, "top_p");
  if (o->temperature >= 0) cJSON_AddNumberToObject(b, "temperature", o->temperature);
  else if (cJSON_IsNumber(t)) cJSON_AddNumberToObject(b, "temperature", t->valuedouble);
  if (o->max_tokens > 0) cJSON_AddNumberToObject(b, "max_tokens", (double)o->max_tokens);
  else if (cJSON_IsNumber(mt)) cJSON_AddNumberToObject(b, "max_tokens", mt->valuedouble);
  else if (cJSON_IsNumber(np) && np->valuedouble > 0) cJSON_AddNumberToObject(b, "max_tokens", np->valuedouble);
  if (cJSON_IsNumber(seed)) cJSON_AddNumberToObject(b, "seed", seed->valuedouble);
  if (cJSON_IsNumber(top_p)) cJSON_AddNumberToObject(b, "top_p", top_p->valuedouble);
  if (o->schema) {
    cJSON *rf = cJSON_AddObjectToObject(b, "response_format");
    if (fallback) {
      cJSON_AddStringToObject(rf, "type", "json_object");
    } else {
      cJSON_AddStringToObject(rf, "type", "json_schema");
      cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
      cJSON_AddStringToObject(js, "name", "reply");
      cJSON_AddItemReferenceToObject(js, "schema", (cJSON *)o->schema);
    }
  }
  char *s = obra_json_print(b);
  cJSON_Delete(b);
  return s;
}

static long count(const cJSON *j, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static int error_of(obra_llm_reply *r, const cJSON *j) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  if (e == NULL || cJSON_IsNull(e)) return 0;
  const cJSON *m = cJSON_IsString(e) ? e : cJSON_GetObjectItemCaseSensitive(e, "message");
  snprintf(r->error, sizeof r->error, "%s", cJSON_IsString(m) ? m->valuestring : "an error without a message");
  return 1;
}

static void usage_of(obra_llm_reply *r, const cJSON *j) {
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
  if (!cJSON_IsObject(u)) return;
  r->usage.prompt_tokens = count(u, "prompt_tokens");
  r->usage.completion_tokens = count(u, "completion_tokens");
}

static void model_of(obra_llm_reply *r, const cJSON *j) {
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
  if (cJSON_IsString(m)) snprintf(r->model, sizeof r->model, "%s", m->valuestring);
}

static int parse(obra_llm_reply *r, const char *body, size_t len, char *err, size_t errlen) {
  cJSON *j = cJSON_ParseWithLength(body, len);
  if (j == NULL) { snprintf(err, errlen, "the body is not JSON"); return -1; }
  int rc = 0;
  if (!error_of(r, j)) {
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    const cJSON *refusal = cJSON_GetObjectItemCaseSensitive(msg, "refusal");
    if (cJSON_IsString(content)) {
      obra_llm_reply_append(r, content->valuestring, strlen(content->valuestring));
      model_of(r, j);
      usage_of(r, j);
      r->finished = 1;
    } else if (cJSON_IsString(refusal)) {
      snprintf(err, errlen, "the model refused: %s", refusal->valuestring);
      rc = -1;
    } else {
      snprintf(err, errlen, "a reply without choices[0].message.content");
      rc = -1;
    }
  }
  cJSON_Delete(j);
  return rc;
}

/* One line of an SSE stream: "data: {...}", "data: [DONE]", or a field or
 * comment to ignore.  Each data line carries one whole JSON event. */
static int feed(obra_llm_reply *r, const char *line, size_t len, char *err, size_t errlen) {
  if (len < 5 || strncmp(line, "data:", 5) != 0) return 0;
  const char *p = line + 5;
  while (*p == ' ') p++;
  if (strcmp(p, "[DONE]") == 0) { r->finished = 1; return 0; }
  cJSON *j = cJSON_Parse(p);
  if (j == NULL) { snprintf(err, errlen, "a stream event is not JSON: %.60s", p); return -1; }
  if (!error_of(r, j)) {
    model_of(r, j);
    usage_of(r, j);
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(delta, "content");
    if (cJSON_IsString(content)) obra_llm_reply_append(r, content->valuestring, strlen(content->valuestring));
  }
  cJSON_Delete(j);
  return 0;
}

static cJSON *parse_models(const char *body, size_t len) {
  cJSON *j = cJSON_ParseWithLength(body, len);
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data"), *it;
  if (!cJSON_IsArray(data)) { cJSON_Delete(j); return NULL; }
  cJSON *out = cJSON_CreateArray();
  cJSON_ArrayForEach(it, data) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
    if (cJSON_IsString(id)) cJSON_AddItemToArray(out, cJSON_CreateString(id->valuestring));
  }
  cJSON_Delete(j);
  return out;
}

static int contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; hay && *hay; hay++) if (strncasecmp(hay, needle, n) == 0) return 1;
  return 0;
}

/* A 400/422 that blames response_format / json_schema: use json_object. */
static int refused_schema(long status, const char *body) {
  return (status == 400 || status == 422) && (contains_ci(body, "response_format") || contains_ci(body, "json_schema"));
}

const obra_llm_provider obra_llm_openai = {
  .name = "openai",
  .env_url = "OPENAI_BASE_URL",
  .default_url = "http://127.0.0.1:8080/v1",
  .chat_path = "/v1/chat/completions",
  .models_path = "/v1/models",
  .version_path = NULL,
  .chat_body = chat_body,
  .parse = parse,
  .feed = feed,
  .parse_models = parse_models,
  .refused_schema = refused_schema,
};
