-- obra.store.interactions — every agent, judge, check and human call, and
-- the texts table that stores a long text once (content-addressed by its
-- SHA-256, the first 32 hex digits: the judge's system prompt is the same at
-- every iteration), packed when that makes it smaller (schema 10: `packed`
-- holds core.pack's bytes and `body` is ''; the one place that unpacks is
-- here).
-- Methods on the store:
--
--   s:put_text(body)              -> id, hash of the texts row holding body (inserted when new)
--   s:text(id)                    -> body | nil
--   s:text_by_hash(hash)          -> body | nil
--   s:add_interaction(row)        -> id.  row: {run_id, task_id, session_id, iteration,
--                                    kind = 'agent'|'llm'|'check'|'human', name, prompt,
--                                    prompt_text (stored in texts), messages ({role, content}
--                                    list, each content in texts), response, truncated,
--                                    tokens_in, tokens_out, cache_read, cache_write, cost_usd,
--                                    duration_ms, started_at (Unix seconds: when the call began),
--                                    outcome, error, trace (an agent call's tool trace: a table,
--                                    stored as JSON)}
--   s:add_human_interaction(task_id, iteration, name, text, outcome)   started_at: now (the answer)
--   s:interactions{task_id=?, limit=, session=?} -> rows, oldest first, each with
--                                    .task (key), .session (uuid) and .prompt resolved, .trace decoded
--                                    (an LLM call's prompt is its messages as JSON)
--   s:agent_calls(task_id)        -> the agent interactions (usage columns), by id; reported =
--                                    the agent's final message, its first 200 characters
--                                    (reported_cut = 1 when there was more)
--   s:last_agent_response(task_id) -> text | nil
--   s:project_session_count(project_id) -> agent sessions of the project's tasks
local core = require "obra.core"

-- The hashes of recent texts up to 8 KiB (the judge's system prompt comes
-- back at every iteration): a look-up instead of hashing it again.
local MEMO_BYTES, MEMO_SIZE = 8192, 16
local memo, memo_n = {}, 0

local function text_hash(body)
  local small = #body <= MEMO_BYTES
  local h = small and memo[body]
  if h then return h end
  -- 128 bits name a text well enough, at half the bytes in the row and its index
  -- (rows written before keep their 64 digits: such a text is stored once more)
  h = core.sha256(body):sub(1, 32)
  if small then
    if memo_n >= MEMO_SIZE then memo, memo_n = {}, 0 end
    memo[body], memo_n = h, memo_n + 1
  end
  return h
end

return function(methods, Q)
  function methods:put_text(body)
    local hash = text_hash(body)
    local r = self:first(Q.text_id, hash)
    if r then return r.id, hash end
    local packed = core.pack(body)
    local _, id = self:exec(Q.text_insert, hash, packed and "" or body, packed)
    return id, hash
  end

  local Damaged = { __tostring = function(e) return "obra.store: " .. e.message end }
  local function DAMAGED(message) return setmetatable({ io = true, message = message }, Damaged) end

  -- A texts row's text: its body, or its packed bytes unpacked.
  local function body_of(r)
    if r == nil then return nil end
    if r.packed == nil then return r.body end
    local text, err = core.unpack(r.packed)
    -- a damaged database, not a bug: an io error (store.io_error: exit 74 with one line)
    if text == nil then error(DAMAGED("text " .. tostring(r.id) .. " cannot be read: " .. err), 0) end
    return text
  end

  function methods:text(id) return body_of(self:first(Q.text_body, id)) end
  function methods:text_by_hash(hash) return body_of(self:first(Q.text_by_hash, hash)) end

  local COLUMNS = { "run_id", "task_id", "session_id", "iteration", "kind", "name", "prompt", "response",
                    "outcome", "error", "trace", "started_at" }
  local ZERO = { "truncated", "tokens_in", "tokens_out", "cache_read", "cache_write", "cost_usd", "duration_ms" }

  function methods:add_interaction(r)
    local row = {}
    for _, k in ipairs(COLUMNS) do row[k] = r[k] end
    for _, k in ipairs(ZERO) do row[k] = r[k] or 0 end
    if type(row.trace) == "table" then row.trace = core.json_encode(row.trace) end
    if r.truncated == true then row.truncated = 1 elseif r.truncated == false then row.truncated = 0 end
    if r.prompt_text ~= nil then row.prompt_id = self:put_text(r.prompt_text) end
    if r.messages ~= nil then
      local refs = {}
      -- (put_text's id only: its second result, the hash, would follow it into the row)
      for i, m in ipairs(r.messages) do refs[i] = { m.role, (self:put_text(tostring(m.content or ""))) } end
      row.messages = core.json_array(refs)
    end
    local _, id = self:exec(Q.interaction_insert, row)
    return id
  end

  function methods:add_human_interaction(task_id, iteration, name, text, outcome)
    self:exec(Q.human_insert, task_id, iteration, name, text, outcome, core.now())
  end

  -- The prompt of a stored row: inline (before schema 6, checks, humans),
  -- in texts, or an LLM call's messages rebuilt as the JSON it was sent as.
  local function resolve(self, r, cache)
    local function body(id)
      local b = cache[id]
      if b == nil then b = self:text(id) or ""; cache[id] = b end
      return b
    end
    if r.prompt == nil and r.prompt_id then r.prompt = body(r.prompt_id) end
    if r.prompt == nil and r.messages then
      local ok, refs = pcall(core.json_decode, r.messages)
      if ok and type(refs) == "table" then
        -- the JSON the judge's messages were stored as before schema 6: role, then content
        local parts = {}
        for i, ref in ipairs(refs) do
          parts[i] = '{"role":' .. core.json_encode(tostring(ref[1])) .. ',"content":' .. core.json_encode(body(ref[2])) .. "}"
        end
        r.prompt = "[" .. table.concat(parts, ",") .. "]"
      end
    end
    r.prompt_id, r.messages = nil, nil
    if type(r.trace) == "string" then            -- an agent call's tool trace (JSON)
      local ok, t = pcall(core.json_decode, r.trace)
      r.trace = ok and t or nil
    end
    return r
  end

  function methods:interactions(o)
    o = o or {}
    local rows
    if o.task_id then rows = self:query(Q.interactions_log_task, o.task_id, o.limit or 200)
    else rows = self:query(Q.interactions_log, o.limit or 200) end
    local out, cache = {}, {}
    for i = #rows, 1, -1 do out[#out + 1] = resolve(self, rows[i], cache) end
    if o.session == false then for _, r in ipairs(out) do r.session = nil end end
    return out
  end

  function methods:agent_calls(task_id)
    local rows = self:query(Q.agent_calls, task_id)
    for _, r in ipairs(rows) do
      if type(r.trace) == "string" then
        local ok, t = pcall(core.json_decode, r.trace)
        r.trace = ok and t or nil
      end
      if r.reported_cut == 1 and r.reported then r.reported = r.reported .. "…" end
      r.reported_cut = nil
    end
    return rows
  end

  function methods:last_agent_response(task_id)
    local r = self:first(Q.last_agent_response, task_id)
    return r and r.response
  end

  function methods:project_session_count(project_id) return self:first(Q.sessions_used_by_project, project_id).n end
end
