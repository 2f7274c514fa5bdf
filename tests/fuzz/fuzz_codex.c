/* fuzz_codex.c — libFuzzer target: the Codex CLI `exec --json` JSONL
 * parser and its classification. */
#include "fuzz_agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_agent(OBRA_AGENT_CODEX, data, size);
  return 0;
}
