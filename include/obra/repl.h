/* repl.h — line editing for the REPL: a small interface that src/lapi_repl.c
 * (the bridge) uses and src/repl_readline.c (GNU readline) implements.
 *
 * The readline part is linked only into the obra executable: lib/obra/core.so
 * must load into a stock lua5.4 that has no libreadline.  So the bridge reaches
 * the implementation through the weak symbol obra_repl_readline, which is NULL
 * in core.so, and falls back to plain stdio line reading there (and whenever
 * stdin is not a terminal). */
#ifndef OBRA_REPL_H
#define OBRA_REPL_H

/* How a read ended without a line. */
enum { OBRA_READ_LINE = 0, OBRA_READ_EOF = 1, OBRA_READ_INTERRUPTED = 2 };

/* Completion: line is the whole input line, [start, end) the word under the
 * cursor.  Returns a malloc'd NULL-terminated array of malloc'd candidates for
 * that word (the array and the strings are the editor's to free), or NULL. */
typedef char **(*obra_complete_fn)(const char *line, int start, int end, void *ud);

typedef struct obra_line_editor {
  /* Show prompt and read one line.  Returns a malloc'd line without its newline
   * (the caller frees it), or NULL with *how = OBRA_READ_EOF (Ctrl-D, end of
   * input) or OBRA_READ_INTERRUPTED (Ctrl-C: the partial line is discarded).
   * SIGINT is handled inside the call and the previous handler restored. */
  char *(*read)(const char *prompt, int *how);
  /* History: add one entry (consecutive duplicates are skipped); load a file,
   * creating it with mode 0600 and keeping its last max entries; append the
   * newest entry to it.  The file functions return 0 or an errno value. */
  void (*add_history)(const char *line);
  int  (*load_history)(const char *path, int max);
  int  (*append_history)(const char *path, int max);
  /* Completion callback (NULL turns completion off); word_breaks are the
   * characters that separate words ('.' and ':' are not among them, so the
   * word is a whole `a.b:c` path). */
  void (*set_completer)(obra_complete_fn fn, void *ud, const char *word_breaks);
} obra_line_editor;

/* The readline editor; defined only in the executable (NULL elsewhere). */
const obra_line_editor *obra_repl_readline(void) __attribute__((weak));

#endif
