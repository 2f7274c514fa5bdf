-- obra.score — the confidence math (src/score.c) as a Lua module.
--
--   score.compute(signals [, weights]) -> scores   (docs/scoring.md)
--   score.DEFAULT_WEIGHTS                          a fresh copy of the defaults
--   score.PARAMS                                   { {name=, default=, doc=}, ... }
--   score.explain(scores) -> multi-line text       the contributions, for humans
--
-- Misuse raises (signals not a table, an unknown or out-of-range weight);
-- signals themselves are never an error: missing ones renormalise the weights.
local core = require "obra.core"

local score = {}

score.PARAMS = core.score_params()

local defaults = {}
for _, p in ipairs(score.PARAMS) do defaults[p.name] = p.default end
score.DEFAULT_WEIGHTS = defaults

-- A plain copy of the defaults, for callers that want to change one.
function score.defaults()
  local t = {}
  for k, v in pairs(defaults) do t[k] = v end
  return t
end

function score.compute(signals, weights)
  if type(signals) ~= "table" then
    error("score.compute: signals must be a table, got " .. type(signals), 2)
  end
  return core.score_compute(signals, weights)
end

local function fmt(x) return string.format("%.3f", x) end

-- The explanation of a scores table, one line per contribution.
function score.explain(s)
  local out = {}
  local function section(name, total, terms)
    out[#out + 1] = string.format("%s %s", name, fmt(total))
    for _, t in ipairs(terms or {}) do
      if t.kind == "term" then
        out[#out + 1] = string.format("  %-10s %s x %s   %s", t.signal, fmt(t.value), fmt(t.weight), t.detail or "")
      elseif t.kind == "cap" then
        out[#out + 1] = string.format("  %-10s at most %s   %s", t.signal, fmt(t.value), t.detail or "")
      else
        out[#out + 1] = string.format("  %-10s x %s   %s", t.signal, fmt(t.value), t.detail or "")
      end
    end
  end
  if not s.valid then out[#out + 1] = "invalid: " .. tostring(s.invalid_reason) end
  local c = s.contributions or {}
  section("quality", s.quality, c.quality)
  section("confidence", s.confidence, c.confidence)
  local flags = {}
  for _, f in ipairs({ "degraded", "conflict", "regression" }) do
    if s[f] then flags[#flags + 1] = f end
  end
  if #flags > 0 then out[#out + 1] = "flags: " .. table.concat(flags, ", ") end
  return table.concat(out, "\n")
end

return score
