/* packfile.h — write git objects as one pack (.pack + .idx, version 2, no
 * deltas) straight into a repository's objects/pack directory: what a bulk
 * snapshot uses instead of thousands of loose objects (src/workspace.c).
 *
 * The pack and its index are written under temporary names and renamed
 * (pack first, index last: git and libgit2 only see a pack through its
 * index), so a kill leaves at most a tmp_obra_* file and never half a pack
 * (the shadow's next flush removes it once an hour old: obra_pack_sweep).
 * zlib comes from the caller (obra loads it with libgit2, whose dependency it
 * is).  SHA-1 is computed here (packfile.c); object ids are the caller's. */
#ifndef OBRA_PACKFILE_H
#define OBRA_PACKFILE_H
#include <stddef.h>
#include <stdint.h>
#include "obra/status.h"

typedef struct {   /* zlib's entry points (zlib.h), by the caller */
  int (*deflateInit2_)(void *strm, int level, int method, int window_bits, int mem_level, int strategy,
                       const char *version, int stream_size);
  int (*deflate)(void *strm, int flush);
  int (*deflateEnd)(void *strm);
  int (*deflateReset)(void *strm);
  unsigned long (*crc32)(unsigned long crc, const unsigned char *buf, unsigned len);
} obra_zlib;

typedef struct obra_pack obra_pack;

/* A pack of exactly count objects in packdir (an objects/pack directory). */
obra_pack *obra_pack_begin(const char *packdir, uint32_t count, const obra_zlib *z, obra_err *e);
/* type: 1 commit, 2 tree, 3 blob, 4 tag (git's own numbers); id: the raw object id */
obra_rc    obra_pack_add(obra_pack *p, int type, const unsigned char id[20], const void *data, size_t len,
                         obra_err *e);
/* Write the index and rename both into place; name: the pack's 40-hex name.
 * Frees p whatever happens. */
obra_rc    obra_pack_finish(obra_pack *p, char name[41], obra_err *e);
void       obra_pack_abort(obra_pack *p);            /* removes the temporary files; NULL is a no-op */
/* Remove the temporary files (tmp_obra_pack_*, tmp_obra_idx_*) a writer
 * killed mid-pack left in packdir, the ones not modified for max_age
 * seconds (a live writer's are younger).  git never removes them where
 * pruning is off, as in obra's shadow repository.  Returns how many went. */
int        obra_pack_sweep(const char *packdir, long max_age);

/* SHA-1 (FIPS 180-4), for the pack's and the index's trailers; exposed for the unit test. */
typedef struct { uint32_t h[5]; uint64_t n; unsigned char buf[64]; } obra_sha1;
void obra_sha1_init(obra_sha1 *s);
void obra_sha1_update(obra_sha1 *s, const void *data, size_t len);
void obra_sha1_final(obra_sha1 *s, unsigned char out[20]);

#endif
