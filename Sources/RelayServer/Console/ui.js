// Building the page. Every value that came from a webhook (ids, headers, bodies, types) is put
// in the page as text (textContent or a text node), never as HTML: there is no innerHTML in the
// console, and the Content-Security-Policy allows only this origin's scripts and styles.

/** An element: h("td", { class: "num" }, "12", child, …). Strings and numbers become text nodes. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "checked" || name === "value" || name === "disabled" || name === "selected") element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content (skipping null and false children). */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** Replaces the page's content. */
export function render(...children) {
  const app = document.getElementById("app");
  app.replaceChildren();
  append(app, children);
}

/** A link inside the console (only ever to a "#/" route). */
export function link(route, ...children) {
  return h("a", { href: "#/" + route.split("/").map(encodeURIComponent).join("/") }, ...children);
}

export function badge(state) {
  return h("span", { class: "badge " + String(state).replace(/[^a-z0-9_]/gi, "") }, String(state));
}

/** A table: columns are [heading, cell(row), { num: true }?]. */
export function table(columns, rows, { rowClass, empty = "Nothing here." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([title, , options]) => h("th", { class: options && options.num ? "num" : null, scope: "col" }, title)))),
    h("tbody", {}, rows.map((row) => h("tr", { class: rowClass ? rowClass(row) : null },
      columns.map(([, cell, options]) => h("td", { class: options && options.num ? "num" : null }, cell(row))))))));
}

export function errorBox(error) {
  return h("div", { class: "error", role: "alert" }, error.message || String(error));
}

/** A message above the page for a few seconds. */
export function notify(message, kind = "ok") {
  const notice = document.getElementById("notice");
  const box = h("div", { class: kind, role: kind === "error" ? "alert" : "status" }, message);
  notice.replaceChildren(box);
  setTimeout(() => { if (box.isConnected) box.remove(); }, 8000);
}

export function time(text) {
  if (!text) return "-";
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function percent(value) {
  return value === null || value === undefined ? "-" : (value * 100).toFixed(1) + "%";
}

/** Copies text, with a fallback where the clipboard API is not offered (plain http on a LAN). */
export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", { readonly: true }, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  notify("Copied.");
}

const relative = /^\d{1,9}[smhd]$/;
const rfc3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Checks a time filter before it is sent: RFC 3339 or relative (15m, 2h, 7d). */
export function checkTime(name, value) {
  if (value && !relative.test(value) && !rfc3339.test(value)) {
    throw new Error(`${name}: give an RFC 3339 time (2026-11-30T12:00:00Z) or a relative one (15m, 2h, 7d), not "${value}"`);
  }
}

/** The event filter fields, shared by the events, deliveries and replay pages. */
export const FILTERS = [
  ["source", "Source", "shop or shop,runa"],
  ["provider", "Provider", "runa, fastspring, generic"],
  ["type", "Type (glob)", "order.*"],
  ["status", "Status", "FAILED"],
  ["product", "Product (glob)", "sku-*"],
  ["since", "Since", "15m, 2h or RFC 3339"],
  ["until", "Until", "RFC 3339 or relative"],
  ["id", "Event id(s)", "evt_… (comma list)"],
];

/** Filter inputs filled from `values`; `read(form)` gives the checked filter back. */
export function filterInputs(values, { deliveryState = true } = {}) {
  const inputs = FILTERS.map(([name, title, hint]) => h("label", {}, title, h("input", { type: "text", name, value: values[name] || "", placeholder: hint, autocomplete: "off" })));
  if (deliveryState) {
    inputs.push(h("label", {}, "Delivery state", h("select", { name: "delivery_state" },
      ["", "pending", "succeeded", "dead"].map((state) => h("option", { value: state, selected: values.delivery_state === state }, state || "any")))));
  }
  return inputs;
}

export function readFilter(form) {
  const filter = {};
  for (const [name] of FILTERS.concat([["delivery_state"]])) {
    const field = form.elements[name];
    if (!field) continue;
    const value = field.value.trim();
    if (value) filter[name] = value;
  }
  checkTime("since", filter.since);
  checkTime("until", filter.until);
  if (filter.id && !/^[A-Za-z0-9_,-]+$/.test(filter.id)) throw new Error("event id: letters, digits, _ and - only (comma-separated for several)");
  return filter;
}
