/* agent.c — the benchmark's instant agent: a tiny program that behaves like
 * `claude -p PROMPT --output-format json` (reference/claude-cli.md) and
 * answers at once, so what a benchmark measures around it is obra's own
 * cost plus one process spawn.
 *
 *   bench-agent -p PROMPT --output-format json [--session-id U | --resume U]
 *               [--max-turns N] [--model M] [--dangerously-skip-permissions] ...
 *   bench-agent --version
 *
 * It prints one JSON result object (type "result", subtype "success",
 * is_error false) whose session_id is the id it was given (--resume U or
 * --session-id U, as the real CLI reports), with usage, cost and turns.
 * When -p has no prompt argument the prompt is read from stdin (the real
 * CLI's behaviour for long prompts).  Unknown options are ignored.
 *
 * Environment
 *   BENCH_AGENT_BYTES     size of the result text (default 64 bytes)
 *   BENCH_AGENT_SLEEP_MS  wait this long before answering (a slow agent)
 *   BENCH_AGENT_WRITE     a file (relative to the cwd) to write one line to */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void drain_stdin(void) {
  char buf[65536];
  while (read(0, buf, sizeof buf) > 0) {}
}

static void sleep_ms(long ms) {
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) != 0) {}
}

/* The result text: readable lines ("line 17: ...\n" JSON-escaped), n bytes
 * of decoded text, written straight to stdout in chunks. */
static void put_text(size_t n) {
  static char buf[1 << 16];
  size_t used = 0, line = 0;
  while (n > 0) {
    char piece[96];
    int len = snprintf(piece, sizeof piece, "line %zu: the agent changed a file and ran the tests", ++line);
    size_t take = (size_t)len < n ? (size_t)len : n;
    if (used + take + 2 > sizeof buf) { fwrite(buf, 1, used, stdout); used = 0; }
    memcpy(buf + used, piece, take);
    used += take;
    n -= take;
    if (n > 0) { memcpy(buf + used, "\\n", 2); used += 2; n--; }
  }
  fwrite(buf, 1, used, stdout);
}

int main(int argc, char **argv) {
  const char *session = "00000000-0000-4000-8000-000000000000";
  int have_prompt = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--version") == 0) { puts("2.1.330 (Claude Code)"); return 0; }
    if (strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--print") == 0) {
      if (i + 1 < argc && argv[i + 1][0] != '-') { have_prompt = 1; i++; }
    } else if ((strcmp(argv[i], "--session-id") == 0 || strcmp(argv[i], "--resume") == 0) && i + 1 < argc) {
      session = argv[++i];
    }
  }
  if (!have_prompt) drain_stdin();
  const char *e = getenv("BENCH_AGENT_SLEEP_MS");
  if (e && atol(e) > 0) sleep_ms(atol(e));
  e = getenv("BENCH_AGENT_WRITE");
  if (e && *e) {
    FILE *f = fopen(e, "a");
    if (f) { fputs("work\n", f); fclose(f); }
  }
  e = getenv("BENCH_AGENT_BYTES");
  size_t bytes = e ? (size_t)strtoull(e, NULL, 10) : 64;
  printf("{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"duration_ms\":1,"
         "\"duration_api_ms\":1,\"num_turns\":1,\"stop_reason\":\"end_turn\",\"terminal_reason\":\"completed\","
         "\"session_id\":\"%s\",\"total_cost_usd\":0.0012,"
         "\"usage\":{\"input_tokens\":120,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,"
         "\"output_tokens\":24},\"permission_denials\":[],\"result\":\"", session);
  put_text(bytes);
  fputs("\"}\n", stdout);
  return fflush(stdout) == 0 ? 0 : 1;
}
