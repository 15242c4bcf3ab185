-- aicockpit.nvim: the user commands. The language server starts only after
-- require("aicockpit").setup{} (see :help aicockpit).
if vim.g.loaded_aicockpit then
  return
end
vim.g.loaded_aicockpit = true

local function cmd(name, fn, opts)
  vim.api.nvim_create_user_command(name, function(args)
    fn(args)
  end, opts or {})
end

local function ai()
  return require("aicockpit")
end

cmd("AiChat", function(a) ai().chat(a.args, a.range > 0 and { a.line1, a.line2 } or nil) end, { nargs = "*", range = true, desc = "AiCockpit: chat about the project" })
cmd("AiSearch", function(a) ai().search(a.args) end, { nargs = "+", desc = "AiCockpit: search the project into the quickfix list" })
cmd("AiExplain", function(a) ai().action("explain", a.line1, a.line2) end, { range = true, desc = "AiCockpit: explain the range" })
cmd("AiRefactor", function(a) ai().action("refactor", a.line1, a.line2) end, { range = true, desc = "AiCockpit: refactor the range" })
cmd("AiDocument", function(a) ai().action("document", a.line1, a.line2) end, { range = true, desc = "AiCockpit: document the range" })
cmd("AiFix", function(a) ai().action("fix", a.line1, a.line2) end, { range = true, desc = "AiCockpit: fix the diagnostics in the range" })
cmd("AiService", function(a) ai().pick_service(a.args ~= "" and a.args or nil) end, { nargs = "?", desc = "AiCockpit: choose the active AI service" })
cmd("AiCommand", function(a) ai().suggest_command(a.args) end, { nargs = "+", desc = "AiCockpit: suggest a shell command" })
cmd("AiStatus", function() ai().show_status() end, { desc = "AiCockpit: server, index and AI status" })
