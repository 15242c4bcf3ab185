-- :AiChat: a scratch split that streams aicockpit/chat partial results and
-- lists the answer's sources as lines that <CR> (or gf) opens.
local M = {}

local api = vim.api
local counter = 0

local function chat_buffer()
  for _, buf in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_valid(buf) and vim.b[buf].aicockpit_chat then
      local win = vim.fn.bufwinid(buf)
      if win == -1 then
        vim.cmd((require("aicockpit").config.chat_split or "vsplit"))
        api.nvim_win_set_buf(0, buf)
      else
        api.nvim_set_current_win(win)
      end
      return buf
    end
  end
  vim.cmd((require("aicockpit").config.chat_split or "vsplit"))
  local buf = api.nvim_create_buf(false, true)
  api.nvim_win_set_buf(0, buf)
  vim.b[buf].aicockpit_chat = true
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = "markdown"
  pcall(api.nvim_buf_set_name, buf, "aicockpit://chat")
  vim.wo.wrap = true
  vim.keymap.set("n", "<CR>", M.open_source, { buffer = buf, desc = "AiCockpit: open the source under the cursor" })
  return buf
end

--- Open the file a "source:" line names.
function M.open_source()
  local line = api.nvim_get_current_line()
  local path = line:match("^%s*source: (.+)$")
  if not path then
    return
  end
  local win = vim.fn.win_getid(vim.fn.winnr("#"))
  if win ~= 0 and win ~= api.nvim_get_current_win() then
    api.nvim_set_current_win(win)
  end
  vim.cmd.edit(vim.fn.fnameescape(path))
end

local function append(buf, text)
  local last = api.nvim_buf_line_count(buf)
  local tail = api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ""
  local pieces = vim.split(text, "\n", { plain = true })
  pieces[1] = tail .. pieces[1]
  api.nvim_buf_set_lines(buf, last - 1, last, false, pieces)
  local win = vim.fn.bufwinid(buf)
  if win ~= -1 then
    api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(buf), 0 })
  end
end

--- Ask QUESTION (prompted for when empty) about the current buffer and lines.
function M.ask(question, lines, on_done)
  local ai = require("aicockpit")
  local source_buf = api.nvim_get_current_buf()
  local client = ai.client(source_buf)
  if not client then
    vim.notify("AiCockpit: the language server is not running (see :checkhealth aicockpit)", vim.log.levels.WARN)
    return
  end
  if not question or question == "" then
    question = vim.fn.input("AiChat> ")
    if question == "" then
      return
    end
  end
  local params = { messages = { { role = "user", content = question } } }
  if vim.bo[source_buf].buftype == "" and api.nvim_buf_get_name(source_buf) ~= "" then
    params.uri = vim.uri_from_bufnr(source_buf)
    local row = api.nvim_win_get_cursor(0)[1] - 1
    local first, last = row, row
    if lines then
      first, last = lines[1] - 1, lines[2] - 1
    end
    local last_text = api.nvim_buf_get_lines(source_buf, last, last + 1, false)[1] or ""
    params.range = { start = { line = first, character = 0 }, ["end"] = { line = last, character = lines and #last_text or 0 } }
  end
  counter = counter + 1
  local token = ("aicockpit-chat-%d-%d"):format(vim.fn.getpid(), counter)
  params.partialResultToken = token
  local buf = chat_buffer()
  append(buf, (api.nvim_buf_line_count(buf) > 1 and "\n\n" or "") .. "## " .. question .. "\n\n")
  local streamed = false
  ai.register_chat_stream(token, function(delta)
    streamed = true
    append(buf, delta)
  end)
  ai.request(client, "aicockpit/chat", params, function(err, result)
    ai.unregister_chat_stream(token)
    if err then
      append(buf, "\n[error] " .. err.message .. "\n")
      if on_done then
        on_done(nil, err)
      end
      return
    end
    if not streamed and result and result.content then
      append(buf, result.content)
    end
    local root = nil
    local status = ai.request_sync(client, "aicockpit/status", vim.NIL, 2000)
    if status and status.result then
      root = status.result.root
    end
    local lines_out = { "", "" }
    for _, source in ipairs((result and result.sources) or {}) do
      local path = source
      if root and root ~= vim.NIL and not vim.startswith(source, "/") then
        path = root .. "/" .. source
      end
      table.insert(lines_out, "source: " .. path)
    end
    append(buf, table.concat(lines_out, "\n"))
    if on_done then
      on_done(result)
    end
  end, source_buf)
end

return M
