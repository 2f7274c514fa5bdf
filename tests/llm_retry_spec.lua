-- Error classes, retries and backoff of the LLM clients, each produced by
-- the matching fault of the fake server: the number of attempts (requests the
-- server saw) and the elapsed time against the backoff bounds; unreachable
-- fails fast; two calls in flight run concurrently; sequential calls reuse
-- one keep-alive connection.
local fakellm = require "support.fakellm"
local obra = require "obra"
local loop = require "obra.loop"

local function ms() return obra.core.clock_ms() end
local function ask(text) return { { role = "user", content = text or "x" } } end

describe("llm retries and error classes", function()
  local srv
  setup(function() srv = fakellm.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function client(provider, extra)
    local cfg = { url = srv.url, model = "fake-judge", backoff = 0.2, backoff_max = 1 }
    for k, v in pairs(extra or {}) do cfg[k] = v end
    return obra.llm[provider](cfg)
  end

  local function chats() return #srv:requests() end

  for _, provider in ipairs({ "ollama", "openai" }) do
    describe(provider, function()
      it("retries 500s with jittered exponential backoff and recovers", function()
        srv:queue{ { status = 500 }, { status = 502 }, { content = "finally" } }
        local t0 = ms()
        local r, msg = client(provider):chat{ messages = ask() }
        local elapsed = ms() - t0
        assert.is_table(r, msg)
        assert.are.equal("finally", r.text)
        assert.are.equal(3, r.attempts)
        assert.are.equal(3, chats())
        -- full jitter: each sleep in [0, 0.2 * 2^(n-1)] -> at most 0.2 + 0.4 s in total
        assert.is_true(elapsed < 600 + 400, "elapsed " .. elapsed)
        local reqs = srv:requests()
        assert.is_true(reqs[2].time - reqs[1].time < 0.2 + 0.1, "first backoff")
        assert.is_true(reqs[3].time - reqs[2].time < 0.4 + 0.1, "second backoff")
      end)

      it("jitters the backoff and caps it at backoff_max", function()
        local five = {}
        for i = 1, 5 do five[i] = { status = 503 } end
        five[6] = { content = "ok" }
        srv:queue(five)
        local t0 = ms()
        local r, msg = client(provider, { backoff = 0.3, backoff_max = 0.3, max_attempts = 6 }):chat{ messages = ask() }
        local elapsed = ms() - t0
        assert.is_table(r, msg)
        assert.are.equal(6, r.attempts)
        -- five sleeps uniform in [0, 0.3]: 0.75 s expected, 1.5 s if not jittered,
        -- more if not capped; above 1.4 s by chance with probability ~1e-5
        assert.is_true(elapsed < 1400, "elapsed " .. elapsed)
      end)

      it("gives up with server_error after max_attempts", function()
        srv:queue{ { status = 500 }, { status = 500 }, { status = 500 }, { status = 500 } }
        local r, msg, code = client(provider, { max_attempts = 3, backoff = 0.05 }):chat{ messages = ask() }
        assert.is_nil(r)
        assert.are.equal("server_error", code)
        assert.matches("after 3 attempts", msg)
        assert.are.equal(3, chats())
      end)

      it("honours Retry-After on 429", function()
        srv:queue{ { status = 429, headers = { ["Retry-After"] = "1" } }, { content = "ok now" } }
        local t0 = ms()
        local r, msg = client(provider, { backoff = 5 }):chat{ messages = ask() }
        local elapsed = ms() - t0
        assert.is_table(r, msg)
        assert.are.equal(2, r.attempts)
        assert.is_true(elapsed >= 950 and elapsed < 2500, "elapsed " .. elapsed)
      end)

      it("returns rate_limited at once when Retry-After passes the deadline", function()
        srv:queue{ status = 429, headers = { ["Retry-After"] = "30" } }
        local t0 = ms()
        local r, msg, code = client(provider, { deadline = 5 }):chat{ messages = ask() }
        assert.is_nil(r)
        assert.are.equal("rate_limited", code)
        assert.matches("retry after 30", msg)
        assert.is_true(ms() - t0 < 1000)
        assert.are.equal(1, chats())
      end)

      it("does not retry auth, model_not_found or bad_response", function()
        srv:queue{ { status = 401 }, { status = 404 }, { body = "<html>not json</html>" } }
        local l = client(provider)
        local _, _, c1 = l:chat{ messages = ask() }
        local _, _, c2 = l:chat{ messages = ask() }
        local _, _, c3, raw = l:chat{ messages = ask() }
        assert.are.same({ "auth", "model_not_found", "bad_response" }, { c1, c2, c3 })
        assert.are.equal("<html>not json</html>", raw)
        assert.are.equal(3, chats())
      end)

      it("times out a slow reply per attempt and retries it", function()
        srv:queue{ { delay = 3, content = "late" }, { delay = 3, content = "late" } }
        local t0 = ms()
        local r, msg, code = client(provider, { timeout = 0.3, max_attempts = 2, backoff = 0.05 }):chat{ messages = ask() }
        local elapsed = ms() - t0
        assert.is_nil(r)
        assert.are.equal("timeout", code, msg)
        assert.are.equal(2, chats())
        assert.is_true(elapsed >= 550 and elapsed < 1500, "elapsed " .. elapsed)
      end)

      it("stops at the total deadline across attempts", function()
        srv:queue{ { delay = 3 }, { delay = 3 }, { delay = 3 }, { delay = 3 } }
        local t0 = ms()
        local r, _, code = client(provider, { timeout = 0.6, deadline = 1, max_attempts = 10, backoff = 0.01 }):chat{
          messages = ask() }
        local elapsed = ms() - t0
        assert.is_nil(r)
        assert.are.equal("timeout", code)
        assert.is_true(elapsed >= 900 and elapsed < 1700, "elapsed " .. elapsed)
        assert.is_true(chats() <= 3)
      end)

      it("retries a reply cut mid-way (server_error) and streams the new attempt", function()
        srv:queue{ { content = "the first try is cut off here", cut_after = 60 }, { content = "second try" } }
        local per = {}
        local r, msg = client(provider, { backoff = 0.05 }):chat{ messages = ask(),
          on_token = function(c, a) per[a] = (per[a] or "") .. c end }
        assert.is_table(r, msg)
        assert.are.equal("second try", r.text)
        assert.are.equal(2, r.attempts)
        assert.are.equal("second try", per[2])
        -- a whole (unstreamed) body cut short too
        srv:queue{ { content = ("long "):rep(50), cut_after = 40 }, { content = "whole" } }
        r, msg = client(provider, { backoff = 0.05 }):chat{ messages = ask() }
        assert.is_table(r, msg)
        assert.are.equal(2, r.attempts)
      end)

      it("rejects a body over max_response as bad_response, without retrying", function()
        srv:queue{ content = "x", ["repeat"] = 50000 }
        local r, msg, code = client(provider, { max_response = 4096 }):chat{ messages = ask() }
        assert.is_nil(r)
        assert.are.equal("bad_response", code)
        assert.matches("4096", msg)
        assert.are.equal(1, chats())
      end)

      it("fails fast with unreachable when nothing listens", function()
        local l = obra.llm[provider]{ url = "http://127.0.0.1:" .. fakellm.closed_port(), model = "m" }
        local t0 = ms()
        local r, msg, code = l:chat{ messages = ask() }
        assert.is_nil(r)
        assert.are.equal("unreachable", code)
        assert.matches("127.0.0.1", msg)
        assert.is_true(ms() - t0 < 1000)
        local ok, _, hcode = l:health()
        assert.is_nil(ok)
        assert.are.equal("unreachable", hcode)
      end)
    end)
  end

  it("treats an error line inside an Ollama stream as server_error", function()
    srv:queue{ { body = '{"model":"m","message":{"role":"assistant","content":"a"},"done":false}\n' ..
                        '{"error":"model runner has unexpectedly stopped"}\n', content_type = "application/x-ndjson" },
               { content = "recovered" } }
    local r, msg = client("ollama", { backoff = 0.05 }):chat{ messages = ask(), on_token = function() end }
    assert.is_table(r, msg)
    assert.are.equal(2, r.attempts)
    srv:queue{ { status = 200, body = '{"error":"runner crashed"}' }, { status = 200, body = '{"error":"again"}' } }
    local _, emsg, code = client("ollama", { backoff = 0.05, max_attempts = 2 }):chat{ messages = ask() }
    assert.are.equal("server_error", code)
    assert.matches("again", emsg)
  end)

  it("runs two calls in flight concurrently inside coroutines", function()
    srv:queue{ { delay = 1, content = "A" }, { delay = 1, content = "B" } }
    local l = client("ollama")
    local got = {}
    local t0 = ms()
    for i = 1, 2 do
      loop.spawn(function()
        local r, msg = l:chat{ messages = ask(tostring(i)) }
        got[i] = r and r.text or msg
      end)
    end
    loop.run()
    local elapsed = ms() - t0
    table.sort(got)
    assert.are.same({ "A", "B" }, got)
    assert.is_true(elapsed >= 950 and elapsed < 1800, "elapsed " .. elapsed)
  end)

  it("streams in a coroutine while another coroutine runs", function()
    srv:queue{ content = "a b c d e f", token_delay = 0.1 }
    local l = client("openai")
    local ticks, tokens = 0, 0
    local done = false
    loop.spawn(function()
      assert(l:chat{ messages = ask(), on_token = function() tokens = tokens + 1 end })
      done = true
    end)
    loop.spawn(function()
      while not done do ticks = ticks + 1; loop.sleep(20) end
    end)
    loop.run()
    assert.is_true(tokens >= 3)
    assert.is_true(ticks >= 10, "ticks " .. ticks)
  end)

  it("reuses one keep-alive connection for sequential calls", function()
    local l = client("ollama")
    for i = 1, 3 do
      srv:queue{ content = "reply " .. i }
      assert(l:chat{ messages = ask() })
    end
    assert(l:health())
    local conns = {}
    for _, r in ipairs(srv:requests()) do conns[r.conn] = true end
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.are.equal(4, #srv:requests())
    assert.are.equal(1, n)
  end)

  it("cancels a call when its coroutine's caller raises from on_token", function()
    srv:queue{ content = "a b c d e f g h", token_delay = 0.2 }
    local t0 = ms()
    local ok, err = pcall(function()
      client("ollama"):chat{ messages = ask(), on_token = function() error("stop here") end }
    end)
    assert.is_false(ok)
    assert.matches("stop here", err)
    assert.is_true(ms() - t0 < 1000)
  end)
end)
