-- LuaRocks: `luarocks make` in a checkout builds with the Makefile (the C
-- core, lib/obra/core.so, and the obra executable) and installs the module
-- into the rocks tree: obra.core (C) under LIBDIR, the Lua half under LUADIR,
-- the obra command under BINDIR, obra.1 and the shell completions under the
-- rock's own directory (PREFIX/share).  The Debian packages the build needs are in
-- the Makefile's DEB_PKGS (`make deps`).
rockspec_format = "3.0"
package = "obra"
version = "0.1.0-1"
source = { url = "git+file://." }
description = {
  summary = "Supervise coding agents: an agent works, a local LLM and your checks judge, you decide the rules",
  detailed = [[
obra runs a coding agent (Claude Code or Codex, headless) on the tasks of a
Lua workflow, judges each attempt with your checks and a local LLM, and
decides with a documented confidence formula whether to proceed, retry with
feedback, ask, or escalate to a human; every step persists in SQLite.]],
  license = "MIT",
  labels = { "agents", "orchestration", "llm" },
}
dependencies = { "lua == 5.4" }
external_dependencies = {
  SQLITE = { header = "sqlite3.h" },
  CJSON = { header = "cjson/cJSON.h" },
  UUID = { header = "uuid/uuid.h" },
}
build = {
  type = "make",
  build_target = "all",
  build_variables = { CFLAGS = "$(CFLAGS)", LUAVER = "5.4" },
  install_target = "install",
  install_variables = {
    BINDIR = "$(BINDIR)", LMODDIR = "$(LIBDIR)", LSHAREDIR = "$(LUADIR)", LUAVER = "5.4",
    -- the man page and the completions stay in the rock's own directory
    MANDIR = "$(PREFIX)/share/man/man1", BASHCOMPDIR = "$(PREFIX)/share/bash-completion/completions",
    ZSHCOMPDIR = "$(PREFIX)/share/zsh/site-functions", FISHCOMPDIR = "$(PREFIX)/share/fish/vendor_completions.d",
  },
}
