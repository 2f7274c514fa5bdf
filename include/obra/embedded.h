/* embedded.h — the lua/ files compiled into the obra binary (build/embedded.c). */
#ifndef OBRA_EMBEDDED_H
#define OBRA_EMBEDDED_H
#include <stddef.h>

typedef struct {
  const char *name;   /* module name, e.g. "obra.cli" */
  const char *path;   /* source path, for chunk names: "lua/obra/cli.lua" */
  const char *src;
  size_t      len;
} obra_embedded_file;

extern const obra_embedded_file obra_embedded[];   /* ends with a NULL name */

#endif
