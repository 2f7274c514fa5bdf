/* llm_outcome.c — LLM attempt outcomes (llm_outcome.h).  Pure: statuses
 * and bodies in, classes and texts out.  Uses cJSON. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <cjson/cJSON.h>
#include "obra/llm_outcome.h"

const char *obra_llm_class_name(obra_llm_class c) {
  switch (c) {
  case OBRA_LLM_OK: return "ok";
  case OBRA_LLM_UNREACHABLE: return "unreachable";
  case OBRA_LLM_TIMEOUT: return "timeout";
  case OBRA_LLM_MODEL_NOT_FOUND: return "model_not_found";
  case OBRA_LLM_AUTH: return "auth";
  case OBRA_LLM_RATE_LIMITED: return "rate_limited";
  case OBRA_LLM_SERVER_ERROR: return "server_error";
  case OBRA_LLM_BAD_RESPONSE: return "bad_response";
  }
  return "server_error";
}

int obra_llm_class_retryable(obra_llm_class c) {
  return c == OBRA_LLM_TIMEOUT || c == OBRA_LLM_RATE_LIMITED || c == OBRA_LLM_SERVER_ERROR;
}

obra_llm_class obra_llm_outcome_transfer(obra_http_outcome oc) {
  switch (oc) {
  case OBRA_HTTP_OK: return OBRA_LLM_OK;
  case OBRA_HTTP_UNREACHABLE: return OBRA_LLM_UNREACHABLE;
  case OBRA_HTTP_TIMEOUT: return OBRA_LLM_TIMEOUT;
  case OBRA_HTTP_TOO_LARGE: return OBRA_LLM_BAD_RESPONSE;
  default: return OBRA_LLM_SERVER_ERROR;
  }
}

/* Does s[0..n) hold needle (ASCII case-insensitive)? */
static int mentions(const char *s, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; s && i + k <= n; i++) if (strncasecmp(s + i, needle, k) == 0) return 1;
  return 0;
}

obra_llm_class obra_llm_outcome_status(long st, const char *body, size_t len, int chat,
                                       double retry_after) {
  if (st >= 200 && st <= 299) return OBRA_LLM_OK;
  if (st == 401 || st == 403) return OBRA_LLM_AUTH;
  if (st == 404) return chat && mentions(body, len, "model") ? OBRA_LLM_MODEL_NOT_FOUND : OBRA_LLM_UNREACHABLE;
  if (st == 408) return OBRA_LLM_TIMEOUT;
  if (st == 429 || (st == 503 && retry_after >= 0)) return OBRA_LLM_RATE_LIMITED;
  if (st >= 500) return OBRA_LLM_SERVER_ERROR;
  return OBRA_LLM_BAD_RESPONSE;
}

void obra_llm_error_text(const char *body, size_t len, char *out, size_t outlen) {
  if (outlen == 0) return;
  out[0] = '\0';
  if (body == NULL) len = 0;
  cJSON *j = len ? cJSON_ParseWithLength(body, len) : NULL;
  if (j) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = NULL;
    if (cJSON_IsString(e)) m = e;
    else if (cJSON_IsObject(e)) m = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(j, "detail");
    if (cJSON_IsString(m)) snprintf(out, outlen, "%s", m->valuestring);
    cJSON_Delete(j);
  }
  if (out[0] == '\0') {
    size_t n = len < outlen - 1 ? len : outlen - 1;
    if (n > 200) n = 200;
    for (size_t i = 0; i < n; i++) out[i] = (body[i] >= 32 && body[i] < 127) ? body[i] : ' ';
    out[n] = '\0';
  }
}
