-- aicockpit.nvim: the Neovim client of aicockpit-lsp.
-- require("aicockpit").setup{} starts the server for the supported file
-- types (vim.lsp.config/vim.lsp.enable on Neovim 0.11+, vim.lsp.start on
-- 0.10) and wires ghost text, chat, search, code actions, service switching
-- and status. See :help aicockpit.
local M = {}

local NAME = "aicockpit"

M.defaults = {
  -- Path of aicockpit-lsp; nil: found on PATH.
  server_path = nil,
  -- Extra arguments for aicockpit-lsp (e.g. { "--root", "/some/dir" }).
  server_args = {},
  filetypes = {
    "rust", "python", "javascript", "javascriptreact", "typescript",
    "typescriptreact", "go", "java", "c", "cpp",
  },
  -- The nearest folder with one of these is the root; with none, the server
  -- picks the file's project itself and says so.
  root_markers = { ".git", "Cargo.toml", "pyproject.toml", "setup.py", "package.json", "go.mod" },
  -- Sent as initializationOptions and again on :AiService (never keys).
  settings = vim.empty_dict(),
  ghost_text = {
    enabled = true,
    -- nil: Neovim's vim.lsp.inline_completion where present (0.12+), ours otherwise.
    native = nil,
    -- Our implementation asks after this many ms without typing.
    debounce_ms = 150,
    keymaps = {
      accept = "<Tab>",
      accept_word = "<C-Right>",
      next = "<M-]>",
      dismiss = "<C-]>",
    },
  },
  -- Where :AiChat opens: "vsplit" or "split".
  chat_split = "vsplit",
  -- How the client starts: "auto" (vim.lsp.config/enable on 0.11+,
  -- vim.lsp.start before), or "start" to use vim.lsp.start everywhere.
  start = "auto",
}

M.config = vim.deepcopy(M.defaults)

-- What the statusline shows: index progress and the AI state.
M.state = { index = nil, ai = nil, service = nil, message = nil }

local has_011 = vim.fn.has("nvim-0.11") == 1

local function notify(message, level)
  vim.notify("AiCockpit: " .. message, level or vim.log.levels.INFO)
end

--- The server program: the option, else aicockpit-lsp on PATH; nil and a reason otherwise.
function M.server_path()
  local path = M.config.server_path
  if path and path ~= "" then
    path = vim.fn.expand(path)
    if vim.fn.executable(path) == 1 then
      return path
    end
    return nil, ("server_path %q is not an executable file"):format(path)
  end
  local found = vim.fn.exepath("aicockpit-lsp")
  if found ~= "" then
    return found
  end
  return nil,
    "aicockpit-lsp is not on PATH: install it with `cargo install --path .` in the AiCockpit repository, "
      .. "or set require('aicockpit').setup{ server_path = '/path/to/aicockpit-lsp' }"
end

--- The running aicockpit client for a buffer (or any).
function M.client(bufnr)
  local clients = vim.lsp.get_clients({ name = NAME, bufnr = bufnr })
  if #clients == 0 and bufnr then
    clients = vim.lsp.get_clients({ name = NAME })
  end
  return clients[1]
end

--- client:request on 0.11+, client.request before.
function M.request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.notify_server(client, method, params)
  if has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.request_sync(client, method, params, timeout_ms, bufnr)
  if has_011 then
    return client:request_sync(method, params, timeout_ms, bufnr)
  end
  return client.request_sync(method, params, timeout_ms, bufnr)
end

local function with_client(fn)
  local client = M.client(vim.api.nvim_get_current_buf())
  if not client then
    notify("the language server is not running in this buffer (see :checkhealth aicockpit)", vim.log.levels.WARN)
    return
  end
  return fn(client)
end

-- ---- handlers -----------------------------------------------------------

local chat_streams = {}

local function on_progress(err, result, ctx, config)
  local stream = result and chat_streams[result.token]
  if stream then
    if type(result.value) == "table" and result.value.delta then
      stream(result.value.delta)
    end
    return
  end
  if result and result.token == "aicockpit/index" and type(result.value) == "table" then
    local value = result.value
    M.state.index = value.kind ~= "end" and (value.percentage or 0) or nil
    vim.cmd("redrawstatus")
  end
  return vim.lsp.handlers["$/progress"](err, result, ctx, config)
end

local function on_status(_, result)
  if type(result) == "table" then
    M.state.ai = result.state
    M.state.service = result.service
    M.state.message = result.message
    vim.cmd("redrawstatus")
  end
end

function M.register_chat_stream(token, fn)
  chat_streams[token] = fn
end

function M.unregister_chat_stream(token)
  chat_streams[token] = nil
end

-- ---- setup --------------------------------------------------------------

local function client_config(cmd)
  local settings = M.config.settings
  return {
    name = NAME,
    cmd = cmd,
    filetypes = M.config.filetypes,
    root_markers = M.config.root_markers,
    init_options = settings,
    settings = settings,
    handlers = {
      ["$/progress"] = on_progress,
      ["aicockpit/didChangeStatus"] = on_status,
    },
    on_attach = function(client, bufnr)
      require("aicockpit.ghost").attach(client, bufnr)
    end,
  }
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  local path, reason = M.server_path()
  if not path then
    notify(reason, vim.log.levels.ERROR)
    return false
  end
  local cmd = { path }
  vim.list_extend(cmd, M.config.server_args)
  local config = client_config(cmd)
  require("aicockpit.ghost").setup(M.config.ghost_text)
  if has_011 and M.config.start ~= "start" then
    vim.lsp.config(NAME, config)
    vim.lsp.enable(NAME)
  else
    local group = vim.api.nvim_create_augroup("aicockpit_start", { clear = true })
    vim.api.nvim_create_autocmd("FileType", {
      group = group,
      pattern = M.config.filetypes,
      callback = function(args)
        if vim.bo[args.buf].buftype ~= "" then
          return
        end
        local start = vim.deepcopy(config)
        start.root_dir = vim.fs.root(args.buf, M.config.root_markers)
        start.root_markers = nil
        start.filetypes = nil
        vim.lsp.start(start, { bufnr = args.buf })
      end,
    })
  end
  return true
end

-- ---- commands -----------------------------------------------------------

--- :AiSearch QUERY: aicockpit/search into the quickfix list.
function M.search(query, on_done)
  with_client(function(client)
    M.request(client, "aicockpit/search", { query = query }, function(err, hits)
      if err then
        notify("search failed: " .. err.message, vim.log.levels.ERROR)
        return
      end
      local items = {}
      for _, hit in ipairs(hits or {}) do
        local text = hit.symbol and (hit.symbol.kindName .. " " .. hit.symbol.name .. "  " .. hit.symbol.signature)
          or vim.split(hit.snippet or "", "\n")[1]
        table.insert(items, {
          filename = vim.uri_to_fname(hit.uri),
          lnum = hit.range.start.line + 1,
          col = hit.range.start.character + 1,
          text = text,
        })
      end
      vim.fn.setqflist({}, " ", { title = "AiSearch: " .. query, items = items })
      if #items == 0 then
        notify("nothing found for " .. query, vim.log.levels.WARN)
      else
        vim.cmd("copen")
      end
      if on_done then
        on_done(items)
      end
    end, vim.api.nvim_get_current_buf())
  end)
end

--- :AiChat [QUESTION]: a split buffer with the streamed answer and jumpable sources.
function M.chat(question, lines, on_done)
  require("aicockpit.chat").ask(question, lines, on_done)
end

local ACTION_TITLES = {
  explain = "explain",
  refactor = "refactor",
  document = "documentation",
  fix = "fix",
}

--- :AiExplain / :AiRefactor / :AiDocument / :AiFix on lines line1..line2.
function M.action(name, line1, line2)
  local wanted = ACTION_TITLES[name]
  local last = vim.api.nvim_buf_get_lines(0, line2 - 1, line2, false)[1] or ""
  vim.lsp.buf.code_action({
    range = { start = { line1, 0 }, ["end"] = { line2, #last } },
    apply = true,
    filter = function(action)
      local title = (action.title or ""):lower()
      return title:find("aicockpit", 1, true) ~= nil and title:find(wanted, 1, true) ~= nil
    end,
  })
end

--- :AiService [NAME]: switch the active service (picked from aicockpit/status).
function M.pick_service(name)
  with_client(function(client)
    local function switch(service)
      if not service then
        return
      end
      local settings = vim.tbl_deep_extend("force", client.settings or {}, { ai = { active = service } })
      client.settings = settings
      M.notify_server(client, "workspace/didChangeConfiguration", { settings = { ai = { active = service } } })
      M.state.service = service
      notify("active AI service: " .. service)
    end
    if name then
      return switch(name)
    end
    M.request(client, "aicockpit/status", vim.NIL, function(err, status)
      if err or not status then
        notify("status failed: " .. (err and err.message or "no answer"), vim.log.levels.ERROR)
        return
      end
      local services = status.services or {}
      if #services == 0 then
        notify("no AI services are configured: add one with `aicockpit ai add`", vim.log.levels.WARN)
        return
      end
      vim.ui.select(services, {
        prompt = "AI service",
        format_item = function(item)
          return item == (status.ai and status.ai.service) and (item .. " (active)") or item
        end,
      }, switch)
    end)
  end)
end

--- :AiCommand DESCRIPTION: a shell command, shown and put in the unnamed register (never run).
function M.suggest_command(description, on_done)
  with_client(function(client)
    M.request(client, "aicockpit/suggestCommand", { description = description, cwd = vim.fn.getcwd() }, function(err, result)
      if err then
        notify("suggestCommand failed: " .. err.message, vim.log.levels.ERROR)
        return
      end
      vim.fn.setreg('"', result.command)
      notify(result.command .. "\n" .. (result.explanation or "") .. "\n(yanked; paste with p or <C-r>\" in a terminal)")
      if on_done then
        on_done(result)
      end
    end)
  end)
end

--- The lines :AiStatus shows.
function M.status_lines(status)
  local lines = {
    ("aicockpit-lsp %s"):format(status.version or "?"),
    ("root: %s"):format(status.root or "(none yet: open a file)"),
    ("index: %s, %d files, %d symbols"):format(status.indexing and "indexing" or "ready", status.files or 0, status.symbols or 0),
  }
  local ai = status.ai or {}
  table.insert(lines, ("AI service: %s%s"):format(ai.service or "(none)", ai.model and (" (" .. ai.model .. ")") or ""))
  table.insert(lines, ("AI requests: %d, failures: %d"):format(ai.requests or 0, ai.failures or 0))
  if ai.lastError and ai.lastError ~= vim.NIL then
    table.insert(lines, "last AI error: " .. ai.lastError)
  end
  if status.lastError and status.lastError ~= vim.NIL then
    table.insert(lines, "last error: " .. status.lastError)
  end
  return lines
end

function M.show_status()
  with_client(function(client)
    M.request(client, "aicockpit/status", vim.NIL, function(err, status)
      if err then
        notify("status failed: " .. err.message, vim.log.levels.ERROR)
        return
      end
      notify(table.concat(M.status_lines(status), "\n"))
    end)
  end)
end

--- A statusline component: "AiCockpit 42%" while indexing, then the AI service and its state.
function M.statusline()
  if not M.client() then
    return ""
  end
  if M.state.index then
    return ("AiCockpit %d%%"):format(M.state.index)
  end
  local service = M.state.service or "AiCockpit"
  if M.state.ai == "failing" then
    return service .. " ✗"
  elseif M.state.ai == "working" then
    return service .. " …"
  end
  return service .. " ✓"
end

return M
