#!/bin/bash
# tests/bench/loop_ir.sh [N] — the instructions obra executes for a loop of N
# tasks (default 200), one iteration each, with the bench's instant agent and
# judge: callgrind's count, which the machine's pace does not move (wall and
# CPU time swing by a third from one hour to the next here; this figure by
# well under 1 %).  Prints the total, the total per task, and the obra
# functions with the most instructions under them (inclusive).  For one
# change, compare two builds: OBRA_BIN=/tmp/old/obra tests/bench/loop_ir.sh.
# `make bench-ir` installs valgrind (make deps) and runs it from the root.
#
# The loop runs in a project that is not in git (the shadow repository
# snapshots it), as the bench's loop does; the agent appends a line to a
# file each iteration.  N=200 includes the start-up (the schema, 200 tasks'
# workflow), about a tenth of it.  OBRA_BIN must have lib/obra/libgit2.so.*
# beside it, or its workspace is off and the count leaves out the snapshots.
set -euo pipefail
N=${1:-200}
ROOT=$(pwd)
BIN=${OBRA_BIN:-$ROOT/obra}
B=$ROOT/build/bench
for f in "$BIN" "$B/agent" "$B/judge"; do
  [ -x "$f" ] || { echo "loop_ir: $f is missing: run make bench-ir (or make && make bench) from the root" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "loop_ir: valgrind is missing: make bench-ir installs it" >&2; exit 1; }
T=$(mktemp -d)
JPID=
cleanup() { [ -z "$JPID" ] || kill "$JPID" 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
"$B/judge" --ttl 900 > "$T/judge.out" &
JPID=$!
for _ in $(seq 50); do grep -q '^PORT ' "$T/judge.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/^PORT //p' "$T/judge.out")
[ -n "$PORT" ] || { echo "loop_ir: the instant judge did not start" >&2; exit 1; }
mkdir "$T/p"
cat > "$T/p/obra.lua" <<LUA
project "bench"
config {
  agent = { kind = "claude", command = "$B/agent", skip_permissions = true },
  llm = { provider = "ollama", model = "bench-judge", url = "http://127.0.0.1:$PORT" },
  max_parallel = 1,
}
for i = 1, $N do
  task("t" .. i) { title = "task " .. i, prompt = "Do step " .. i .. " of the benchmark: change the file and keep the tests green." }
end
LUA
(cd "$T/p" && BENCH_AGENT_WRITE=work.txt valgrind --tool=callgrind --callgrind-out-file="$T/cg.out" \
  "$BIN" run obra.lua --quiet > "$T/run.out" 2> "$T/valgrind.out") || {
  echo "loop_ir: the run failed:" >&2; cat "$T/run.out" "$T/valgrind.out" >&2; exit 1; }
grep -q "every task is done \[$N done\]" "$T/run.out" || { echo "loop_ir: not every task is done:" >&2; cat "$T/run.out" >&2; exit 1; }
IR=$(sed -n 's/.*Collected : *//p' "$T/valgrind.out")
echo "obra run, $N tasks: $IR instructions, $((IR / N)) a task ($BIN)"
callgrind_annotate --inclusive=yes "$T/cg.out" 2>/dev/null | grep -E '/src/[a-z_0-9]+\.c:' | head -25 \
  | sed -E 's#[^ ]*/src/#src/#; s# \[[^]]*\]$##'
