/* agent_text.h — what the agent adapters share, and nothing that runs a
 * process: string lists (argv building), the environment merge of an agent
 * command, wording checks on agent texts (rate limits, authentication,
 * unknown sessions), small cJSON getters and the note of the first line that
 * was not JSON.  A leaf module: it uses only libc and cJSON.
 *
 * The dependency graph of the agent files is a tree:
 *   agent.c (runs) -> agent_parse.c (classification) -> the adapter table
 *   (agent_claude.c, agent_codex.c, agent_command.c and their *_parse.c)
 *   -> agent_text.c, reset_time.c. */
#ifndef OBRA_AGENT_TEXT_H
#define OBRA_AGENT_TEXT_H
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "obra/agent.h"

/* A growable NULL-terminated list of malloc'd strings. */
typedef struct { char **v; size_t n, cap; } obra_strlist;
int  obra_strlist_push(obra_strlist *l, const char *s);          /* copies; 0 / -1 */
int  obra_strlist_pushf(obra_strlist *l, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
void obra_strlist_free(obra_strlist *l);
/* A NULL-terminated copy of l->v (ownership moves to the caller; never NULL
 * unless out of memory). */
char **obra_strlist_take(obra_strlist *l);

/* Fill c->env_set / c->env_unset: the adapter's sets and unsets, then the
 * spec's on top (a name the user sets is never unset, and vice versa). */
obra_rc obra_agent_env(obra_agent_cmd *c, const char *const *sets, const char *const *unsets,
                       const obra_agent_spec *s, obra_err *e);

char *obra_agent_strdup(const char *s);                             /* NULL-safe */
int   obra_agent_contains(const char *hay, const char *needle);     /* ASCII case-insensitive */
int   obra_agent_rate_limit_text(const char *s);
int   obra_agent_auth_text(const char *s);
int   obra_agent_session_not_found_text(const char *s);

/* cJSON getters: a string member (borrowed) or NULL; a number member
 * truncated to an integer and clamped to +-OBRA_AGENT_JINT_MAX (2^53, where
 * JSON numbers stop being exact), or 0. */
#define OBRA_AGENT_JINT_MAX ((int64_t)1 << 53)
const char *obra_agent_jstr(const cJSON *o, const char *k);
int64_t     obra_agent_jint(const cJSON *o, const char *k);

/* Keep the first 200 bytes of a line that is not the agent's JSON (control
 * characters as spaces) in *junk, unless one is kept already. */
void obra_agent_note_junk(char **junk, const char *s, size_t len);
/* Append a copy of msg to a result's errors (dropped when out of memory). */
void obra_agent_add_error(obra_agent_result *out, const char *msg);

#endif
