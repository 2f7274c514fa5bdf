-- obra help --man: the manual page obra(1), made from the command modules,
-- rendered by groff and man without a warning; every environment variable
-- the sources read is in it; make install puts it and the completions under
-- DESTDIR, make uninstall takes them away.
local H = require "support.helper"
-- groff and man are not obra: under the sanitizers they must not inherit the
-- runtime preloaded for lua5.4 (troff trips ASan's alloc-dealloc check)
local NOPRELOAD = H.SANITIZE and "env -u LD_PRELOAD " or ""
local commands = require "obra.commands"
local manpage = require "obra.manpage"
local cli = require "obra.cli"

local function man_source()
  local r = H.expect_code(H.obra({ "help", "--man" }), 0)
  assert.are.equal("", r.err)
  return r.out
end

describe("obra help --man", function()
  local dir, file, text
  setup(function()
    dir = H.tmpdir("man")
    text = man_source()
    file = dir .. "/obra.1"
    H.writefile(file, text)
  end)
  teardown(function() H.rmdir(dir) end)

  it("is roff that groff reads without a warning, for a terminal and for print", function()
    for _, device in ipairs({ "utf8", "ascii", "ps" }) do
      local out, code = H.sh(NOPRELOAD .. "groff -man -ww -z -T" .. device .. " " .. H.q(file))
      assert.are.equal(0, code, out)
      assert.are.equal("", out, device)
    end
  end)

  it("man -l renders every section, every command with its usage, every exit code", function()
    local errf = dir .. "/man.err"
    local page = H.sh(NOPRELOAD .. "MANWIDTH=200 man -l " .. H.q(file) .. " 2>" .. H.q(errf))   -- to a pipe: plain text
    assert.are.equal("", H.readfile(errf))
    for _, s in ipairs({ "NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO" }) do
      assert.matches("\n" .. s .. "\n", page, 1, true)
    end
    for _, c in ipairs(commands.list()) do
      assert.is_truthy(page:find(c.usage, 1, true), "the page lacks the usage of " .. c.name)
      assert.is_truthy(text:find("\n.SS " .. c.name .. "\n", 1, true), "no section for " .. c.name)
    end
    local exits = page:match("\nEXIT STATUS\n(.-)\nENVIRONMENT\n")
    for _, e in ipairs(cli.EXITS) do assert.matches("%s" .. e[1] .. "%s+" .. e[3]:sub(1, 10):gsub("%p", "%%%0"), exits) end
  end)

  it("lists every environment variable obra's sources read, and docs that exist", function()
    local listed = {}
    for _, e in ipairs(manpage.ENVIRONMENT) do
      for name in e[1]:gmatch("[%w_]+") do listed[name] = true end
    end
    local src = H.sh("cat " .. H.q(H.ROOT) .. "/src/*.c " .. H.q(H.ROOT) .. "/lua/obra/*.lua " .. H.q(H.ROOT) .. "/lua/obra/*/*.lua")
    local seen = 0
    for name in src:gmatch('"((%u+)_[%u%d_]+)"') do
      local family = name:match("^(%u+)_")
      if family == "OBRA" or family == "OTEL" or family == "OLLAMA" or family == "OPENAI" then
        seen = seen + 1
        assert.is_true(listed[name], name .. " is read but not in the man page's ENVIRONMENT")
      end
    end
    assert.is_true(seen >= 10, "found the variables in the sources")
    for _, d in ipairs(manpage.DOCS) do
      assert.is_truthy(io.open(H.ROOT .. "/docs/" .. d), "docs/" .. d)
    end
  end)
end)

describe("make install DESTDIR=", function()
  it("installs obra.1 and the bash, zsh and fish completions, the ones obra prints; uninstall removes them", function()
    local bin = H.BIN:gsub("/obra$", "")
    local dir = H.tmpdir("destdir")
    -- -o all: install what this build made (the suite's binary), never rebuild here
    local make = string.format("make -s -C %s -o all OUT=%s PREFIX=/usr DESTDIR=%s", H.q(H.ROOT), H.q(bin),
      H.q(dir .. "/root"))
    local out, code = H.sh(make .. " install 2>&1")
    assert.are.equal(0, code, out)
    local share = dir .. "/root/usr/share/"
    local want = {
      ["man/man1/obra.1"] = { "help", "--man" },
      ["bash-completion/completions/obra"] = { "completion", "bash" },
      ["zsh/site-functions/_obra"] = { "completion", "zsh" },
      ["fish/vendor_completions.d/obra.fish"] = { "completion", "fish" },
    }
    for path, args in pairs(want) do
      assert.are.equal(H.obra(args).out, H.readfile(share .. path), path)
      assert.are.equal("644\n", (H.sh("stat -c %a " .. H.q(share .. path))), path)
    end
    out = H.sh(NOPRELOAD .. "man -l " .. H.q(share .. "man/man1/obra.1") .. " 2>&1")
    assert.matches("obra%s+%-%s+supervise%s+coding%s+agents", out)
    out, code = H.sh(make .. " uninstall 2>&1")
    assert.are.equal(0, code, out)
    assert.is_nil(io.open(dir .. "/root"), "uninstall removes the directories install created")
    H.rmdir(dir)
  end)
end)
