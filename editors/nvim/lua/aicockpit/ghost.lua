-- Ghost text from textDocument/inlineCompletion: Neovim 0.12's native
-- vim.lsp.inline_completion where present, otherwise our own extmarks. The
-- same keymaps (accept / accept word / next / dismiss) drive both.
local M = {}

local api = vim.api
local ns = api.nvim_create_namespace("aicockpit_ghost")

local opts = {}
-- Our implementation's state per buffer: { items, index, row, col, timer, client_id }.
local buffers = {}

function M.native()
  if opts.native ~= nil then
    return opts.native and vim.lsp.inline_completion ~= nil
  end
  return vim.lsp.inline_completion ~= nil
end

local function aicockpit()
  return require("aicockpit")
end

local function state(bufnr)
  buffers[bufnr] = buffers[bufnr] or { items = {}, index = 1 }
  return buffers[bufnr]
end

--- The text of the suggestion shown in a buffer (our implementation), or nil.
function M.current(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local s = buffers[bufnr]
  if not s or not s.items[s.index] then
    return nil
  end
  return s.items[s.index].insertText
end

--- Whether any ghost text is drawn in a buffer (either implementation).
function M.visible(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local marks = api.nvim_buf_get_extmarks(bufnr, -1, 0, -1, { details = true })
  for _, mark in ipairs(marks) do
    local details = mark[4] or {}
    if details.virt_text or details.virt_lines then
      return true
    end
  end
  return false
end

function M.clear(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
  local s = buffers[bufnr]
  if s then
    s.items = {}
    s.index = 1
  end
end

local function draw(bufnr)
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  local s = buffers[bufnr]
  local item = s and s.items[s.index]
  if not item then
    return
  end
  local lines = vim.split(item.insertText, "\n", { plain = true })
  local virt_lines = {}
  for i = 2, #lines do
    table.insert(virt_lines, { { lines[i], "Comment" } })
  end
  api.nvim_buf_set_extmark(bufnr, ns, s.row, s.col, {
    virt_text = { { lines[1], "Comment" } },
    virt_text_pos = "inline",
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = "combine",
  })
end

--- Ask for a suggestion at the cursor now (our implementation); `done(items)` when answered.
function M.request(done)
  local bufnr = api.nvim_get_current_buf()
  local client = aicockpit().client(bufnr)
  if not client then
    return
  end
  local cursor = api.nvim_win_get_cursor(0)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = 2 }
  aicockpit().request(client, "textDocument/inlineCompletion", params, function(err, result)
    local now = api.nvim_win_get_cursor(0)
    if err or not result or now[1] ~= cursor[1] or now[2] ~= cursor[2] then
      if done then
        done({})
      end
      return
    end
    local items = result.items or result
    local s = state(bufnr)
    s.items, s.index, s.client_id = items, 1, client.id
    -- Drawn where the item's range starts, else at the cursor (a pure insertion).
    local item = items[1]
    if item and item.range then
      s.row, s.col = item.range.start.line, item.range.start.character
    else
      s.row, s.col = cursor[1] - 1, cursor[2]
    end
    draw(bufnr)
    if done then
      done(items)
    end
  end, bufnr)
end

local function accept_text(bufnr, text, item, whole)
  local s = buffers[bufnr]
  local lines = vim.split(text, "\n", { plain = true })
  local row, col = s.row, s.col
  if item.range then
    local r = item.range
    api.nvim_buf_set_text(bufnr, r.start.line, r.start.character, r["end"].line, r["end"].character, lines)
  else
    api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  end
  local last_row = row + #lines - 1
  local last_col = (#lines == 1 and col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { last_row + 1, last_col })
  -- Our own change: the TextChangedI/CursorMovedI it causes keep the rest shown.
  s.own = { tick = api.nvim_buf_get_changedtick(bufnr), row = last_row + 1, col = last_col }
  local client = vim.lsp.get_client_by_id(s.client_id)
  if client and item.command then
    if whole then
      if client.exec_cmd then
        client:exec_cmd(item.command, { bufnr = bufnr })
      else
        aicockpit().request(client, "workspace/executeCommand", item.command, function() end, bufnr)
      end
    else
      aicockpit().notify_server(client, "textDocument/didPartiallyAcceptCompletion", {
        item = item,
        acceptedLength = vim.fn.strchars(text),
      })
    end
  end
  return last_row, last_col
end

--- Accept the suggestion. Returns false when none is shown (so a keymap falls back).
function M.accept()
  local bufnr = api.nvim_get_current_buf()
  if M.native() and not buffers[bufnr] then
    return vim.lsp.inline_completion.get({ bufnr = bufnr })
  end
  local s = buffers[bufnr]
  local item = s and s.items[s.index]
  if not item then
    return M.native() and vim.lsp.inline_completion.get({ bufnr = bufnr }) or false
  end
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  accept_text(bufnr, item.insertText, item, true)
  M.clear(bufnr)
  return true
end

--- Accept up to the end of the next word; the rest stays shown.
function M.accept_word()
  local bufnr = api.nvim_get_current_buf()
  local s = buffers[bufnr]
  local item = s and s.items[s.index]
  if not item then
    return false
  end
  local text = item.insertText
  local word = text:match("^%s*[%w_]+") or text:match("^%s*[^%w_%s]+") or text:match("^%s+") or text
  local rest = text:sub(#word + 1)
  local row, col = accept_text(bufnr, word, { command = item.command }, rest == "")
  if rest == "" then
    M.clear(bufnr)
  else
    local left = vim.deepcopy(item)
    left.insertText, left.range = rest, nil
    s.items = { left }
    s.index, s.row, s.col = 1, row, col
    draw(bufnr)
  end
  return true
end

--- Show the next suggestion.
function M.next()
  local bufnr = api.nvim_get_current_buf()
  if M.native() and not (buffers[bufnr] and #buffers[bufnr].items > 0) then
    return vim.lsp.inline_completion.select({ bufnr = bufnr, count = 1 })
  end
  local s = buffers[bufnr]
  if s and #s.items > 0 then
    s.index = s.index % #s.items + 1
    draw(bufnr)
  end
end

function M.dismiss()
  local bufnr = api.nvim_get_current_buf()
  M.clear(bufnr)
  if M.native() and vim.lsp.inline_completion.is_enabled({ bufnr = bufnr }) then
    -- Toggling drops the native suggestion without disabling it for good.
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  end
end

--- For expr keymaps, which may not change text: whether there is something
--- to do, with the change itself scheduled.
local function later(fn)
  return function()
    if not M.current() then
      return false
    end
    vim.schedule(fn)
    return true
  end
end

local function accept_key()
  if M.current() then
    vim.schedule(M.accept)
    return true
  end
  -- Made for expr mappings: it schedules the change itself.
  return M.native() and vim.lsp.inline_completion.get() or false
end

local function map_keys(bufnr)
  local keys = opts.keymaps or {}
  local function map(lhs, fn, desc, fallback)
    if not lhs or lhs == "" then
      return
    end
    vim.keymap.set("i", lhs, function()
      if fn() == false and fallback then
        return lhs
      end
      return ""
    end, { buffer = bufnr, expr = true, replace_keycodes = true, desc = desc })
  end
  map(keys.accept, accept_key, "AiCockpit: accept the suggestion", true)
  map(keys.accept_word, later(M.accept_word), "AiCockpit: accept the next word", true)
  map(keys.next, function() vim.schedule(M.next) end, "AiCockpit: next suggestion")
  map(keys.dismiss, function() vim.schedule(M.dismiss) end, "AiCockpit: dismiss the suggestion")
end

function M.setup(ghost_opts)
  opts = ghost_opts or {}
end

--- Called on attach: enable native inline completion, or our autocmds.
function M.attach(client, bufnr)
  if opts.enabled == false then
    return
  end
  map_keys(bufnr)
  if M.native() then
    -- Enabled only while the buffer is current: some 0.12 development builds
    -- run every enabled buffer's completion on any buffer's InsertEnter, and
    -- fail for buffers shown in no window.
    local function set(enabled)
      if api.nvim_buf_is_valid(bufnr) then
        vim.lsp.inline_completion.enable(enabled, { bufnr = bufnr })
      end
    end
    set(api.nvim_get_current_buf() == bufnr)
    local group = api.nvim_create_augroup("aicockpit_ghost_" .. bufnr, { clear = true })
    api.nvim_create_autocmd("BufEnter", { group = group, buffer = bufnr, callback = function() set(true) end })
    api.nvim_create_autocmd("BufLeave", { group = group, buffer = bufnr, callback = function() set(false) end })
    return
  end
  local group = api.nvim_create_augroup("aicockpit_ghost_" .. bufnr, { clear = true })
  api.nvim_create_autocmd({ "TextChangedI", "CursorMovedI" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      local s = state(bufnr)
      local own = s.own
      if own and own.tick == api.nvim_buf_get_changedtick(bufnr) then
        local cursor = api.nvim_win_get_cursor(0)
        if cursor[1] == own.row and cursor[2] == own.col then
          return
        end
      end
      s.own = nil
      M.clear(bufnr)
      if s.timer then
        s.timer:stop()
      end
      s.timer = vim.defer_fn(function()
        if api.nvim_get_current_buf() == bufnr and api.nvim_get_mode().mode:sub(1, 1) == "i" then
          M.request()
        end
      end, opts.debounce_ms or 150)
    end,
  })
  api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.clear(bufnr)
    end,
  })
end

return M
