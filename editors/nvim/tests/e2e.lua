-- The plugin's end-to-end test, run by tests/integration/nvim.rs as
--   nvim --headless --clean -u editors/nvim/tests/e2e.lua
-- with AICOCKPIT_PLUGIN_DIR (this plugin), AICOCKPIT_TEST_PROJECT (a project
-- with no .git or other marker) and aicockpit-lsp on PATH. Each step asserts;
-- a failure is written to stderr and ends nvim with `cquit 1`.
local plugin = assert(os.getenv("AICOCKPIT_PLUGIN_DIR"), "AICOCKPIT_PLUGIN_DIR is not set")
local project = assert(os.getenv("AICOCKPIT_TEST_PROJECT"), "AICOCKPIT_TEST_PROJECT is not set")
vim.opt.runtimepath:prepend(plugin)
vim.cmd("runtime plugin/aicockpit.lua")
vim.o.swapfile = false
vim.o.hidden = true
vim.o.shortmess = vim.o.shortmess .. "F"

local TIMEOUT = 30000

local function log(message)
  io.stderr:write("e2e: " .. message .. "\n")
end

local messages = {}
local notify = vim.notify
vim.notify = function(message, level, opts)
  table.insert(messages, tostring(message))
  return notify(message, level, opts)
end

local function fail(message)
  error(message, 0)
end

local function wait_for(what, condition, timeout)
  local ok = vim.wait(timeout or TIMEOUT, condition, 20)
  if not ok then
    fail("timed out waiting for " .. what)
  end
end

local function expect(condition, message)
  if not condition then
    fail(message)
  end
end

local ai = require("aicockpit")

local function client()
  return ai.client(vim.api.nvim_get_current_buf())
end

local function request(method, params)
  local response = ai.request_sync(client(), method, params, TIMEOUT, vim.api.nvim_get_current_buf())
  expect(response and not response.err, method .. " failed: " .. vim.inspect(response))
  return response.result
end

local function buffer_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf or 0, 0, -1, false), "\n")
end

local function cursor_on(needle)
  local lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  for i, line in ipairs(lines) do
    local col = line:find(needle, 1, true)
    if col then
      vim.api.nvim_win_set_cursor(0, { i, col - 1 })
      return
    end
  end
  fail(needle .. " is not in " .. vim.api.nvim_buf_get_name(0))
end

--- Let the main loop run (mode changes such as :startinsert take effect there).
local function settle()
  local co = coroutine.running()
  vim.schedule(function()
    coroutine.resume(co)
  end)
  coroutine.yield()
end

--- Show a project file (kept as it is when already shown: it may have unsaved edits).
local function open_file(rel)
  local path = project .. "/" .. rel
  local buf = vim.fn.bufnr(path)
  if buf ~= -1 and vim.api.nvim_buf_is_loaded(buf) then
    vim.api.nvim_set_current_buf(buf)
  else
    vim.cmd.edit(vim.fn.fnameescape(path))
  end
end

--- Wait for `condition` while returning to the main loop between checks, so
--- typed keys (nvim_feedkeys) are processed meanwhile; vim.wait does not.
local function wait_typed(what, condition)
  local co = coroutine.running()
  local deadline = vim.uv.now() + TIMEOUT
  while not condition() do
    if vim.uv.now() > deadline then
      fail("timed out waiting for " .. what)
    end
    vim.defer_fn(function()
      coroutine.resume(co)
    end, 20)
    coroutine.yield()
  end
end

local steps = {}

steps[#steps + 1] = { "setup starts the server from PATH for a project without a root", function()
  -- AICOCKPIT_E2E_LEGACY=1: our extmark ghost text and vim.lsp.start, the
  -- paths Neovim 0.10 takes, exercised on the Neovim at hand.
  local legacy = os.getenv("AICOCKPIT_E2E_LEGACY") == "1"
  local opts = legacy and { start = "start", ghost_text = { native = false } } or {}
  expect(ai.setup(opts), "setup failed: " .. table.concat(messages, "\n"))
  log("Neovim " .. tostring(vim.version()) .. (legacy and ", legacy paths" or ""))
  open_file("main.py")
  wait_for("the client to attach", function() return client() ~= nil end)
  wait_for("the server's no-root message", function()
    for _, message in ipairs(messages) do
      if message:find("no root folder", 1, true) then
        return true
      end
    end
    return false
  end)
  local status
  wait_for("the first index", function()
    status = request("aicockpit/status", vim.NIL)
    return status.indexing == false and status.files >= 2
  end)
  expect(vim.fs.normalize(status.root) == vim.fs.normalize(vim.uv.fs_realpath(project)),
    "served root " .. tostring(status.root) .. ", expected " .. project)
end }

steps[#steps + 1] = { "document symbols", function()
  local symbols = request("textDocument/documentSymbol", { textDocument = vim.lsp.util.make_text_document_params() })
  local names = vim.tbl_map(function(s) return s.name end, symbols)
  expect(vim.tbl_contains(names, "main"), "symbols of main.py: " .. vim.inspect(names))
end }

steps[#steps + 1] = { "go to definition in another file", function()
  cursor_on("helper_function(2)")
  vim.lsp.buf.definition()
  wait_for("the jump to util.py", function()
    return vim.api.nvim_buf_get_name(0):match("util%.py$") ~= nil
  end)
  local row = vim.api.nvim_win_get_cursor(0)[1]
  expect(row == 1, "the definition is on line 1, the cursor is on " .. row)
  expect(vim.fn.getqflist({ size = 0 }).size == 0, "a single definition jumps, with no list")
end }

steps[#steps + 1] = { "a file created outside the editor is in workspace/symbol", function()
  local file = assert(io.open(project .. "/fresh.py", "w"))
  file:write("def made_outside_the_editor():\n    return 1\n")
  file:close()
  wait_for("made_outside_the_editor in workspace/symbol", function()
    local found = request("workspace/symbol", { query = "made_outside_the_editor" })
    return found ~= nil and #found == 1
  end)
end }

steps[#steps + 1] = { "ghost text from the mock AI service, accepted", function()
  open_file("main.py")
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { "", "answer = " })
  local last = vim.api.nvim_buf_line_count(0)
  vim.api.nvim_win_set_cursor(0, { last, #"answer = " })
  local ghost = require("aicockpit.ghost")
  vim.cmd("startinsert!")
  settle()
  expect(vim.api.nvim_get_mode().mode == "i", "not in insert mode: " .. vim.api.nvim_get_mode().mode)
  -- Neovim's own inline completion asks when insert mode starts; ours after
  -- a pause in typing, which this stands for.
  if not ghost.native() then
    ghost.request()
  end
  wait_for("ghost text to be drawn", function() return ghost.visible(0) end)
  expect(buffer_text():find("helper_function(21)", 1, true) == nil, "ghost text must not be in the buffer yet")
  local line = function() return vim.api.nvim_buf_get_lines(0, last - 1, last, false)[1] end
  if not ghost.native() then
    -- Accept word (<C-Right>) takes "helper_function" and leaves "(21)" shown.
    vim.api.nvim_feedkeys(vim.keycode("<C-Right>"), "m", false)
    wait_typed("the first word accepted", function() return line() == "answer = helper_function" end)
    expect(ghost.current() == "(21)", "left shown: " .. tostring(ghost.current()))
  end
  -- <Tab> accepts the rest, through the plugin's insert-mode keymap.
  vim.api.nvim_feedkeys(vim.keycode("<Tab>"), "m", false)
  wait_typed("the accepted text in the buffer", function()
    return vim.api.nvim_buf_get_lines(0, last - 1, last, false)[1] == "answer = helper_function(21)"
  end)
  vim.cmd("stopinsert")
  settle()
  log("ghost text path: " .. (ghost.native() and "native vim.lsp.inline_completion" or "aicockpit extmarks"))
end }

steps[#steps + 1] = { ":AiChat streams the reply and lists jumpable sources", function()
  cursor_on("helper_function(2)")
  local done, answer = false, nil
  local deltas = 0
  local register = ai.register_chat_stream
  ai.register_chat_stream = function(token, fn)
    register(token, function(delta)
      deltas = deltas + 1
      fn(delta)
    end)
  end
  ai.chat("What does helper_function do?", nil, function(result) answer, done = result, true end)
  ai.register_chat_stream = register
  wait_for("the chat answer", function() return done end)
  expect(answer ~= nil, "the chat request failed")
  expect(deltas > 0, "no partial results were streamed")
  local chat = vim.api.nvim_get_current_buf()
  expect(vim.b[chat].aicockpit_chat, "the chat buffer is not current")
  local text = buffer_text(chat)
  expect(text:find("helper_function(21)", 1, true), "the reply is not in the chat buffer:\n" .. text)
  expect(#answer.sources > 0, "the answer names no sources")
  local source_line
  for i, line in ipairs(vim.api.nvim_buf_get_lines(chat, 0, -1, false)) do
    if line:match("^source: ") then
      source_line = i
    end
  end
  expect(source_line, "no source line in:\n" .. text)
  vim.api.nvim_win_set_cursor(0, { source_line, 0 })
  require("aicockpit.chat").open_source()
  expect(vim.uv.fs_stat(vim.api.nvim_buf_get_name(0)) ~= nil, "the source line did not open a file")
  expect(not vim.b.aicockpit_chat, "still in the chat buffer")
end }

steps[#steps + 1] = { ":AiSearch fills the quickfix list", function()
  open_file("main.py")
  vim.fn.setqflist({}, "r", { items = {} })
  vim.cmd("AiSearch helper_function")
  wait_for("quickfix items", function() return #vim.fn.getqflist() > 0 end)
  local found = false
  for _, item in ipairs(vim.fn.getqflist()) do
    if vim.api.nvim_buf_get_name(item.bufnr):match("util%.py$") and item.lnum == 1 then
      found = true
    end
  end
  expect(found, "util.py:1 is not in the quickfix list: " .. vim.inspect(vim.fn.getqflist()))
  vim.cmd("cclose")
end }

steps[#steps + 1] = { ":checkhealth aicockpit reports OK", function()
  open_file("main.py")
  vim.cmd("checkhealth aicockpit")
  local text = buffer_text()
  expect(text:find("server found", 1, true), "no server line:\n" .. text)
  expect(text:find("index:", 1, true), "no index line:\n" .. text)
  expect(text:find("AI service mock answers", 1, true), "no AI line:\n" .. text)
  expect(not text:find("ERROR", 1, true) and not text:find("WARNING", 1, true), "not all OK:\n" .. text)
  vim.cmd("bwipeout!")
end }

steps[#steps + 1] = { "the statusline component names the service", function()
  local line = ai.statusline()
  expect(line:find("mock", 1, true), "statusline: " .. line)
end }

steps[#steps + 1] = { ":AiExplain runs our code action on a range and shows the explanation", function()
  open_file("main.py")
  local before = #messages
  vim.cmd("4,6AiExplain")
  wait_for("the explanation", function()
    for i = before + 1, #messages do
      if messages[i]:find("helper_function(21)", 1, true) then
        return true
      end
    end
    return false
  end)
end }

steps[#steps + 1] = { ":AiCommand suggests a command without running it", function()
  local suggested
  ai.suggest_command("list the python files", function(result) suggested = result end)
  wait_for("the suggestion", function() return suggested ~= nil end)
  expect(suggested.command ~= "", "an empty command")
  expect(vim.fn.getreg('"') == suggested.command, "the command is not in the unnamed register")
end }

steps[#steps + 1] = { ":AiService switches the active service through vim.ui.select", function()
  local offered
  local select = vim.ui.select
  vim.ui.select = function(items, _, on_choice)
    offered = items
    on_choice("other")
  end
  vim.cmd("AiService")
  wait_for("the service picker", function() return offered ~= nil end)
  vim.ui.select = select
  expect(vim.tbl_contains(offered, "mock") and vim.tbl_contains(offered, "other"), "offered: " .. vim.inspect(offered))
  wait_for("the server to use the other service", function()
    local status = request("aicockpit/status", vim.NIL)
    return status.ai.service == "other"
  end)
  expect(ai.statusline():find("other", 1, true), "statusline: " .. ai.statusline())
end }

-- After startup: filetype detection is switched on only after this file runs.
vim.api.nvim_create_autocmd("VimEnter", {
  once = true,
  nested = true,
  callback = function()
    coroutine.wrap(function()
    local ok, err = xpcall(function()
      for _, step in ipairs(steps) do
        log("step: " .. step[1])
        step[2]()
      end
    end, debug.traceback)
    if not ok then
      log("FAILED: " .. tostring(err))
      log("messages seen:\n" .. table.concat(messages, "\n"))
      vim.cmd("cquit 1")
    else
      log("all steps passed")
      vim.cmd("qall!")
    end
    end)()
  end,
})
