/* status.h — the one enum of result codes every core module returns.
 * Details travel through an obra_err out-parameter; the first error wins. */
#ifndef OBRA_STATUS_H
#define OBRA_STATUS_H
#include <stddef.h>

typedef enum {
  OBRA_OK = 0,
  OBRA_EINVAL,      /* misuse: bad argument */
  OBRA_ENOMEM,
  OBRA_EIO,         /* file system or database I/O */
  OBRA_EDB,         /* database error (constraint, corrupt, ...) */
  OBRA_EBUSY,       /* locked by someone else */
  OBRA_ESCHEMA,     /* schema newer than this binary, or migration failed */
  OBRA_ESTATE,      /* forbidden state transition */
  OBRA_ENOTFOUND,
  OBRA_ETIMEOUT,
  OBRA_ESPAWN,      /* could not start a process */
  OBRA_EPROTO       /* a peer spoke garbage */
} obra_rc;

typedef struct {
  obra_rc rc;
  char    msg[512];
} obra_err;

/* Record an error unless one is already recorded (first error wins). Returns rc. */
obra_rc obra_err_set(obra_err *e, obra_rc rc, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
/* A short stable name for a code: "ok", "invalid", "io", ... */
const char *obra_rc_name(obra_rc rc);

#endif
