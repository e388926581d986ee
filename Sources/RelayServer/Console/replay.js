// Replay (filter → dry-run preview → run → progress to the end) and routes (the config in
// force, and a backtest of another routes file against stored events).
import { api } from "./api.js";
import { h, fill, render, link, badge, table, notify, errorBox, filterInputs, readFilter, checkTime } from "./ui.js";
import { every, current } from "./app.js";

/** Counts per destination ({destination: n}) as a table. */
function counts(byDestination, heading, empty) {
  return table([["Destination", (pair) => pair[0]], [heading, (pair) => pair[1], { num: true }]], Object.entries(byDestination), { empty });
}

function progressView(id, started) {
  const box = h("div", { class: "card", id: "progress" }, h("p", { class: "muted" }, "Loading progress…"));
  async function load() {
    const status = await api("/admin/replays/" + encodeURIComponent(id));
    if (!current(started)) return true;
    const done = status.succeeded + status.dead + status.skipped;
    box.setAttribute("data-state", status.state);
    const bar = h("div");
    bar.style.width = (status.deliveries ? Math.round((100 * done) / status.deliveries) : 100) + "%";
    fill(box, 
      h("div", { class: "actions" }, h("strong", { class: "mono" }, status.replay_id), badge(status.state)),
      h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": status.deliveries, "aria-valuenow": done }, bar),
      h("p", {}, `${done} of ${status.deliveries} deliveries finished: ${status.succeeded} succeeded, ${status.dead} dead, ${status.skipped} skipped; ${status.retrying} retrying, ${status.in_flight} in flight; ${status.attempts} attempts; ${status.matched_events} events matched.`));
    return status.state === "finished";
  }
  return { box, load };
}

export async function replayPage(args, started) {
  if (args[0]) {
    const { box, load } = progressView(args[0], started);
    render(h("h1", {}, "Replay"), box, h("p", {}, link("replay", "Build another replay")));
    if (!(await load())) {
      const timer = every(started, 1000, async () => { if (await load()) clearInterval(timer); });
    }
    return;
  }
  const destinations = (await api("/admin/destinations")).destinations.map((d) => d.name);
  if (!current(started)) return;
  const previewBox = h("div", { id: "preview" });
  const form = h("form", { class: "card" },
    h("div", { class: "filters" }, filterInputs({})),
    h("div", { class: "filters" },
      h("label", {}, "Routing", h("select", { name: "routing" }, h("option", { value: "current" }, "current rules"), h("option", { value: "original" }, "as originally routed"))),
      h("label", {}, "Concurrency", h("input", { type: "number", name: "concurrency", min: 1, max: 256, value: "8" })),
      h("label", {}, "Rate per second", h("input", { type: "number", name: "rate", min: "0.001", step: "any", placeholder: "unlimited" }))),
    h("p", { class: "muted" }, "Destinations (none ticked: the routed ones):"),
    h("div", { class: "actions" }, destinations.map((name) => h("label", { class: "inline" }, h("input", { type: "checkbox", name: "destination", value: name }), name))),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "preview-replay", onclick: () => submit(true) }, "Preview (dry run)"),
      h("button", { type: "button", id: "run-replay", class: "secondary", disabled: true, onclick: () => submit(false) }, "Run this replay")));

  /** The request the form describes, checked before it is sent. */
  function request() {
    const filter = readFilter(form);
    if (!Object.keys(filter).length) throw new Error("Give at least one filter: a replay of everything is refused (use Since to replay all after a time).");
    const body = { filter, routing: form.elements.routing.value };
    for (const [name, title] of [["concurrency", "Concurrency"], ["rate", "Rate per second"]]) {
      if (!form.elements[name].validity.valid) throw new Error(`${title}: not a valid number.`);
    }
    const concurrency = Number(form.elements.concurrency.value || 8);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) throw new Error("Concurrency: a whole number from 1 to 256.");
    body.concurrency = concurrency;
    if (form.elements.rate.value) {
      const rate = Number(form.elements.rate.value);
      if (!(rate >= 0.001 && rate <= 1000000)) throw new Error("Rate per second: a number from 0.001 to 1000000.");
      body.rate_per_s = rate;
    }
    const chosen = [...form.querySelectorAll("input[name=destination]:checked")].map((box) => box.value);
    if (chosen.length) body.destinations = chosen;
    return body;
  }
  let previewed = null;
  form.addEventListener("input", () => { previewed = null; form.querySelector("#run-replay").disabled = true; });
  async function submit(dryRun) {
    let body;
    try {
      body = request();
    } catch (error) {
      fill(previewBox, errorBox(error));
      return;
    }
    try {
      if (dryRun) {
        const answer = await api("/admin/replay", { method: "POST", body: { ...body, dry_run: true } });
        previewed = JSON.stringify(body);
        form.querySelector("#run-replay").disabled = answer.total_deliveries === 0;
        fill(previewBox, h("div", { class: "card" },
          h("h2", {}, "Preview"),
          h("p", { id: "preview-summary" }, `${answer.matched_events} events matched; ${answer.total_deliveries} deliveries would be sent.`),
          counts(answer.deliveries, "Deliveries", "No deliveries."),
          h("h2", {}, "Sample (oldest first)"),
          table([["Event", (s) => link("event/" + s.id, s.id)], ["Destinations", (s) => s.destinations.join(", ") || "none"]], answer.sample || [])));
      } else {
        if (previewed !== JSON.stringify(body)) return fill(previewBox, errorBox(new Error("Preview the replay again: the form changed.")));
        const answer = await api("/admin/replay", { method: "POST", body });
        notify(`Replay ${answer.replay_id} started: ${answer.total_deliveries} deliveries.`);
        location.hash = "#/replay/" + encodeURIComponent(answer.replay_id);
      }
    } catch (error) {
      fill(previewBox, errorBox(error));
    }
  }
  render(h("h1", {}, "Replay"), form, previewBox);
}

export async function routesPage(_args, started) {
  const routes = await api("/admin/routes");
  if (!current(started)) return;
  const resultBox = h("div", { id: "backtest" });
  const text = h("textarea", { name: "config", "aria-label": "routes.json to test", placeholder: "Paste a routes.json here, or choose a file." });
  const file = h("input", { type: "file", accept: ".json,application/json", "aria-label": "Upload a routes.json", onchange: async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  } });
  const since = h("input", { type: "text", name: "since", value: "24h", placeholder: "24h or RFC 3339" });
  const until = h("input", { type: "text", name: "until", placeholder: "optional" });
  const form = h("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    let config;
    try {
      config = JSON.parse(text.value);
      if (!config || typeof config !== "object" || Array.isArray(config)) throw new Error("the routes file must be a JSON object");
      if (!since.value.trim()) throw new Error("Since: give the start of the time range (e.g. 24h)");
      checkTime("since", since.value.trim());
      checkTime("until", until.value.trim());
    } catch (error) {
      fill(resultBox, errorBox(new Error("Not sent: " + error.message)));
      return;
    }
    const filter = { since: since.value.trim() };
    if (until.value.trim()) filter.until = until.value.trim();
    try {
      const answer = await api("/admin/replay", { method: "POST", body: { filter, dry_run: true, config } });
      const b = answer.backtest;
      fill(resultBox, h("div", { class: "card" },
        h("h2", {}, "Backtest"),
        h("p", { id: "backtest-summary" }, `${answer.matched_events} events in the range; ${b.changed_events} would go to different destinations.`),
        h("div", { class: "grid2" },
          h("div", {}, h("h2", {}, "Added"), counts(b.added, "Events", "None.")),
          h("div", {}, h("h2", {}, "Removed"), counts(b.removed, "Events", "None."))),
        h("h2", {}, b.changed_events > b.changes.length ? `The newest ${b.changes.length} changed events` : "Changed events"),
        table([
          ["Event", (c) => link("event/" + c.id, c.id)],
          ["When received", (c) => c.before.join(", ") || "none"],
          ["With this file", (c) => c.after.join(", ") || "none"],
          ["Added", (c) => c.added.join(", ")],
          ["Removed", (c) => c.removed.join(", ")],
        ], b.changes, { empty: "No event would change." })));
    } catch (error) {
      fill(resultBox, errorBox(error));
    }
  } },
  h("h2", {}, "Backtest a routes file"),
  h("p", { class: "muted" }, "Routes the stored events of a time range with this file (nothing is sent) and shows which events' destinations would change."),
  h("div", { class: "actions" }, file),
  text,
  h("div", { class: "filters" }, h("label", {}, "Since", since), h("label", {}, "Until", until)),
  h("div", { class: "actions" }, h("button", { type: "submit", id: "run-backtest" }, "Run the backtest")));

  render(h("h1", {}, "Routes"),
    h("div", { class: "card" },
      h("dl", { class: "fields" },
        h("dt", {}, "version"), h("dd", { class: "mono", id: "config-version" }, routes.version),
        h("dt", {}, "sources"), h("dd", {}, routes.sources.join(", ") || "none"),
        h("dt", {}, "destinations"), h("dd", {}, routes.destinations.join(", ") || "none"),
        h("dt", {}, "routes"), h("dd", {}, routes.routes.join(", ") || "none")),
      h("p", { class: "muted" }, "The config in force (secrets are never shown). Reload it with SIGHUP or POST /admin/routes/reload.")),
    form, resultBox);
}
