-- obra completion bash|zsh|fish: the scripts, made from the command modules,
-- loaded into the real shells and asked what they offer (bash: the function
-- called with COMP_WORDS/COMP_CWORD set; fish: complete -C; zsh: an
-- interactive zsh on a pseudo-terminal, tests/support/zsh_complete.zsh), in
-- a project whose task keys come from `obra completion --tasks`.
local H = require "support.helper"
local commands = require "obra.commands"

local BIN_DIR = H.BIN:match("^(.*)/[^/]*$")

local function set(list)
  local s = {}
  for _, x in ipairs(list) do s[x] = true end
  return s
end

local function lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- A project holding the tasks parser, printer and tests (inserted through
-- obra's store, as a run would sync them).
local function project()
  local dir = H.tmpdir("complete")
  H.expect_code(H.obra({ "init", "--no-git" }, { cwd = dir }), 0)
  local s = assert(require("obra").open(dir .. "/.obra/obra.db"))
  s:exec("INSERT INTO projects(name) VALUES ('p')")
  local p = s:project("p")
  for _, k in ipairs({ "parser", "printer", "tests" }) do
    s:exec("INSERT INTO tasks(project_id, key, title, status) VALUES (?, ?, ?, 'pending')", p.id, k, k)
  end
  s:close()
  return dir
end

-- The script for shell, written to dir/name.
local function script(shell, dir, name)
  local r = H.expect_code(H.obra({ "completion", shell }), 0)
  assert.are.equal("", r.err)
  H.mkdirs(dir)
  H.writefile(dir .. "/" .. name, r.out)
  return dir .. "/" .. name
end

-- Run sh in dir with the obra under test first on PATH.
local function run(dir, sh)
  return H.sh(string.format("cd %s && PATH=%s:\"$PATH\" timeout -k 2 60 %s", H.q(dir), H.q(BIN_DIR), sh))
end

local function need(program)
  local _, code = H.sh("command -v " .. program)
  assert(code == 0, program .. " not found: `make deps` installs it")
end

describe("obra completion", function()
  local dir, keys
  setup(function() dir = project() end)
  teardown(function() H.rmdir(dir) end)

  it("--tasks prints the project's task keys, and nothing (exit 0) outside a project or from a damaged file", function()
    local r = H.expect_code(H.obra({ "completion", "--tasks" }, { cwd = dir .. "/.obra" }), 0)
    assert.are.same({ "parser", "printer", "tests" }, lines(r.out))
    local away = H.tmpdir("noproject")
    r = H.expect_code(H.obra({ "completion", "--tasks" }, { cwd = away }), 0)
    assert.are.equal("", r.out)
    assert.are.equal("", r.err)
    H.rmdir(away)
    -- a damaged database: still nothing but exit 0 (a completion never prints an error)
    local broken = H.tmpdir("broken")
    H.mkdirs(broken .. "/.obra")
    H.writefile(broken .. "/.obra/obra.db", string.rep("not a database\n", 512))
    r = H.expect_code(H.obra({ "completion", "--tasks" }, { cwd = broken }), 0)
    assert.are.equal("", r.out .. r.err)
    H.rmdir(broken)
    r = H.obra({ "completion", "tcsh" })
    assert.are.equal(2, r.code)
    assert.matches("completion needs one shell: bash, zsh, fish", r.err)
  end)

  describe("bash", function()
    local file
    setup(function() file = script("bash", dir .. "/sh", "obra") end)

    -- What bash offers for the words (the last is the one being completed).
    local function complete(...)
      local words = {}
      for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
      local out, code = run(dir, string.format(
        "bash -c 'source %s; COMP_WORDS=(\"$@\"); COMP_CWORD=$(( $# - 1 )); _obra; printf \"%%s\\n\" \"${COMPREPLY[@]}\"' _ %s",
        H.q(file), table.concat(words, " ")))
      assert.are.equal(0, code, out)
      return lines(out)
    end

    it("completes commands, flags, flag values, task keys and files", function()
      assert.are.same({ "run" }, complete("obra", "ru"))
      assert.are.same({ "--max-parallel" }, complete("obra", "run", "--max"))
      assert.are.same({ "parser", "printer" }, complete("obra", "show", "p"))
      assert.are.same({ "parser", "printer" }, complete("obra", "show", "--json", "p"))
      assert.are.same({}, complete("obra", "show", "parser", ""))          -- one task only
      assert.are.same({ "parser", "printer", "tests" }, complete("obra", "replay", "--task", ""))
      assert.are.same({ "tests" }, complete("obra", "label", "--note", "why", "t"))
      assert.are.same({ "sh/obra" }, complete("obra", "run", "--record", "sh/o"))
      assert.are.same({ "sh/obra" }, complete("obra", "run", "--record", "=", "sh/o"))   -- --record=sh/o
      assert.are.same({ "sh/obra" }, complete("obra", "run", "sh/o"))                      -- SCRIPT
      assert.are.same({}, complete("obra", "run", "--max-parallel", ""))                   -- a number
      assert.are.same({ "zsh" }, complete("obra", "completion", "z"))
      assert.are.same({ "status" }, complete("obra", "help", "st"))
    end)

    it("offers every command in cli.COMMANDS, and each one's own flags", function()
      local list = commands.list()
      local want = { ["--help"] = true, ["--version"] = true }
      for _, c in ipairs(list) do want[c.name] = true end
      assert.are.same(want, set(complete("obra", "")))
      for _, c in ipairs(list) do
        local flags = { ["--help"] = true }
        for _, f in ipairs(c.flags) do flags["--" .. f.name] = true end
        assert.are.same(flags, set(complete("obra", c.name, "--")), c.name)
      end
    end)
  end)

  it("a command added to cli.COMMANDS is in every script and the man page, with no other edit", function()
    local cli = require "obra.cli"
    package.preload["obra.cmd.frob"] = function()
      return { summary = "frobnicate a task", usage = "obra frob TASK [--level N] [--out FILE]",
               help = "  --level N   how hard", flags = { level = "count", out = "string" }, run = function() return 0 end }
    end
    table.insert(cli.COMMANDS, "frob")
    finally(function() table.remove(cli.COMMANDS); package.preload["obra.cmd.frob"] = nil end)
    local list = commands.list()
    local frob = list[#list]
    assert.are.equal("frob", frob.name)
    assert.are.equal("task", frob.arg)
    assert.are.same({ name = "level", kind = "count", value = "N", about = "how hard" },
      { name = frob.flags[1].name, kind = frob.flags[1].kind, value = frob.flags[1].value, about = frob.flags[1].about })
    assert.are.equal("file", frob.flags[2].complete)
    local completion = require "obra.completion"
    for _, shell in ipairs(completion.SHELLS) do
      assert.matches("frob", completion.script(shell, list), 1, true)
    end
    assert.matches("\n.SS frob\n", require("obra.manpage").render(), 1, true)
    local file = dir .. "/frob.bash"
    H.writefile(file, completion.script("bash", list))
    local out = run(dir, string.format("bash -c 'source %s; COMP_WORDS=(obra frob --); COMP_CWORD=2; _obra; " ..
      "echo \"${COMPREPLY[*]}\"; COMP_WORDS=(obra frob --out frob.b); COMP_CWORD=3; _obra; echo \"${COMPREPLY[*]}\"'", H.q(file)))
    assert.are.equal("--help --level --out\nfrob.bash\n", out)
  end)

  it("fish: complete -C offers commands, flags, task keys and files", function()
    need("fish")
    local file = script("fish", dir .. "/fish", "obra.fish")
    local function complete(line)
      local out, code = run(dir, string.format("fish -c %s", H.q("source " .. file .. "; complete -C " .. H.q(line))))
      assert.are.equal(0, code, out)
      local words = {}
      for _, l in ipairs(lines(out)) do words[#words + 1] = l:match("^[^\t]*") end
      table.sort(words)
      return words
    end
    assert.are.same({ "run" }, complete("obra ru"))
    assert.are.same({ "--max-parallel" }, complete("obra run --max"))
    assert.are.same({ "parser", "printer" }, complete("obra show p"))
    assert.are.same({ "parser", "printer", "tests" }, complete("obra replay --task "))
    assert.are.same({ "bash", "fish", "zsh" }, complete("obra completion "))
    assert.are.same({ "fish/obra.fish" }, complete("obra run fish/"))
  end)

  it("zsh: compinit finds _obra; it offers commands, flags, task keys and words", function()
    need("zsh")
    local fpath = dir .. "/zsh"
    script("zsh", fpath, "_obra")
    local cases = { "obra ru", "obra run --max", "obra show p", "obra completion ", "obra help st" }
    local quoted = {}
    for i, l in ipairs(cases) do quoted[i] = H.q(l) end
    local out, code = run(dir, string.format("zsh -f %s %s %s", H.q(H.ROOT .. "/tests/support/zsh_complete.zsh"),
      H.q(fpath), table.concat(quoted, " ")))
    assert.are.equal(0, code, out)
    local got = {}
    for _, l in ipairs(lines(out)) do
      local line, word = l:match("^(.-)\t(.*)$")
      if line then got[line] = got[line] or {}; got[line][word] = true end
    end
    assert.are.same({ run = true }, got["obra ru"])
    assert.are.same({ ["--max-parallel"] = true }, got["obra run --max"])
    assert.are.same({ parser = true, printer = true }, got["obra show p"])
    assert.are.same({ bash = true, zsh = true, fish = true }, got["obra completion "])
    assert.are.same({ status = true }, got["obra help st"])
  end)
end)
