/* redact.h — secrets never reach the database, the logs or a cassette.
 *
 * What counts as a secret:
 *  - the value of every variable in obra's environment whose name says it is
 *    one (…KEY, …TOKEN, …SECRET, …PASSWORD, …PASSWD, …CREDENTIALS, and the
 *    known API keys), when it is at least 8 bytes long;
 *  - values added with obra_redact_add (a workflow's api_key, ...);
 *  - anything shaped like one: `sk-ant-…` and `sk-…` API keys, the token after
 *    `Bearer ` / `Basic `, the value of an `x-api-key:` header.
 * Each is replaced by "[REDACTED]". */
#ifndef OBRA_REDACT_H
#define OBRA_REDACT_H
#include <stddef.h>

#define OBRA_REDACTED "[REDACTED]"

/* Read the secrets of envp (NULL: the process's environ).  Safe to call again
 * (the list is rebuilt). */
void obra_redact_init(char **envp);
/* Add one secret value (ignored when shorter than 8 bytes). */
void obra_redact_add(const char *value);
/* Is the environment variable NAME one whose value is a secret? */
int obra_redact_secret_name(const char *name);
/* A malloc'd copy of s[0..n) with every secret replaced, its length in *outn;
 * NULL when there is nothing to replace (or no memory: then the caller keeps
 * s, which is why it is checked first with obra_redact_needed). */
char *obra_redact(const char *s, size_t n, size_t *outn);
/* Does s[0..n) hold a secret?  (A cheap scan; obra_redact does the work.) */
int obra_redact_needed(const char *s, size_t n);

#endif
