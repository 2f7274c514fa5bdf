-- Secrets never reach the database, `obra show`, `obra log`, the progress
-- lines or a cassette: the values of secret-looking variables in obra's
-- environment, a key written into the workflow, and anything shaped like an
-- API key or an Authorization header (src/redact.c).
local H = require "support.helper"
local E = require "support.e2e"
local fakellm = require "support.fakellm"

local TOKEN = "tok-live-0123456789abcdef"
local ANTHROPIC = "sk-ant-api03-ZYXWVUTSRQ0123456789-abcdefgh"
local SHAPED = "sk-proj-AAAABBBBCCCCDDDDEEEEFFFF"
local IN_SCRIPT = "script-key-9876543210"

describe("secrets", function()
  local srv
  before_each(function()
    srv = fakellm.start { models = { "judge" } }
    srv:default { json = { complete = true, quality = 0.9, confidence = 0.9, issues = {},
                           summary = "the agent mentioned " .. SHAPED } }
  end)
  after_each(function() if srv then srv:stop() end end)

  it("are redacted from everything obra stores, prints and records", function()
    local p = E.project { llm = srv, script = [[
      config { llm = { api_key = "]] .. IN_SCRIPT .. [[" } }
      task "leak" { prompt = "Write out.txt.", checks = { "env", "test -f out.txt" } }
    ]], scenario = { rules = { { write = { ["out.txt"] = "x\n" },
      result = "done; I used ANTHROPIC_API_KEY=" .. ANTHROPIC .. " and Authorization: Bearer " .. TOKEN .. "xyz" } } } }
    local env = E.env(p)
    env.MY_SERVICE_TOKEN = TOKEN
    env.ANTHROPIC_API_KEY = ANTHROPIC
    local args = { "run", p.script, "--record", "tape.json" }
    for _, a in ipairs(E.sets(p)) do args[#args + 1] = a end
    local r = H.obra(args, { cwd = p.dir, env = env, timeout = 120 })
    assert.are.equal(0, r.code, r.err)
    local shown = H.obra({ "show", "leak", "--json" }, { cwd = p.dir, env = env }).out
    local logged = H.obra({ "log", "--json", "--full" }, { cwd = p.dir, env = env }).out
    assert.matches("REDACTED", shown)
    assert.matches("REDACTED", logged)
    local db = H.readfile(p.dir .. "/.obra/obra.db") .. (H.readfile(p.dir .. "/.obra/obra.db-wal") or "")
    -- and the texts unpacked (a packed text would hide a secret from the bytes above)
    local s = assert(require("obra.store").open(p.dir .. "/.obra/obra.db", { readonly = true }))
    local packed = 0
    for _, t in ipairs(s:query("SELECT id, packed FROM texts")) do
      db = db .. s:text(t.id)
      if t.packed then packed = packed + 1 end
    end
    s:close()
    assert.is_true(packed > 0)
    local tape = assert(H.readfile(p.dir .. "/tape.json"))
    assert.are.equal("600\n", (H.sh("stat -c %a " .. H.q(p.dir .. "/tape.json"))))
    for name, text in pairs({ db = db, show = shown, log = logged, tape = tape, stderr = r.err, stdout = r.out }) do
      for _, secret in ipairs({ TOKEN, ANTHROPIC, SHAPED, IN_SCRIPT }) do
        assert.is_nil(text:find(secret, 1, true), secret .. " found in " .. name)
      end
    end
    -- the check really printed the environment (and so the token, before redaction)
    assert.matches("MY_SERVICE_TOKEN=%[REDACTED%]", logged)
    H.rmdir(p.dir)
  end)
end)
