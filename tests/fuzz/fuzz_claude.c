/* fuzz_claude.c — libFuzzer target: the Claude Code CLI output parser
 * (json, json --verbose, stream-json) and its classification. */
#include "fuzz_agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_agent(OBRA_AGENT_CLAUDE, data, size);
  return 0;
}
