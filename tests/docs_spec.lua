-- The option lists in docs/ against the tables obra validates with, so the
-- two cannot drift apart again (issue 18): docs/agents.md and docs/llm.md
-- against obra.agent's and obra.llm's options, docs/workflows.md's config
-- and task tables (and the agent and llm rows) against obra.workflow's,
-- docs/policy.md's thresholds against obra.policy.THRESHOLDS; and the
-- workflow accepts every option the libraries take.  docs/cli.md against
-- the command modules (cli.COMMANDS): a section per command naming exactly
-- its flags, each usage line naming exactly its flags, the exit codes.
local H = require "support.helper"
local workflow = require "obra.workflow"
local policy = require "obra.policy"
local agent = require "obra.agent"
local llm = require "obra.llm"
local cli = require "obra.cli"
local commands = require "obra.commands"

local function doc(name) return assert(H.readfile(H.ROOT .. "/docs/" .. name)) end

-- The rows of the markdown table whose header line is header: each row's
-- first cell and the rest of the line.
local function table_rows(text, header)
  local rows, inside = {}, false
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if not inside then
      if line == header then inside = true end
    elseif line:match("^|%s*%-%-") then
      -- the |---|---| line under the header
    elseif line:match("^|") then
      local first, rest = line:match("^|%s*(.-)%s*|(.*)$")
      rows[#rows + 1] = { first = first, rest = rest }
    else
      break
    end
  end
  assert(inside, "no table headed " .. header)
  return rows
end

-- the `names` in a cell ("`a`, `b`" -> a, b)
local function names_in(cell, out)
  out = out or {}
  for n in cell:gmatch("`([%w_]+)`") do out[n] = true end
  return out
end

local function set_of(t)
  local out = {}
  for k in pairs(t) do out[k] = true end
  return out
end

local function sorted(set)
  local l = {}
  for k in pairs(set) do l[#l + 1] = k end
  table.sort(l)
  return l
end

local function same(want, got, where)
  assert.are.same(sorted(want), sorted(got), where)
end

describe("documented option lists match the tables obra checks with", function()
  it("docs/agents.md lists obra.agent's options, and a workflow accepts each (but the library-only ones)", function()
    local opts = set_of(agent.OPTIONS.common)
    for _, kind in pairs(agent.OPTIONS.kinds) do for k in pairs(kind) do opts[k] = true end end
    local documented = {}
    for _, r in ipairs(table_rows(doc("agents.md"), "| option | kinds | default | meaning |")) do
      names_in(r.first, documented)
    end
    same(opts, documented, "docs/agents.md option table vs obra.agent.OPTIONS")
    local want = {}
    for k in pairs(opts) do if not workflow.AGENT_LIBRARY_ONLY[k] then want[k] = true end end
    want.kind, want.max_turns_limit = true, true   -- the engine's own
    same(want, set_of(workflow.OPTIONS.agent), "workflow agent options vs obra.agent.OPTIONS")
  end)

  it("docs/llm.md lists obra.llm's options, and a workflow accepts each", function()
    local documented = {}
    for _, r in ipairs(table_rows(doc("llm.md"), "| option | default | meaning |")) do names_in(r.first, documented) end
    same(set_of(llm.OPTIONS), documented, "docs/llm.md option table vs obra.llm.OPTIONS")
    local want = set_of(llm.OPTIONS)
    for k in pairs(workflow.LLM_WORKFLOW_ONLY) do want[k] = true end
    same(want, set_of(workflow.OPTIONS.llm), "workflow llm options vs obra.llm.OPTIONS")
  end)

  it("docs/workflows.md's config and task tables, and their agent and llm rows, match obra.workflow", function()
    local text = doc("workflows.md")
    local keys, agent_row, llm_row = {}, nil, nil
    for _, r in ipairs(table_rows(text, "| key | type | default | meaning |")) do
      names_in(r.first, keys)
      if r.first == "`agent`" then agent_row = r.rest end
      if r.first == "`llm`" then llm_row = r.rest end
    end
    same(set_of(workflow.OPTIONS.config), keys, "docs/workflows.md config table")
    -- the row lists the option names after the link; values in parentheses are not names
    local function row_names(rest)
      local list = assert(rest:match("%):%s*(.*)$"), rest)
      return names_in((list:gsub("%b()", "")))
    end
    same(set_of(workflow.OPTIONS.agent), row_names(assert(agent_row)), "docs/workflows.md config.agent row")
    local want = set_of(workflow.OPTIONS.llm)
    for k in pairs(workflow.LLM_WORKFLOW_ONLY) do want[k] = nil end
    local got = row_names((assert(llm_row):gsub("%. `false` runs.*$", "")))
    same(want, got, "docs/workflows.md config.llm row")
    local task = {}
    local text_task = text:match("### `task \"key\" { ... }`\n(.*)$")
    for _, r in ipairs(table_rows(text_task, "| key | type | meaning |")) do names_in(r.first, task) end
    same(set_of(workflow.OPTIONS.task), task, "docs/workflows.md task table")
  end)

  it("docs/policy.md's thresholds table matches obra.policy.THRESHOLDS, names and defaults", function()
    local documented = {}
    for _, r in ipairs(table_rows(doc("policy.md"), "| name | default | meaning |")) do
      local name = r.first:match("^`([%w_]+)`$")
      local default = r.rest:match("^%s*(.-)%s*|")
      documented[name] = default == "true" or (default ~= "false" and tonumber(default))
    end
    local want = {}
    for _, t in ipairs(policy.THRESHOLDS) do
      if not t.obsolete then want[t.name] = t.default end
    end
    assert.are.same(want, documented)
  end)
end)

-- The --flags named in a text.
local function flags_in(text, out)
  out = out or {}
  for f in text:gmatch("%-%-(%a[%w-]*)") do out[f] = true end
  return out
end

describe("docs/cli.md matches the command modules", function()
  it("each command's usage line names exactly its flags", function()
    for _, c in ipairs(commands.list()) do
      local want = {}
      for _, f in ipairs(c.flags) do want[f.name] = true end
      same(want, flags_in(c.usage), "usage of obra " .. c.name)
    end
  end)

  it("each command has a section whose heading names exactly its flags", function()
    local headings = {}
    for h in doc("cli.md"):gmatch("\n### ([^\n]+)") do
      for part in h:gmatch("`(obra [^`]+)`") do
        local name = part:match("^obra (%a[%w-]*)")
        if name then headings[name] = flags_in(part, headings[name]) end
      end
    end
    for _, c in ipairs(commands.list()) do
      assert(headings[c.name], "docs/cli.md has no section for obra " .. c.name)
      local want = {}
      for _, f in ipairs(c.flags) do want[f.name] = true end
      same(want, headings[c.name], "docs/cli.md heading of obra " .. c.name)
    end
  end)

  it("the exit code tables of docs/cli.md and the README list cli.EXITS", function()
    local want = {}
    for _, e in ipairs(cli.EXITS) do want[e[1]] = true end
    for name, text in pairs({ ["docs/cli.md"] = doc("cli.md"), README = assert(H.readfile(H.ROOT .. "/README.md")) }) do
      local documented = {}
      for _, r in ipairs(table_rows(text, "| code | meaning |")) do documented[tonumber(r.first)] = true end
      same(want, documented, name .. " exit codes")
    end
  end)
end)
