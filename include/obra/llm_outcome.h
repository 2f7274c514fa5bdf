/* llm_outcome.h — how an LLM call's attempt ended, as a pure unit: the
 * transport's outcome, or the HTTP status and error body, in; an
 * obra_llm_class out (llm_outcome.c).  No I/O, no clock: a Retry-After
 * value is passed in as seconds, already read by the caller. */
#ifndef OBRA_LLM_OUTCOME_H
#define OBRA_LLM_OUTCOME_H
#include <stddef.h>
#include "obra/http.h"
#include "obra/llm.h"

/* A transfer that did not finish (oc != OBRA_HTTP_OK): unreachable,
 * timeout, bad_response (over the size cap) or server_error (cut). */
obra_llm_class obra_llm_outcome_transfer(obra_http_outcome oc);

/* A finished transfer with a status outside 2xx.  chat: the request was a
 * chat (a 404 whose body names a model is model_not_found, else the URL is
 * wrong: unreachable).  retry_after: seconds from Retry-After, or -1 (a 503
 * with one is rate_limited).  401/403 auth, 408 timeout, 429 rate_limited,
 * 5xx server_error, the rest bad_response. */
obra_llm_class obra_llm_outcome_status(long status, const char *body, size_t len, int chat,
                                       double retry_after);

/* The server's own words in an error body: {"error": "..."}, {"error":
 * {"message": ...}}, {"message": ...}, {"detail": ...}, or the first 200
 * bytes with non-printable bytes as spaces.  Always NUL-terminates out. */
void obra_llm_error_text(const char *body, size_t len, char *out, size_t outlen);

#endif
