/* status.c — error recording shared by the core modules. */
#include <stdarg.h>
#include <stdio.h>
#include "obra/status.h"

obra_rc obra_err_set(obra_err *e, obra_rc rc, const char *fmt, ...) {
  if (e == NULL || e->rc != OBRA_OK) return rc;
  va_list ap;
  e->rc = rc;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return rc;
}

const char *obra_rc_name(obra_rc rc) {
  switch (rc) {
  case OBRA_OK: return "ok";
  case OBRA_EINVAL: return "invalid";
  case OBRA_ENOMEM: return "nomem";
  case OBRA_EIO: return "io";
  case OBRA_EDB: return "db";
  case OBRA_EBUSY: return "busy";
  case OBRA_ESCHEMA: return "schema";
  case OBRA_ESTATE: return "state";
  case OBRA_ENOTFOUND: return "not_found";
  case OBRA_ETIMEOUT: return "timeout";
  case OBRA_ESPAWN: return "spawn";
  case OBRA_EPROTO: return "protocol";
  }
  return "unknown";
}
