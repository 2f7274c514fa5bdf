/* agent_trace.h — a bounded trace of what an agent did: the tool calls read
 * from its event stream (claude stream-json tool_use / tool_result, codex
 * exec --json command_execution / file_change items).  Pure: no fds, no
 * clock, no globals.
 *
 * Kept: commands run (Bash, codex command_execution), files written, edited
 * or deleted (Write, Edit, MultiEdit, NotebookEdit, codex file_change), each
 * with its outcome when the result arrives (exit code when known, is_error)
 * and whether the command runs tests.  Other tools (Read, Grep...) are only
 * counted.  At most OBRA_TRACE_HEAD first and OBRA_TRACE_TAIL last entries
 * are held (memory stays bounded however long the run), each field cut at
 * OBRA_TRACE_FIELD bytes; obra_trace_select keeps the whole within
 * OBRA_TRACE_BYTES by dropping from the middle. */
#ifndef OBRA_AGENT_TRACE_H
#define OBRA_AGENT_TRACE_H
#include <stddef.h>

#define OBRA_TRACE_HEAD  100
#define OBRA_TRACE_TAIL  100
#define OBRA_TRACE_MAX   (OBRA_TRACE_HEAD + OBRA_TRACE_TAIL)
#define OBRA_TRACE_BYTES 16384
#define OBRA_TRACE_FIELD 300

typedef enum { OBRA_TA_RUN, OBRA_TA_WRITE, OBRA_TA_EDIT, OBRA_TA_DELETE } obra_trace_action;

typedef struct {
  char tool[24];          /* "Bash", "Write", "command_execution", ... */
  obra_trace_action action;
  char *command;          /* run: the command line (cut); NULL otherwise */
  char *path;             /* write/edit/delete: the file (cut); NULL otherwise */
  char *id;               /* tool_use id / item id, to match the result */
  int exit;               /* exit status when known, else -1 */
  int is_error;           /* -1: no result seen; 0 / 1 */
  int test;               /* the command runs tests */
} obra_trace_entry;

typedef struct {
  obra_trace_entry head[OBRA_TRACE_HEAD];
  obra_trace_entry tail[OBRA_TRACE_TAIL];   /* a ring */
  size_t nhead, ntail, tpos;
  size_t total;            /* entries ever added */
  size_t other;            /* tool calls of other tools (not kept) */
} obra_trace;

/* Add an entry (strings copied and cut); returns it, NULL when out of memory. */
obra_trace_entry *obra_trace_add(obra_trace *t, const char *tool, obra_trace_action a,
                                 const char *command, const char *path, const char *id);
/* The held entry with this id (the most recent first), or NULL. */
obra_trace_entry *obra_trace_find(obra_trace *t, const char *id);
/* Does this command line run tests (pytest, go test, cargo test, npm test, busted, make check...)? */
int obra_trace_is_test(const char *command);
/* "Exit code N" near the start of a tool result's text: N, else -1. */
int obra_trace_exit_in(const char *text);
/* The entries to report, in order, within OBRA_TRACE_BYTES: fills out
 * (room for OBRA_TRACE_MAX) and returns how many; *dropped = entries not
 * reported (never held, or cut for bytes). */
size_t obra_trace_select(const obra_trace *t, const obra_trace_entry **out, size_t *dropped);
void obra_trace_free(obra_trace *t);    /* releases the strings; t itself is the caller's */
const char *obra_trace_action_name(obra_trace_action a);

#endif
