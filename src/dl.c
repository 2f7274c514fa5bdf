/* dl.c — shared libraries loaded on first use (include/obra/dl.h).
 * Owns: nothing beyond each obra_dl's handle, kept open for the process's
 * lifetime (the functions it lends may be called until exit, even after a
 * later symbol turned out to be missing).  Uses: dlopen, dlsym. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obra/dl.h"

obra_rc obra_dl_load(obra_dl *lib, obra_err *e) {
  if (lib->handle && !lib->failed) return OBRA_OK;
  if (!lib->failed) {
    char tried[200] = "";
    const char *why = "";
    const char *override = lib->env ? getenv(lib->env) : NULL;
    const char *one[] = { override, NULL };
    const char *const *names = override && *override ? one : lib->sonames;
    for (const char *const *so = names; *so && lib->handle == NULL; so++) {
      lib->handle = dlopen(*so, RTLD_NOW | RTLD_LOCAL);
      if (lib->handle == NULL) {
        const char *d = dlerror();
        why = d ? d : "not found";
        size_t used = strlen(tried);
        snprintf(tried + used, sizeof tried - used, "%s%s", used ? ", " : "", *so);
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

void *obra_dl_optional(obra_dl *lib, const char *symbol) {
  if (lib->handle == NULL) return NULL;
  dlerror();
  return dlsym(lib->handle, symbol);    /* searches the library's dependencies too */
}
