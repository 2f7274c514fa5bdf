-- bench/report_big.lua — obra report at scale: N tasks (default 1000) of 3
-- iterations each, recorded through the data layer (tests/support/bigrun.lua),
-- then the report built, rendered and written.  Prints the time of each step
-- and the file's size.
--
--   LUA_PATH="lua/?.lua;tests/?.lua;;" LUA_CPATH="lib/?.so;;" lua5.4 bench/report_big.lua [N] [OUT.html]
local core = require "obra.core"
local store = require "obra.store"
local report = require "obra.report"
local bigrun = require "support.bigrun"

local N = tonumber(arg[1]) or 1000
local out = arg[2] or os.tmpname() .. ".html"
local dir = os.tmpname(); os.remove(dir); core.mkdir(dir, tonumber("700", 8))
local db, fill_ms = bigrun.fill(dir, N)
local t1 = core.clock_ms()
local ro = assert(store.open(db, { readonly = true }))
local m = assert(report.build(ro))
local t2 = core.clock_ms()
local html = report.html(m, assert(report.chartjs()))
local t3 = core.clock_ms()
assert(report.write(out, html))
local t4 = core.clock_ms()
ro:close()
print(string.format("tasks %d, iterations %d: recorded in %.0f ms; report built %.0f ms, rendered %.0f ms, written %.0f ms; " ..
  "file %.2f MB (%d bytes, Chart.js %d) -> %s", N, m.summary.iterations, fill_ms, t2 - t1, t3 - t2, t4 - t3, #html / 1048576, #html,
  #assert(report.chartjs()), out))
os.execute("rm -rf '" .. dir .. "'")
