/* jsonbuf.h — compact JSON text, byte for byte as cJSON_PrintUnformatted
 * writes it, into a growable buffer (jsonbuf.c), as a pure unit: no I/O, no
 * globals.  cJSON's printer goes byte by byte through a buffer it reallocates
 * as it grows; this one copies runs of plain bytes at once.  Used for the
 * LLM request bodies (llm_ollama.c, llm_openai.c), core.json_encode
 * (lapi_json.c, straight from Lua values) and store rows as JSON
 * (lapi_store.c's numbers). */
#ifndef OBRA_JSONBUF_H
#define OBRA_JSONBUF_H
#include <stddef.h>
#include <cjson/cJSON.h>

typedef struct {
  char *p;
  size_t n, cap;
  int oom;            /* an allocation failed: what follows is dropped */
} obra_jsonbuf;

void obra_jsonbuf_init(obra_jsonbuf *b, size_t hint);
void obra_jsonbuf_free(obra_jsonbuf *b);
void obra_jsonbuf_mem(obra_jsonbuf *b, const char *s, size_t n);
void obra_jsonbuf_char(obra_jsonbuf *b, char c);
/* A JSON string: ", \ and the control characters escaped as cJSON does. */
void obra_jsonbuf_string(obra_jsonbuf *b, const char *s, size_t n);
void obra_jsonbuf_number(obra_jsonbuf *b, double d);
/* A cJSON tree, compact.  Returns -1 for an invalid item (as cJSON fails). */
int obra_jsonbuf_cjson(obra_jsonbuf *b, const cJSON *v);
/* The text, NUL-terminated, for the caller to free(); NULL when out of memory. */
char *obra_jsonbuf_take(obra_jsonbuf *b);
/* cJSON_PrintUnformatted(v), faster: a new string to free(), or NULL. */
char *obra_json_print(const cJSON *v);
/* A number as cJSON writes it: "null" for NaN and the infinities, else
 * %1.15g unless that does not read back within DBL_EPSILON, then %1.17g (so
 * -0 is "-0").  out holds 32 bytes; returns the length. */
int obra_json_number(char out[32], double d);

#endif
