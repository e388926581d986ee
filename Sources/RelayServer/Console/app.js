// The console's entry: the token prompt, the router (#/page/…), and one refresh timer per page.
import { api, AuthError, setToken, token } from "./api.js";
import { h, render, errorBox, notify } from "./ui.js";
import { overviewPage, deliveriesPage, destinationsPage } from "./operations.js";
import { eventsPage, eventPage } from "./events.js";
import { replayPage, routesPage } from "./replay.js";

const pages = {
  overview: overviewPage,
  events: eventsPage,
  event: eventPage,
  deliveries: deliveriesPage,
  replay: replayPage,
  destinations: destinationsPage,
  routes: routesPage,
};

/** Timers and pollers of the page on screen; cleared when another page opens. A page that is
 *  no longer on screen (`started` is old) starts none. A failed poll is a notice, not a new page:
 *  the next poll may well succeed (a relay restarting). */
const running = new Set();
export function every(started, milliseconds, work) {
  if (!current(started)) return null;
  const timer = setInterval(() => {
    work().catch((error) => (error instanceof AuthError ? handle(error) : notify(error.message, "error")));
  }, milliseconds);
  running.add(timer);
  return timer;
}

let generation = 0;
/** Whether a page that started loading is still the one on screen. */
export function current(started) { return started === generation; }

function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  return { name: pages[name] ? name : "overview", args: rest.map(decodeURIComponent) };
}

async function show() {
  for (const timer of running) clearInterval(timer);
  running.clear();
  const started = ++generation;
  const { name, args } = route();
  for (const item of document.querySelectorAll("#nav a")) {
    const target = item.getAttribute("href").slice(2);
    if (target === name || (name === "event" && target === "events")) item.setAttribute("aria-current", "page");
    else item.removeAttribute("aria-current");
  }
  try {
    await pages[name](args, started);
  } catch (error) {
    handle(error);
  }
}

function handle(error) {
  if (error instanceof AuthError) return askForToken(token() ? "The token was refused: " + error.message : null);
  render(errorBox(error));
}

/** The token prompt. A wrong token shows the error and nothing else. */
function askForToken(problem) {
  for (const timer of running) clearInterval(timer);
  running.clear();
  generation++;
  document.getElementById("logout").hidden = true;
  const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true, "aria-label": "Admin token" });
  const form = h("form", { class: "card login", onsubmit: async (event) => {
    event.preventDefault();
    const given = input.value.trim();
    if (!given) return;
    try {
      await api("/admin/destinations", { tokenOverride: given });
    } catch (error) {
      setToken("");
      return askForToken(error instanceof AuthError ? "Wrong token: " + error.message : error.message);
    }
    setToken(given);
    document.getElementById("logout").hidden = false;
    show();
  } },
  h("h1", {}, "Admin token"),
  h("p", { class: "muted" }, "This relay runs with RELAY_ADMIN_TOKEN. Enter it to use the console; it is kept in this tab only."),
  problem ? h("div", { class: "error", role: "alert" }, problem) : null,
  h("label", {}, "Token", input),
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Open the console")));
  render(form);
  input.focus();
}

document.getElementById("logout").addEventListener("click", () => {
  setToken("");
  askForToken(null);
});
window.addEventListener("hashchange", () => { show(); document.getElementById("app").focus(); });
window.addEventListener("unhandledrejection", (event) => { event.preventDefault(); handle(event.reason); });

// First, whether the admin API answers at all without (or with the kept) token.
api("/admin/destinations").then(() => {
  document.getElementById("logout").hidden = !token();
  show();
}, handle);
