/* objlog.h — the object log: git objects appended to one file, then written
 * as one pack (src/objlog.c; used by src/workspace.c for the shadow
 * repository's snapshots).
 *
 * An iteration's snapshot writes a blob and a tree or two.  Written loose,
 * each is a new file (a temporary file, a link, an unlink), and on a
 * journal-less ext4 a new inode can cost half a millisecond (bench/README.md,
 * round 5).  Appended here, they cost one write to a file that exists; once
 * the log holds OBRA_OBJLOG_OBJECTS objects or OBRA_OBJLOG_BYTES bytes, or
 * when the workspace is closed, its objects become one pack (packfile.h) and
 * the log is removed.
 *
 * The file: "OBRAOLG1", then records of a 32-byte header — the raw object
 * id (20), the type (1: git's numbers, 1 commit … 4 tag), three zero bytes,
 * the length (8, little-endian) — and the object's bytes, uncompressed.  A
 * record cut short (a kill during the append) ends the log: readers stop
 * before it, and the next writer cuts it off.
 *
 * Processes share the log through flock(2): appends and the flush hold it
 * exclusively.  A flush packs every object, then unlinks the file, so a
 * process that kept it open reads what it had, and finds the rest in the
 * pack after a refresh.  A kill between the pack's rename and the unlink
 * leaves objects in both, which git allows. */
#ifndef OBRA_OBJLOG_H
#define OBRA_OBJLOG_H
#include <stddef.h>
#include <stdint.h>
#include "obra/packfile.h"
#include "obra/status.h"

#define OBRA_OBJLOG_OBJECTS 512
#define OBRA_OBJLOG_BYTES   (4u << 20)

typedef struct obra_objlog obra_objlog;

/* The log at path (it need not exist yet: it is made at the first append).
 * NULL only when out of memory. */
obra_objlog *obra_objlog_open(const char *path);
void         obra_objlog_close(obra_objlog *l);          /* NULL is a no-op; never flushes */

/* 1 with *type and *len when the log holds id, else 0. */
int     obra_objlog_find(const obra_objlog *l, const unsigned char id[20], int *type, size_t *len);
/* Read the object's len bytes (as found) into buf. */
obra_rc obra_objlog_read(obra_objlog *l, const unsigned char id[20], void *buf, size_t len, obra_err *e);
/* Take in what other processes appended or flushed since. */
obra_rc obra_objlog_refresh(obra_objlog *l, obra_err *e);

/* Append one object (a no-op when the log holds it).  The first append
 * takes the lock, which obra_objlog_unlock gives back (after the last
 * append of a batch). */
obra_rc obra_objlog_append(obra_objlog *l, int type, const unsigned char id[20], const void *data, size_t len,
                           obra_err *e);
void    obra_objlog_unlock(obra_objlog *l);

/* Objects and bytes the log holds (as this process last read it). */
size_t  obra_objlog_objects(const obra_objlog *l);
uint64_t obra_objlog_bytes(const obra_objlog *l);

/* Write every object of the log as one pack in packdir and remove the log
 * (a log that is empty or absent: only removed). */
obra_rc obra_objlog_flush(obra_objlog *l, const char *packdir, const obra_zlib *z, obra_err *e);

#endif
