/* fuzz_json_print.c — libFuzzer target: compact JSON text (src/jsonbuf.c)
 * against cJSON's own printer.  The input is parsed by cJSON; for every
 * document it accepts, obra_json_print must write exactly what
 * cJSON_PrintUnformatted writes (request bodies sent to the judge, and
 * core.json_encode's output, stored and compared by cassettes, depend on
 * it), or the harness aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "obra/jsonbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cJSON *v = cJSON_ParseWithLength((const char *)data, size);
  if (v == NULL) return 0;
  char *want = cJSON_PrintUnformatted(v);
  char *got = obra_json_print(v);
  if ((want == NULL) != (got == NULL) || (want && strcmp(want, got) != 0)) abort();
  free(want);
  free(got);
  cJSON_Delete(v);
  return 0;
}
