-- obra.agent.command: any CLI from an argv template ({prompt}, {session},
-- {workdir} substituted per argument, no shell); stdout is the text, the
-- exit status the outcome.
local H = require "support.helper"
local obra = require "obra"
local loop = require "obra.loop"
local cjson = require "cjson"
local lfs = require "lfs"


describe("obra.agent.command", function()
  local dir
  before_each(function()
    dir = H.tmpdir("cmdagent")
    H.writefile(dir .. "/args.lua", "io.write(require('cjson').encode({ args = {...}, stdin = io.read('a') }))")
  end)
  after_each(function() H.rmdir(dir) end)

  it("substitutes the placeholders inside each argument, verbatim, without a shell", function()
    local a = obra.agent.command{ argv = { "lua5.4", dir .. "/args.lua", "{prompt}", "--session={session}",
                                           "--dir", "{workdir}", "{prompt}{prompt}" } }
    local prompt = "it's \"quoted\" $(touch pwned) `x` ; | & \n second line {session}"
    local sid = obra.core.uuid()
    local r = a:run{ prompt = prompt, session = sid, cwd = dir }
    assert.are.equal("ok", r.class, table.concat(r.errors, "; ") .. r.stderr_tail)
    local got = cjson.decode(r.text)
    assert.are.same({ prompt, "--session=" .. sid, "--dir", dir, prompt .. prompt }, got.args)
    assert.are.equal("", got.stdin)
    assert.are.equal(sid, r.session_id)
    assert.is_nil(io.open(dir .. "/pwned"))
    -- resume fills {session} too
    r = a:run{ prompt = "x", resume = "thread-7", cwd = dir }
    assert.are.equal("--session=thread-7", cjson.decode(r.text).args[2])
    assert.are.equal("thread-7", r.session_id)
  end)

  it("gives the prompt on stdin when no argument mentions {prompt}", function()
    local a = obra.agent.command{ argv = { "lua5.4", dir .. "/args.lua" } }
    local r = a:run{ prompt = "from stdin\nwith two lines", cwd = dir }
    assert.are.equal("ok", r.class)
    assert.are.equal("from stdin\nwith two lines", cjson.decode(r.text).stdin)
    assert.is_nil(r.session_id)
  end)

  it("maps the exit status and the watchdogs to classes", function()
    local sh = function(script, opts)
      -- LD_PRELOAD=false: no libasan in the child under the sanitizers (it catches SEGV)
      local o = { argv = { "sh", "-c", script, "sh", "{prompt}" }, timeout = 10, kill_grace = 0.5,
                  env = { LD_PRELOAD = false } }
      for k, v in pairs(opts or {}) do o[k] = v end
      return obra.agent.command(o)
    end
    local r = sh("echo \"answer to $1\""):run{ prompt = "q" }
    assert.are.equal("ok", r.class)
    assert.are.equal("answer to q\n", r.text)
    r = sh("echo partial; echo oops >&2; exit 4"):run{ prompt = "q" }
    assert.are.equal("crashed", r.class)
    assert.are.equal(4, r.exit)
    assert.are.equal("partial\n", r.text)
    assert.are.equal("oops\n", r.stderr_tail)
    r = sh("sleep 30"):run{ prompt = "q", timeout = 0.5 }
    assert.are.equal("timeout", r.class)
    r = sh("echo start; sleep 30", { idle_timeout = 0.5 }):run{ prompt = "q" }
    assert.are.equal("idle_timeout", r.class)
    assert.are.equal("start\n", r.text)
    r = sh("kill -SEGV $$"):run{ prompt = "q" }
    assert.are.equal("crashed", r.class)
    assert.are.equal(11, r.signal)
    r = sh("kill -TERM $$"):run{ prompt = "q" }
    assert.are.equal("killed", r.class)
    r = obra.agent.command{ argv = { "/nonexistent/tool", "{prompt}" } }:run{ prompt = "q" }
    assert.are.equal("crashed", r.class)
    assert.matches("nonexistent", r.errors[1])
  end)

  it("runs four at once from coroutines", function()
    -- a barrier, not a stopwatch: each command marks its start and waits (at
    -- most 30 s) until all four have; run one after another, the first would
    -- see only itself
    local dir = os.tmpname()
    os.remove(dir)
    assert(lfs.mkdir(dir))
    local a = obra.agent.command{ argv = { "sh", "-c",
      'touch "$2/$1"; i=0; while [ "$(ls "$2" | wc -l)" -lt 4 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; '
        .. 'echo "$1 $(ls "$2" | wc -l)"', "sh", "{prompt}", dir } }
    local out = {}
    for i = 1, 4 do loop.spawn(function() out[i] = a:run{ prompt = "n" .. i } end) end
    loop.run()
    for i = 1, 4 do
      assert.are.equal("n" .. i .. " 4\n", out[i].text)
      os.remove(dir .. "/n" .. i)
    end
    lfs.rmdir(dir)
  end)

  it("needs an argv template", function()
    assert.has_error(function() obra.agent.command{} end)
    assert.has_error(function() obra.agent.command{ argv = {} } end)
    assert.has_error(function() obra.agent.command{ argv = { "x", {} } } end)
  end)
end)
