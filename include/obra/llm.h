/* llm.h — LLM clients: one interface, two providers (Ollama's /api/chat and
 * the OpenAI-compatible /v1/chat/completions), structured output, classified
 * errors and retries.
 *
 * A client (obra_llm) holds a provider, a base URL, a model, an optional API
 * key and the defaults of its calls.  A call (obra_llm_call) is one chat or
 * model listing in flight: it runs its HTTP attempts on the event loop
 * (http.h), retries retryable failures with exponential backoff and full
 * jitter on loop timers (never blocking), and ends with a reply or a
 * classified error.  Poll obra_llm_call_done while stepping the loop.
 *
 * The API key is sent in an Authorization header only: it never appears in a
 * message, a URL, a result or anything obra_llm_* returns. */
#ifndef OBRA_LLM_H
#define OBRA_LLM_H
#include <stddef.h>
#include <cjson/cJSON.h>
#include "obra/status.h"

/* The outcome of a call.  Retried: timeout, rate_limited, server_error. */
typedef enum {
  OBRA_LLM_OK = 0,
  OBRA_LLM_UNREACHABLE,      /* nothing listens, DNS, TLS, wrong endpoint */
  OBRA_LLM_TIMEOUT,          /* connect or total timeout, or the deadline */
  OBRA_LLM_MODEL_NOT_FOUND,  /* the server does not have the model */
  OBRA_LLM_AUTH,             /* 401 / 403 */
  OBRA_LLM_RATE_LIMITED,     /* 429 (Retry-After honoured) */
  OBRA_LLM_SERVER_ERROR,     /* 5xx, a reply cut mid-way, an error inside a stream */
  OBRA_LLM_BAD_RESPONSE      /* unparseable reply, a reply not fitting the schema, over the cap */
} obra_llm_class;

const char *obra_llm_class_name(obra_llm_class c);   /* "unreachable", ... "ok" */
int         obra_llm_class_retryable(obra_llm_class c);

typedef struct {
  const char *provider;        /* "ollama" (default) or "openai" */
  const char *url;             /* NULL: OLLAMA_HOST / OPENAI_BASE_URL, else the provider's default */
  const char *model;           /* required */
  const char *api_key;         /* openai; NULL: OPENAI_API_KEY; "" = none */
  const char *keep_alive;      /* ollama keep_alive ("5m", "-1"...), or NULL */
  const cJSON *options;        /* ollama options {temperature, num_ctx, num_predict, seed...};
                                  openai maps temperature, num_predict -> max_tokens, seed; copied */
  double timeout_s;            /* per attempt, total; 0: 120 */
  double connect_timeout_s;    /* 0: 5 */
  double deadline_s;           /* across all attempts of a call; 0: 300 */
  int    max_attempts;         /* 0: 3 */
  double backoff_s;            /* first backoff ceiling; 0: 1 */
  double backoff_max_s;        /* backoff ceiling cap; 0: 30 */
  size_t max_response;         /* body bytes; 0: 8 MiB */
} obra_llm_config;

typedef struct obra_llm obra_llm;
typedef struct obra_llm_call obra_llm_call;

/* A new client, or NULL with e set (OBRA_EINVAL: unknown provider, no model,
 * bad URL).  Caller frees with obra_llm_free; calls keep it alive. */
obra_llm *obra_llm_new(const obra_llm_config *cfg, obra_err *e);
void      obra_llm_free(obra_llm *c);
const char *obra_llm_provider_name(const obra_llm *c);
const char *obra_llm_model(const obra_llm *c);
const char *obra_llm_url(const obra_llm *c);     /* the base URL, credentials removed */
int         obra_llm_has_key(const obra_llm *c);

typedef struct {
  const cJSON *messages;       /* [{role, content}...], required; copied */
  const cJSON *schema;         /* JSON schema of the wanted reply, or NULL for text; copied */
  double temperature;          /* < 0: the client's options */
  long   max_tokens;           /* <= 0: the client's options */
  double timeout_s;            /* per attempt; <= 0: the client's */
  int    stream;               /* stream the reply (obra_llm_call_take gives the text so far) */
} obra_llm_chat_opts;

typedef struct {
  long prompt_tokens, completion_tokens;   /* -1 when the server did not say */
  double total_ms, load_ms, prompt_ms, eval_ms;   /* server timings, -1 when unknown (Ollama reports them) */
} obra_llm_usage;

/* Start a chat / a model listing / (ollama) a version query.  NULL with e set
 * on misuse or ENOMEM.  The caller frees the call with obra_llm_call_free,
 * which cancels it if it is still running. */
obra_llm_call *obra_llm_chat(obra_llm *c, const obra_llm_chat_opts *o, obra_err *e);
obra_llm_call *obra_llm_models(obra_llm *c, obra_err *e);
obra_llm_call *obra_llm_version(obra_llm *c, obra_err *e);
void obra_llm_call_free(obra_llm_call *k);

int obra_llm_call_done(const obra_llm_call *k);
/* Streamed text not taken yet (a retry starts a new attempt: *attempt tells
 * which attempt the text belongs to).  Returns NULL when nothing is new;
 * the pointer is borrowed until the next loop step. */
const char *obra_llm_call_take(obra_llm_call *k, size_t *len, int *attempt);
int obra_llm_call_pending(const obra_llm_call *k);

/* Results of a finished call (borrowed from k). */
obra_llm_class obra_llm_call_class(const obra_llm_call *k);
const char *obra_llm_call_error(const obra_llm_call *k);       /* "" when ok */
const char *obra_llm_call_text(const obra_llm_call *k, size_t *len);   /* model text (also the raw text of a bad_response) */
const cJSON *obra_llm_call_json(const obra_llm_call *k);       /* validated object, when a schema was given */
const cJSON *obra_llm_call_list(const obra_llm_call *k);       /* models: array of names */
const char *obra_llm_call_model(const obra_llm_call *k);       /* the model that answered */
const char *obra_llm_call_version(const obra_llm_call *k);
const obra_llm_usage *obra_llm_call_usage(const obra_llm_call *k);
int    obra_llm_call_attempts(const obra_llm_call *k);
/* The waits before each retry as planned, in ms, with the ceiling each was
 * drawn under (full jitter: a wait is uniform in [0, ceiling]; a Retry-After
 * is its own ceiling); the first OBRA_LLM_WAITS of them.  Returns how many. */
#define OBRA_LLM_WAITS 16
int    obra_llm_call_waits(const obra_llm_call *k, const double **wait_ms, const double **ceiling_ms);
double obra_llm_call_duration_ms(const obra_llm_call *k);
double obra_llm_call_retry_after(const obra_llm_call *k);      /* seconds from the last 429, or -1 */

/* Structured output: obra_llm_json_extract / obra_llm_json_validate. */
#include "obra/llm_json.h"

/* ---- the provider interface (llm_ollama.c, llm_openai.c) ------------------ */

/* What a provider parses out of a reply, streamed or whole. */
typedef struct {
  char  *text; size_t len, cap;   /* the assistant's content so far */
  char   model[128];
  obra_llm_usage usage;
  int    finished;                /* the end marker was seen */
  char   error[256];              /* an error reported inside a 200 reply */
  int    oom;
} obra_llm_reply;

void obra_llm_reply_append(obra_llm_reply *r, const char *s, size_t n);

/* One interface every provider implements.  chat_body returns a new JSON
 * string (caller frees) for the request; `fallback` asks for the weaker
 * structured-output mode after the server refused the strong one.  parse
 * takes a whole body; feed takes one line of a stream (without its newline).
 * Both return 0, or -1 with a message in err (a bad_response). */
typedef struct {
  const char *name;
  const char *env_url;           /* environment variable naming the base URL */
  const char *default_url;
  const char *chat_path, *models_path, *version_path;   /* version_path may be NULL */
  char *(*chat_body)(const obra_llm *c, const obra_llm_chat_opts *o, int fallback);
  int   (*parse)(obra_llm_reply *r, const char *body, size_t len, char *err, size_t errlen);
  int   (*feed)(obra_llm_reply *r, const char *line, size_t len, char *err, size_t errlen);
  cJSON *(*parse_models)(const char *body, size_t len);            /* array of names, or NULL */
  /* Whether an error reply says the structured-output mode was refused. */
  int   (*refused_schema)(long status, const char *body);
} obra_llm_provider;

extern const obra_llm_provider obra_llm_ollama, obra_llm_openai;

/* Client settings a provider reads while building a request. */
const cJSON *obra_llm_options(const obra_llm *c);
const char  *obra_llm_keep_alive(const obra_llm *c);
/* Normalise a base URL: add http:// and (for Ollama hosts) the port, drop a
 * trailing slash.  Returns a new string or NULL. */
char *obra_llm_base_url(const char *raw, const char *default_port);

#endif
