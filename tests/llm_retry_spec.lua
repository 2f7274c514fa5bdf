-- Error classes, retries and backoff of the LLM clients, each produced by
-- the matching fault of the fake server: the number of attempts (requests the
-- server saw), the waits between them (lower bounds: a wait is at least what
-- it should be), and no stopwatch over what must be short: a backoff that
-- ignored its cap or a Retry-After would pass the call's deadline, and the
-- client gives up before sleeping; unreachable fails fast; two calls in flight
-- run concurrently (a barrier in the server); sequential calls reuse one
-- keep-alive connection.
local H = require "support.helper"
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

  -- n replies of status, then a good one
  local function failing(n, status)
    local list = {}
    for i = 1, n do list[i] = { status = status } end
    list[n + 1] = { content = "ok" }
    return list
  end

  for _, provider in ipairs({ "ollama", "openai" }) do
    describe(provider, function()
      it("retries 500s with jittered exponential backoff and recovers", function()
        srv:queue{ { status = 500 }, { status = 502 }, { content = "finally" } }
        local r, msg = client(provider):chat{ messages = ask() }
        assert.is_table(r, msg)
        assert.are.equal("finally", r.text)
        assert.are.equal(3, r.attempts)
        assert.are.equal(3, chats())
        -- the waits as planned: the ceiling doubles from backoff (0.2 s), each
        -- wait drawn under it; each gap between requests is at least its wait
        assert.are.equal(2, #r.waits)
        assert.are.same({ 200, 400 }, { r.waits[1].ceiling_ms, r.waits[2].ceiling_ms })
        local reqs = srv:requests()
        for i, w in ipairs(r.waits) do
          assert.is_true(w.ms >= 0 and w.ms <= w.ceiling_ms, "wait " .. i .. ": " .. w.ms)
          assert.is_true((reqs[i + 1].time - reqs[i].time) * 1000 >= w.ms - 5, "gap " .. i .. " shorter than its wait")
        end
      end)

      it("caps the backoff at backoff_max", function()
        -- uncapped, the first wait would be up to 11 days: past the deadline
        -- (almost surely), so the client would give up at once instead
        srv:queue(failing(5, 503))
        local r, msg = client(provider, { backoff = 1e6, backoff_max = 0.05, max_attempts = 6,
                                          deadline = 2 * H.HANG_GUARD }):chat{ messages = ask() }
        assert.is_table(r, msg)
        assert.are.equal(6, r.attempts)
        assert.are.equal(5, #r.waits)
        for i, w in ipairs(r.waits) do
          assert.are.equal(50, w.ceiling_ms, "ceiling " .. i)
          assert.is_true(w.ms <= 50, "wait " .. i .. ": " .. w.ms)
        end
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
        -- waits the 1 s it says: at least that; and not the backoff, which
        -- would (almost surely) pass the deadline and give up
        srv:queue{ { status = 429, headers = { ["Retry-After"] = "1" } }, { content = "ok now" } }
        local t0 = ms()
        local r, msg = client(provider, { backoff = 1e6, backoff_max = 1e6, deadline = 2 * H.HANG_GUARD }):chat{
          messages = ask() }
        local elapsed = ms() - t0
        assert.is_table(r, msg)
        assert.are.equal(2, r.attempts)
        assert.is_true(elapsed >= 950, "elapsed " .. elapsed)
        assert.are.same({ { ms = 1000, ceiling_ms = 1000 } }, r.waits)
      end)

      it("returns rate_limited at once when Retry-After passes the deadline", function()
        -- at once: not after the hour it was told to wait
        srv:queue{ status = 429, headers = { ["Retry-After"] = "3600" } }
        local t0 = H.clock()
        local r, msg, code = client(provider, { deadline = 5 }):chat{ messages = ask() }
        H.hang_guard(t0, "a Retry-After past the deadline")
        assert.is_nil(r)
        assert.are.equal("rate_limited", code)
        assert.matches("retry after 3600", msg)
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
        -- (the replies would come after the hang guard: the timer ended each attempt)
        local late = { delay = H.OUTLASTS_GUARD, content = "late" }
        srv:queue{ late, late }
        local t0 = ms()
        local r, msg, code = client(provider, { timeout = 0.3, max_attempts = 2, backoff = 0.05 }):chat{ messages = ask() }
        local elapsed = ms() - t0
        assert.is_nil(r)
        assert.are.equal("timeout", code, msg)
        assert.are.equal(2, chats())
        assert.is_true(elapsed >= 550, "elapsed " .. elapsed)
      end)

      it("stops at the total deadline across attempts", function()
        local late = { delay = H.OUTLASTS_GUARD }
        srv:queue{ late, late, late, late, late }
        -- attempts of 0.3 s within a deadline of 1 s: four at most of the hundred allowed
        local t0 = ms()
        local r, _, code = client(provider, { timeout = 0.3, deadline = 1, max_attempts = 100, backoff = 0.01 }):chat{
          messages = ask() }
        local elapsed = ms() - t0
        assert.is_nil(r)
        assert.are.equal("timeout", code)
        assert.is_true(elapsed >= 900, "elapsed " .. elapsed)
        assert.is_true(chats() <= 4, chats() .. " attempts")
        -- the deadline cuts an attempt in flight: its own timeout outlasts the hang guard
        srv:reset()
        srv:queue{ late }
        local t1 = H.clock()
        r, _, code = client(provider, { timeout = 2 * H.HANG_GUARD, deadline = 0.5 }):chat{ messages = ask() }
        H.hang_guard(t1, "an attempt past the deadline")
        assert.is_nil(r)
        assert.are.equal("timeout", code)
        assert.are.equal(1, chats())
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
        -- fast: one attempt, not retried, and not waiting for a timeout that outlasts the hang guard
        local l = obra.llm[provider]{ url = "http://127.0.0.1:" .. fakellm.closed_port(), model = "m",
                                      timeout = 2 * H.HANG_GUARD, backoff = 2 * H.HANG_GUARD }
        local t0 = H.clock()
        local r, msg, code = l:chat{ messages = ask() }
        H.hang_guard(t0, "a refused connection")
        assert.is_nil(r)
        assert.are.equal("unreachable", code)
        assert.matches("127.0.0.1", msg)
        assert.not_matches("attempts", msg)
        local ok, _, hcode = l:health()
        assert.is_nil(ok)
        assert.are.equal("unreachable", hcode)
      end)
    end)
  end

  it("jitters the backoff (one state machine for both providers: ollama's)", function()
    -- nine waits drawn uniformly under one ceiling (0.1 s): not jittered,
    -- all nine would be equal; jittered, all equal has probability 0
    srv:queue(failing(9, 503))
    local r, msg = client("ollama", { backoff = 0.1, backoff_max = 0.1, max_attempts = 10 }):chat{ messages = ask() }
    assert.is_table(r, msg)
    assert.are.equal(10, r.attempts)
    assert.are.equal(9, #r.waits)
    local lo, hi = math.huge, -1
    for _, w in ipairs(r.waits) do
      assert.are.equal(100, w.ceiling_ms)
      lo, hi = math.min(lo, w.ms), math.max(hi, w.ms)
    end
    assert.is_true(hi <= 100 and lo >= 0, "a wait outside [0, ceiling]")
    assert.is_true(hi - lo > 1, "nine waits within 1 ms of each other: not jittered")
  end)

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
    -- a barrier, not a stopwatch: the server answers either only once both are
    -- in flight; one after the other, the first would get a 504 (not retried:
    -- max_attempts = 1)
    srv:queue{ { barrier = 2, content = "A" }, { barrier = 2, content = "B" } }
    local l = client("ollama", { timeout = 2 * H.HANG_GUARD, max_attempts = 1 })
    local got = {}
    for i = 1, 2 do
      loop.spawn(function()
        local r, msg = l:chat{ messages = ask(tostring(i)) }
        got[i] = r and r.text or msg
      end)
    end
    loop.run()
    table.sort(got)
    assert.are.same({ "A", "B" }, got)
  end)

  it("streams in a coroutine while another coroutine runs", function()
    srv:queue{ content = "a b c d e f", token_delay = 0.1 }
    local l = client("openai")
    local ticks, at = 0, {}   -- at[i]: the other coroutine's ticks when token i came
    local done = false
    loop.spawn(function()
      assert(l:chat{ messages = ask(), on_token = function() at[#at + 1] = ticks end })
      done = true
    end)
    loop.spawn(function()
      while not done do ticks = ticks + 1; loop.sleep(20) end
    end)
    loop.run()
    assert.is_true(#at >= 3)
    -- the other coroutine ran between the first token and the last (0.5 s of the server's pauses)
    assert.is_true(at[#at] > at[1], "ticks at the tokens: " .. table.concat(at, " "))
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
    -- the rest of the stream would outlast the hang guard
    srv:queue{ content = ("word "):rep(H.OUTLASTS_GUARD), token_delay = 1 }
    local t0 = H.clock()
    local ok, err = pcall(function()
      client("ollama"):chat{ messages = ask(), on_token = function() error("stop here") end }
    end)
    H.hang_guard(t0, "a call whose on_token raised")
    assert.is_false(ok)
    assert.matches("stop here", err)
  end)
end)
