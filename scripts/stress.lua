-- stress.lua — ten independent small tasks, run four at a time.
-- Run it in an empty directory:  obra run path/to/stress.lua

project "stress" { description = "ten independent tasks" }

config {
  agent = { kind = "claude", max_turns = 5, skip_permissions = true },
  llm = { provider = "ollama", model = "qwen2.5-coder:7b" },
  max_parallel = 4,
  max_iterations = 3,
}

for i = 1, 10 do
  task("t" .. i) {
    title = "file t" .. i .. ".txt",
    prompt = string.format("Create the file t%d.txt containing exactly the line %d.", i, i * i),
    priority = 10 - i,
    checks = { string.format("grep -qx %d t%d.txt", i * i, i) },
  }
end
