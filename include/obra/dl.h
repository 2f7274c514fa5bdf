/* dl.h — load a shared library on first use instead of at start-up.
 *
 * A library linked the usual way is loaded (with everything it depends on)
 * before main() runs, whether the command needs it or not: libcurl alone
 * brings some thirty libraries and most of obra's start-up time.  A module
 * that uses a library lazily compiles against the library's header, keeps
 * its functions in a table of pointers, and fills the table on first use:
 *
 *   #define CURL_FUNCS(X) X(curl_easy_init) X(curl_easy_cleanup)
 *   static struct { CURL_FUNCS(OBRA_DL_POINTER) } fn;          // typed pointers
 *   static obra_dl lib = OBRA_DL_LIB("libcurl", "OBRA_LIBCURL", "install libcurl4 (apt-get install libcurl4)",
 *                                    "libcurl.so.4", "libcurl-gnutls.so.4");
 *   obra_rc rc = obra_dl_load(&lib, e);
 *   CURL_FUNCS(OBRA_DL_RESOLVE)           // uses lib, fn, rc and e from the scope
 *   ... fn.curl_easy_init() ...
 *
 * The environment variable (OBRA_LIBCURL here), when set, names the one file
 * to load instead of the usual names (a library installed elsewhere).  A name
 * starting with '@' is obra's own copy of a library (built by `make deps`),
 * looked for in obra's library directory: next to core.so, that is lib/obra/
 * beside ./obra in the build tree and $(PREFIX)/lib/lua/5.4/obra/ once
 * installed; when there is no such file the name is skipped without a word.
 * A library that cannot be loaded, or lacks a symbol, gives a clear error
 * (which library, what the loader said, what to do) every time it is asked
 * for, and the rest of obra keeps working.  Not thread-safe: obra has one
 * thread.  Uses: dlopen, dlsym. */
#ifndef OBRA_DL_H
#define OBRA_DL_H
#include "obra/status.h"

typedef struct {
  const char *name;              /* for messages: "libcurl" */
  const char *env;               /* a variable naming the file to load instead, or NULL */
  const char *hint;              /* what to do when it is missing */
  const char *const *sonames;    /* tried in order, NULL-terminated */
  void *handle;                  /* NULL until loaded */
  int own;                       /* the handle is obra's own copy (an '@' name) */
  int failed;                    /* tried and failed: msg says why */
  char msg[640];
} obra_dl;

#define OBRA_DL_LIB(name, env, hint, ...) \
  { (name), (env), (hint), (const char *const[]){ __VA_ARGS__, NULL }, NULL, 0, 0, "" }

/* A struct member for function f: a pointer of f's own type (from the header). */
#define OBRA_DL_POINTER(f) __typeof__(f) *f;
/* Resolve f into fn.f once rc is OBRA_OK (with lib, fn, rc and e in scope). */
#define OBRA_DL_RESOLVE(f) \
  if (rc == OBRA_OK && fn.f == NULL) rc = obra_dl_sym(&lib, #f, (void **)&fn.f, e);

/* Load the library once: OBRA_OK, or OBRA_ENOTFOUND with e naming the
 * library, every file name tried, the loader's message and lib->hint.  A
 * failure is remembered: later calls fail the same way without retrying. */
obra_rc obra_dl_load(obra_dl *lib, obra_err *e);

/* Look symbol up in a loaded library into *slot: OBRA_OK, or
 * OBRA_ENOTFOUND naming the symbol and the library (too old a version). */
obra_rc obra_dl_sym(obra_dl *lib, const char *symbol, void **slot, obra_err *e);

/* Refuse a loaded library (the wrong version, say): it fails from now on, as
 * one that could not be loaded does, with the message made from fmt. */
obra_rc obra_dl_refuse(obra_dl *lib, obra_err *e, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* The file the library was loaded from, or NULL when it is not loaded. */
const char *obra_dl_path(const obra_dl *lib);

/* A function that only some builds of a loaded library (or of the libraries
 * it depends on) have: its address, or NULL without error when it is absent
 * or the library is not loaded.  Never marks the library failed. */
void *obra_dl_optional(obra_dl *lib, const char *symbol);

#endif
