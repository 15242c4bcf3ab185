// A tiny element builder: h("div.cls", {attrs}, children). No innerHTML
// anywhere except sanitised Markdown (see markdown.ts).

type Child = Node | string | null | undefined | false;
/** Listeners may be async: their promise is not awaited (they report their own errors). */
type Listener = (event: Event) => unknown;
type Attrs = Record<string, string | number | boolean | Listener | undefined>;

/** Make an element: `tag.class1.class2`, attributes (`on…` are listeners), children. */
export function h(spec: string, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElement {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else if (typeof value !== "function") {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

/** Replace an element's children. */
export function setChildren(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** A short-lived message at the bottom of the page (errors stay until clicked). */
export function toast(message: string, kind: "info" | "error" = "info"): void {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts" });
    document.body.append(box);
  }
  const item = h(`div.toast.${kind}`, { role: kind === "error" ? "alert" : "status" }, message);
  item.addEventListener("click", () => item.remove());
  box.append(item);
  if (kind === "info") setTimeout(() => item.remove(), 4000);
}

/** A modal dialog; resolves with the chosen button's value (null when dismissed). */
export function dialog<T extends string>(
  title: string,
  body: Node | string,
  buttons: { label: string; value: T; primary?: boolean; danger?: boolean }[],
): Promise<T | null> {
  return new Promise((resolve) => {
    const backdrop = h("div.modal-backdrop");
    const close = (value: T | null): void => {
      backdrop.remove();
      resolve(value);
    };
    const box = h(
      "div.modal",
      { role: "dialog", "aria-modal": "true", "aria-label": title },
      h("h2", {}, title),
      h("div.modal-body", {}, body),
      h(
        "div.modal-buttons",
        {},
        buttons.map((b) =>
          h(`button${b.primary ? ".primary" : ""}${b.danger ? ".danger" : ""}`, { onclick: () => close(b.value), "data-value": b.value }, b.label),
        ),
        h("button", { onclick: () => close(null) }, "Cancel"),
      ),
    );
    backdrop.addEventListener("keydown", (e) => {
      if (e.key === "Escape") close(null);
    });
    backdrop.append(box);
    document.body.append(backdrop);
    box.querySelector<HTMLButtonElement>("button.primary, button")?.focus();
  });
}

/** Ask for one line of text. */
export async function prompt(title: string, label: string, initial = ""): Promise<string | null> {
  const input = h("input", { type: "text", value: initial, "aria-label": label }) as HTMLInputElement;
  const body = h("label.field", {}, label, input);
  setTimeout(() => input.focus(), 0);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") (input.closest(".modal")?.querySelector("button.primary") as HTMLButtonElement | null)?.click();
  });
  const answer = await dialog(title, body, [{ label: "OK", value: "ok", primary: true }]);
  return answer === "ok" ? input.value : null;
}

/** Run an action with a busy button and a clear error. */
export async function busy(button: HTMLElement | null, action: () => Promise<unknown>, done?: string): Promise<boolean> {
  button?.setAttribute("disabled", "");
  button?.classList.add("busy");
  try {
    await action();
    if (done) toast(done);
    return true;
  } catch (error) {
    toast(error instanceof Error ? error.message : String(error), "error");
    return false;
  } finally {
    button?.removeAttribute("disabled");
    button?.classList.remove("busy");
  }
}
