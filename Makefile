# obra — build, test and install.  See README.md.
#
#   make deps      install the Debian packages obra needs (idempotent, root)
#   make           build ./obra and ./lib/obra/core.so
#   make test      deps + build + the whole busted suite
#   make check     the whole suite under ASan + UBSan
#   make bench     benchmarks (medians)
#   make demo      deps + build + the calculator example replayed from its
#                  cassette in a temporary directory (no agent, no LLM needed)
#   make install   PREFIX=/usr/local DESTDIR=

PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR    = $(DESTDIR)$(PREFIX)/bin
LUAVER    = 5.4
LMODDIR   = $(DESTDIR)$(PREFIX)/lib/lua/$(LUAVER)
LSHAREDIR = $(DESTDIR)$(PREFIX)/share/lua/$(LUAVER)

DEB_PKGS = build-essential pkg-config lua5.4 liblua5.4-dev libsqlite3-dev \
           libcurl4-openssl-dev libcjson-dev uuid-dev libreadline-dev libgit2-dev \
           lua-busted lua-socket lua-cjson python3 git tmux procps sqlite3

CC      ?= cc
PKGS     = lua5.4 sqlite3 libcurl libcjson uuid libgit2
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wwrite-strings -Wno-unused-parameter
ifneq ($(CI),)
WARN    += -Werror
endif
OPT     ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -fPIC $(OPT) $(WARN) -Iinclude -I$(BUILD) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl and libgit2 are not linked: src/http.c and src/workspace.c load them on
# first use (dl.h), so a command that needs neither starts without them.
LIBS     = $(shell pkg-config --libs sqlite3 libcjson uuid 2>/dev/null) -lm -ldl
EXE_LIBS = $(LIBS) $(shell pkg-config --libs lua5.4) -lreadline

BUILD    = build
OUT      = .
EXE_SRC  = src/main.c src/repl_readline.c   # only in ./obra: readline stays out of core.so
CORE_SRC = $(filter-out $(EXE_SRC), $(wildcard src/*.c))
CORE_OBJ = $(CORE_SRC:src/%.c=$(BUILD)/%.o)
LAPI_SRC = $(wildcard src/lapi_*.c)
LUA_SRC  = lua/obra.lua $(wildcard lua/obra/*.lua lua/obra/*/*.lua)

.PHONY: all deps test check bench install uninstall clean fmt demo

all: $(OUT)/obra $(OUT)/lib/obra/core.so

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "deps: all present"; fi

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

$(BUILD)/main.o: src/main.c $(BUILD)/lapi_list.h | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/embedded.o: $(BUILD)/embedded.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(OUT)/obra: $(BUILD)/main.o $(BUILD)/repl_readline.o $(BUILD)/embedded.o $(CORE_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(EXE_LIBS)

$(OUT)/lib/obra/core.so: $(CORE_OBJ)
	@mkdir -p $(OUT)/lib/obra
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -o $@ $^ $(LIBS)

test: deps
	$(MAKE) all
	tests/run

# The calculator example end to end from scripts/calculator.cassette.json
# (tools/demo; re-record with tools/record-demo; see docs/replay.md).
demo: deps
	$(MAKE) all
	tools/demo

# Sanitizer build in its own directory; the suite runs against it.
check: deps
	$(MAKE) BUILD=build-san OUT=build-san OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	        LDFLAGS="-fsanitize=address,undefined" all
	OBRA_SANITIZE=1 OBRA_OUT=build-san tests/run

# Benchmarks (bench/README.md): the instant agent, the instant judge and the
# measuring tool are small C programs; the table goes to bench/results.md.
BENCH_BIN = $(BUILD)/bench/agent $(BUILD)/bench/judge $(BUILD)/bench/tool
bench: all $(BENCH_BIN)
	lua5.4 tests/bench/run.lua

$(BUILD)/bench/%: tests/bench/%.c | $(BUILD)
	@mkdir -p $(BUILD)/bench
	$(CC) -std=c11 -O2 $(WARN) $(shell pkg-config --cflags libcjson sqlite3 2>/dev/null) \
	  -o $@ $< $(shell pkg-config --libs libcjson sqlite3 2>/dev/null)

install: all
	install -d $(BINDIR) $(LMODDIR)/obra $(LSHAREDIR)/obra
	install -m 0755 obra $(BINDIR)/obra
	install -m 0755 lib/obra/core.so $(LMODDIR)/obra/core.so
	install -m 0644 lua/obra.lua $(LSHAREDIR)/obra.lua
	cp -r lua/obra/. $(LSHAREDIR)/obra/

uninstall:
	rm -f $(BINDIR)/obra $(LMODDIR)/obra/core.so $(LSHAREDIR)/obra.lua
	rm -rf $(LSHAREDIR)/obra
	-rmdir $(LMODDIR)/obra 2>/dev/null

clean:
	rm -rf build build-san lib obra
