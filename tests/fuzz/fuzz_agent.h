/* fuzz_agent.h — the body of the claude and codex fuzz targets: the input
 * is an agent's stdout; it is fed line by line to the adapter's parser as a
 * run feeds it, classified against a fixed process result, and the whole
 * output is parsed again through obra_agent_parse.  Zone offsets come from
 * a fixed function (no zone files). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "obra/agent_adapter.h"

static long fuzz_tz(const char *zone, double t) { return zone && zone[0] == 'E' ? 3600 : 0; }

static void fuzz_agent(obra_agent_kind kind, const uint8_t *data, size_t size) {
  /* NUL-terminated like a real capture */
  char *out = malloc(size + 1);
  if (out == NULL) return;
  memcpy(out, data, size);
  out[size] = '\0';
  const obra_agent_adapter *a = obra_agent_adapter_for(kind);
  obra_agent_parser p;
  memset(&p, 0, sizeof p);
  p.kind = kind;
  p.tz = fuzz_tz;
  const char *s = out, *end = out + size;
  while (s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
    a->line(&p, s, len);
    s += len + (nl ? 1 : 0);
  }
  /* the stdout doubles as stderr: its wording is classified too */
  obra_proc_result pr = { .exited = 1, .exit_code = size ? data[0] % 3 : 0,
                          .out = out, .out_len = size, .err = out, .err_len = size };
  obra_agent_result r;
  obra_agent_classify(a, &p, &pr, 1700000000, &r);
  obra_agent_result_clear(&r);
  obra_agent_parser_free(&p);
  obra_err e = { 0 };
  if (obra_agent_parse(kind, &pr, 1700000000, &r, &e) == OBRA_OK) obra_agent_result_clear(&r);
  free(out);
}
