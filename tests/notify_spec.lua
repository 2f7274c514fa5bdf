-- Notifications: the real obra binary posts to a real webhook receiver on
-- loopback (tests/fakes/webhook_server.lua): what it sends at a breakpoint,
-- a task done and the run's end; retries after 503; a receiver that never
-- answers costs the run nothing but a note; the URL's secrets are never shown
-- or stored; a bell and the window title on a terminal.
local H = require "support.helper"
local E = require "support.e2e"
local R = require "support.receiver"

local SECRET_PW, SECRET_TOKEN = "s3cretpw99", "tok-abcdef123456"

local receiver, stop, requests = R.start, R.stop, R.requests

local function workflow(notify)
  return [[
    project "hooks" {}
    config { notify = ]] .. notify .. [[ }
    task "risky" { title = "needs an approval", prompt = "risky work", checks = { "true" }, tags = { "needs-approval" } }
    task "plain" { title = "plain work", prompt = "plain work", checks = { "true" } }
  ]]
end

local function no_secret(p, r)
  for _, s in ipairs({ SECRET_PW, SECRET_TOKEN }) do
    assert.is_nil(r.err:find(s, 1, true), "stderr shows a secret")
    assert.is_nil(r.out:find(s, 1, true), "stdout shows a secret")
    local db = H.readfile(p.dir .. "/.obra/obra.db") or ""
    local wal = H.readfile(p.dir .. "/.obra/obra.db-wal") or ""
    assert.is_nil((db .. wal):find(s, 1, true), "the database keeps a secret")
  end
end

describe("notify", function()
  it("posts the breakpoint (with the command to answer it) and the task done; the URL's secrets stay out of sight", function()
    local p = E.project { tag = "notify", script = "" }
    local r = receiver(p.dir)
    local url = string.format("http://hook:%s@127.0.0.1:%d/hook?token=%s", SECRET_PW, r.port, SECRET_TOKEN)
    H.writefile(p.dir .. "/obra.lua", workflow(string.format('{ url = %q, on = { "breakpoint", "done" } }', url)))
    local res = E.run(p)
    H.expect_code(res, 3)
    stop(r)
    local reqs = requests(r)
    local by = {}
    for _, q in ipairs(reqs) do
      assert.are.equal("POST", q.method)
      assert.are.equal("/hook?token=" .. SECRET_TOKEN, q.path)
      assert.are.equal("application/json", q.headers["content-type"])
      assert.truthy(q.headers["authorization"], "the userinfo became basic auth")
      by[q.doc.event .. ":" .. tostring(q.doc.task)] = q.doc
    end
    assert.are.equal(2, #reqs)   -- the run ends waiting: no run event (on has no 'failed'/'budget' for it)
    local bp = assert(by["breakpoint:risky"], "no breakpoint post")
    assert.are.equal("hooks", bp.project)
    assert.are.equal("needs an approval", bp.title)
    assert.are.equal('obra answer risky "..."', bp.command)
    assert.are.same({ 'obra answer risky "..."', "obra approve risky", "obra reject risky" }, bp.commands)
    assert.are.equal(1, bp.iteration)
    assert.truthy(bp.reason and bp.reason ~= "")
    assert.truthy(bp.kind and bp.kind ~= "")
    local done = assert(by["done:plain"], "no done post")
    assert.are.equal("obra show plain", done.command)
    no_secret(p, res)
    H.rmdir(p.dir)
  end)

  it("retries a receiver that answers 503, and posts the run's own event after its tasks'", function()
    local p = E.project { tag = "notify-retry", script = "" }
    local r = receiver(p.dir, "--fail 2")
    H.writefile(p.dir .. "/obra.lua", string.format([[
      project "hooks" {}
      config { notify = { url = "http://127.0.0.1:%d/h", on = { "done" }, timeout = 5, attempts = 3 } }
      task "plain" { prompt = "plain work", checks = { "true" } }
    ]], r.port))
    local res = E.run(p)
    H.expect_code(res, 0)
    stop(r)
    local reqs = requests(r)
    assert.are.equal(4, #reqs)
    for i = 1, 3 do
      assert.are.equal("done", reqs[i].doc.event)
      assert.are.equal("plain", reqs[i].doc.task)
    end
    assert.are.equal("done", reqs[4].doc.event)
    assert.is_nil(reqs[4].doc.task)
    assert.are.equal("obra status", reqs[4].doc.command)
    assert.is_nil(res.err:find("could not post", 1, true))
  end)

  it("a receiver that never answers is a logged note without the secrets; the run finishes as usual", function()
    local p = E.project { tag = "notify-hang", script = "" }
    local r = receiver(p.dir, "--hang")
    local url = string.format("http://u:%s@127.0.0.1:%d/h?key=%s", SECRET_PW, r.port, SECRET_TOKEN)
    H.writefile(p.dir .. "/obra.lua", string.format([[
      project "hooks" {}
      config { notify = { url = %q, on = { "done" }, timeout = 0.3, attempts = 2 } }
      task "plain" { prompt = "plain work", checks = { "true" } }
    ]], url))
    local res = E.run(p)
    H.expect_code(res, 0)
    stop(r)
    assert.are.equal(4, #requests(r))   -- two events, two attempts each
    local note = res.err:match("[^\n]*notify: could not post 'done' of plain[^\n]*")
    assert.truthy(note, res.err)
    assert.truthy(note:find("http://127.0.0.1:" .. r.port .. "/h", 1, true), note)
    assert.truthy(note:find("timeout", 1, true) or note:find("timed out", 1, true), note)
    assert.truthy(res.err:find("could not post 'done' to", 1, true), res.err)
    no_secret(p, res)
    H.rmdir(p.dir)
  end)

  it("a wrong notify setting is one line naming it", function()
    local p = E.project { tag = "notify-bad", script = "" }
    for _, case in ipairs({
      { '{ url = "ftp://example.org/x" }', "http:// or https://" },
      { '{ url = "http://127.0.0.1:1/x", on = { "breakpoint", "lunch" } }', "lunch" },
      { '{ url = "http://127.0.0.1:1/x", retries = 3 }', "retries" },
    }) do
      H.writefile(p.dir .. "/obra.lua", workflow(case[1]))
      local res = E.run(p)
      H.expect_code(res, 2)
      assert.truthy(res.err:find("notify", 1, true), res.err)
      assert.truthy(res.err:find(case[2], 1, true), res.err)
      assert.are.equal(1, select(2, res.err:gsub("\n", "")), res.err)
    end
    H.rmdir(p.dir)
  end)

  it("rings the bell and sets the title (OSC 0) on a terminal when a breakpoint opens", function()
    if H.sh("command -v script 2>/dev/null") == "" then pending("script(1) is not installed (util-linux)"); return end
    local p = E.project { tag = "notify-tty", script = [[
      task "risky" { prompt = "risky work", checks = { "true" }, tags = { "needs-approval" } }
    ]] }
    local q = {}
    for _, a in ipairs({ H.BIN, "run", p.script }) do q[#q + 1] = H.q(a) end
    for _, a in ipairs(E.sets(p)) do q[#q + 1] = H.q(a) end
    local env = {}
    for k, v in pairs(E.env(p)) do env[#env + 1] = k .. "=" .. H.q(v) end
    local inner = "env " .. table.concat(env, " ") .. " " .. table.concat(q, " ") .. " </dev/null"
    local out = H.sh(string.format("cd %s && timeout -k 5 60 script -qfec %s /dev/null", H.q(p.dir), H.q(inner)))
    assert.truthy(out:find("\a\27]0;obra: risky needs you\7", 1, true), out)
    -- without a terminal: neither
    local res = E.run(p)
    assert.is_nil(res.err:find("\27]0;", 1, true))
    H.rmdir(p.dir)
  end)
end)
