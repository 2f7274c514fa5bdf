/* textpack.h — a stored text packed smaller: raw DEFLATE (zlib) primed with a
 * preset dictionary of the wording obra's prompts repeat (the judge's
 * headings and fences, the agent prompt's frame, a git diff's lines), so a
 * judge message of under a kilobyte packs to a few hundred bytes.  Used by the
 * data layer for texts.packed (docs/data.md).  Pure: zlib and libc.
 *
 * Packed bytes: one format byte, then the DEFLATE stream.  Format 1 is
 * dictionary 1, frozen: rows written with it need its exact bytes forever, so
 * a better dictionary is format 2, and unpack keeps reading 1. */
#ifndef OBRA_TEXTPACK_H
#define OBRA_TEXTPACK_H
#include <stddef.h>
#include "obra/status.h"

/* Texts shorter than this are stored as they are. */
#define OBRA_TEXTPACK_MIN 64

/* The packed bytes of len bytes of text (malloc'd, the caller frees; their
 * length in *out_len), or NULL when packing does not make them smaller, the
 * text is shorter than OBRA_TEXTPACK_MIN, or memory ran out. */
unsigned char *obra_textpack_pack(const char *text, size_t len, size_t *out_len);

/* The text packed in p (malloc'd and NUL-terminated, the caller frees; its
 * length in *out_len), or NULL with e set: OBRA_EINVAL for bytes that are
 * not a packed text this obra reads (an unknown format, a broken stream),
 * OBRA_ENOMEM. */
char *obra_textpack_unpack(const unsigned char *p, size_t len, size_t *out_len, obra_err *e);

#endif
