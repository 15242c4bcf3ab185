-- :checkhealth aicockpit: the server is found and answers with its version,
-- the index state, and whether the AI service answers.
local M = {}

function M.check()
  local health = vim.health
  local ai = require("aicockpit")
  health.start("aicockpit")
  if vim.fn.has("nvim-0.10") == 0 then
    health.error("Neovim 0.10 or newer is needed")
  else
    health.ok(("Neovim %s"):format(tostring(vim.version())))
  end
  local path, reason = ai.server_path()
  if not path then
    health.error(reason)
    return
  end
  local out = vim.fn.system({ path, "--version" })
  if vim.v.shell_error ~= 0 then
    health.error(("%s --version failed: %s"):format(path, out))
    return
  end
  health.ok(("server found: %s (%s)"):format(path, vim.trim(out)))

  local client = ai.client(vim.api.nvim_get_current_buf())
  if not client then
    health.warn("the server is not running in this buffer: open a supported file (after require('aicockpit').setup{})")
    return
  end
  local response = ai.request_sync(client, "aicockpit/status", vim.NIL, 5000)
  if not response or response.err or not response.result then
    health.error("aicockpit/status did not answer: " .. vim.inspect(response and response.err))
    return
  end
  local status = response.result
  if status.root == nil or status.root == vim.NIL then
    health.warn("no project is served yet: open a file of the project")
  elseif status.indexing then
    health.ok(("index: building for %s (%d files so far)"):format(status.root, status.files or 0))
  else
    health.ok(("index: %s, %d files, %d symbols"):format(status.root, status.files or 0, status.symbols or 0))
  end
  if status.lastError and status.lastError ~= vim.NIL then
    health.warn("last server error: " .. status.lastError)
  end
  local stats = status.ai or {}
  if not stats.service or stats.service == vim.NIL then
    health.warn("no AI service is configured: add one with `aicockpit ai add` (ghost text and chat need one)")
    return
  end
  local advice = { ("run `aicockpit ai test %s`"):format(stats.service), "services are configured in the file `aicockpit config path` names" }
  if ai.state.ai == "failing" and stats.lastError and stats.lastError ~= vim.NIL then
    health.error(("AI service %s is failing: %s"):format(stats.service, stats.lastError), advice)
    return
  end
  -- Reachability: the CLI next to the server (or on PATH) asks the service.
  local cli = vim.fs.joinpath(vim.fs.dirname(path), "aicockpit")
  if vim.fn.executable(cli) ~= 1 then
    cli = vim.fn.exepath("aicockpit")
  end
  if cli == "" then
    health.ok(("AI service %s: %d requests, %d failures (the aicockpit CLI is not found, so it was not asked)")
      :format(stats.service, stats.requests or 0, stats.failures or 0))
    return
  end
  local result = vim.system({ cli, "ai", "test", stats.service }, { text = true }):wait(30000)
  local output = vim.trim((result.stdout or "") .. "\n" .. (result.stderr or ""))
  if result.code == 0 then
    health.ok(("AI service %s answers (`aicockpit ai test %s`)"):format(stats.service, stats.service))
  else
    health.error(("AI service %s does not answer: %s"):format(stats.service, output), advice)
  end
end

return M
