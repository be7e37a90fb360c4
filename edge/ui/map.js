// The world map of the dashboard: an equirectangular SVG drawn from lat/lon, offline.
// Land outlines come from world.json (hand-made, low resolution). Everything else
// (regions, PoPs, machines, flows) is redrawn from each status snapshot; elements are
// keyed (data-* attributes) so colours change in place and CSS transitions apply.

const NS = "http://www.w3.org/2000/svg";

export const BOUNDS = { west: -180, east: 180, north: 81, south: -57 };
const UNIT = 1000 / (BOUNDS.east - BOUNDS.west); // SVG units per degree
export const WIDTH = 1000;
export const HEIGHT = (BOUNDS.north - BOUNDS.south) * UNIT;
const MAX_ZOOM = 8;

export function project(lon, lat) {
  return [(lon - BOUNDS.west) * UNIT, (BOUNDS.north - lat) * UNIT];
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    const text = String(value);
    if (node.getAttribute(key) !== text) node.setAttribute(key, text);
  }
}

function setTitle(node, text) {
  let title = node.querySelector(":scope > title");
  if (!title) title = el("title", {}, node);
  if (title.textContent !== text) title.textContent = text;
}

const fixed = (n) => Math.round(n * 100) / 100;

function pathOf(points) {
  return points.map(([lon, lat], i) => {
    const [x, y] = project(lon, lat);
    return `${i ? "L" : "M"}${fixed(x)} ${fixed(y)}`;
  }).join("") + "Z";
}

// Where the machines of one region sit: rows of up to five, centred below its point.
export const MACHINES_PER_ROW = 5;
export function machineOffsets(count, spacing) {
  const out = [];
  for (let i = 0; i < count; i += 1) {
    const row = Math.floor(i / MACHINES_PER_ROW);
    const inRow = Math.min(MACHINES_PER_ROW, count - row * MACHINES_PER_ROW);
    const column = i - row * MACHINES_PER_ROW;
    out.push([(column - (inRow - 1) / 2) * spacing, spacing * (0.95 + row)]);
  }
  return out;
}

// A curve from a to b bulging "north" (like a great-circle arc on this projection).
function arc(a, b) {
  const [x1, y1] = a;
  const [x2, y2] = b;
  const dx = x2 - x1;
  const dy = y2 - y1;
  const length = Math.hypot(dx, dy) || 1;
  let nx = -dy / length;
  let ny = dx / length;
  if (ny > 0 || (ny === 0 && nx > 0)) {
    nx = -nx;
    ny = -ny;
  }
  const bulge = Math.min(length * 0.22, 60);
  const cx = (x1 + x2) / 2 + nx * bulge;
  const cy = (y1 + y2) / 2 + ny * bulge;
  return {
    d: `M${fixed(x1)} ${fixed(y1)}Q${fixed(cx)} ${fixed(cy)} ${fixed(x2)} ${fixed(y2)}`,
    mid: [0.25 * x1 + 0.5 * cx + 0.25 * x2, 0.25 * y1 + 0.5 * cy + 0.25 * y2],
    normal: [nx, ny], // towards the outside of the bend
    length,
  };
}

export function rateLabel(rate) {
  if (rate < 0.1) return "<0.1/s";
  return rate < 10 ? `${rate.toFixed(1)}/s` : `${Math.round(rate)}/s`;
}

export function flowWidth(rate) {
  return Math.max(1.2, Math.min(11, 1.2 + 2.4 * Math.log2(1 + rate)));
}

function boxesOverlap(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

export class WorldMap {
  constructor(svg, world) {
    this.svg = svg;
    this.view = { x: 0, y: 0, w: WIDTH, h: HEIGHT };
    this.zoom = 1;
    this.snapshot = null;
    svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    el("rect", { class: "sea", x: -WIDTH, y: -HEIGHT, width: WIDTH * 3, height: HEIGHT * 3 }, svg);
    this.graticule = el("g", { class: "graticule" }, svg);
    this.drawGraticule();
    const land = el("g", { class: "land" }, svg);
    for (const shape of world.land) {
      el("path", { d: pathOf(shape.points), "data-name": shape.name }, land);
    }
    const water = el("g", { class: "water" }, svg);
    for (const shape of world.water || []) {
      el("path", { d: pathOf(shape.points), "data-name": shape.name }, water);
    }
    this.layers = {};
    for (const name of ["regions", "flows", "replays", "clients", "pops", "machines", "labels"]) {
      this.layers[name] = el("g", { class: `layer-${name}` }, svg);
    }
    this.installZoom();
  }

  drawGraticule() {
    const g = this.graticule;
    for (let lon = -150; lon <= 150; lon += 30) {
      const [x] = project(lon, 0);
      el("line", { x1: x, x2: x, y1: 0, y2: HEIGHT, class: lon === 0 ? "meridian" : "" }, g);
    }
    for (let lat = -45; lat <= 75; lat += 15) {
      const [, y] = project(0, lat);
      el("line", { x1: 0, x2: WIDTH, y1: y, y2: y, class: lat === 0 ? "equator" : "" }, g);
    }
  }

  // ---- zoom and pan: the viewBox changes, markers keep their on-screen size ------------

  installZoom() {
    const svg = this.svg;
    svg.addEventListener("wheel", (event) => {
      event.preventDefault();
      const factor = event.deltaY < 0 ? 1.25 : 0.8;
      this.zoomAt(this.toMap(event.clientX, event.clientY), factor);
    }, { passive: false });
    let drag = null;
    svg.addEventListener("pointerdown", (event) => {
      if (this.zoom === 1) return;
      drag = { x: event.clientX, y: event.clientY, view: { ...this.view } };
      svg.setPointerCapture(event.pointerId);
      svg.classList.add("dragging");
    });
    svg.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const scale = this.view.w / svg.clientWidth;
      this.setView({
        ...drag.view,
        x: drag.view.x - (event.clientX - drag.x) * scale,
        y: drag.view.y - (event.clientY - drag.y) * scale,
      });
    });
    const end = () => {
      drag = null;
      svg.classList.remove("dragging");
    };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    svg.addEventListener("dblclick", () => this.resetZoom());
  }

  toMap(clientX, clientY) {
    const rect = this.svg.getBoundingClientRect();
    const scale = Math.max(this.view.w / rect.width, this.view.h / rect.height);
    const offsetX = (rect.width - this.view.w / scale) / 2;
    const offsetY = (rect.height - this.view.h / scale) / 2;
    return [
      this.view.x + (clientX - rect.left - offsetX) * scale,
      this.view.y + (clientY - rect.top - offsetY) * scale,
    ];
  }

  zoomAt([mx, my], factor) {
    const zoom = Math.min(MAX_ZOOM, Math.max(1, this.zoom * factor));
    const w = WIDTH / zoom;
    const h = HEIGHT / zoom;
    const rx = (mx - this.view.x) / this.view.w;
    const ry = (my - this.view.y) / this.view.h;
    this.setView({ x: mx - rx * w, y: my - ry * h, w, h });
  }

  zoomBy(factor) {
    this.zoomAt([this.view.x + this.view.w / 2, this.view.y + this.view.h / 2], factor);
  }

  resetZoom() {
    this.setView({ x: 0, y: 0, w: WIDTH, h: HEIGHT });
  }

  setView(view) {
    const x = Math.min(Math.max(view.x, 0), WIDTH - view.w);
    const y = Math.min(Math.max(view.y, 0), HEIGHT - view.h);
    this.view = { x, y, w: view.w, h: view.h };
    const zoom = WIDTH / view.w;
    const changed = Math.abs(zoom - this.zoom) > 1e-6;
    this.zoom = zoom;
    this.svg.setAttribute("viewBox", `${fixed(x)} ${fixed(y)} ${fixed(view.w)} ${fixed(view.h)}`);
    this.svg.classList.toggle("zoomed", zoom > 1.001);
    if (changed && this.snapshot) this.update(this.snapshot);
  }

  // ---- the live layers ------------------------------------------------------------------

  // snapshot: {regions: Map code -> {code, name, lat, lon}, pops: [], machines: [],
  //            flows: [], appColour: (app) -> colour}
  update(snapshot) {
    this.snapshot = snapshot;
    // Markers, text and strokes keep their on-screen size when zoomed: sizes in map units
    // are divided by the zoom (CSS uses --k for dashes and text halos).
    const k = 1 / this.zoom;
    const s = k;
    this.svg.style.setProperty("--k", String(k));
    const placed = [];
    const where = (code) => {
      const region = snapshot.regions.get(code);
      return region ? project(region.lon, region.lat) : null;
    };

    // Regions of interest: PoPs, machine regions and client regions.
    const popCodes = new Set(snapshot.pops.map((p) => p.code));
    const machineRegions = new Map();
    for (const machine of snapshot.machines) {
      if (!machineRegions.has(machine.region)) machineRegions.set(machine.region, []);
      machineRegions.get(machine.region).push(machine);
    }
    const clientRegions = new Set(snapshot.flows.map((f) => f.client_region));

    this.drawRegions(snapshot, popCodes, machineRegions, clientRegions, s);
    this.drawFlows(snapshot, where, k, placed);
    this.drawReplays(snapshot, where, k);
    this.drawClients(clientRegions, popCodes, machineRegions, where, s, k);
    this.drawPops(snapshot, where, s, placed);
    this.drawMachines(snapshot, machineRegions, where, s, k, placed);
    this.drawLabels(snapshot, popCodes, machineRegions, clientRegions, where, s, placed);
  }

  drawRegions(snapshot, popCodes, machineRegions, clientRegions, s) {
    const layer = this.layers.regions;
    const seen = new Set();
    for (const region of snapshot.regions.values()) {
      seen.add(region.code);
      let dot = layer.querySelector(`[data-region="${region.code}"]`);
      if (!dot) {
        dot = el("circle", { "data-region": region.code }, layer);
        setTitle(dot, `${region.code} · ${region.name}`);
      }
      const [x, y] = project(region.lon, region.lat);
      const busy = popCodes.has(region.code) || machineRegions.has(region.code);
      setAttrs(dot, {
        cx: fixed(x), cy: fixed(y), r: fixed(1.6 * s),
        class: `region${busy ? " busy" : ""}${region.deprecated ? " deprecated" : ""}`,
      });
    }
    for (const dot of [...layer.children]) {
      if (!seen.has(dot.dataset.region)) dot.remove();
    }
  }

  // fly-replay: an arc from the replaying machine's region to the target's, per app.
  drawReplays(snapshot, where, k) {
    const layer = this.layers.replays;
    const seen = new Set();
    for (const replay of snapshot.replays || []) {
      const key = `${replay.app}|${replay.from_region}|${replay.to_region}|${replay.result}`;
      const from = where(replay.from_region);
      const to = where(replay.to_region);
      if (!from || !to || (from[0] === to[0] && from[1] === to[1])) continue;
      seen.add(key);
      let path = [...layer.children].find((node) => node.dataset.replay === key);
      if (!path) path = el("path", { class: "replay", "data-replay": key }, layer);
      const bend = arc(to, from); // the other way round: bends apart from the request's flow
      setAttrs(path, {
        d: bend.d,
        stroke: snapshot.appColour(replay.app),
        "stroke-width": fixed(Math.min(1.2 + replay.count * 0.2, 4) * k),
      });
      setTitle(path, `${replay.app}: fly-replay from ${replay.from_region} to ` +
        `${replay.to_region} (${replay.result}) · ${replay.count} in the last 30 s`);
    }
    for (const path of [...layer.children]) {
      if (!seen.has(path.dataset.replay)) path.remove();
    }
  }

  drawFlows(snapshot, where, k, placed) {
    const layer = this.layers.flows;
    const seen = new Set();
    for (const flow of snapshot.flows) {
      const key = `${flow.app}|${flow.client_region}|${flow.pop}|${flow.machine_region}`;
      const client = where(flow.client_region);
      const pop = where(flow.pop);
      const machine = where(flow.machine_region);
      if (!client || !pop || !machine) continue;
      seen.add(key);
      let g = [...layer.children].find((node) => node.dataset.flow === key);
      if (!g) {
        g = el("g", { class: "flow", "data-flow": key, "data-app": flow.app }, layer);
        el("path", { class: "ingress" }, g);
        el("path", { class: "backhaul" }, g);
        el("circle", { class: "local" }, g);
        el("text", { class: "rate" }, g);
      }
      const [ingress, backhaul, local, rate] = g.children;
      const width = flowWidth(flow.rate) * k;
      const colour = snapshot.appColour(flow.app);
      const samePlace = (a, b) => a[0] === b[0] && a[1] === b[1];
      const inward = samePlace(client, pop) ? null : arc(client, pop);
      const onward = samePlace(pop, machine) ? null : arc(pop, machine);
      setAttrs(ingress, {
        d: inward ? inward.d : "",
        "stroke-width": fixed(Math.max(width * 0.6, 1 * k)),
        stroke: colour,
      });
      setAttrs(backhaul, {
        d: onward ? onward.d : "",
        "stroke-width": fixed(width),
        stroke: colour,
      });
      // The rate, written along the longest leg (local flows show it in their title only).
      const longest = [onward, inward].filter(Boolean).sort((a, b) => b.length - a.length)[0];
      const leg = longest && longest.length * this.zoom > 70 ? longest : null;
      const text = leg ? rateLabel(flow.rate) : "";
      if (rate.textContent !== text) rate.textContent = text;
      if (leg) {
        const font = 9.5 * k;
        const [nx, ny] = leg.normal;
        const away = width / 2 + 4 * k;
        const anchor = nx > 0.35 ? "start" : nx < -0.35 ? "end" : "middle";
        const x = leg.mid[0] + nx * away;
        const y = leg.mid[1] + ny * away + (ny > 0 ? font * 0.8 : font * 0.3 * (1 + ny));
        setAttrs(rate, { x: fixed(x), y: fixed(y), "text-anchor": anchor,
          "font-size": fixed(font), fill: colour });
        const w = text.length * font * 0.62;
        const left = anchor === "start" ? x : anchor === "end" ? x - w : x - w / 2;
        placed.push({ x: left, y: y - font * 0.8, w, h: font });
      }
      const isLocal = samePlace(client, pop) && samePlace(pop, machine);
      setAttrs(local, {
        cx: fixed(pop[0]), cy: fixed(pop[1]),
        r: fixed(isLocal ? 17 * k : 0),
        "stroke-width": fixed(width * 0.8),
        stroke: colour,
      });
      setTitle(g, `${flow.app}: clients in ${flow.client_region} → PoP ${flow.pop} → ` +
        `machines in ${flow.machine_region} · ${flow.rate.toFixed(2)}/s`);
    }
    for (const g of [...layer.children]) {
      if (!seen.has(g.dataset.flow)) g.remove();
    }
  }

  drawClients(clientRegions, popCodes, machineRegions, where, s, k) {
    const layer = this.layers.clients;
    const seen = new Set();
    for (const code of clientRegions) {
      const point = where(code);
      if (!point) continue;
      seen.add(code);
      let ring = layer.querySelector(`[data-client-region="${code}"]`);
      if (!ring) {
        ring = el("circle", { class: "client", "data-client-region": code }, layer);
        setTitle(ring, `clients in ${code}`);
      }
      const crowded = popCodes.has(code) || machineRegions.has(code);
      setAttrs(ring, {
        cx: fixed(point[0]), cy: fixed(point[1]),
        r: fixed((crowded ? 8.5 : 3.6) * s), "stroke-width": fixed(1.2 * k),
      });
    }
    for (const ring of [...layer.children]) {
      if (!seen.has(ring.dataset.clientRegion)) ring.remove();
    }
  }

  drawPops(snapshot, where, s, placed) {
    const layer = this.layers.pops;
    const seen = new Set();
    for (const pop of snapshot.pops) {
      const point = where(pop.code);
      if (!point) continue;
      seen.add(pop.code);
      let mark = layer.querySelector(`[data-pop="${pop.code}"]`);
      if (!mark) mark = el("rect", { "data-pop": pop.code }, layer);
      const size = 7.5 * s;
      setAttrs(mark, {
        x: fixed(point[0] - size / 2), y: fixed(point[1] - size / 2),
        width: fixed(size), height: fixed(size),
        transform: `rotate(45 ${fixed(point[0])} ${fixed(point[1])})`,
        class: `pop ${pop.up ? "up" : "down"}`,
        "data-up": pop.up ? "true" : "false",
      });
      setTitle(mark, `PoP ${pop.code}: ${pop.up ? "announcing" : "withdrawn"}`);
      placed.push({ x: point[0] - size * 0.75, y: point[1] - size * 0.75, w: size * 1.5,
        h: size * 1.5 });
    }
    for (const mark of [...layer.children]) {
      if (!seen.has(mark.dataset.pop)) mark.remove();
    }
  }

  drawMachines(snapshot, machineRegions, where, s, k, placed) {
    const layer = this.layers.machines;
    const seen = new Set();
    for (const [code, machines] of machineRegions) {
      const point = where(code);
      if (!point) continue;
      const ordered = [...machines].sort((a, b) => (a.app + a.id).localeCompare(b.app + b.id));
      const offsets = machineOffsets(ordered.length, 17 * s);
      ordered.forEach((machine, i) => {
        seen.add(machine.id);
        let g = layer.querySelector(`[data-machine-id="${CSS.escape(machine.id)}"]`);
        if (!g) {
          g = el("g", { class: "machine", "data-machine-id": machine.id }, layer);
          el("circle", { class: "halo" }, g);
          el("circle", { class: "dot" }, g);
        }
        const [halo, dot] = g.children;
        const x = point[0] + offsets[i][0];
        const y = point[1] + offsets[i][1];
        const word = (machine.health || "unknown").replace(/ /g, "-"); // "no checks" -> no-checks
        const health = machine.ejected && ["passing", "no-checks"].includes(word) ? "ejected" : word;
        const fault = snapshot.faultOf ? snapshot.faultOf(machine) : "";
        setAttrs(g, { "data-health": health, "data-app": machine.app, "data-region": code,
          "data-fault": fault });
        setAttrs(halo, { cx: fixed(x), cy: fixed(y), r: fixed(7.6 * s), stroke: machine.colour,
          "stroke-width": fixed(1.5 * k) });
        setAttrs(dot, { cx: fixed(x), cy: fixed(y), r: fixed(5.6 * s) });
        const limit = machine.soft_limit == null ? "" : ` of ${machine.soft_limit}`;
        setTitle(g, `${machine.id} (${machine.app}) in ${code}: ${health}, load ${machine.load}` +
          `${limit}${fault ? ` · fault: ${fault}` : ""}`);
        const r = 8 * s;
        placed.push({ x: x - r, y: y - r, w: 2 * r, h: 2 * r });
      });
    }
    for (const g of [...layer.children]) {
      if (!seen.has(g.dataset.machineId)) g.remove();
    }
  }

  // Region codes: every region of interest gets a label where it fits (right, left, above,
  // below its markers); the other catalogue regions get a faint label only where free.
  drawLabels(snapshot, popCodes, machineRegions, clientRegions, where, s, placed) {
    const layer = this.layers.labels;
    layer.replaceChildren();
    const font = 10.5 * s;
    const important = [];
    const minor = [];
    for (const region of snapshot.regions.values()) {
      const interesting = popCodes.has(region.code) || machineRegions.has(region.code) ||
        clientRegions.has(region.code);
      (interesting ? important : minor).push(region);
    }
    const view = this.view;
    const tryPlace = (region, cls, force) => {
      const [x, y] = where(region.code);
      const w = region.code.length * font * 0.62;
      const h = font;
      const pad = 6 * s;
      const count = machineRegions.has(region.code) ? machineRegions.get(region.code).length : 0;
      const rows = Math.ceil(count / MACHINES_PER_ROW);
      const below = count ? 17 * s * (0.95 + rows) : pad;
      const candidates = [
        { x: x + pad, y: y - h / 2, anchor: "start" },
        { x: x - pad - w, y: y - h / 2, anchor: "end" },
        { x: x - w / 2, y: y - pad - h, anchor: "middle" },
        { x: x - w / 2, y: y + below, anchor: "middle" },
        { x: x + pad, y: y - pad - h, anchor: "start" },
        { x: x - pad - w, y: y + pad, anchor: "end" },
      ];
      for (const c of candidates) {
        const box = { x: c.x, y: c.y, w, h };
        if (box.x < view.x || box.x + w > view.x + view.w) continue;
        if (placed.some((other) => boxesOverlap(box, other))) continue;
        return this.label(layer, region, cls, box, c.anchor, font, placed);
      }
      if (force) {
        const c = candidates[0];
        return this.label(layer, region, cls, { x: c.x, y: c.y, w, h }, c.anchor, font, placed);
      }
      return null;
    };
    for (const region of important) {
      const cls = popCodes.has(region.code) ? "label pop-label" : "label";
      tryPlace(region, cls, true);
    }
    for (const region of minor) {
      if (!region.deprecated) tryPlace(region, "label minor", false);
    }
  }

  label(layer, region, cls, box, anchor, font, placed) {
    const x = anchor === "start" ? box.x : anchor === "end" ? box.x + box.w : box.x + box.w / 2;
    const text = el("text", {
      x: fixed(x), y: fixed(box.y + box.h * 0.82), class: cls, "text-anchor": anchor,
      "font-size": fixed(font), "data-label": region.code,
    }, layer);
    text.textContent = region.code;
    placed.push(box);
    return text;
  }
}
