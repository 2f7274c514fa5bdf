/* llm_json.h — structured output from model text, the judge's verdict
 * included (llm_json.c), as a pure unit: text in, a cJSON tree out; no I/O,
 * no globals.  Used by llm.c when a call has a schema, and by the bridge
 * (core.llm_json_extract / core.llm_json_validate). */
#ifndef OBRA_LLM_JSON_H
#define OBRA_LLM_JSON_H
#include <stddef.h>
#include <cjson/cJSON.h>

/* Find the JSON value in model text: the whole text, else a ```json fenced
 * block, else the first balanced {...} (or [...] when want_array) that parses.
 * Returns a new tree the caller deletes, or NULL. */
cJSON *obra_llm_json_extract(const char *text, size_t len, int want_array);
/* Validate v against a JSON schema subset: type (incl. a list of types,
 * "integer"), enum, const, required, properties, additionalProperties=false,
 * items, minItems/maxItems, minLength/maxLength, minimum/maximum,
 * exclusiveMinimum/exclusiveMaximum, anyOf.  Returns 0, or -1 with a message
 * naming the path ("$.quality: 1.5 is above the maximum 1"). */
int obra_llm_json_validate(const cJSON *schema, const cJSON *v, char *err, size_t errlen);

#endif
