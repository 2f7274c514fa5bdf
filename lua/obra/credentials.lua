-- obra.credentials — the judge's credentials stay the judge's.  The agent is
-- started with obra's environment minus the variables the judge reads its
-- API key from, unless the workflow lets it have them:
--
--   config { agent = { env = { OPENAI_API_KEY = true } } }   -- inherit this one
--
-- (a string sets the variable, false removes it, true keeps obra's value).
-- Claude's own ANTHROPIC_API_KEY is never removed.
--
--   credentials.judge_vars(config) -> { "OPENAI_API_KEY", ... }  the environment variables a
--                                     judge of config reads its key from (sorted, no duplicates)
--   credentials.agent_config(config, agent_cfg) -> agent_cfg with env = { VAR = false, ... }
--                                     for each judge variable the workflow did not mention
--                                     (a new table; agent_cfg is not changed)
local M = {}

-- A provider's default key variable, read when its config has no api_key (src/llm.c).
M.PROVIDER_KEY = { openai = "OPENAI_API_KEY" }
-- Never removed, whatever a judge reads: the agent's own credentials.
M.AGENT_OWN = { ANTHROPIC_API_KEY = true }

function M.judge_vars(config)
  config = config or {}
  local llms = {}
  if type(config.llm) == "table" then llms[#llms + 1] = config.llm end
  local panel = config.judge and config.judge.panel
  if type(config.llm) ~= "boolean" and type(panel) == "table" then
    local base = type(config.llm) == "table" and config.llm or {}
    for _, c in ipairs(panel) do
      if type(c) == "table" then
        llms[#llms + 1] = { provider = c.provider or base.provider,
                            api_key = c.api_key ~= nil and c.api_key or base.api_key }
      end
    end
  end
  local seen, out = {}, {}
  for _, c in ipairs(llms) do
    local var = c.api_key == nil and M.PROVIDER_KEY[c.provider or "ollama"] or nil
    if var and not seen[var] and not M.AGENT_OWN[var] then seen[var] = true; out[#out + 1] = var end
  end
  table.sort(out)
  return out
end

function M.agent_config(config, agent_cfg)
  local vars = M.judge_vars(config)
  local cfg = {}
  for k, v in pairs(agent_cfg or {}) do cfg[k] = v end
  if #vars == 0 then return cfg end
  local env = {}
  for k, v in pairs(type(cfg.env) == "table" and cfg.env or {}) do env[k] = v end
  for _, var in ipairs(vars) do
    if env[var] == nil then env[var] = false end
  end
  cfg.env = env
  return cfg
end

return M
