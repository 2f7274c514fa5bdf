/* repl_readline.c — the REPL's line editor over GNU readline: the prompt,
 * line editing, history (in memory and in a file) and tab completion through
 * a callback (include/obra/repl.h).  Linked only into the obra executable
 * (see the Makefile: EXE_SRC), never into lib/obra/core.so.
 *
 * libreadline is loaded on the first editor asked for (dl.h), not at
 * start-up: with libtinfo it is 0.3 MiB of every obra process's resident set,
 * and only the REPL uses it.  When it cannot be loaded the REPL reads plain
 * lines, as it does when stdin is not a terminal.
 *
 * Readline runs in its callback mode over our own poll(2) of stdin, with
 * rl_catch_signals off: a SIGINT only sets a flag here, and the read loop
 * (ppoll with SIGINT unblocked only while waiting) notices it, throws the
 * partial line away and returns "interrupted".  No readline function is ever
 * called from a signal handler. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <readline/readline.h>
#include <readline/history.h>
#include "obra/dl.h"
#include "obra/repl.h"
#include "obra/signals.h"

#define RL_FUNCS(X) \
  X(rl_callback_handler_install) X(rl_callback_handler_remove) X(rl_callback_read_char) \
  X(rl_callback_sigcleanup) X(rl_redisplay) X(rl_free_line_state) X(rl_completion_matches) \
  X(using_history) X(history_get) X(add_history) X(stifle_history) X(read_history) \
  X(history_truncate_file) X(append_history)
/* readline's variables: resolved the same way, each a pointer to the variable */
#define RL_VARS(X) \
  X(rl_readline_name) X(rl_catch_signals) X(rl_change_environment) X(rl_instream) \
  X(rl_outstream) X(rl_point) X(rl_end) X(rl_line_buffer) X(rl_attempted_completion_over) \
  X(rl_completion_append_character) X(rl_attempted_completion_function) \
  X(rl_completer_word_break_characters) X(history_length) X(history_base)

static struct { RL_FUNCS(OBRA_DL_POINTER) RL_VARS(OBRA_DL_POINTER) } fn;
static obra_dl lib = OBRA_DL_LIB("libreadline", "OBRA_LIBREADLINE",
  "install it (Debian: apt-get install libreadline8); the REPL reads plain lines meanwhile",
  "libreadline.so.8");

static volatile sig_atomic_t got_sigint;
static char *line_read;           /* set by on_line; owned by the reader */
static int line_done;

static obra_complete_fn complete_fn;
static void *complete_ud;
static char **candidates;         /* the current completion's list (ours) */
static size_t candidate_next;

static void on_line(char *line) {
  line_read = line;
  line_done = 1;
  fn.rl_callback_handler_remove();
}

static void init_once(void) {
  static int done;
  if (done) return;
  done = 1;
  *fn.rl_readline_name = "obra";
  *fn.rl_catch_signals = 0;          /* SIGINT is ours (rl_read); readline keeps SIGWINCH */
  *fn.rl_change_environment = 0;     /* do not export LINES/COLUMNS to the agents we start */
  fn.using_history();
}

static char *rl_read(const char *prompt, int *how) {
  init_once();
  obra_sig_saved saved;
  got_sigint = 0;
  obra_signals_interrupt(&got_sigint, NULL, 0, 0, &saved);   /* no SA_RESTART: poll returns EINTR */
  line_read = NULL;
  line_done = 0;
  *how = OBRA_READ_LINE;
  fflush(stdout);
  fflush(stderr);
  /* SIGINT stays blocked except inside ppoll, so one that arrives while
   * readline handles a key is seen at the next check, not lost until the
   * next key press. */
  sigset_t block, orig;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &orig);
  fn.rl_callback_handler_install(prompt, on_line);
  while (!line_done) {
    struct pollfd p = { .fd = fileno(*fn.rl_instream ? *fn.rl_instream : stdin), .events = POLLIN };
    int r = got_sigint ? 0 : ppoll(&p, 1, NULL, &orig);
    if (got_sigint) {
      /* Ctrl-C: show it after the input, drop the partial line, leave the
       * terminal as we found it (deprep may print a carriage return). */
      FILE *out = *fn.rl_outstream ? *fn.rl_outstream : stdout;
      *fn.rl_point = *fn.rl_end;
      fn.rl_redisplay();
      fputs("^C", out);
      fflush(out);
      fn.rl_free_line_state();
      fn.rl_callback_sigcleanup();
      fn.rl_callback_handler_remove();
      fputs("\n", out);
      fflush(out);
      *how = OBRA_READ_INTERRUPTED;
      break;
    }
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      fn.rl_callback_handler_remove();
      *how = OBRA_READ_EOF;
      break;
    }
    if (r > 0) fn.rl_callback_read_char();
  }
  sigprocmask(SIG_SETMASK, &orig, NULL);
  obra_signals_restore(&saved);
  if (*how == OBRA_READ_LINE && line_read == NULL) *how = OBRA_READ_EOF;
  if (*how == OBRA_READ_EOF) { fputc('\n', *fn.rl_outstream ? *fn.rl_outstream : stdout); fflush(stdout); }
  return *how == OBRA_READ_LINE ? line_read : (free(line_read), NULL);
}

static void rl_add(const char *line) {
  init_once();
  if (line == NULL || line[0] == '\0') return;
  HIST_ENTRY *last = *fn.history_length > 0 ? fn.history_get(*fn.history_base + *fn.history_length - 1) : NULL;
  if (last && strcmp(last->line, line) == 0) return;
  fn.add_history(line);
}

static int rl_load(const char *path, int max) {
  init_once();
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  close(fd);
  if (max > 0) fn.stifle_history(max);
  int rc = fn.read_history(path);
  if (rc == 0 && max > 0) fn.history_truncate_file(path, max);
  return rc;
}

static int rl_append(const char *path, int max) {
  (void)max;
  return fn.append_history(1, path);
}

/* Readline's generator protocol: called with state 0 first, then until NULL. */
static char *generate(const char *text, int state) {
  (void)text;
  if (state == 0) candidate_next = 0;
  if (candidates == NULL || candidates[candidate_next] == NULL) return NULL;
  char *s = candidates[candidate_next];
  candidates[candidate_next++] = NULL;      /* readline owns it now */
  return s;
}

static void free_candidates(void) {
  if (candidates == NULL) return;
  for (size_t i = 0; candidates[i] || i < candidate_next; i++) free(candidates[i]);
  free(candidates);
  candidates = NULL;
}

static char **attempt(const char *text, int start, int end) {
  *fn.rl_attempted_completion_over = 1;       /* never fall back to file names */
  *fn.rl_completion_append_character = '\0';  /* a name is often followed by . : or ( */
  if (complete_fn == NULL) return NULL;
  free_candidates();
  candidates = complete_fn(*fn.rl_line_buffer, start, end, complete_ud);
  if (candidates == NULL) return NULL;
  char **matches = fn.rl_completion_matches(text, generate);
  free_candidates();
  return matches;
}

static void rl_set_completer(obra_complete_fn complete, void *ud, const char *word_breaks) {
  init_once();
  complete_fn = complete;
  complete_ud = ud;
  *fn.rl_attempted_completion_function = complete ? attempt : NULL;
  if (word_breaks) *fn.rl_completer_word_break_characters = word_breaks;
}

/* The editor, or NULL when libreadline cannot be loaded (the caller reads
 * plain lines). */
const obra_line_editor *obra_repl_readline(void) {
  static const obra_line_editor ed = {
    .read = rl_read, .add_history = rl_add, .load_history = rl_load,
    .append_history = rl_append, .set_completer = rl_set_completer,
  };
  obra_err err = { 0 }, *e = &err;
  obra_rc rc = obra_dl_load(&lib, e);
  RL_FUNCS(OBRA_DL_RESOLVE)
  RL_VARS(OBRA_DL_RESOLVE)
  return rc == OBRA_OK ? &ed : NULL;
}
