-- obra.cassette.diff — a unified-style line diff of two texts, for telling a
-- user how a request differs from the recorded one.
--
--   diff.unified(expected, actual, {from=, to=, context=3, max_lines=120}) -> text
--
-- Common leading and trailing lines are set aside first; the rest is an LCS
-- over lines, bounded (beyond MAX_CELLS the middle is shown as removed then
-- added).  The output is capped at max_lines lines, with a note of how many
-- were left out.
local M = {}

M.MAX_CELLS = 1000000

local function split(s)
  local out = {}
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = line end
  if s:sub(-1) == "\n" then out[#out] = nil end
  return out
end

-- The edit script between a[lo_a..hi_a] and b[lo_b..hi_b]: list of {op, line}.
local function lcs_ops(a, b, lo_a, hi_a, lo_b, hi_b)
  local n, m = hi_a - lo_a + 1, hi_b - lo_b + 1
  local ops = {}
  if n <= 0 or m <= 0 or n * m > M.MAX_CELLS then
    for i = lo_a, hi_a do ops[#ops + 1] = { "-", a[i] } end
    for j = lo_b, hi_b do ops[#ops + 1] = { "+", b[j] } end
    return ops
  end
  -- L[i][j]: LCS length of a[i..] and b[j..] (suffixes), rows as flat arrays
  local L = {}
  for i = n + 1, 1, -1 do
    local row = {}
    local below = L[i + 1]
    for j = m + 1, 1, -1 do
      if i > n or j > m then row[j] = 0
      elseif a[lo_a + i - 1] == b[lo_b + j - 1] then row[j] = below[j + 1] + 1
      else
        local x, y = below[j], row[j + 1]
        row[j] = x > y and x or y
      end
    end
    L[i] = row
  end
  local i, j = 1, 1
  while i <= n and j <= m do
    if a[lo_a + i - 1] == b[lo_b + j - 1] then
      ops[#ops + 1] = { " ", a[lo_a + i - 1] }; i = i + 1; j = j + 1
    elseif L[i + 1][j] >= L[i][j + 1] then
      ops[#ops + 1] = { "-", a[lo_a + i - 1] }; i = i + 1
    else
      ops[#ops + 1] = { "+", b[lo_b + j - 1] }; j = j + 1
    end
  end
  for k = i, n do ops[#ops + 1] = { "-", a[lo_a + k - 1] } end
  for k = j, m do ops[#ops + 1] = { "+", b[lo_b + k - 1] } end
  return ops
end

function M.unified(expected, actual, opts)
  opts = opts or {}
  local ctx_n = opts.context or 3
  local max_lines = opts.max_lines or 120
  local a, b = split(expected or ""), split(actual or "")
  local pre = 0
  while pre < #a and pre < #b and a[pre + 1] == b[pre + 1] do pre = pre + 1 end
  local suf = 0
  while suf < #a - pre and suf < #b - pre and a[#a - suf] == b[#b - suf] do suf = suf + 1 end
  local ops = {}
  for i = 1, pre do ops[#ops + 1] = { " ", a[i], i, i } end
  local ia, ib = pre, pre
  for _, op in ipairs(lcs_ops(a, b, pre + 1, #a - suf, pre + 1, #b - suf)) do
    if op[1] ~= "+" then ia = ia + 1 end
    if op[1] ~= "-" then ib = ib + 1 end
    ops[#ops + 1] = { op[1], op[2], ia, ib }
  end
  for k = suf - 1, 0, -1 do
    ia, ib = ia + 1, ib + 1
    ops[#ops + 1] = { " ", a[#a - k], ia, ib }
  end
  -- hunks: changed ops with ctx_n lines of context around them
  local keep = {}
  for k, op in ipairs(ops) do
    if op[1] ~= " " then
      for x = math.max(1, k - ctx_n), math.min(#ops, k + ctx_n) do keep[x] = true end
    end
  end
  local out = { "--- " .. (opts.from or "expected"), "+++ " .. (opts.to or "actual") }
  local k = 1
  while k <= #ops do
    if keep[k] then
      local first = k
      while k <= #ops and keep[k] do k = k + 1 end
      local na, nb, sa, sb = 0, 0, nil, nil
      for x = first, k - 1 do
        local op = ops[x]
        if op[1] ~= "+" then na = na + 1; sa = sa or op[3] end
        if op[1] ~= "-" then nb = nb + 1; sb = sb or op[4] end
      end
      -- an empty side starts after the line before the hunk
      sa = sa or ((ops[first][3] or 0) + (ops[first][1] == "+" and 1 or 0))
      sb = sb or ((ops[first][4] or 0) + (ops[first][1] == "-" and 1 or 0))
      out[#out + 1] = string.format("@@ -%d,%d +%d,%d @@", na > 0 and sa or sa - 1, na, nb > 0 and sb or sb - 1, nb)
      for x = first, k - 1 do out[#out + 1] = ops[x][1] .. ops[x][2] end
    else
      k = k + 1
    end
  end
  if #out == 2 then out[#out + 1] = "(no difference in the compared text)" end
  if #out > max_lines then
    local n = #out - max_lines
    for x = #out, max_lines + 1, -1 do out[x] = nil end
    out[#out + 1] = string.format("… %d more line(s) of the diff not shown", n)
  end
  return table.concat(out, "\n")
end

return M
