/* agent_adapter.h — one table of operations per agent kind, as llm.h has
 * one per LLM provider.  agent.c and agent_parse.c look the table up once
 * (obra_agent_adapter_for) and never switch on the kind.
 *
 * An adapter's parser half (line, classify) is pure: bytes and structs in,
 * structs out, no fds, no clock, no globals (agent_claude_parse.c,
 * agent_codex_parse.c).  Its command half builds argv and environment
 * (agent_claude.c, agent_codex.c, agent_command.c).  Both use agent_text.h
 * and nothing of agent.c. */
#ifndef OBRA_AGENT_ADAPTER_H
#define OBRA_AGENT_ADAPTER_H
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "obra/agent.h"
#include "obra/agent_text.h"
#include "obra/agent_trace.h"
#include "obra/proc.h"
#include "obra/reset_time.h"

/* What an adapter learns from the lines it is fed. */
typedef struct {
  obra_agent_kind kind;
  cJSON  *result;            /* claude: the last result object */
  char   *session_id;        /* claude: from system/init; codex: thread id */
  char   *text;              /* codex: the last agent message */
  char   *failure;           /* codex: turn.failed message */
  int     final_seen;        /* a final result / turn end arrived */
  int     completed, failed; /* codex turn outcome */
  int64_t usage[4];          /* codex sums: input, output, cache read, cache write */
  int     turns;
  int     saw_output;        /* a non-blank stdout line */
  char   *first_junk;        /* the first non-JSON line (trimmed), for diagnostics */
  obra_strlist errors;
  obra_trace *trace;         /* tool calls (claude stream-json, codex items); NULL until one */
  obra_tz_offset_fn tz;      /* zone offsets for reset times; NULL: obra_tz_offset_system */
} obra_agent_parser;

void obra_agent_parser_free(obra_agent_parser *p);   /* releases what it holds; reusable after */

typedef struct {
  obra_agent_kind kind;
  const char *name;          /* "claude", "codex", "command" */
  /* argv, stdin and environment of a run (s->session/resume already checked). */
  obra_rc (*command)(const obra_agent_spec *s, obra_agent_cmd *c, obra_err *e);
  /* Prepare the parser of a run before it starts, or NULL. */
  void (*begin)(obra_agent_parser *p, const obra_agent_spec *s);
  /* Feed one stdout line (without its newline); returns 1 when it was the
   * final result.  NULL: stdout is not read line by line (no events either). */
  int  (*line)(obra_agent_parser *p, const char *line, size_t len);
  /* Fill out from what the parser saw; returns 1 when the adapter decided
   * the class, 0 to fall back to the process-level classes. */
  int  (*classify)(obra_agent_parser *p, const obra_proc_result *pr, double now,
                   obra_agent_result *out);
  /* stderr wording (session in use, rate limit, auth...) means something. */
  int  stderr_speaks;
} obra_agent_adapter;

extern const obra_agent_adapter obra_agent_claude, obra_agent_codex, obra_agent_cmdline;

/* The table of a kind, or NULL for an unknown kind. */
const obra_agent_adapter *obra_agent_adapter_for(obra_agent_kind k);

/* Classify a finished run from its parser and process result: the
 * adapter's verdict, else the process-level classes (agent_parse.c, pure
 * but for the zone offsets of reset times). */
void obra_agent_classify(const obra_agent_adapter *a, obra_agent_parser *p,
                         const obra_proc_result *pr, double now, obra_agent_result *out);

/* The parser halves (pure). */
int obra_agent_claude_line(obra_agent_parser *p, const char *line, size_t len);
int obra_agent_claude_classify(obra_agent_parser *p, const obra_proc_result *pr, double now,
                               obra_agent_result *out);
int obra_agent_codex_line(obra_agent_parser *p, const char *line, size_t len);
int obra_agent_codex_classify(obra_agent_parser *p, const obra_proc_result *pr, double now,
                              obra_agent_result *out);

#endif
