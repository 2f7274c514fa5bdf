-- obra log [TASK]: the interactions (agent, LLM, check and human calls).
local cli = require "obra.cli"
local core = require "obra.core"

return {
  summary = "interactions: every agent, judge, check and human call",
  usage = "obra log [TASK] [--limit N] [--full] [--json]",
  flags = { json = "boolean", limit = "count", full = "boolean" },
  run = function(opts, args)
    local s = cli.open_store()
    local task_id
    if args[1] then
      local t = s:task(args[1])
      if not t then s:close(); cli.fail("no task '" .. args[1] .. "'") end
      task_id = t.id
    end
    local out = s:interactions { task_id = task_id, limit = math.tointeger(opts.limit) or 200 }   -- oldest first
    s:close()
    if opts.json then
      if not opts.full then for _, r in ipairs(out) do r.prompt, r.response = nil, nil end end
      cli.json(core.json_array(out))
      return 0
    end
    for _, r in ipairs(out) do
      cli.print(string.format("%s %-10s #%-3s %-6s %-16s %-14s in %d out %d $%.4f %dms%s",
        os.date("%Y-%m-%d %H:%M:%S", math.floor(r.created_at)), r.task or "-", tostring(r.iteration or "-"), r.kind,
        r.name or "", r.outcome or "", r.tokens_in, r.tokens_out, r.cost_usd, r.duration_ms,
        r.session and ("  session " .. r.session) or ""))
      if r.error and r.error ~= "" then cli.print("    error: " .. r.error:gsub("\n", "\n    ")) end
      if opts.full then
        if r.prompt then cli.print("    >>> " .. r.prompt:gsub("\n", "\n    >>> ")) end
        if r.response then cli.print("    <<< " .. r.response:gsub("\n", "\n    <<< ")) end
        local tr = type(r.trace) == "table" and r.trace or nil
        if tr then   -- the agent's tool calls (docs/judging.md)
          cli.print(string.format("    tool calls: %d%s%s", tr.total or 0,
            (tr.dropped or 0) > 0 and string.format(", %d from the middle not kept", tr.dropped) or "",
            (tr.other_tools or 0) > 0 and string.format(", %d reads/searches not listed", tr.other_tools) or ""))
          for _, e in ipairs(tr.entries or {}) do
            local what = e.command or e.path or ""
            local res = e.exit and ("exit " .. e.exit) or (e.is_error == true and "error" or (e.is_error == false and "ok" or "?"))
            cli.print(string.format("    %s %-6s %s -> %s%s", e.tool, e.action, what:gsub("\n", " "), res, e.test and "  (test)" or ""))
          end
        end
      end
    end
    return 0
  end,
}
