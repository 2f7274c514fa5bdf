/* textpack.c — stored texts packed with DEFLATE against a preset dictionary
 * (textpack.h).  Pure: zlib and libc. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "obra/textpack.h"

#define FORMAT_1 1
#define MAX_TEXT ((size_t)1 << 30)      /* a text obra stores is far smaller */

/* Dictionary 1: FROZEN.  Every row packed with format 1 needs these exact
 * bytes to be read again: never edit them; a better dictionary is format 2.
 * What obra's prompts repeat (lua/obra/judge.lua, lua/obra/prompt.lua at
 * schema 10, and git's diff lines), the most frequent last, where DEFLATE
 * reaches them at the shortest distances. */
static const char DICT_1[] =
  "Context from your previous session on this task (it was summarised to free the context window):\n"
  "Feedback on an earlier attempt at this task:\n"
  "Feedback on your previous attempt:\n"
  "Address every point above, then finish the task.\n"
  "Continue the task where you left off and finish it.\n"
  "When you are done, these checks must pass (obra runs them):\n"
  "  - \n"
  "Protected paths the agent changed (tests, or what the checks run): \n"
  "Files that existed at the base and are deleted now: \n"
  "## Protected paths and deletions (observed by obra)\n"
  "Output of the failing checks (untrusted, the end of each):\n"
  "<<<CHECK \n"
  "CHECK >>>\n"
  "- : FAILED (exit 1) — REGRESSION: passed on the base, fails now; it ran zero tests\n"
  "- : passed — guard: passed on the base and now\n"
  "- : FAILED (exit 1) — the task's target: failed on the base too\n"
  "- : passed — fixed: failed on the base, passes now\n"
  "Not shown (to keep this prompt short): \n"
  "deleted file  (1 line(s) removed)\n"
  "No file was created, modified or deleted.\n"
  "(the agent returned no text)\n"
  " tool call(s) recorded:  command(s) run ( failed),  file(s) written,  edited,  deleted by commands"
  ",  other tool call(s) (reading, searching).\n"
  "<<<TRACE \n"
  "Test runs: none recorded.\n"
  "Commands:\n"
  "-   -> exit 0\n"
  "-   -> exit 1, FAILED\n"
  "Files written: \n"
  "Files edited: \n"
  "TRACE >>>\n"
  "@@ -1,7 +1,7 @@\n"
  "\\ No newline at end of file\n"
  "deleted file mode 100644\n"
  "--- a/\n"
  "+++ b/\n"
  "index 0000000..\n"
  "new file mode 100644\n"
  "--- /dev/null\n"
  "+++ b/\n"
  "@@ -0,0 +1 @@\n"
  "Iteration  of task \"\".\n"
  "Task: \n"
  "Work in the directory . Change files there directly; obra runs the checks itself.\n"
  "## The task (from the workflow's author)\n"
  "<<<TASK \n"
  "Title: \n"
  "TASK >>>\n"
  "\n"
  "## The agent's final message (untrusted)\n"
  "Outcome: ok, 1 of 20 turns.\n"
  "<<<AGENT \n"
  "AGENT >>>\n"
  "\n"
  "## What the agent did (its tool calls, recorded by obra)\n"
  "(obra has no record of the agent's tool calls for this attempt)\n"
  "\n"
  "## Changes against the task's base (observed by obra)\n"
  "1 file(s) changed (+1 -0 lines).\n"
  "created: \n"
  "modified: \n"
  "The patch (untrusted):\n"
  "<<<PATCH \n"
  "diff --git a/ b/\n"
  "index \n"
  "--- a/\n"
  "+++ b/\n"
  "@@ -1 +1,2 @@\n"
  "PATCH >>>\n"
  "\n"
  "## Checks (run by obra; exit status 0 passes)\n"
  "No checks are declared for this task.\n"
  "\n"
  "Judge this attempt against the rubric. Reply with the JSON object only.";

unsigned char *obra_textpack_pack(const char *text, size_t len, size_t *out_len) {
  *out_len = 0;
  if (len < OBRA_TEXTPACK_MIN || len > MAX_TEXT) return NULL;
  z_stream z;
  memset(&z, 0, sizeof z);
  /* Raw DEFLATE (negative windowBits): no zlib header or checksum, 6 bytes
   * less.  An 8 KiB window and memLevel 5 keep deflate's state near 50 KiB,
   * which malloc serves from the heap: with the defaults (32 KiB, 8-9: 256-400
   * KiB, mmap'd and faulted in at every call) packing a 1 KB text took 1-2 ms;
   * now about 130,000 instructions (memLevel 7: 160,000), the same bytes for
   * texts under 6 KiB.  Unpack reads any window up to 32 KiB. */
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, -13, 5, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
  unsigned char *out = NULL;
  int rc = deflateSetDictionary(&z, (const Bytef *)DICT_1, (uInt)(sizeof DICT_1 - 1));
  size_t cap = len;                          /* more would not be smaller */
  if (rc == Z_OK) out = malloc(cap);
  if (out == NULL) goto done;
  out[0] = FORMAT_1;
  z.next_in = (Bytef *)text;
  z.avail_in = (uInt)len;
  z.next_out = out + 1;
  z.avail_out = (uInt)(cap - 1);
  rc = deflate(&z, Z_FINISH);
  if (rc == Z_STREAM_END) *out_len = 1 + z.total_out;
  else { free(out); out = NULL; }           /* Z_OK / Z_BUF_ERROR: it did not fit in fewer bytes */
done:
  deflateEnd(&z);
  return out;
}

char *obra_textpack_unpack(const unsigned char *p, size_t len, size_t *out_len, obra_err *e) {
  *out_len = 0;
  if (len < 1 || p[0] != FORMAT_1) {
    obra_err_set(e, OBRA_EINVAL, "packed text: unknown format %d (written by a newer obra?)", len ? p[0] : -1);
    return NULL;
  }
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, -15) != Z_OK) { obra_err_set(e, OBRA_ENOMEM, "out of memory"); return NULL; }
  int rc = inflateSetDictionary(&z, (const Bytef *)DICT_1, (uInt)(sizeof DICT_1 - 1));
  size_t cap = 4 * len + 256, n = 0;
  char *out = rc == Z_OK ? malloc(cap) : NULL;
  if (out == NULL) { obra_err_set(e, OBRA_ENOMEM, "out of memory"); goto done; }
  z.next_in = (Bytef *)(p + 1);
  z.avail_in = (uInt)(len - 1);
  for (;;) {
    z.next_out = (Bytef *)out + n;
    z.avail_out = (uInt)(cap - 1 - n);       /* room for the NUL */
    rc = inflate(&z, Z_NO_FLUSH);
    n = cap - 1 - z.avail_out;
    if (rc == Z_STREAM_END) break;
    /* room left and no end: the input ran out (or the stream is broken) */
    if ((rc != Z_OK && rc != Z_BUF_ERROR) || z.avail_out > 0 || cap > MAX_TEXT) {
      obra_err_set(e, OBRA_EINVAL, "packed text: broken stream (%s)", z.msg ? z.msg : "truncated");
      free(out); out = NULL; goto done;
    }
    char *bigger = realloc(out, cap * 2);
    if (bigger == NULL) { obra_err_set(e, OBRA_ENOMEM, "out of memory"); free(out); out = NULL; goto done; }
    out = bigger;
    cap *= 2;
  }
  if (z.avail_in > 0) {
    obra_err_set(e, OBRA_EINVAL, "packed text: %u bytes after the end of the stream", z.avail_in);
    free(out); out = NULL; goto done;
  }
  out[n] = '\0';
  *out_len = n;
done:
  inflateEnd(&z);
  return out;
}
