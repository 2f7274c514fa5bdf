-- A busted output handler: one line per test as it ends, the failures in
-- full, and the closing line CI counts: "N passed, N failed".
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.base")()
  local pretty = require "pl.pretty"
  local failed = {}

  local function msg(m)
    if type(m) == "string" then return m end
    if m == nil then return "nil error" end
    return pretty.write(m)
  end

  handler.testEnd = function(element, parent, status)
    local name = handler.getFullName(element)
    local mark = status == "success" and "ok  " or status == "pending" and "skip" or "FAIL"
    io.write(string.format("%s %s (%.2fs)\n", mark, name, element.duration or 0))
    io.flush()
    return nil, true
  end

  handler.suiteEnd = function()
    local nfail = #handler.failures + #handler.errors
    for _, list in ipairs({ handler.failures, handler.errors }) do
      for _, f in ipairs(list) do
        local where = f.trace and f.trace.short_src and (f.trace.short_src .. ":" .. (f.trace.currentline or "?")) or "?"
        io.write("\n--- ", f.name or "?", "  [", where, "]\n", msg(f.message), "\n")
        if f.trace and f.trace.traceback then io.write(f.trace.traceback, "\n") end
      end
    end
    io.write(string.format("\n%d passed, %d failed\n", #handler.successes, nfail))
    io.flush()
    return nil, true
  end

  handler.error = function(element, parent, message)
    io.write("ERROR ", msg(message), "\n")
    return nil, true
  end

  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)
  busted.subscribe({ "error", "file" }, handler.error)
  busted.subscribe({ "failure", "file" }, handler.error)
  busted.subscribe({ "error", "describe" }, handler.error)
  busted.subscribe({ "failure", "describe" }, handler.error)
  return handler
end
