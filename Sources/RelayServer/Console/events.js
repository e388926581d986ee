// Events: the list with every filter the CLI has, new events appearing while the page is open,
// and one event with its body, routing decision and every attempt.
import { api, query } from "./api.js";
import { h, fill, render, link, badge, table, notify, time, copy, errorBox, filterInputs, readFilter } from "./ui.js";
import { every, current } from "./app.js";

function eventRows(events, fresh = new Set()) {
  return table([
    ["Event", (e) => link("event/" + e.id, e.id)],
    ["Received", (e) => time(e.received_at)],
    ["Source", (e) => e.source],
    ["Type", (e) => e.type],
    ["Status", (e) => e.status],
    ["Delivery", (e) => (e.delivery_state ? badge(e.delivery_state) : h("span", { class: "muted" }, "unrouted"))],
    ["Destinations", (e) => e.deliveries.map((d) => h("span", {}, d.destination + " ", badge(d.state), " "))],
  ], events, { rowClass: (e) => (fresh.has(e.id) ? "new" : null), empty: "No events match." });
}

export async function eventsPage(args, started) {
  const values = Object.fromEntries(new URLSearchParams(args[0] || ""));
  const form = h("form", { class: "card filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    try {
      location.hash = "#/events/" + encodeURIComponent(new URLSearchParams(readFilter(form)).toString());
    } catch (error) {
      notify(error.message, "error");
    }
  } }, filterInputs(values), h("button", { type: "submit" }, "Search"));
  const listBox = h("div", { id: "events" });
  const liveNote = h("p", { class: "muted" });
  render(h("h1", {}, "Events"), form, liveNote, listBox);

  const { cursor, ...filter } = values;
  let events;
  let next;
  try {
    const page = await api("/admin/events" + query({ ...filter, cursor, limit: 50 }));
    events = page.events;
    next = page.next_cursor;
  } catch (error) {
    fill(listBox, errorBox(error));
    return;
  }
  if (!current(started)) return;
  const shown = () => fill(listBox, eventRows(events, fresh),
    next ? h("div", { class: "actions" }, link("events/" + new URLSearchParams({ ...values, cursor: next }).toString(), "Older events")) : null);
  const fresh = new Set();
  shown();
  // The first page follows new events while it is open (polling every 2 s; a page further back stays still).
  if (cursor) return;
  liveNote.textContent = "New events appear here as they arrive.";
  every(started, 2000, async () => {
    const page = await api("/admin/events" + query({ ...filter, limit: 50 }));
    if (!current(started)) return;
    const known = new Set(events.map((e) => e.id));
    const added = page.events.filter((e) => !known.has(e.id));
    const changed = page.events.some((e) => { const old = events.find((o) => o.id === e.id); return old && old.delivery_state !== e.delivery_state; });
    if (!added.length && !changed) return;
    for (const e of added) fresh.add(e.id);
    events = page.events;
    next = page.next_cursor;
    shown();
  });
}

function bodyView(detail) {
  const pre = h("pre", { id: "body" });
  let pretty = null;
  if (detail.body_encoding === "utf8") {
    try { pretty = JSON.stringify(JSON.parse(detail.body), null, 2); } catch { pretty = null; }
  }
  let raw = pretty === null;
  const toggle = h("button", { type: "button", class: "secondary", hidden: pretty === null, onclick: () => { raw = !raw; show(); } });
  function show() {
    pre.textContent = raw ? detail.body : pretty;
    toggle.textContent = raw ? "Pretty-print" : "Raw bytes";
  }
  show();
  return h("div", {},
    h("div", { class: "actions" },
      h("span", { class: "muted" }, detail.body_encoding === "base64" ? "Not UTF-8: shown as base64." : "UTF-8" + (pretty === null ? " (not JSON)" : ", JSON")),
      toggle,
      h("button", { type: "button", class: "secondary", onclick: () => copy(pre.textContent) }, "Copy")),
    pre);
}

export async function eventPage(args, started) {
  const id = args[0] || "";
  const detail = await api("/admin/events/" + encodeURIComponent(id));
  if (!current(started)) return;
  const destinations = (await api("/admin/destinations")).destinations.map((d) => d.name);
  if (!current(started)) return;
  const e = detail;
  const fields = [["id", e.id], ["received", time(e.received_at)], ["source", e.source], ["provider", e.provider], ["type", e.type], ["status", e.status],
    ["order id", e.order_id], ["provider event id", e.provider_event_id], ["products", (e.products || []).join(", ")], ["sequence", e.sequence],
    ["received via", e.received_via === "reconcile" ? "reconcile (recovered from the provider's API)" : "webhook"]];
  const routing = e.routing;

  async function retry(destination) {
    const answer = await api(`/admin/deliveries/${encodeURIComponent(e.id + ":" + destination)}/retry`, { method: "POST" });
    notify(`Retry of ${destination} started (${answer.replay_id}).`);
    setTimeout(() => { if (current(started)) eventPage(args, started).catch((error) => notify(error.message, "error")); }, 1500);
  }

  const timelines = e.deliveries.map((delivery) => {
    const attempts = e.attempts.filter((a) => a.destination === delivery.destination);
    return h("div", { class: "card", "data-delivery": delivery.destination },
      h("div", { class: "actions" }, h("strong", {}, delivery.destination), badge(delivery.state),
        h("button", { type: "button", class: "secondary", "data-retry": delivery.destination, onclick: () => retry(delivery.destination).catch((error) => notify(error.message, "error")) }, "Retry")),
      table([
        ["#", (a) => a.attempt, { num: true }],
        ["Time", (a) => time(a.time)],
        ["Outcome", (a) => badge(a.outcome)],
        ["Status or error", (a) => (a.status ? String(a.status) : "") + (a.error ? (a.status ? " · " : "") + a.error : "")],
        ["Duration", (a) => a.duration_ms + " ms", { num: true }],
        ["Next due", (a) => time(a.next_due)],
      ], attempts, { empty: "No attempt yet." }));
  });
  // Attempts to destinations the event is not routed to (replays with chosen destinations).
  const others = e.attempts.filter((a) => !e.deliveries.some((d) => d.destination === a.destination));

  const chosen = new Set();
  const replayForm = h("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    const body = { filter: { id: e.id }, routing: "current" };
    if (chosen.size) body.destinations = [...chosen];
    try {
      const answer = await api("/admin/replay", { method: "POST", body });
      notify(`Replay started: ${answer.replay_id} (${answer.total_deliveries} deliveries).`);
    } catch (error) {
      notify(error.message, "error");
    }
  } },
  h("h2", {}, "Replay this event"),
  h("p", { class: "muted" }, "To the destinations the rules in force route it to, or to the ones you tick."),
  h("div", { class: "actions" }, destinations.map((name) => h("label", { class: "inline" },
    h("input", { type: "checkbox", value: name, onchange: (event) => { if (event.target.checked) chosen.add(name); else chosen.delete(name); } }), name))),
  h("button", { type: "submit", id: "replay-event" }, "Replay"));

  render(
    h("h1", {}, "Event ", h("span", { class: "mono" }, e.id)),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, "Fields"), h("dl", { class: "fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === undefined || v === null || v === "" ? "-" : String(v))]))),
      h("div", { class: "card" }, h("h2", {}, "Routing decision"), routing
        ? h("dl", { class: "fields" }, h("dt", {}, "routes"), h("dd", {}, routing.routes.join(", ") || "none"), h("dt", {}, "destinations"), h("dd", {}, routing.destinations.join(", ") || "none"),
          h("dt", {}, "config version"), h("dd", { class: "mono" }, routing.config_version))
        : h("p", { class: "muted" }, "Routed nowhere."))),
    h("h2", {}, "Deliveries and attempts"), timelines.length ? timelines : h("p", { class: "muted" }, "No deliveries."),
    others.length ? [h("h2", {}, "Other attempts (replays)"), table([["Destination", (a) => a.destination], ["Time", (a) => time(a.time)], ["Outcome", (a) => badge(a.outcome)], ["Status", (a) => a.status || a.error]], others)] : null,
    replayForm,
    h("h2", {}, "Headers"),
    table([["Name", (pair) => pair[0]], ["Value", (pair) => pair[1]]], (e.headers || []).map((x) => (Array.isArray(x) ? x : [x.name, x.value]))),
    h("h2", {}, "Body"), bodyView(detail));
}
