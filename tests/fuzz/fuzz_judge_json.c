/* fuzz_judge_json.c — libFuzzer target: extracting the judge's JSON
 * verdict out of model text (obra_llm_json_extract), then validating what
 * was found against the judge's schema; the first byte picks object or
 * array. */
#include <stdint.h>
#include <stdlib.h>
#include "obra/llm_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char schema_text[] =
  "{\"type\":\"object\",\"required\":[\"complete\",\"quality\",\"confidence\"],"
  "\"properties\":{\"complete\":{\"type\":\"boolean\"},"
  "\"quality\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
  "\"confidence\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":1},"
  "\"issues\":{\"type\":\"array\",\"maxItems\":20,\"items\":{\"type\":\"string\",\"maxLength\":500}},"
  "\"summary\":{\"type\":[\"string\",\"null\"]},"
  "\"kind\":{\"enum\":[\"a\",\"b\",1]},"
  "\"any\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"minLength\":2}]}},"
  "\"additionalProperties\":false}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static cJSON *schema;
  if (schema == NULL && (schema = cJSON_Parse(schema_text)) == NULL) abort();
  if (size < 1) return 0;
  cJSON *v = obra_llm_json_extract((const char *)data + 1, size - 1, data[0] & 1);
  if (v) {
    char err[256];
    obra_llm_json_validate(schema, v, err, sizeof err);
    /* the value is also a schema: validate it against itself */
    obra_llm_json_validate(v, v, err, sizeof err);
    cJSON_Delete(v);
  }
  return 0;
}
