/* agent.h — coding agents run as supervised processes (proc.h): the Claude
 * Code CLI, the Codex CLI, or any command from an argv template.
 *
 * An adapter builds the argv and environment from a spec, parses the
 * agent's output line by line as it arrives (so a final result is seen even
 * when later output overflows the capture, and a run that hangs after its
 * result is ended after result_grace_ms), and classifies every outcome into
 * one obra_agent_class.  Runtime failures are results with a class; only a
 * bad spec is an error.  The same parser serves the runtime and
 * obra_agent_parse() (fixtures, replays).
 *
 * Files: agent.c (runs, events), agent_parse.c (classification, pure),
 * one adapter per kind behind a table of operations (agent_adapter.h:
 * agent_claude.c + agent_claude_parse.c, agent_codex.c +
 * agent_codex_parse.c, agent_command.c), and what they share
 * (agent_text.c, reset_time.c). */
#ifndef OBRA_AGENT_H
#define OBRA_AGENT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <cjson/cJSON.h>
#include "obra/proc.h"
#include "obra/agent_trace.h"
#include "obra/status.h"

typedef enum { OBRA_AGENT_CLAUDE, OBRA_AGENT_CODEX, OBRA_AGENT_COMMAND } obra_agent_kind;

typedef enum {
  OBRA_AC_OK = 0,
  OBRA_AC_MAX_TURNS,
  OBRA_AC_BUDGET,
  OBRA_AC_RATE_LIMITED,
  OBRA_AC_AUTH,
  OBRA_AC_API_ERROR,
  OBRA_AC_PROMPT_TOO_LONG,
  OBRA_AC_SESSION_IN_USE,
  OBRA_AC_SESSION_NOT_FOUND,
  OBRA_AC_TIMEOUT,
  OBRA_AC_IDLE_TIMEOUT,
  OBRA_AC_KILLED,
  OBRA_AC_CRASHED,
  OBRA_AC_BAD_OUTPUT
} obra_agent_class;

/* "ok", "max_turns", ... "bad_output" */
const char *obra_agent_class_name(obra_agent_class c);
/* "claude", "codex", "command"; and back (-1 when unknown) */
const char *obra_agent_kind_name(obra_agent_kind k);
int obra_agent_kind_parse(const char *s);

/* Everything one run needs.  All pointers are borrowed for the duration of
 * the call that takes the spec; lists are NULL-terminated (or NULL). */
typedef struct {
  obra_agent_kind kind;
  const char *command;             /* the binary; NULL: "claude" / "codex" on PATH */
  const char *const *argv_template;/* command kind: argv with {prompt} {session} {workdir} */
  const char *model;
  int max_turns;                   /* 0: not passed */
  int skip_permissions;            /* --dangerously-skip-permissions / codex bypass */
  const char *permission_mode;
  const char *const *allowed_tools;
  const char *const *disallowed_tools;
  const char *append_system_prompt;
  int stream;                      /* claude: --output-format stream-json --verbose */
  int skip_git_repo_check;         /* codex: --skip-git-repo-check */
  const char *const *extra_args;
  const char *const *env_set;      /* "NAME=value", applied over the adapter's own */
  const char *const *env_unset;
  const char *prompt;
  const char *session;             /* start a new session with this id */
  const char *resume;              /* continue this session */
  const char *cwd;
  int64_t timeout_ms, idle_timeout_ms, result_grace_ms, kill_grace_ms;
  size_t max_output;               /* stdout capture; 0: 8 MiB */
  int want_events;                 /* queue JSON event lines for obra_agent_event */
} obra_agent_spec;

/* The command line and environment a spec turns into (all malloc'd). */
typedef struct {
  char **argv, **env_set, **env_unset;  /* NULL-terminated */
  char *stdin_data;                     /* NULL: /dev/null */
  size_t stdin_len;
} obra_agent_cmd;

obra_rc obra_agent_command(const obra_agent_spec *s, obra_agent_cmd *out, obra_err *e);
void    obra_agent_cmd_free(obra_agent_cmd *c);

typedef struct {
  obra_agent_class cls;
  char   *text;                   /* the final answer (or the error text); never NULL */
  char   *session_id;             /* as reported by the agent; NULL if none */
  int64_t input_tokens, output_tokens, cache_read_tokens, cache_write_tokens;
  double  cost_usd;
  int     turns;
  int64_t duration_ms;
  int     exited, exit_code, signal;
  char   *stderr_tail;            /* never NULL */
  int     truncated;              /* output went past the capture (or a line past its cap) */
  char  **errors; size_t nerrors; /* error messages the agent reported, and obra's own notes */
  int     api_error_status;       /* 0: none */
  double  reset_at;               /* epoch seconds when rate_limited and known, else 0 */
  int     permission_denials;
  char   *subtype;                /* claude's subtype / terminal_reason, informational; may be NULL */
  char   *terminal_reason;
  int     result_seen;            /* a final result object was parsed */
  obra_trace *trace;              /* the tool calls seen (agent_trace.h); NULL: none */
} obra_agent_result;

void obra_agent_result_clear(obra_agent_result *r);

/* Classify a finished process's output (pr->out / pr->err and its flags).
 * now is the wall-clock time reset texts are relative to. */
obra_rc obra_agent_parse(obra_agent_kind kind, const obra_proc_result *pr, double now,
                         obra_agent_result *out, obra_err *e);

/* ---- runs ---- */
typedef struct obra_agent_run obra_agent_run;

/* Start a run; NULL with e set when the spec is bad (OBRA_EINVAL) or the
 * program cannot be started (OBRA_ESPAWN). */
obra_agent_run *obra_agent_start(const obra_agent_spec *s, obra_err *e);
int   obra_agent_ready(const obra_agent_run *r);
pid_t obra_agent_pid(const obra_agent_run *r);
void  obra_agent_kill(obra_agent_run *r);
/* Oldest queued event line (a JSON text) or NULL; pop drops it. */
const char *obra_agent_event(const obra_agent_run *r, size_t *len);
void  obra_agent_event_pop(obra_agent_run *r);
/* The classified result once ready (computed on first call; owned by r). */
const obra_agent_result *obra_agent_result_get(obra_agent_run *r);
/* Release; a process still running is killed and reaped in the background. */
void  obra_agent_free(obra_agent_run *r);

#endif
