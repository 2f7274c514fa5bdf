# obra — build, test and install.  See README.md.
#
#   make deps      install the Debian packages obra needs (idempotent, root)
#                  and build obra's own libgit2 into deps/ (scripts/build-libgit2:
#                  Debian's source without the network transports, ~2 minutes once)
#   make           build ./obra and ./lib/obra/core.so
#   make test      deps + build + the whole busted suite
#   make check     the whole suite under ASan + UBSan
#   make bench     benchmarks (medians)
#   make unit      the C unit tests of the pure units (tests/c)
#   make fuzz      libFuzzer runs of the parsers, FUZZ_SECONDS each (tests/fuzz)
#   make demo      deps + build + the calculator example replayed from its
#                  cassette in a temporary directory (no agent, no LLM needed)
#   make eval      deps + build + obra's decisions on the evaluation set
#                  (tests/eval): exit 1 below 95 % right; make eval-record
#                  records its cassettes again
#   make install   PREFIX=/usr/local DESTDIR= (obra, the Lua module, obra.1,
#                  the bash, zsh and fish completions); make uninstall
#   make clean     the build (deps/ stays: make distclean removes it too)

PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR    = $(DESTDIR)$(PREFIX)/bin
LUAVER    = 5.4
LMODDIR   = $(DESTDIR)$(PREFIX)/lib/lua/$(LUAVER)
LSHAREDIR = $(DESTDIR)$(PREFIX)/share/lua/$(LUAVER)
MANDIR    = $(DESTDIR)$(PREFIX)/share/man/man1
BASHCOMPDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHCOMPDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d

DEB_PKGS = build-essential pkg-config lua5.4 liblua5.4-dev libsqlite3-dev \
           libcurl4-openssl-dev libcjson-dev uuid-dev libreadline-dev libgit2-dev \
           lua-busted lua-socket lua-cjson python3 git tmux procps sqlite3 \
           libjs-chart.js chromium chromium-headless-shell groff-base man-db zsh fish libpq-dev postgresql zlib1g-dev \
           cmake libhttp-parser-dev libpcre2-dev xz-utils

CC      ?= cc
PKGS     = lua5.4 sqlite3 libcurl libcjson uuid libpq zlib
# libgit2's headers: those of the library obra will load (src/workspace.c
# loads only the version it was built against): obra's own when make deps
# built one of another version than the system's (deps/include), else the
# system's
GIT2_OWN    = $(wildcard deps/include/git2/version.h)
GIT2_CFLAGS = $(if $(GIT2_OWN),-Ideps/include,$(shell pkg-config --cflags libgit2 2>/dev/null))
GIT2_HEADER = $(or $(GIT2_OWN),$(shell pkg-config --variable=includedir libgit2 2>/dev/null || echo /usr/include)/git2/version.h)
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wwrite-strings -Wno-unused-parameter
ifneq ($(CI),)
WARN    += -Werror
endif
OPT     ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -fPIC $(OPT) $(WARN) -Iinclude -I$(BUILD) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(GIT2_CFLAGS) \
           -DOBRA_OWN_FROM_BIN='"../lib/lua/$(LUAVER)/obra"'
# (OBRA_OWN_FROM_BIN, for src/dl.c: where install puts core.so, $(LMODDIR)/obra, seen from $(BINDIR))
# libcurl, libgit2 and libpq are not linked: src/http.c, src/workspace.c and
# src/pgstore.c load them on first use (dl.h), so a command that needs none
# starts without them (libpq's header comes from pkg-config, for its types).
LIBS     = $(shell pkg-config --libs sqlite3 libcjson uuid zlib 2>/dev/null) -lm -ldl
EXE_LIBS = $(LIBS) $(shell pkg-config --libs lua5.4)

BUILD    = build
OUT      = .
EXE_SRC  = src/main.c src/repl_readline.c   # only in ./obra (readline is loaded on first use, dl.h)
CORE_SRC = $(filter-out $(EXE_SRC), $(wildcard src/*.c))
CORE_OBJ = $(CORE_SRC:src/%.c=$(BUILD)/%.o)
LAPI_SRC = $(wildcard src/lapi_*.c)
LUA_SRC  = lua/obra.lua $(wildcard lua/obra/*.lua lua/obra/*/*.lua)

.PHONY: all own-libs deps distclean test check bench bench-ir install uninstall clean fmt demo eval eval-record eval-deps unit unit-bin fuzz fuzz-deps fuzz-build fuzz-regress-bin

all: $(OUT)/obra $(OUT)/lib/obra/core.so own-libs

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "deps: all present"; fi
	@scripts/build-libgit2 deps

# The list of bridge modules, generated from src/lapi_*.c: each file lapi_X.c
# defines `int obra_lapi_X(lua_State *L)` which adds its functions to the table
# on top of the stack.
$(BUILD)/lapi_list.h: $(LAPI_SRC) | $(BUILD)
	@{ for f in $(LAPI_SRC:src/lapi_%.c=%); do echo "OBRA_LAPI($$f)"; done; } > $@.tmp
	@cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp

# The Lua half, embedded: one C array per file.
$(BUILD)/embedded.c: $(LUA_SRC) tools/embed.lua | $(BUILD)
	lua5.4 tools/embed.lua $@ $(LUA_SRC)

$(BUILD):
	@mkdir -p $(BUILD)

$(BUILD)/%.o: src/%.c $(wildcard include/obra/*.h) $(BUILD)/lapi_list.h | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

# which libgit2 headers workspace.o was compiled against: a change of them
# (make deps built obra's own, or make distclean removed it) rebuilds it
$(BUILD)/workspace.o: $(BUILD)/libgit2-headers
$(BUILD)/libgit2-headers: FORCE | $(BUILD)
	@{ echo "$(GIT2_HEADER)"; cat "$(GIT2_HEADER)" 2>/dev/null; } > $@.tmp
	@cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp
FORCE:

$(BUILD)/main.o: src/main.c $(BUILD)/lapi_list.h | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/embedded.o: $(BUILD)/embedded.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(OUT)/obra: $(BUILD)/main.o $(BUILD)/repl_readline.o $(BUILD)/embedded.o $(CORE_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(EXE_LIBS)

$(OUT)/lib/obra/core.so: $(CORE_OBJ)
	@mkdir -p $(OUT)/lib/obra
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -o $@ $^ $(LIBS)

# obra's own copies of libraries (make deps builds them into deps/) go next to
# core.so, where obra looks first (src/dl.c); one that deps/ no longer has
# (outdated, or make distclean) is removed: obra then uses the system's
own-libs:
	@mkdir -p $(OUT)/lib/obra; \
	for f in $(OUT)/lib/obra/libgit2.so.*; do [ ! -e "$$f" ] || [ -f "deps/$${f##*/}" ] || rm -f "$$f"; done; \
	for f in deps/libgit2.so.[0-9]*; do [ ! -f "$$f" ] || cmp -s "$$f" "$(OUT)/lib/obra/$${f##*/}" || \
	  install -m 0755 "$$f" $(OUT)/lib/obra/ || exit 1; done

test: deps
	$(MAKE) all
	tests/run

# The calculator example end to end from scripts/calculator.cassette.json
# (tools/demo; re-record with tools/record-demo; see docs/replay.md).
demo: deps
	$(MAKE) all
	tools/demo

# The evaluation set (tests/eval/README.md): each labelled attempt replayed
# from its cassette in tests/eval/cassettes, obra's first decision against the
# label; exit 1 below 95 % right or on a proceed where a check failed or a
# protected path changed.  eval-record records the cassettes again (after a
# change to obra's prompts the runner says "cassette stale").  Some cases are
# JavaScript: node comes from Debian's nodejs.
EVAL_PKGS = nodejs
eval-deps:
	@command -v node >/dev/null 2>&1 || { echo "eval: installing $(EVAL_PKGS)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $(EVAL_PKGS) >/dev/null; }

eval: deps eval-deps
	$(MAKE) all
	tests/eval/run

eval-record: deps eval-deps
	$(MAKE) all
	tests/eval/record

# Sanitizer build in its own directory; the suite runs against it.
check: deps
	$(MAKE) BUILD=build-san OUT=build-san OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	        LDFLAGS="-fsanitize=address,undefined" all
	OBRA_SANITIZE=1 OBRA_OUT=build-san tests/run

# Benchmarks (bench/README.md): the instant agent, the instant judge and the
# measuring tool are small C programs; the table goes to bench/results.md.
BENCH_BIN = $(BUILD)/bench/agent $(BUILD)/bench/judge $(BUILD)/bench/tool
# Section 9 runs on SQLite and on a PostgreSQL server of its own (durable
# settings, on disk: tests/support/pg.sh), stopped when the bench ends.
bench: all $(BENCH_BIN)
	@bash -c 'base=/tmp/obra-bench; mkdir -p $$base; . tests/support/pg.sh; trap pg_stop EXIT; \
	  pg_start durable; lua5.4 tests/bench/run.lua'

# The loop's instruction count under callgrind (tests/bench/loop_ir.sh): the
# figure to compare two builds with, whatever the machine's pace.
bench-ir: all $(BENCH_BIN)
	@command -v valgrind >/dev/null || $(MAKE) --no-print-directory deps DEB_PKGS=valgrind
	tests/bench/loop_ir.sh $(N)

$(BUILD)/bench/%: tests/bench/%.c | $(BUILD)
	@mkdir -p $(BUILD)/bench
	$(CC) -std=c11 -O2 $(WARN) $(shell pkg-config --cflags libcjson sqlite3 2>/dev/null) \
	  -o $@ $< $(shell pkg-config --libs libcjson sqlite3 2>/dev/null)

# C unit tests of the pure units (docs/testing.md): one binary, one line per
# case ("ok NAME" / "not ok NAME: why"); tests/c_units_spec.lua runs it in
# the suite.  Pure units link alone: libc, cJSON and zlib.
AGENT_PURE = src/agent_parse.c src/agent_text.c src/agent_trace.c src/agent_claude.c src/agent_claude_parse.c \
             src/agent_codex.c src/agent_codex_parse.c src/agent_command.c \
             src/reset_time.c src/tz_offset.c src/status.c
UNIT_PURE  = $(AGENT_PURE) src/http1_parse.c src/llm_outcome.c src/llm_json.c src/jsonbuf.c src/redact.c src/packfile.c src/objlog.c src/textpack.c src/treescan.c
UNIT_SRC   = $(wildcard tests/c/*.c)
CJSON_CFLAGS = $(shell pkg-config --cflags libcjson 2>/dev/null)
CJSON_LIBS   = $(shell pkg-config --libs libcjson 2>/dev/null)

# The unit binary and the fuzz regression harnesses (fuzz-regress-bin) are
# built with gcc, ASan and UBSan from one object per source in $(BUILD)/san/,
# so a pure unit that several of them link is compiled once, and make -j
# builds them side by side (tests/c_units_spec.lua does, on every run).
SAN_FLAGS = -O1 -g $(WARN) -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all
SAN_OBJ   = $(patsubst %.c,$(BUILD)/san/%.o,$(1))
# kept: the regression harnesses name them through a pattern rule, which makes them intermediate
.PRECIOUS: $(BUILD)/san/%.o
$(BUILD)/san/%.o: %.c $(wildcard include/obra/*.h tests/c/*.h tests/fuzz/*.h) $(BUILD)/lapi_list.h
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) $(FUZZ_INC) -Itests/c -c -o $@ $<

unit: unit-bin
	$(BUILD)/tests/unit

unit-bin: $(BUILD)/tests/unit

$(BUILD)/tests/unit: $(call SAN_OBJ,$(UNIT_SRC) $(UNIT_PURE))
	@mkdir -p $(BUILD)/tests
	$(CC) $(SAN_FLAGS) -o $@ $^ $(CJSON_LIBS) -lz -lm

# Fuzzing (tests/fuzz/README.md).  `make fuzz` installs clang and libFuzzer
# (FUZZ_PKGS, not in DEB_PKGS: `make test` does not need them), builds each
# target with libFuzzer + ASan + UBSan into $(BUILD)/fuzz/ and runs it for
# FUZZ_SECONDS on a scratch copy of its seed corpus tests/fuzz/corpus/<t>/.
# A crash input lands in $(BUILD)/fuzz/<t>-crashes/: fix it, then keep it in
# tests/fuzz/regress/<t>/.  Those regression inputs (and the corpus) are
# replayed by `make test` without clang: each harness is also built with gcc
# and tests/fuzz/standalone.c (fuzz-regress-bin).
FUZZ_PKGS    = clang-14 libclang-rt-14-dev llvm-14
FUZZ_TARGETS = claude codex http1 judge_json cassette redact textpack objlog json_print
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang-14
FUZZ_FLAGS   = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1
FUZZ_INC     = -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -I$(BUILD) $(CJSON_CFLAGS) $(shell pkg-config --cflags lua5.4 2>/dev/null)
FUZZ_LIBS    = $(CJSON_LIBS) $(shell pkg-config --libs lua5.4 2>/dev/null) -lz -lm
FUZZ_SRC_claude     = $(AGENT_PURE)
FUZZ_SRC_codex      = $(AGENT_PURE)
FUZZ_SRC_http1      = src/http1_parse.c
FUZZ_SRC_judge_json = src/llm_json.c
FUZZ_SRC_cassette   = src/lapi_json.c src/jsonbuf.c
FUZZ_SRC_redact     = src/redact.c
FUZZ_SRC_textpack   = src/textpack.c src/status.c
FUZZ_SRC_objlog     = src/objlog.c src/packfile.c src/status.c
FUZZ_SRC_json_print = src/jsonbuf.c

fuzz-deps:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(FUZZ_PKGS)"

fuzz-build: $(BUILD)/lapi_list.h
	@mkdir -p $(BUILD)/fuzz
	@for t in $(FUZZ_TARGETS); do $(MAKE) --no-print-directory $(BUILD)/fuzz/$$t || exit 1; done

# -jobs=1 -workers=1 (one core: the machine is shared) makes libFuzzer log to
# ./fuzz-0.log, hence a directory of its own per target.
fuzz: fuzz-deps
	$(MAKE) fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  d=$(BUILD)/fuzz/$$t.d; rm -rf $$d; mkdir -p $$d/corpus $$d/crashes; \
	  cp tests/fuzz/corpus/$$t/* $$d/corpus/ 2>/dev/null; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  ( cd $$d && OBRA_ROOT=$(CURDIR) ../$$t -max_total_time=$(FUZZ_SECONDS) -jobs=1 -workers=1 \
	    -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=crashes/ corpus $$(test -d $(CURDIR)/tests/fuzz/regress/$$t && echo $(CURDIR)/tests/fuzz/regress/$$t) \
	    >/dev/null 2>&1 ); \
	  rc=$$?; \
	  grep -a -E '^stat::number_of_executed_units|^stat::average_exec_per_sec' $$d/fuzz-0.log | tr -s ' \n' ' '; echo; \
	  if [ $$rc -ne 0 ]; then grep -a -m3 -A12 -E 'ERROR: |runtime error|deadly signal' $$d/fuzz-0.log; \
	    echo "fuzz: $$t found a crash in $$d/crashes/ (fix it, keep it in tests/fuzz/regress/$$t/)"; exit 1; fi; \
	done

fuzz-regress-bin: $(FUZZ_TARGETS:%=$(BUILD)/tests/regress-%)

# install notes the directories it had to create (deepest last) in
# $(INSTALLED), so that uninstall removes exactly those, once they are empty.
# The man page and the shell completions are made by the obra being installed,
# from its commands' definitions (obra help --man, obra completion SHELL).
INSTALLED = $(LSHAREDIR)/obra/.installed-dirs
INSTALL_DIRS = $(BINDIR) $(LMODDIR)/obra $(LSHAREDIR)/obra $(MANDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR)
GENERATED = $(MANDIR)/obra.1 $(BASHCOMPDIR)/obra $(ZSHCOMPDIR)/_obra $(FISHCOMPDIR)/obra.fish
install: all
	@made=""; for d in $(INSTALL_DIRS); do \
	  p=""; for part in $$(echo "$$d" | tr '/' ' '); do p="$$p/$$part"; \
	    [ -d "$$p" ] || { mkdir "$$p" && made="$$made $$p"; } || exit 1; done; done; \
	  for m in $$made; do echo "$$m"; done >> $(INSTALLED).tmp; \
	  cat $(INSTALLED).tmp >> $(INSTALLED); rm -f $(INSTALLED).tmp
	install -m 0755 $(OUT)/obra $(BINDIR)/obra
	install -m 0755 $(OUT)/lib/obra/core.so $(LMODDIR)/obra/core.so
	@for f in $(OUT)/lib/obra/libgit2.so.*; do [ ! -f "$$f" ] || install -m 0755 "$$f" $(LMODDIR)/obra/ || exit 1; done
	install -m 0644 lua/obra.lua $(LSHAREDIR)/obra.lua
	cp -r lua/obra/. $(LSHAREDIR)/obra/
	$(OUT)/obra help --man > $(MANDIR)/obra.1
	$(OUT)/obra completion bash > $(BASHCOMPDIR)/obra
	$(OUT)/obra completion zsh > $(ZSHCOMPDIR)/_obra
	$(OUT)/obra completion fish > $(FISHCOMPDIR)/obra.fish
	chmod 0644 $(GENERATED)
	@echo "installed. From the stock interpreter: LUA_PATH='$(LSHAREDIR)/?.lua;;' LUA_CPATH='$(LMODDIR)/?.so;;' lua5.4 -e 'require \"obra\"'"
	@echo "(needless when $(PREFIX) is /usr/local or /usr: lua5.4 looks there by itself)"

uninstall:
	@dirs=$$(tac $(INSTALLED) 2>/dev/null); \
	  rm -f $(BINDIR)/obra $(LMODDIR)/obra/core.so $(LMODDIR)/obra/libgit2.so.* $(LSHAREDIR)/obra.lua $(GENERATED); \
	  rm -rf $(LSHAREDIR)/obra; rmdir $(LMODDIR)/obra 2>/dev/null; \
	  for d in $$dirs; do [ -d "$$d" ] && rmdir "$$d" 2>/dev/null; done; \
	  echo "uninstalled from $(DESTDIR)$(PREFIX)"

clean:
	rm -rf build build-san lib obra

distclean: clean
	rm -rf deps

# Fuzz targets, built two ways (see fuzz above).  Kept last: the rules use
# secondary expansion for each target's own sources.
.SECONDEXPANSION:
$(BUILD)/fuzz/%: tests/fuzz/fuzz_%.c $$(FUZZ_SRC_$$*) $(wildcard tests/fuzz/*.h include/obra/*.h)
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_INC) -o $@ $< $(FUZZ_SRC_$*) $(FUZZ_LIBS)

$(BUILD)/tests/regress-%: $$(call SAN_OBJ,tests/fuzz/fuzz_$$*.c tests/fuzz/standalone.c $$(FUZZ_SRC_$$*))
	@mkdir -p $(BUILD)/tests
	$(CC) $(SAN_FLAGS) -o $@ $^ $(FUZZ_LIBS)
