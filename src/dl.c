/* dl.c — shared libraries loaded on first use (include/obra/dl.h).
 * Owns: nothing beyond each obra_dl's handle, kept open for the process's
 * lifetime (the functions it lends may be called until exit, even after a
 * later symbol turned out to be missing).  Uses: dlopen, dlsym. */
#include <dlfcn.h>
#include <link.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "obra/dl.h"

/* obra's library directory seen from bin/obra once installed: the Makefile's
 * $(LMODDIR)/obra relative to $(BINDIR) */
#ifndef OBRA_OWN_FROM_BIN
#define OBRA_OWN_FROM_BIN "../lib/lua/5.4/obra"
#endif

/* Where obra's own copies of libraries may be (dl.h): the directory of
 * core.so when this code runs in it; in the obra executable, lib/obra/
 * beside it (the build tree) and OBRA_OWN_FROM_BIN (installed).  The number
 * of directories put in dirs. */
static int own_dirs(char dirs[2][PATH_MAX]) {
  Dl_info info;
  struct link_map *self = NULL;
  char path[PATH_MAX];
  if (dladdr1((void *)own_dirs, &info, (void **)&self, RTLD_DL_LINKMAP) && self && self->l_name[0]) {
    if (realpath(self->l_name, path) == NULL &&       /* a relative name is the loader's cwd's */
        snprintf(path, sizeof path, "%s", self->l_name) >= (int)sizeof path) return 0;
    char *slash = strrchr(path, '/');
    snprintf(dirs[0], PATH_MAX, "%s", slash ? (*slash = '\0', path) : ".");
    return 1;
  }
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);      /* the executable: l_name is "" */
  char *slash = n > 0 ? memrchr(path, '/', (size_t)n) : NULL;
  if (slash == NULL) return 0;
  *slash = '\0';
  int k = 0;
  if (snprintf(dirs[k], PATH_MAX, "%s/lib/obra", path) < PATH_MAX) k++;
  if (snprintf(dirs[k], PATH_MAX, "%s/" OBRA_OWN_FROM_BIN, path) < PATH_MAX) k++;
  return k;
}

/* name appended to the list of files tried (cut short when it is full) */
static void note(char *tried, size_t n, const char *name) {
  size_t used = strlen(tried);
  if (snprintf(tried + used, n - used, "%s%s", used ? ", " : "", name) < 0) tried[used] = '\0';
}

obra_rc obra_dl_load(obra_dl *lib, obra_err *e) {
  if (lib->handle && !lib->failed) return OBRA_OK;
  if (!lib->failed) {
    char tried[400] = "";
    const char *why = "";
    const char *override = lib->env ? getenv(lib->env) : NULL;
    const char *one[] = { override, NULL };
    const char *const *names = override && *override ? one : lib->sonames;
    for (const char *const *so = names; *so && lib->handle == NULL; so++) {
      if (names != one && (*so)[0] == '@') {       /* obra's own copy, when there is one */
        char dirs[2][PATH_MAX], path[PATH_MAX];
        for (int i = 0, n = own_dirs(dirs); i < n && lib->handle == NULL; i++) {
          char name[PATH_MAX];
          if (snprintf(name, sizeof name, "%s/%s", dirs[i], *so + 1) >= (int)sizeof name) continue;
          if (realpath(name, path) == NULL) continue;       /* none there (and no "bin/.." in its name) */
          lib->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
          lib->own = lib->handle != NULL;
          if (lib->handle == NULL) {
            const char *d = dlerror();
            why = d ? d : "cannot be loaded";
            note(tried, sizeof tried, path);
          }
        }
        continue;
      }
      lib->handle = dlopen(*so, RTLD_NOW | RTLD_LOCAL);
      if (lib->handle == NULL) {
        const char *d = dlerror();
        why = d ? d : "not found";
        note(tried, sizeof tried, *so);
      }
    }
    if (lib->handle) return OBRA_OK;
    lib->failed = 1;
    if (names == one)
      snprintf(lib->msg, sizeof lib->msg, "%s is needed here but cannot be loaded from %s: %s; %s",
               lib->name, lib->env, why, lib->hint);
    else
      snprintf(lib->msg, sizeof lib->msg, "%s is needed here but cannot be loaded (tried %s): %s; %s",
               lib->name, tried, why, lib->hint);
  }
  return obra_err_set(e, OBRA_ENOTFOUND, "%s", lib->msg);
}

obra_rc obra_dl_sym(obra_dl *lib, const char *symbol, void **slot, obra_err *e) {
  obra_rc rc = obra_dl_load(lib, e);
  if (rc != OBRA_OK) return rc;
  dlerror();
  void *p = dlsym(lib->handle, symbol);
  if (p == NULL) {
    lib->failed = 1;     /* the handle stays open: symbols resolved before may be held */
    snprintf(lib->msg, sizeof lib->msg, "%s has no function %s (too old a version?); %s",
             lib->name, symbol, lib->hint);
    return obra_err_set(e, OBRA_ENOTFOUND, "%s", lib->msg);
  }
  *slot = p;
  return OBRA_OK;
}

obra_rc obra_dl_refuse(obra_dl *lib, obra_err *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(lib->msg, sizeof lib->msg, fmt, ap);
  va_end(ap);
  lib->failed = 1;      /* the handle stays open, as after a missing symbol */
  return obra_err_set(e, OBRA_ENOTFOUND, "%s", lib->msg);
}

const char *obra_dl_path(const obra_dl *lib) {
  struct link_map *m = NULL;
  if (lib->handle == NULL || dlinfo(lib->handle, RTLD_DI_LINKMAP, &m) != 0 || m == NULL) return NULL;
  return m->l_name;
}

void *obra_dl_optional(obra_dl *lib, const char *symbol) {
  if (lib->handle == NULL) return NULL;
  dlerror();
  return dlsym(lib->handle, symbol);    /* searches the library's dependencies too */
}
