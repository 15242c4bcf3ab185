// The dashboard: workspaces (state, live CPU and memory, create, start,
// stop, restart, delete, backup, restore, share), AI services (add, edit,
// test, activate; the key is write-only) and, for admins and auditors,
// users, your account (password, API tokens) and the audit log. Every action disables its button while
// it runs and reports a clear error.

import { call, json, ws, type Member, type ServiceView, type StatsView, type User, type WorkspaceView } from "./api.js";
import { busy, dialog, h, setChildren, toast } from "./dom.js";
import { showHelp } from "./help.js";

const mib = (bytes: number): string => (bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(1)} GiB` : `${Math.round(bytes / (1 << 20))} MiB`);
const when = (ms: number): string => new Date(ms).toLocaleString();

function field(label: string, input: HTMLElement): HTMLElement {
  return h("label.field", {}, label, input);
}

function input(name: string, attrs: Record<string, string> = {}): HTMLInputElement {
  return h("input", { name, "aria-label": name, ...attrs }) as HTMLInputElement;
}

export function showDashboard(root: HTMLElement, user: User, section: string): () => void {
  const nav = h(
    "nav.dash-nav",
    {},
    h("a", { href: "#/", class: section === "" ? "active" : "" }, "Workspaces"),
    h("a", { href: "#/services", class: section === "services" ? "active" : "" }, "AI services"),
    h("a", { href: "#/account", class: section === "account" || section === "tokens" ? "active" : "" }, "Account"),
    user.role === "admin" ? h("a", { href: "#/users", class: section === "users" ? "active" : "" }, "Users") : null,
    user.role !== "member" ? h("a", { href: "#/audit", class: section === "audit" ? "active" : "" }, "Audit log") : null,
  );
  const body = h("div.dash-body");
  const logout = h("button", {
    onclick: () =>
      void busy(logout, async () => {
        await call("/api/v1/auth/logout", { method: "POST" });
        location.hash = "#/";
        location.reload();
      }),
  }, "Sign out");
  root.replaceChildren(
    h("div.dashboard", {}, h("header.topbar", {}, h("strong", {}, "AiCockpit"), nav, h("span.spacer"), h("span.user", {}, `${user.name} (${user.role})`), h("button", { onclick: () => showHelp(), title: "Keyboard shortcuts (F1)" }, "?"), logout), body),
  );
  switch (section) {
    case "services":
      return services(body, user);
    case "account":
    case "tokens":
      return account(body, user);
    case "users":
      return users(body, user);
    case "audit":
      return audit(body);
    default:
      return workspaces(body, user);
  }
}

function workspaces(body: HTMLElement, user: User): () => void {
  const table = h("table.list", { "aria-label": "workspaces" });
  const stats = new Map<string, StatsView>();
  let list: WorkspaceView[] = [];
  const draw = (): void => {
    setChildren(
      table,
      h("tr", {}, ["Name", "State", "Image", "Role", "CPU", "Memory", ""].map((t) => h("th", {}, t))),
      list.length ? null : h("tr", {}, h("td.muted", { colspan: "7" }, "No workspaces yet: create one below.")),
      list.map((w) => {
        const s = stats.get(w.name);
        const act = (label: string, run: () => Promise<unknown>, done: string, danger = false): HTMLElement => {
          const button: HTMLElement = h(`button${danger ? ".danger" : ""}`, { "data-action": label.toLowerCase(), onclick: () => void busy(button, run, done).then(refresh) }, label);
          return button;
        };
        const canEdit = w.role === "owner" || w.role === "editor";
        const isOwner = w.role === "owner";
        return h(
          "tr",
          { "data-workspace": w.name },
          h("td", {}, h("a.open", { href: `#/w/${encodeURIComponent(w.name)}` }, w.name)),
          h("td", {}, h(`span.state.state-${w.state}`, {}, w.state)),
          h("td.muted", {}, w.image),
          h("td", {}, w.role ?? ""),
          h("td.stat", {}, s ? `${s.cpu_percent.toFixed(1)} %` : "–"),
          h("td.stat", {}, s ? `${mib(s.memory_bytes)} / ${mib(s.memory_limit_bytes)}` : `– / ${mib(w.memory_bytes)}`),
          h(
            "td.actions",
            {},
            h("a.button", { href: `#/w/${encodeURIComponent(w.name)}` }, "Open"),
            canEdit && w.state !== "running" ? act("Start", () => json(`${ws(w.name)}/start`, "POST"), `${w.name} started`) : null,
            canEdit && w.state === "running" ? act("Stop", () => json(`${ws(w.name)}/stop`, "POST"), `${w.name} stopped`) : null,
            canEdit ? act("Restart", () => json(`${ws(w.name)}/restart`, "POST"), `${w.name} restarted`) : null,
            isOwner ? h("a.button", { href: `${ws(w.name)}/backup`, download: `${w.name}.tar.gz` }, "Backup") : null,
            isOwner ? h("button", { onclick: () => void share(w.name) }, "Share") : null,
            isOwner
              ? h("button.danger", {
                  onclick: async (e: Event) => {
                    const choice = await dialog(`Delete ${w.name}?`, "The container and its record are deleted. Tick below to delete its files too.", [
                      { label: "Delete, keep files", value: "keep", danger: true },
                      { label: "Delete with files", value: "purge", danger: true },
                    ]);
                    if (!choice) return;
                    await busy(e.target as HTMLElement, () => call(`${ws(w.name)}${choice === "purge" ? "?purge=true" : ""}`, { method: "DELETE" }), `${w.name} deleted`);
                    await refresh();
                  },
                }, "Delete")
              : null,
          ),
        );
      }),
    );
  };
  const refresh = async (): Promise<void> => {
    try {
      list = await json<WorkspaceView[]>("/api/v1/workspaces");
    } catch (error) {
      toast(`cannot list workspaces: ${error instanceof Error ? error.message : String(error)}`, "error");
    }
    draw();
  };
  const refreshStats = async (): Promise<void> => {
    await Promise.all(
      list
        .filter((w) => w.state === "running")
        .map(async (w) => {
          try {
            stats.set(w.name, await json<StatsView>(`${ws(w.name)}/stats`));
          } catch {
            stats.delete(w.name);
          }
        }),
    );
    draw();
  };
  const name = input("name", { required: "", pattern: "[a-z0-9][a-z0-9_.-]*", placeholder: "my-project" });
  const image = input("image", { placeholder: "default image" });
  const memory = input("memory", { placeholder: "e.g. 2g" });
  const cpus = input("cpus", { type: "number", step: "0.5", min: "0.5", placeholder: "e.g. 2" });
  // Admins may mount an existing folder of the server's host; its devcontainer.json is used.
  const dir = input("dir", { placeholder: "/srv/projects/app (optional)", title: "A folder on the server's host; a .devcontainer/devcontainer.json in it sets the image, environment and user" });
  const create = h("button.primary", { type: "submit" }, "Create");
  const form = <HTMLFormElement>h("form.create-form", { "aria-label": "create a workspace" }, h("h2", {}, "New workspace"), field("Name", name), field("Image", image), field("Memory", memory), field("CPUs", cpus), user.role === "admin" ? field("Host folder", dir) : null, create);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const request: Record<string, unknown> = { name: name.value };
    if (image.value) request.image = image.value;
    if (memory.value) request.memory = memory.value;
    if (cpus.value) request.cpus = Number(cpus.value);
    if (dir.value) request.dir = dir.value;
    void busy(create, () => json("/api/v1/workspaces", "POST", request), `${name.value} created`).then(async (ok) => {
      if (ok) form.reset();
      await refresh();
    });
  });
  const upload = input("backup", { type: "file", accept: ".tar.gz,.tgz,application/gzip" });
  const restoreName = input("restore-name", { placeholder: "name in the archive" });
  const restore = h("button", { type: "submit" }, "Restore");
  const restoreForm = h("form.create-form", { "aria-label": "restore a backup" }, h("h2", {}, "Restore a backup"), field("Archive", upload), field("Name", restoreName), restore);
  restoreForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const file = upload.files?.[0];
    if (!file) return toast("choose a backup archive first", "error");
    const query = restoreName.value ? `?name=${encodeURIComponent(restoreName.value)}` : "";
    void busy(restore, () => call(`/api/v1/workspaces/restore${query}`, { method: "POST", body: file, headers: { "content-type": "application/gzip" } }), "restored").then(refresh);
  });
  setChildren(body, h("h1", {}, "Workspaces"), table, user.role !== "auditor" ? h("div.forms", {}, form, restoreForm) : null);
  void refresh().then(refreshStats);
  // Live figures every 3 s; states (changed by others, or the idle stopper) every 9 s.
  let tick = 0;
  const timer = setInterval(() => void (++tick % 3 === 0 ? refresh() : Promise.resolve()).then(refreshStats), 3000);
  return () => clearInterval(timer);
}

async function share(workspace: string): Promise<void> {
  let members: Member[];
  try {
    members = await json<Member[]>(`${ws(workspace)}/members`);
  } catch (error) {
    return toast(error instanceof Error ? error.message : String(error), "error");
  }
  const rows = h("div.members");
  const draw = (): void =>
    setChildren(
      rows,
      members.length ? null : h("p.muted", {}, "Not shared with anyone."),
      members.map((m, i) =>
        h("div.member", {}, h("span", {}, m.user), h("span.badge", {}, m.role), h("button", { onclick: () => (members.splice(i, 1), draw()) }, "Remove")),
      ),
    );
  draw();
  const who = input("share-user", { placeholder: "user name" });
  const role = h("select", { "aria-label": "role" }, h("option", { value: "viewer" }, "viewer"), h("option", { value: "editor" }, "editor")) as HTMLSelectElement;
  const add = h("button", { type: "button", onclick: () => {
    if (!who.value) return;
    members = members.filter((m) => m.user !== who.value);
    members.push({ user: who.value, role: role.value as Member["role"] });
    who.value = "";
    draw();
  } }, "Add");
  const choice = await dialog(`Share ${workspace}`, h("div", {}, rows, h("div.row", {}, who, role, add)) as Node, [{ label: "Save", value: "save", primary: true }]);
  if (choice === "save") await busy(null, () => json(`${ws(workspace)}/members`, "PUT", members), `sharing of ${workspace} saved`);
}

function services(body: HTMLElement, user: User): () => void {
  const admin = user.role === "admin";
  const table = h("table.list", { "aria-label": "AI services" });
  const result = h("div.test-result", { role: "status" });
  const refresh = async (): Promise<void> => {
    let list: ServiceView[] = [];
    try {
      list = await json<ServiceView[]>("/api/v1/services");
    } catch (error) {
      toast(error instanceof Error ? error.message : String(error), "error");
    }
    setChildren(
      table,
      h("tr", {}, ["Name", "Kind", "URL", "Models", "Key", "", ""].map((t) => h("th", {}, t))),
      list.map((s) => {
        const testButton: HTMLElement = h("button", {
          onclick: () =>
            void busy(testButton, async () => {
              const started = performance.now();
              const report = await json<{ test: unknown; fim_probe: { fim_capable?: boolean; inline_completion?: string; warning?: string } | null }>(`/api/v1/services/${encodeURIComponent(s.name)}/test`, "POST");
              const ms = Math.round(performance.now() - started);
              const probe = report.fim_probe;
              setChildren(
                result,
                h("h3", {}, `Test of ${s.name}: answered in ${ms} ms`),
                probe ? h("p", {}, `Fill-in-the-middle probe: ${probe.fim_capable ? "capable" : "not capable"}; inline completion uses ${probe.inline_completion ?? "?"}.${probe.warning ? ` ${probe.warning}` : ""}`) : h("p.muted", {}, "No fill-in-the-middle probe (no completion model)."),
                h("details", {}, h("summary", {}, "Full report"), h("pre", {}, JSON.stringify(report, null, 2))),
              );
            }),
        }, "Test");
        const activate: HTMLElement = h("button", { onclick: () => void busy(activate, () => json(`/api/v1/services/${encodeURIComponent(s.name)}/activate`, "POST"), `${s.name} is active`).then(refresh) }, "Activate");
        return h(
          "tr",
          { "data-service": s.name },
          h("td", {}, s.name, s.active ? h("span.badge.active", {}, "active") : null),
          h("td", {}, s.kind),
          h("td.muted", {}, s.base_url),
          h("td.muted", {}, [s.completion_model, s.chat_model].filter(Boolean).join(" / ")),
          h("td", {}, s.key_stored ? "stored" : s.api_key_env ? `$${s.api_key_env}` : "none"),
          h("td.actions", {}, admin ? [testButton, s.active ? null : activate, h("button", { onclick: () => void edit(s) }, "Edit")] : null),
          h("td", {}, admin ? h("button.danger", { onclick: async (e: Event) => {
            if ((await dialog(`Remove ${s.name}?`, "Its stored key is deleted too.", [{ label: "Remove", value: "yes", danger: true }])) !== "yes") return;
            await busy(e.target as HTMLElement, () => call(`/api/v1/services/${encodeURIComponent(s.name)}`, { method: "DELETE" }), `${s.name} removed`);
            await refresh();
          } }, "Remove") : null),
        );
      }),
    );
  };
  const edit = async (existing: ServiceView | null): Promise<void> => {
    const inputs = {
      name: input("name", { value: existing?.name ?? "" }),
      kind: h("select", { "aria-label": "kind" }, ["openai", "azure", "lmstudio", "ollama", "llamacpp", "custom"].map((k) => h("option", { value: k, selected: existing?.kind === k }, k))) as HTMLSelectElement,
      base_url: input("base_url", { value: existing?.base_url ?? "", placeholder: "http://127.0.0.1:8080/v1" }),
      completion_model: input("completion_model", { value: existing?.completion_model ?? "" }),
      chat_model: input("chat_model", { value: existing?.chat_model ?? "" }),
      // Chosen on the server's host only (the API refuses to name one): shown, not sent.
      api_key_env: input("api_key_env", { value: existing?.api_key_env ?? "", placeholder: "set in the server's config file", disabled: "" }),
      api_key: input("api_key", { type: "password", autocomplete: "off", placeholder: existing?.key_stored ? "stored: type to replace" : "optional" }),
    };
    if (existing) inputs.name.setAttribute("disabled", "");
    const form = h(
      "div.form-grid",
      {},
      field("Name", inputs.name),
      field("Kind", inputs.kind),
      field("Base URL", inputs.base_url),
      field("Completion model", inputs.completion_model),
      field("Chat model", inputs.chat_model),
      field("Key variable", inputs.api_key_env),
      field("API key (write-only: never shown again)", inputs.api_key),
    );
    if ((await dialog(existing ? `Edit ${existing.name}` : "Add an AI service", form, [{ label: "Save", value: "save", primary: true }])) !== "save") return;
    const value = (i: HTMLInputElement | HTMLSelectElement): string | undefined => i.value.trim() || undefined;
    const request: Record<string, unknown> = {
      kind: inputs.kind.value,
      base_url: value(inputs.base_url),
      completion_model: value(inputs.completion_model),
      chat_model: value(inputs.chat_model),
      api_key: value(inputs.api_key),
    };
    await busy(
      null,
      () => (existing ? json(`/api/v1/services/${encodeURIComponent(existing.name)}`, "PUT", request) : json("/api/v1/services", "POST", { name: inputs.name.value, ...request })),
      "service saved",
    );
    await refresh();
  };
  body.replaceChildren(h("h1", {}, "AI services"), table, admin ? h("button.primary", { onclick: () => void edit(null) }, "Add a service") : h("p.muted", {}, "Only admins change AI services."), result);
  void refresh();
  return () => undefined;
}

/** Your own password: the current one is needed (a user without one yet, the
 * first admin signed in by a link, leaves it empty). */
function passwordForm(): HTMLElement {
  const current = input("current-password", { type: "password", autocomplete: "current-password", placeholder: "current password" });
  const next = input("new-password", { type: "password", autocomplete: "new-password", placeholder: "new password", required: "" });
  const again = input("repeat-password", { type: "password", autocomplete: "new-password", placeholder: "new password again", required: "" });
  const endTokens = h("input", { type: "checkbox", name: "end-tokens" }) as HTMLInputElement;
  const change = h("button.primary", { type: "submit" }, "Change password");
  const form = <HTMLFormElement>h("form.row", { "aria-label": "change your password" }, current, next, again, h("label", {}, endTokens, " also end my API tokens"), change);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (next.value !== again.value) {
      toast("the two new passwords differ: type the same one twice", "error");
      return;
    }
    const body: Record<string, string | boolean> = { new_password: next.value, end_tokens: endTokens.checked };
    if (current.value) body.current_password = current.value;
    void busy(change, () => json("/api/v1/me/password", "POST", body), "password changed: your other sessions are signed out").then((ok) => {
      if (!ok) return;
      const ended = endTokens.checked;
      form.reset();
      // The token list shows what ended.
      if (ended) location.reload();
    });
  });
  return h(
    "section",
    {},
    h("h2", {}, "Password"),
    h("p.muted", {}, "Changing it signs out all your other sessions (this one goes on) and ends your unused login links. If someone else may have used your account, also end your API tokens."),
    form,
  );
}

function account(body: HTMLElement, user: User): () => void {
  const teardown = tokens(body);
  body.prepend(h("h1", {}, `Account: ${user.name}`), passwordForm());
  return teardown;
}

function tokens(body: HTMLElement): () => void {
  const table = h("table.list", { "aria-label": "API tokens" });
  const shown = h("div.token-shown", { role: "status" });
  const refresh = async (): Promise<void> => {
    const list = await json<{ id: string; name: string; created_at: number; last_used_at: number | null; expires_at: number | null; revoked: boolean }[]>("/api/v1/tokens").catch(() => []);
    const now = Date.now();
    setChildren(
      table,
      h("tr", {}, ["Name", "Id", "Created", "Last used", "Expires", ""].map((t) => h("th", {}, t))),
      list.map((t) =>
        h(
          "tr",
          {},
          h("td", {}, t.name),
          h("td.muted", {}, t.id),
          h("td", {}, when(t.created_at * 1000)),
          h("td", {}, t.last_used_at ? when(t.last_used_at * 1000) : "never"),
          h("td.expires", {}, t.expires_at === null ? "never (made before tokens expired)" : t.expires_at * 1000 <= now ? "expired" : when(t.expires_at * 1000)),
          h("td", {}, t.revoked ? "revoked" : t.expires_at !== null && t.expires_at * 1000 <= now ? "" : h("button.danger", { onclick: (e: Event) => void busy(e.target as HTMLElement, () => call(`/api/v1/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE" }), "revoked").then(refresh) }, "Revoke")),
        ),
      ),
    );
  };
  const name = input("token-name", { placeholder: "what it is for, e.g. ci", required: "" });
  const days = h(
    "select",
    { name: "token-days", "aria-label": "expires in" },
    [7, 30, 90, 365].map((d) => h("option", { value: String(d), selected: d === 90 }, `expires in ${d} days`)),
  ) as HTMLSelectElement;
  const create = h("button.primary", { type: "submit" }, "Create token");
  const form = h("form.row", {}, name, days, create);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void busy(create, async () => {
      const made = await json<{ token: string }>("/api/v1/tokens", "POST", { name: name.value, expires_in_days: Number(days.value) });
      setChildren(shown, h("p", {}, "Copy the token now: it is not shown again."), h("code.secret", {}, made.token));
      name.value = "";
    }).then(refresh);
  });
  body.replaceChildren(h("h2", {}, "API tokens"), form, shown, table);
  void refresh();
  return () => undefined;
}

function users(body: HTMLElement, me: User): () => void {
  const table = h("table.list", { "aria-label": "users" });
  const refresh = async (): Promise<void> => {
    const list = await json<User[]>("/api/v1/users").catch((e: unknown) => (toast(String(e), "error"), []));
    setChildren(
      table,
      h("tr", {}, ["Name", "Role", "Created", ""].map((t) => h("th", {}, t))),
      list.map((u) => {
        const role = h("select", { "aria-label": `role of ${u.name}` }, ["admin", "member", "auditor"].map((r) => h("option", { value: r, selected: r === u.role }, r))) as HTMLSelectElement;
        role.addEventListener("change", () => void busy(role, () => json(`/api/v1/users/${encodeURIComponent(u.name)}`, "PATCH", { role: role.value }), `${u.name} is now ${role.value}`).then(refresh));
        return h(
          "tr",
          {},
          h("td", {}, u.name),
          h("td", {}, role),
          h("td", {}, when(u.created_at * 1000)),
          h(
            "td.actions",
            {},
            // Your own password changes on the account page, with the current one.
            u.name === me.name ? h("a.button", { href: "#/account" }, "Password") : h("button", { onclick: async (e: Event) => {
              const password = input("new-password", { type: "password", autocomplete: "new-password" });
              if ((await dialog(`New password for ${u.name}`, field("Password", password), [{ label: "Set", value: "set", primary: true }])) !== "set") return;
              await busy(e.target as HTMLElement, () => json(`/api/v1/users/${encodeURIComponent(u.name)}`, "PATCH", { password: password.value }), "password changed");
            } }, "Password"),
            h("button.danger", { onclick: async (e: Event) => {
              if ((await dialog(`Delete ${u.name}?`, "Their sessions and tokens stop working.", [{ label: "Delete", value: "yes", danger: true }])) !== "yes") return;
              await busy(e.target as HTMLElement, () => call(`/api/v1/users/${encodeURIComponent(u.name)}`, { method: "DELETE" }), `${u.name} deleted`);
              await refresh();
            } }, "Delete"),
          ),
        );
      }),
    );
  };
  const name = input("new-user", { placeholder: "name", required: "" });
  const password = input("new-user-password", { type: "password", placeholder: "password", autocomplete: "new-password", required: "" });
  const role = h("select", { "aria-label": "role" }, ["member", "admin", "auditor"].map((r) => h("option", { value: r }, r))) as HTMLSelectElement;
  const create = h("button.primary", { type: "submit" }, "Create user");
  const form = <HTMLFormElement>h("form.row", { "aria-label": "create a user" }, name, password, role, create);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void busy(create, () => json("/api/v1/users", "POST", { name: name.value, password: password.value, role: role.value }), `${name.value} created`).then((ok) => {
      if (ok) form.reset();
      return refresh();
    });
  });
  body.replaceChildren(h("h1", {}, "Users"), form, table);
  void refresh();
  return () => undefined;
}

function audit(body: HTMLElement): () => void {
  const table = h("table.list.audit", { "aria-label": "audit log" });
  const filter = input("audit-user", { placeholder: "user" });
  const action = input("audit-action", { placeholder: "action, e.g. auth.login" });
  const refresh = async (): Promise<void> => {
    const query = new URLSearchParams({ limit: "10000" });
    if (filter.value) query.set("user", filter.value);
    if (action.value) query.set("action", action.value);
    const list = await json<{ seq: number; time_ms: number; user: string | null; address: string | null; action: string; target: string | null; result: string }[]>(`/api/v1/audit?${query.toString()}`).catch((e: unknown) => (toast(String(e), "error"), []));
    setChildren(
      table,
      h("tr", {}, ["#", "Time", "User", "Address", "Action", "Target", "Result"].map((t) => h("th", {}, t))),
      list.slice(-200).reverse().map((r) => h("tr", {}, h("td", {}, String(r.seq)), h("td", {}, when(r.time_ms)), h("td", {}, r.user ?? ""), h("td", {}, r.address ?? ""), h("td", {}, r.action), h("td.muted", {}, r.target ?? ""), h("td", {}, r.result))),
    );
  };
  const form = h("form.row", {}, filter, action, h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void refresh();
  });
  body.replaceChildren(h("h1", {}, "Audit log"), h("p.muted", {}, "The newest 200 records that match, newest first."), form, table);
  void refresh();
  return () => undefined;
}
