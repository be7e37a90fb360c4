// The edge dashboard: asks for a token, polls the status API every second, and draws the
// map and the panels. Plain ES modules, no build step, nothing from outside this edge.

import { WorldMap } from "./map.js";

const TOKEN_KEY = "edge.dashboard.token";
const POLL_MS = 1000;
const EXTRAS_MS = 2000; // faults and health-check results: slower than the status
const FAULTS_PATH = "/v1/faults";
const CHECKS_PATH = "/v1/apps/{app}/checks";
const REQUEST_TIMEOUT_MS = 4000;
const APP_COLOURS = ["#58a6ff", "#c297ff", "#39c5cf", "#f778ba", "#e3b341", "#8b9cf7"];
const HEALTH_TEXT = {
  passing: "passing",
  critical: "critical",
  stopped: "stopped",
  ejected: "ejected",
  unknown: "checking",
  "no-checks": "no checks",
  maint: "maintenance",
  drain: "draining",
  // machines edge runs (process machines) and autostart / autostop
  starting: "starting",
  stopping: "stopping",
  suspended: "suspended",
  failed: "failed to start",
};

const $ = (selector) => document.querySelector(selector);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  map: null,
  regions: new Map(), // code -> {code, name, lat, lon, deprecated}
  status: null,
  paths: null, // the API's paths (from its OpenAPI document); null: unknown, ask anyway
  faults: undefined, // undefined: not asked yet; null: no fault API on this edge; else a list
  checks: new Map(), // app -> recent check results, newest first (if the edge has them)
  pollTimer: 0,
  extrasTimer: 0,
  lastOk: 0,
  generation: 0, // bumped on sign-out so stale polls stop
};

// ---- the API ----------------------------------------------------------------------------

async function api(path) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
      cache: "no-store",
      signal: controller.signal,
    });
    if (!response.ok) {
      let message = response.statusText;
      try {
        message = (await response.json()).error || message;
      } catch {
        // not JSON: keep the status text
      }
      throw new ApiError(response.status, message);
    }
    return await response.json();
  } catch (error) {
    if (error instanceof ApiError) throw error;
    const why = error.name === "AbortError" ? "timed out" : "unreachable";
    throw new ApiError(0, `the edge API is ${why}`);
  } finally {
    clearTimeout(timer);
  }
}

// ---- sign in / out ----------------------------------------------------------------------

function showLogin(message = "") {
  state.generation += 1;
  clearTimeout(state.pollTimer);
  clearTimeout(state.extrasTimer);
  $("#login").hidden = false;
  $("#dash").setAttribute("aria-hidden", "true");
  document.body.classList.add("signed-out");
  const note = $("#login-error");
  note.textContent = message;
  note.hidden = !message;
  const input = $("#token");
  input.value = "";
  input.focus();
  setConnection("idle", "signed out");
}

function hideLogin() {
  $("#login").hidden = true;
  $("#dash").removeAttribute("aria-hidden");
  document.body.classList.remove("signed-out");
}

async function signIn(token, saved = false) {
  state.token = token;
  const button = $("#login button");
  button.disabled = true;
  try {
    const status = await api("/v1/status");
    sessionStorage.setItem(TOKEN_KEY, token);
    hideLogin();
    start(status);
  } catch (error) {
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      const which = saved ? "The token saved in this tab" : "That token";
      showLogin(`${which} was refused (401: ${error.message}). Enter the admin token again.`);
    } else {
      showLogin(`Cannot check the token: ${error.message}.`);
    }
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.status = null;
  showLogin("");
}

function refused(error) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showLogin(`The edge refused the token (401: ${error.message}). Enter the admin token again.`);
}

// ---- polling ----------------------------------------------------------------------------

async function start(first) {
  state.generation += 1;
  const generation = state.generation;
  state.faults = undefined;
  state.checks = new Map();
  await Promise.all([loadRegions(), loadPaths()]);
  if (generation !== state.generation) return;
  render(first);
  state.lastOk = Date.now();
  setConnection("live", "live");
  state.pollTimer = setTimeout(() => poll(generation), POLL_MS);
  pollExtras(generation);
}

async function poll(generation) {
  try {
    const status = await api("/v1/status");
    if (generation !== state.generation) return;
    render(status);
    state.lastOk = Date.now();
    setConnection("live", "live");
  } catch (error) {
    if (generation !== state.generation) return;
    if (error.status === 401) return refused(error);
    setConnection("error", `${error.message} · retrying`);
    $("#dash").classList.add("stale");
  }
  state.pollTimer = setTimeout(() => poll(generation), POLL_MS);
}

// Optional parts of the API (faults, check results) are asked for only when this edge's
// OpenAPI document lists them; a 404 also reads as "not on this edge".
async function loadPaths() {
  try {
    const response = await fetch("/v1/openapi.json", { cache: "no-store" });
    state.paths = new Set(Object.keys((await response.json()).paths || {}));
  } catch {
    state.paths = null;
  }
}

function offers(path) {
  return state.paths === null || state.paths.has(path);
}

async function pollExtras(generation) {
  const stale = () => generation !== state.generation;
  try {
    await Promise.all([loadFaults(), loadChecks()]);
  } catch (error) {
    if (stale()) return;
    if (error.status === 401) return refused(error);
  }
  if (stale()) return;
  if (state.status) {
    renderFaults();
    renderMachines(state.status, appColours(state.status.apps));
  }
  state.extrasTimer = setTimeout(() => pollExtras(generation), EXTRAS_MS);
}

async function loadFaults() {
  if (!offers(FAULTS_PATH)) {
    state.faults = null;
    return;
  }
  try {
    const body = await api(FAULTS_PATH);
    state.faults = Array.isArray(body) ? body : body.faults || [];
  } catch (error) {
    if (error.status === 404 || error.status === 405) state.faults = null;
    else if (error.status === 401) throw error;
  }
}

async function loadChecks() {
  if (!offers(CHECKS_PATH) || !state.status) return;
  await Promise.all(state.status.apps.map(async (app) => {
    try {
      const body = await api(CHECKS_PATH.replace("{app}", encodeURIComponent(app.name)));
      state.checks.set(app.name, body.checks || []);
    } catch (error) {
      if (error.status === 401) throw error;
      state.checks.delete(app.name); // gone meanwhile, or no check results on this edge
    }
  }));
}

async function loadRegions() {
  try {
    const body = await api("/v1/platform/regions");
    state.regions = new Map(
      (body.Regions || []).map((r) => [
        r.code,
        { code: r.code, name: r.name, lat: r.latitude, lon: r.longitude, deprecated: r.deprecated },
      ]),
    );
  } catch {
    state.regions = new Map(); // the status snapshot carries coordinates too
  }
}

function setConnection(kind, text) {
  const pill = $("#conn");
  pill.dataset.state = kind;
  $("#conn-text").textContent = text;
  document.body.classList.toggle("offline", kind === "error");
  if (kind === "live") $("#dash").classList.remove("stale");
}

setInterval(() => {
  if (!state.lastOk || !state.token) return;
  const seconds = (Date.now() - state.lastOk) / 1000;
  $("#updated").textContent = seconds < 2 ? "updated just now" : `updated ${ago(seconds)} ago`;
}, 500);

// ---- rendering --------------------------------------------------------------------------

function node(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function ago(seconds) {
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))}s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

function rateText(rate) {
  if (rate >= 100) return `${Math.round(rate)}/s`;
  if (rate >= 10) return `${rate.toFixed(1)}/s`;
  return `${rate.toFixed(2)}/s`;
}

function appColours(apps) {
  const names = apps.map((a) => a.name).sort();
  const colours = new Map(names.map((name, i) => [name, APP_COLOURS[i % APP_COLOURS.length]]));
  return (app) => colours.get(app) || "#8b949e";
}

// The active faults that act on a machine: on it, or on its whole region.
function faultsOf(machine) {
  if (!state.faults) return [];
  return state.faults.filter((f) =>
    (f.scope === "machine" && f.target === machine.id && (!f.app || f.app === machine.app)) ||
    (f.scope === "region" && f.target === machine.region));
}

// One word per machine, usable as a CSS class: "no checks" becomes "no-checks".
function machineHealth(machine) {
  if (machine.ejected && ["passing", "no checks"].includes(machine.health)) return "ejected";
  return (machine.health || "unknown").replace(/ /g, "-");
}

function render(status) {
  state.status = status;
  const colourOf = appColours(status.apps);
  const machines = status.apps.flatMap((app) =>
    app.machines.map((m) => ({ ...m, app: app.name, colour: colourOf(app.name) })),
  );
  const regions = new Map(state.regions);
  for (const place of [...status.pops, ...machines]) {
    const code = place.code || place.region;
    if (!regions.has(code) && place.latitude !== undefined) {
      regions.set(code, { code, name: code, lat: place.latitude, lon: place.longitude });
    }
  }
  state.map.update({
    regions, pops: status.pops, machines, flows: status.flows, appColour: colourOf,
    replays: status.replays || [],
    faultOf: (machine) => faultsOf(machine).map((f) => f.kind).join(", "),
  });
  renderSummary(status, machines);
  renderApps(status, colourOf);
  renderMachines(status, colourOf);
  renderDecisions(status, colourOf);
  renderFaults();
  const note = $("#map-note");
  note.hidden = status.flows.length > 0;
  note.textContent = status.recent.length ? "no traffic right now" : "no traffic yet";
}

function renderSummary(status, machines) {
  const up = status.pops.filter((p) => p.up).length;
  const down = status.pops.filter((p) => !p.up).map((p) => p.code);
  const counts = {};
  for (const m of machines) counts[machineHealth(m)] = (counts[machineHealth(m)] || 0) + 1;
  const total = status.flows.reduce((sum, f) => sum + f.rate, 0);
  const health = Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([h, n]) => node("span", { class: `count h-${h}` }, `${n} ${HEALTH_TEXT[h] || h}`));
  $("#summary").replaceChildren(
    node("div", { class: "stat" }, node("b", { text: `${up}/${status.pops.length}` }), " PoPs up",
      down.length ? node("span", { class: "warn" }, ` · withdrawn: ${down.join(", ")}`) : null),
    node("div", { class: "stat" }, node("b", { text: String(machines.length) }), " machines ",
      ...health),
    node("div", { class: "stat" }, node("b", { text: total ? rateText(total) : "idle" }),
      total ? " traffic" : ""),
  );
}

function renderApps(status, colourOf) {
  const list = $("#apps");
  if (!status.apps.length) {
    list.replaceChildren(node("p", { class: "empty", text: "no apps yet" }));
    return;
  }
  const rates = new Map();
  for (const f of status.flows) rates.set(f.app, (rates.get(f.app) || 0) + f.rate);
  list.replaceChildren(
    ...status.apps.map((app) => {
      const listeners = status.listeners.filter((l) => l.app === app.name);
      const ports = [...new Map(listeners.map((l) => [l.port, l])).values()]
        .sort((a, b) => a.port - b.port);
      const broken = listeners.filter((l) => !l.bound);
      const rate = rates.get(app.name) || 0;
      return node("div", { class: "app", "data-app": app.name },
        node("div", { class: "app-head" },
          node("span", { class: "swatch", "data-colour": colourOf(app.name) }),
          node("b", { text: app.name }),
          node("span", { class: "muted", text: `${app.org} · primary ${app.primary_region}` }),
          node("span", { class: "rate", text: rate ? rateText(rate) : "" })),
        node("div", { class: "ips" },
          app.ips.length
            ? app.ips.map((ip) => node("span", { class: "ip", title: ip.region ? `region ${ip.region}` : null },
                node("span", { class: "tag", text: ip.type.replace("_", " ") }), ip.ip))
            : node("span", { class: "muted", text: "no IPs allocated" })),
        ports.length
          ? node("div", { class: "ports" }, ports.map((l) =>
              node("span", { class: "port", title: l.handlers.length ? l.handlers.join(" + ") : "raw TCP" },
                `:${l.port}`, node("span", { class: "muted", text: ` ${l.handlers.join("+") || "tcp"}` }))))
          : null,
        broken.length
          ? node("div", { class: "error-text" }, broken.map((l) =>
              node("div", { text: `${l.address}:${l.port} not bound: ${l.error || "unknown"}` })))
          : null);
    }),
  );
  for (const swatch of list.querySelectorAll(".swatch")) {
    swatch.style.backgroundColor = swatch.dataset.colour;
  }
}

// A machine's checks: the recent results (GET /v1/apps/{app}/checks, newest first) as
// ticks, oldest on the left; else the current state of each check from the status.
const MAX_TICKS = 8;

function checksCell(app, machine) {
  const rows = (state.checks.get(app) || []).filter((r) => r.machine_id === machine.id);
  const configured = (machine.services || []).flatMap((s) => s.checks || []);
  if (rows.length) {
    const recent = rows.slice(0, MAX_TICKS).reverse();
    const last = rows[0];
    return node("span", { class: "checks" },
      recent.map((r) => node("span", {
        class: `check ${r.ok ? "ok" : "fail"}`,
        title: `${clock(Date.parse(r.at) / 1000)} ${r.check}: ${r.output}` +
          (r.duration_ms !== undefined ? ` (${r.duration_ms} ms)` : ""),
      })),
      node("span", { class: `check-text ${last.ok ? "" : "fail"}`, text: last.output }));
  }
  if (configured.length) {
    return node("span", { class: "checks" }, configured.map((c) =>
      node("span", { class: `badge h-${c.state}`, title: `${c.name}: ${c.target || ""} ${c.output || ""}`.trim(),
        text: `${c.type || "check"} ${HEALTH_TEXT[c.state] || c.state}` })));
  }
  if (machine.health === "no checks") {
    return node("span", { class: "muted", text: "no checks",
      title: "no check watches this machine: it gets traffic, but nothing confirms that it listens" });
  }
  return node("span", { class: "muted", title: "no health checks reported for this machine", text: "—" });
}

function loadBar(machine) {
  const soft = machine.soft_limit;
  const hard = machine.hard_limit;
  const load = machine.load || 0;
  const top = hard || (soft ? soft * 1.25 : Math.max(load, 1));
  const level = hard && load >= hard ? "over" : soft && load >= soft ? "busy" : "ok";
  const bar = node("div", { class: `bar ${level}` }, node("span", { class: "fill" }));
  bar.firstChild.style.width = `${Math.min(100, (load / top) * 100)}%`;
  if (soft) {
    const tick = node("span", { class: "tick", title: `soft limit ${soft}` });
    tick.style.left = `${Math.min(100, (soft / top) * 100)}%`;
    bar.append(tick);
  }
  const limits = soft ? ` / ${soft}${hard ? ` · ${hard}` : ""}` : "";
  return node("div", { class: "load", title: `load ${load}, soft limit ${soft ?? "none"}, hard limit ${hard ?? "none"}` },
    bar, node("span", { class: "num" }, node("b", { text: String(load) }), limits));
}

function renderMachines(status, colourOf) {
  const body = $("#machines tbody");
  const rows = [];
  for (const app of status.apps) {
    rows.push(node("tr", { class: "group" },
      node("td", { colspan: 5 },
        node("span", { class: "swatch" }), app.name,
        node("span", { class: "muted", text: ` · ${app.machines.length} machine${app.machines.length === 1 ? "" : "s"}` }))));
    rows[rows.length - 1].querySelector(".swatch").style.backgroundColor = colourOf(app.name);
    if (!app.machines.length) {
      rows.push(node("tr", {}, node("td", { colspan: 5, class: "empty", text: "no machines" })));
    }
    for (const m of app.machines) {
      const health = machineHealth(m);
      const checks = checksCell(app.name, m);
      rows.push(node("tr", { "data-machine-row": m.id, "data-health": health },
        node("td", {}, node("span", { class: `dot h-${health}` }),
          node("span", { class: "mono", text: m.id })),
        node("td", { class: "mono", text: m.region }),
        node("td", {}, node("span", { class: `badge h-${health}`, text: HEALTH_TEXT[health] || health }),
          m.ejected && health !== "ejected" ? node("span", { class: "badge h-ejected", text: "ejected" }) : null,
          faultsOf({ ...m, app: app.name }).map((f) =>
            node("span", { class: "badge fault-badge", title: "an injected fault acts on this machine",
              text: `fault: ${f.kind.replaceAll("_", " ")}` }))),
        node("td", {}, loadBar(m)),
        node("td", {}, checks)));
    }
  }
  if (!rows.length) rows.push(node("tr", {}, node("td", { colspan: 5, class: "empty", text: "no apps yet" })));
  body.replaceChildren(...rows);
}

// Consecutive identical decisions fold into one line with a count (newest first).
function foldDecisions(recent) {
  const rows = [];
  for (const d of recent) {
    const key = [d.app, d.client_region, d.pop, d.machine_id, d.reason].join("|");
    const last = rows[rows.length - 1];
    if (last && last.key === key) {
      last.count += 1;
      last.first = d.at;
    } else {
      rows.push({ key, decision: d, count: 1, first: d.at });
    }
  }
  return rows;
}

function renderDecisions(status, colourOf) {
  const list = $("#decisions");
  $("#decisions-count").textContent = status.recent.length ? `last ${status.recent.length}` : "";
  if (!status.recent.length) {
    list.replaceChildren(node("p", { class: "empty" },
      "no traffic yet — send requests to an app's IP and port (see Apps)"));
    return;
  }
  list.replaceChildren(...foldDecisions(status.recent).map(({ decision: d, count }) => {
    const item = node("div", { class: "decision" },
      node("span", { class: "time mono", text: clock(d.at) }),
      node("span", { class: "swatch" }),
      node("span", { class: "route mono" },
        node("span", { title: "client region", text: d.client_region }), " → ",
        node("span", { title: "PoP", class: "pop-code", text: d.pop }), " → ",
        node("span", { title: `machine in ${d.machine_region}`, text: d.machine_id }),
        count > 1 ? node("span", { class: "times", text: ` ×${count}` }) : null),
      node("span", { class: `reason r-${d.reason}`, text: d.reason.replaceAll("_", " ") }));
    item.querySelector(".swatch").style.backgroundColor = colourOf(d.app);
    item.title = `${d.app}: clients in ${d.client_region} landed on ${d.pop}, served by ` +
      `${d.machine_id} (${d.machine_region}) · ${d.reason}` +
      (count > 1 ? ` · ${count} decisions in a row` : "");
    return item;
  }));
}

const TOXICS = new Set(["latency", "bandwidth", "timeout", "reset_peer", "slow_close",
  "limit_data"]);

// One line for a fault of GET /v1/faults: where it acts and its non-zero settings.
function describeFault(f) {
  if (typeof f !== "object" || f === null) return { kind: String(f), where: "", what: "" };
  const kind = f.kind || f.type || "fault";
  let where = "";
  if (f.scope && f.target) {
    where = f.scope === "machine" ? `machine ${f.target}${f.app ? ` (${f.app})` : ""}`
      : `${f.scope} ${f.target}`;
  }
  const what = [];
  if (f.latency_ms) what.push(`+${f.latency_ms} ms${f.jitter_ms ? ` ±${f.jitter_ms}` : ""}`);
  if (f.rate_kbps) what.push(`${f.rate_kbps} KB/s`);
  if (f.timeout_ms) what.push(`after ${f.timeout_ms} ms`);
  if (f.delay_ms) what.push(`close delayed ${f.delay_ms} ms`);
  if (f.bytes) what.push(`after ${f.bytes} bytes`);
  if (TOXICS.has(kind) && f.stream) what.push(f.stream);
  if (!where) {
    const known = new Set(["kind", "type", "id", "created_at"]);
    for (const [key, value] of Object.entries(f)) {
      if (!known.has(key) && value && typeof value !== "object") what.push(`${key} ${value}`);
    }
  }
  const since = f.created_at ? Date.parse(f.created_at) : NaN;
  return { kind, where, what: what.join(" · "), since: Number.isNaN(since) ? null : since };
}

function renderFaults() {
  const list = $("#faults");
  if (state.faults === undefined) return;
  if (state.faults === null || state.faults.length === 0) {
    list.replaceChildren(node("p", { class: "empty" }, "none",
      state.faults === null ? node("span", { class: "muted", text: " · this edge has no fault API" }) : null));
    list.dataset.count = "0";
    return;
  }
  list.dataset.count = String(state.faults.length);
  list.replaceChildren(...state.faults.map((fault) => {
    const { kind, where, what, since } = describeFault(fault);
    return node("div", { class: "fault", "data-fault": fault.id || kind },
      node("span", { class: "badge h-critical", text: kind.replaceAll("_", " ") }),
      node("span", { class: "fault-text" },
        node("span", { class: "mono", text: where }),
        what ? node("span", { class: "muted", text: what }) : null),
      since ? node("span", { class: "time mono muted", text: clock(since / 1000) }) : null);
  }));
}

// ---- start ------------------------------------------------------------------------------

async function main() {
  const svg = $("#map");
  let world = { land: [], water: [] };
  try {
    world = await (await fetch("/ui/world.json")).json();
  } catch {
    // a map without land is still a map of the regions
  }
  state.map = new WorldMap(svg, world);
  $("#zoom-in").addEventListener("click", () => state.map.zoomBy(1.5));
  $("#zoom-out").addEventListener("click", () => state.map.zoomBy(1 / 1.5));
  $("#zoom-reset").addEventListener("click", () => state.map.resetZoom());
  $("#signout").addEventListener("click", signOut);
  $("#login").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("#token").value.trim();
    if (token) signIn(token);
  });
  const code = takeLoginCode();
  if (code) {
    $("#login").hidden = true;
    signInWithCode(code);
  } else if (state.token) {
    $("#login").hidden = true;
    signIn(state.token, true);
  } else {
    showLogin("");
  }
}

// `edgectl ui` opens /ui#code=CODE: a one-time code, traded for a session token. The
// fragment never reaches a server; it is removed from the address bar at once, so a
// reload or a copied URL does not carry a used code.
function takeLoginCode() {
  const params = new URLSearchParams(location.hash.slice(1));
  const code = params.get("code");
  if (code !== null) history.replaceState(null, "", location.pathname + location.search);
  return code;
}

async function signInWithCode(code) {
  let answer;
  try {
    const response = await fetch("/v1/ui/session", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ code }),
      cache: "no-store",
    });
    answer = await response.json();
    if (!response.ok) throw new ApiError(response.status, answer.error || response.statusText);
  } catch (error) {
    const why = error instanceof ApiError ? error.message : "the edge API is unreachable";
    if (state.token) {
      signIn(state.token, true); // this tab was signed in already: stay so
    } else {
      showLogin(`The sign-in link did not work: ${why}.`);
    }
    return;
  }
  signIn(answer.token);
}

main();
