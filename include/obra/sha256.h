/* sha256.h — SHA-256 (FIPS 180-4), for content-addressed texts in the store
 * (a key that must not collide, unlike core.hash's FNV).  Plain C, no state
 * beyond the call. */
#ifndef OBRA_SHA256_H
#define OBRA_SHA256_H
#include <stddef.h>

/* The digest of len bytes of data as 64 lower-case hex digits and a NUL in hex. */
void obra_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
