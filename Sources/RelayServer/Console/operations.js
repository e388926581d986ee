// Overview, deliveries and destinations: what is happening, what failed, and the pause switch.
import { api, query } from "./api.js";
import { h, fill, render, link, badge, table, notify, percent, time, errorBox, filterInputs, readFilter } from "./ui.js";
import { every, current } from "./app.js";

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

/** Bars per minute: events on the left scale, outcomes stacked beside them. */
function chart(minutes) {
  const width = 720, height = 180, left = 36, bottom = 22, top = 8;
  const max = Math.max(1, ...minutes.map((m) => Math.max(m.events, m.succeeded + m.retried + m.dead)));
  const step = (width - left) / minutes.length;
  const y = (value) => top + (height - top - bottom) * (1 - value / max);
  const bars = [];
  minutes.forEach((minute, index) => {
    const x = left + index * step;
    const w = Math.max(1, step / 2 - 1);
    bars.push(svg("rect", { x, y: y(minute.events), width: w, height: y(0) - y(minute.events), fill: "#2357c6" },
      svg("title", {}, `${minute.minute}: ${minute.events} events`)));
    let base = 0;
    for (const [key, color] of [["succeeded", "#1f8a4c"], ["retried", "#e09b2d"], ["dead", "#c2322b"]]) {
      const value = minute[key];
      if (!value) continue;
      bars.push(svg("rect", { x: x + w + 1, y: y(base + value), width: w, height: y(base) - y(base + value), fill: color },
        svg("title", {}, `${minute.minute}: ${value} ${key}`)));
      base += value;
    }
  });
  const first = minutes[0] ? minutes[0].minute.slice(11, 16) : "";
  const last = minutes.length ? minutes[minutes.length - 1].minute.slice(11, 16) : "";
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Events and delivery outcomes per minute, last hour" },
    svg("line", { x1: left, y1: y(0), x2: width, y2: y(0), stroke: "#b9c0cc" }),
    svg("text", { x: 0, y: top + 10, "font-size": 11, fill: "#5d6677" }, String(max)),
    svg("text", { x: 0, y: y(0), "font-size": 11, fill: "#5d6677" }, "0"),
    svg("text", { x: left, y: height - 6, "font-size": 11, fill: "#5d6677" }, first + " UTC"),
    svg("text", { x: width - 40, y: height - 6, "font-size": 11, fill: "#5d6677" }, last),
    ...bars);
}

function legend() {
  return h("div", { class: "legend" }, [["#2357c6", "events"], ["#1f8a4c", "succeeded"], ["#e09b2d", "retried"], ["#c2322b", "dead"]]
    .map(([color, name]) => { const swatch = h("span", { class: "swatch" }); swatch.style.background = color; return h("span", {}, swatch, name); }));
}

function destinationTable(destinations, { actions = false, reload } = {}) {
  const columns = [
    ["Destination", (d) => d.name],
    ["State", (d) => badge(d.state)],
    ["Pending", (d) => d.pending, { num: true }],
    ["In flight", (d) => d.in_flight, { num: true }],
    ["Dead", (d) => d.dead, { num: true }],
  ];
  if (actions) {
    columns.push(["Succeeded", (d) => d.succeeded, { num: true }],
      ["5 min attempts", (d) => d.attempts_5m, { num: true }],
      ["5 min success", (d) => percent(d.success_rate_5m), { num: true }],
      ["5 min p99", (d) => (d.p99_ms_5m === null ? "-" : d.p99_ms_5m + " ms"), { num: true }],
      ["Ordering", (d) => (d.ordering ? `by ${d.ordering.key}, on dead: ${d.ordering.on_dead}` : "-")],
      ["Keys blocked", (d) => (d.ordering ? d.keys_blocked : "-"), { num: true }],
      ["Rate limit", (d) => (d.rate_per_s ? `${d.rate_per_s}/s (${d.rate_limited} waited)` : "-"), { num: true }],
      ["", (d) => h("button", { type: "button", class: d.paused ? "" : "secondary", "data-destination": d.name, onclick: async (event) => {
        const button = event.currentTarget;
        button.disabled = true;
        try {
          const answer = await api(`/admin/destinations/${encodeURIComponent(d.name)}/${d.paused ? "resume" : "pause"}`, { method: "POST" });
          notify(`${answer.name}: ${answer.state}`);
          await reload();
        } catch (error) {
          notify(error.message, "error");
          button.disabled = false;
        }
      } }, d.paused ? "Resume" : "Pause")]);
  } else {
    columns.push(["5 min success", (d) => percent(d.success_rate_5m), { num: true }]);
  }
  return table(columns, destinations, { empty: "No destinations are configured." });
}

export async function overviewPage(_args, started) {
  const chartBox = h("div", { class: "card chart" });
  const destinationsBox = h("div");
  render(h("h1", {}, "Overview"), h("h2", {}, "Last hour, per minute"), chartBox, h("h2", {}, "Destinations"), destinationsBox);
  async function load() {
    const [activity, destinations] = await Promise.all([api("/admin/activity"), api("/admin/destinations")]);
    if (!current(started)) return;
    const totals = activity.minutes.reduce((sum, m) => ({ events: sum.events + m.events, succeeded: sum.succeeded + m.succeeded, retried: sum.retried + m.retried, dead: sum.dead + m.dead }), { events: 0, succeeded: 0, retried: 0, dead: 0 });
    fill(chartBox, chart(activity.minutes), legend(),
      h("p", { class: "muted", id: "totals" }, `Last hour: ${totals.events} events stored, ${totals.succeeded} deliveries succeeded, ${totals.retried} retried, ${totals.dead} dead (on the journal: since this relay started; on PostgreSQL: every instance's).`));
    fill(destinationsBox, destinationTable(destinations.destinations));
  }
  await load();
  every(started, 5000, load);
}

/** A button that POSTs /admin/deliveries/ID/ACTION (retry or skip), then reloads the page's data. */
function deliveryButton(delivery, action, label, reload, done) {
  return h("button", { type: "button", class: "secondary", ["data-" + action]: delivery, onclick: async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      notify(done(await api(`/admin/deliveries/${encodeURIComponent(delivery)}/${action}`, { method: "POST" })));
      await reload();
    } catch (error) {
      notify(error.message, "error");
      button.disabled = false;
    }
  } }, label);
}

/** Ordering keys a dead delivery holds (on_dead: hold), across destinations, with retry and skip. */
function heldKeyTable(destinations, reload) {
  const rows = destinations.flatMap((d) => d.held_keys.map((held) => ({ destination: d.name, ...held })));
  const unlisted = destinations.reduce((sum, d) => sum + Math.max(0, d.keys_blocked - d.held_keys.length), 0);
  return [
    table([
      ["Destination", (k) => k.destination],
      ["Key", (k) => k.key],
      ["Dead delivery", (k) => link("event/" + k.event_id, k.event_id)],
      ["Dead since", (k) => time(k.since)],
      ["Waiting behind it", (k) => k.waiting, { num: true }],
      ["", (k) => h("span", { class: "actions" },
        deliveryButton(k.delivery, "retry", "Retry", reload, (answer) => `Retry of ${k.delivery} started (${answer.replay_id}); key ${k.key} moves on once it succeeds.`),
        deliveryButton(k.delivery, "skip", "Skip", reload, (answer) => `${answer.delivery} skipped: key ${answer.key} moves on.`))],
    ], rows, { empty: "No ordering key is held." }),
    unlisted ? h("p", { class: "muted" }, `${unlisted} more held keys are not listed here (their dead deliveries are read back from the store as the earlier ones are resolved).`) : null,
  ];
}

export async function destinationsPage(_args, started) {
  const box = h("div");
  const heldBox = h("div", { id: "held-keys" });
  render(h("h1", {}, "Destinations"),
    h("p", { class: "muted" }, "A pause holds until resumed, across restarts and routes reloads; paused deliveries wait, they do not die. The 5-minute figures count attempts since this relay started (journal) or of every instance (PostgreSQL)."),
    box,
    h("h2", {}, "Held ordering keys"),
    h("p", { class: "muted" }, "With \"ordering\" and \"on_dead\": \"hold\", a dead delivery keeps its key's later deliveries waiting, across restarts, until it is retried (the key moves on once it succeeds) or skipped (it stays dead, the key moves on)."),
    heldBox);
  async function load() {
    const list = await api("/admin/destinations");
    if (!current(started)) return;
    fill(box, destinationTable(list.destinations, { actions: true, reload: load }));
    fill(heldBox, heldKeyTable(list.destinations, load));
  }
  await load();
  every(started, 3000, load);
}

export async function deliveriesPage(args, started) {
  const destinations = (await api("/admin/destinations")).destinations.map((d) => d.name);
  if (!current(started)) return;
  const values = Object.fromEntries(new URLSearchParams(args.length ? args[0] : "state=dead"));
  const listBox = h("div");
  const form = h("form", { class: "card filters", onsubmit: (event) => {
    event.preventDefault();
    try {
      const filter = readFilter(form);
      const state = form.elements.state.value, destination = form.elements.destination.value;
      location.hash = "#/deliveries/" + encodeURIComponent(new URLSearchParams({ ...filter, ...(state ? { state } : {}), ...(destination ? { destination } : {}) }).toString());
    } catch (error) {
      notify(error.message, "error");
    }
  } },
  h("label", {}, "Destination", h("select", { name: "destination" }, ["", ...destinations].map((name) => h("option", { value: name, selected: values.destination === name }, name || "any")))),
  h("label", {}, "State", h("select", { name: "state" }, ["dead", "pending", "succeeded", ""].map((state) => h("option", { value: state, selected: (values.state || "") === state }, state || "any")))),
  filterInputs(values, { deliveryState: false }),
  h("button", { type: "submit" }, "Show"));
  render(h("h1", {}, "Deliveries"), form, listBox);

  const { state, destination, cursor, ...filter } = values;
  let page;
  try {
    page = await api("/admin/deliveries" + query({ ...filter, state, destination, cursor, limit: 100 }));
  } catch (error) {
    fill(listBox, errorBox(error));
    return;
  }
  if (!current(started)) return;
  const selected = new Set();
  const count = h("span", { class: "muted" }, "0 selected");
  const boxes = [];
  function toggle(id, on) { if (on) selected.add(id); else selected.delete(id); count.textContent = `${selected.size} selected`; }
  const all = h("input", { type: "checkbox", "aria-label": "Select every delivery on this page", onchange: () => { for (const box of boxes) { box.checked = all.checked; toggle(box.value, all.checked); } } });

  async function replaySelected() {
    const byDestination = new Map();
    for (const delivery of page.deliveries.filter((d) => selected.has(d.id))) {
      if (!byDestination.has(delivery.destination)) byDestination.set(delivery.destination, []);
      byDestination.get(delivery.destination).push(delivery.event_id);
    }
    if (!byDestination.size) return notify("Select some deliveries first.", "error");
    const started = [];
    for (const [name, ids] of byDestination) {
      const answer = await api("/admin/replay", { method: "POST", body: { filter: { id: ids }, destinations: [name], routing: "original" } });
      started.push(answer.replay_id);
    }
    notify(`Replay started: ${started.join(", ")}`);
    location.hash = "#/replay/" + encodeURIComponent(started[started.length - 1]);
  }
  async function replayAllMatching() {
    if (destination && !state) {
      return notify("Choose a state (dead, pending or succeeded) to replay one destination's deliveries: without one, every matching event would be sent there.", "error");
    }
    const body = { filter: { ...filter, ...(state ? { delivery_state: state } : {}) }, routing: "original" };
    if (destination) body.destinations = [destination];
    if (!Object.keys(body.filter).length) return notify("Choose a state or a filter first: a replay of everything is refused.", "error");
    const preview = await api("/admin/replay", { method: "POST", body: { ...body, dry_run: true } });
    if (!confirm(`Replay ${preview.total_deliveries} deliveries of ${preview.matched_events} events?`)) return;
    const answer = await api("/admin/replay", { method: "POST", body });
    notify(`Replay started: ${answer.replay_id}`);
    location.hash = "#/replay/" + encodeURIComponent(answer.replay_id);
  }
  const rows = page.deliveries;
  fill(listBox, 
    h("div", { class: "actions" },
      h("button", { type: "button", id: "replay-selected", onclick: () => replaySelected().catch((error) => notify(error.message, "error")) }, "Replay selected"),
      h("button", { type: "button", class: "secondary", id: "replay-matching", onclick: () => replayAllMatching().catch((error) => notify(error.message, "error")) }, "Replay all that match"),
      count),
    table([
      [all, (d) => { const box = h("input", { type: "checkbox", value: d.id, "aria-label": "Select " + d.id, onchange: () => toggle(d.id, box.checked) }); boxes.push(box); return box; }],
      ["Event", (d) => link("event/" + d.event_id, d.event_id)],
      ["Destination", (d) => d.destination],
      ["State", (d) => badge(d.state)],
      ["Received", (d) => time(d.received_at)],
      ["", (d) => h("button", { type: "button", class: "secondary", "data-retry": d.id, onclick: async () => {
        try {
          const answer = await api(`/admin/deliveries/${encodeURIComponent(d.id)}/retry`, { method: "POST" });
          notify(`Retry started (${answer.replay_id}).`);
        } catch (error) {
          notify(error.message, "error");
        }
      } }, "Retry")],
    ], rows, { empty: "No deliveries match." }),
    page.next_cursor ? h("div", { class: "actions" }, link("deliveries/" + new URLSearchParams({ ...values, cursor: page.next_cursor }).toString(), "Next page")) : null);
}
