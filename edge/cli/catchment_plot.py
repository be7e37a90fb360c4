"""Drawing a catchment (``GET /v1/apps/{app}/catchment``) with matplotlib, offline.

A world map on an equirectangular projection with the flows client region -> PoP ->
machine region sized by clients, and below it the modelled RTT: its distribution over
the clients (median and p95 marked) and, per client region, how much of it is the way
to the PoP and how much the PoP's way to the machine. The Agg canvas is used directly
(no pyplot, no display, no network); continent outlines come from the dashboard's
``edge/ui/world.json`` when it is installed, else the map has only its graticule.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

OCEAN, LAND, COAST = "#eef3f8", "#dde3ea", "#b9c3cf"
ACCESS, BACKHAUL = "#3b7dd8", "#e8743b"  # client -> PoP, PoP -> machine
POP_COLOUR, INK, MUTED = "#1f2d4d", "#27313f", "#8a94a3"
HEALTH = {"healthy": "#2e9e5b", "degraded": "#e0a500", "down": "#c8d0d9"}
Point = tuple[float, float]  # (longitude, latitude)
Box = tuple[float, float, float, float]  # west, east, south, north (degrees)
WORLD: Box = (-180.0, 180.0, -58.0, 80.0)
# Crowded areas drawn again, enlarged, in empty ocean: (title, area, where on the map).
CLOSE_UPS: tuple[tuple[str, Box, Box], ...] = (
    ("Europe", (-11.0, 30.0, 42.0, 62.0), (-178.0, -84.0, -56.0, -10.0)),
    ("North America, east", (-99.0, -70.0, 31.0, 47.0), (52.0, 110.0, -56.0, -24.0)),
)
POINTS_PER_DEGREE = 2.74  # the world map's scale on a 14-inch-wide figure
# Where a label may go around its place: offset (points), alignment.
Spot = tuple[int, int, str, str]
LABEL_SPOTS: tuple[Spot, ...] = (
    (6, 3, "left", "bottom"),
    (6, -3, "left", "top"),
    (-6, 3, "right", "bottom"),
    (-6, -3, "right", "top"),
)


def draw_catchment(answer: dict[str, Any], path: Path) -> None:
    """Write the picture of ``answer`` (the API's JSON) to ``path`` as a PNG."""
    figure = Figure(figsize=(14, 10.6), dpi=110)  # laid out by hand: layout engines are slow
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(
        2, 2, height_ratios=(5.9, 3.9), width_ratios=(1.15, 1),
        left=0.05, right=0.985, top=0.945, bottom=0.06, hspace=0.2, wspace=0.22,
    )  # fmt: skip
    world = figure.add_subplot(grid[0, :])
    draw_map(world, answer)
    draw_distribution(figure.add_subplot(grid[1, 0]), answer)
    draw_breakdown(figure.add_subplot(grid[1, 1]), answer)
    figure.suptitle(_title(answer), y=0.985, fontsize=15, color=INK, fontweight="bold")
    figure.savefig(path, format="png", facecolor="white")


def _title(answer: dict[str, Any]) -> str:
    summary = answer["summary"]
    text = (
        f"Catchment of {answer['app']} (port {answer['port']}, {answer['strategy']}): "
        f"{summary['clients']} clients, weights: {answer['weights']}"
    )
    if summary["median_ms"] is not None:
        text += f"  ·  median {summary['median_ms']:.0f} ms, p95 {summary['p95_ms']:.0f} ms"
    return text


# --- the map -----------------------------------------------------------------------------


def world_outlines() -> list[tuple[str, list[Point]]]:
    """("land" | "water", points) from ``edge/ui/world.json``; [] when absent or odd."""
    try:
        text = resources.files("edge").joinpath("ui/world.json").read_text(encoding="utf-8")
        data = json.loads(text)
        return [
            (kind, [(float(lon), float(lat)) for lon, lat in shape["points"]])
            for kind in ("land", "water")
            for shape in data.get(kind, [])
        ]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []


@dataclass(frozen=True, slots=True)
class MapLayer:
    """What every drawing step of one map (the world or a close-up) needs."""

    ax: Axes
    answer: dict[str, Any]
    peak: int  # the most clients on one flow
    labelled: Callable[[Point], bool]  # whether a place gets its name on this map
    scale: float = POINTS_PER_DEGREE

    def at(self, code: str) -> Point:
        place = self.answer["places"][code]
        return float(place["longitude"]), float(place["latitude"])


def draw_map(ax: Axes, answer: dict[str, Any]) -> None:
    """The world, with close-ups of crowded areas drawn in empty ocean."""
    peak = max([leg["clients"] for row in answer["regions"] for leg in row["served"]] + [1])
    crowded = [area for _, area, _ in CLOSE_UPS]
    _base_map(ax, WORLD)
    _draw_layers(MapLayer(ax, answer, peak, lambda p: not any(_inside(p, a) for a in crowded)))
    for title, area, spot in CLOSE_UPS:
        inset = ax.inset_axes(
            (spot[0], spot[2], spot[1] - spot[0], spot[3] - spot[2]), transform=ax.transData
        )
        _base_map(inset, area)
        inset.set_title(title, fontsize=8, color=MUTED, loc="left", pad=2)
        zoom = (spot[1] - spot[0]) / (area[1] - area[0])
        _draw_layers(MapLayer(inset, answer, peak, lambda p: True, POINTS_PER_DEGREE * zoom))
        outline = Rectangle(
            (area[0], area[2]), area[1] - area[0], area[3] - area[2],
            fill=False, ec=MUTED, lw=0.8, ls="--", zorder=9,
        )  # fmt: skip
        ax.add_patch(outline)
    ax.legend(
        handles=_legend(), loc="upper center", bbox_to_anchor=(0.5, -0.01), ncols=4,
        fontsize=9, frameon=False,
    )  # fmt: skip


def _inside(point: Point, area: Box) -> bool:
    return area[0] <= point[0] <= area[1] and area[2] <= point[1] <= area[3]


def _base_map(ax: Axes, area: Box) -> None:
    ax.set_facecolor(OCEAN)
    outlines = world_outlines()
    for kind, colour in (("land", LAND), ("water", OCEAN)):
        shapes = [points for k, points in outlines if k == kind]
        ax.add_collection(PolyCollection(shapes, fc=colour, ec=COAST, lw=0.6, zorder=1))
    graticule = [[(lon, -90), (lon, 90)] for lon in range(-180, 181, 30)]
    graticule += [[(-180, lat), (180, lat)] for lat in range(-60, 81, 30)]
    ax.add_collection(LineCollection(graticule, colors=COAST, lw=0.4, ls=(0, (2, 3)), zorder=1.5))
    ax.set_xlim(area[0], area[1])
    ax.set_ylim(area[2], area[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(COAST)


def _draw_layers(layer: MapLayer) -> None:
    for row in layer.answer["regions"]:
        _draw_flows(layer, row)
    _draw_clients(layer)
    _draw_machines(layer)
    _draw_pops(layer)
    _draw_labels(layer)


def arc(a: Point, b: Point, bend: float = 0.18, steps: int = 32) -> tuple[list[float], ...]:
    """A gentle curve from ``a`` to ``b`` taking the short way round (it may leave ±180)."""
    (x0, y0), (x1, y1) = a, b
    if x1 - x0 > 180:
        x1 -= 360
    elif x0 - x1 > 180:
        x1 += 360
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    dx, dy = x1 - x0, y1 - y0
    cx, cy = mx - dy * bend, my + dx * bend  # control point off to the left of a -> b
    ts = [i / steps for i in range(steps + 1)]
    xs = [(1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t**2 * x1 for t in ts]
    ys = [(1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t**2 * y1 for t in ts]
    return xs, ys


def _line(layer: MapLayer, a: Point, b: Point, colour: str, clients: int) -> None:
    if a == b or not clients:
        return
    xs, ys = arc(a, b)
    width = 0.8 + 7.0 * math.sqrt(clients / layer.peak)
    shifts = [0.0]  # a flow across ±180 shows on both edges
    if min(xs) < -180:
        shifts.append(360.0)
    if max(xs) > 180:
        shifts.append(-360.0)
    for shift in shifts:
        layer.ax.plot(
            [x + shift for x in xs], ys, color=colour, lw=width, alpha=0.55,
            solid_capstyle="round", zorder=3,
        )  # fmt: skip


def _draw_flows(layer: MapLayer, row: dict[str, Any]) -> None:
    if row["pop"] is None:
        return
    client, pop = layer.at(row["region"]), layer.at(row["pop"])
    _line(layer, client, pop, ACCESS, sum(leg["clients"] for leg in row["served"]))
    for leg in row["served"]:
        _line(layer, pop, layer.at(leg["machine_region"]), BACKHAUL, leg["clients"])


def _draw_clients(layer: MapLayer) -> None:
    rows = layer.answer["regions"]
    most = max([row["clients"] for row in rows] + [1])
    xs, ys = zip(*(layer.at(row["region"]) for row in rows), strict=True)
    sizes = [25 + 600 * row["clients"] / most for row in rows]
    layer.ax.scatter(xs, ys, s=sizes, color=ACCESS, alpha=0.28, lw=0, zorder=4)
    layer.ax.scatter(xs, ys, s=9, color=ACCESS, zorder=6)


def _machine_regions(answer: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Per machine region: (machines up and healthy, machines)."""
    counts: dict[str, tuple[int, int]] = {}
    for machine in answer["machines"]:
        up, total = counts.get(machine["region"], (0, 0))
        counts[machine["region"]] = (up + (machine["started"] and machine["healthy"]), total + 1)
    return counts


def _draw_machines(layer: MapLayer) -> None:
    regions = _machine_regions(layer.answer)
    if not regions:
        return
    xs, ys = zip(*map(layer.at, regions), strict=True)
    colours = [
        HEALTH["healthy" if up == total else "degraded" if up else "down"]
        for up, total in regions.values()
    ]
    layer.ax.scatter(xs, ys, s=170, marker="s", color=colours, ec="white", lw=1.5, zorder=7)


def _draw_pops(layer: MapLayer) -> None:
    for up, shape, colour in ((True, "^", POP_COLOUR), (False, "X", MUTED)):
        points = [layer.at(pop["code"]) for pop in layer.answer["pops"] if pop["up"] == up]
        if points:
            xs, ys = zip(*points, strict=True)
            layer.ax.scatter(xs, ys, s=70, marker=shape, color=colour, ec="white", lw=1, zorder=7.5)


def _draw_labels(layer: MapLayer) -> None:
    """One name per place (machine regions with their count up), placed to avoid clashes."""
    machines = _machine_regions(layer.answer)
    codes = dict.fromkeys(
        [*machines, *(p["code"] for p in layer.answer["pops"])]
        + [row["region"] for row in layer.answer["regions"]]
    )
    dots = [layer.at(code) for code in codes]
    taken: list[Box] = []
    for code in codes:
        point = layer.at(code)
        if not layer.labelled(point):
            continue
        up, total = machines.get(code, (0, 0))
        text, size = (f"{code} {up}/{total}", 9) if total else (code, 8)
        box, (dx, dy, ha, va) = _label_spot(
            point, len(text) * size * 0.62, size, dots, taken, layer.scale
        )
        taken.append(box)
        layer.ax.annotate(
            text, point, xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
            zorder=8, color=INK, fontsize=size, fontweight="bold" if total else "normal",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.6},
        )  # fmt: skip


def _label_spot(
    point: Point, width: float, height: float, dots: list[Point], taken: list[Box], scale: float
) -> tuple[Box, Spot]:
    """The first spot around ``point`` whose box (degrees) covers the fewest dots and labels."""
    best: tuple[int, Box, Spot] | None = None
    w, h, pad = width / scale, height * 1.2 / scale, 5 / scale
    for spot in LABEL_SPOTS:
        dx, dy, ha, va = spot
        x0 = point[0] + dx / scale - (w if ha == "right" else 0.0)
        y0 = point[1] + dy / scale - (h if va == "top" else 0.0)
        box = (x0, x0 + w, y0, y0 + h)
        grown = (x0 - pad, x0 + w + pad, y0 - pad, y0 + h + pad)
        clashes = sum(_inside(dot, grown) for dot in dots if dot != point)
        clashes += sum(_overlap(box, other) for other in taken)
        if best is None or clashes < best[0]:
            best = (clashes, box, spot)
    assert best is not None
    return best[1], best[2]


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _legend() -> list[Line2D]:
    def marker(label: str, shape: str, colour: str, size: float = 9) -> Line2D:
        return Line2D([], [], ls="", marker=shape, color=colour, markersize=size, label=label)

    return [
        marker("client region (area: clients)", "o", ACCESS),
        marker("PoP up", "^", POP_COLOUR),
        marker("PoP withdrawn", "X", MUTED),
        marker("machine region, all up (label: up/total)", "s", HEALTH["healthy"]),
        marker("machines: some down", "s", HEALTH["degraded"]),
        marker("machines: none up", "s", HEALTH["down"]),
        Line2D([], [], color=ACCESS, lw=3, alpha=0.6, label="client → PoP (width: clients)"),
        Line2D([], [], color=BACKHAUL, lw=3, alpha=0.6, label="PoP → machine region"),
    ]


# --- the latency -------------------------------------------------------------------------


def draw_distribution(ax: Axes, answer: dict[str, Any]) -> None:
    """A histogram of clients by modelled RTT, its cumulative share, median and p95."""
    points = [(d["rtt_ms"], d["clients"]) for d in answer["distribution"]]
    summary = answer["summary"]
    ax.set_title("Modelled RTT over the clients", fontsize=11, color=INK, loc="left")
    if not points:
        ax.text(0.5, 0.5, "no client was served", ha="center", transform=ax.transAxes)
        return
    top = max(rtt for rtt, _ in points)
    step = 10.0 if top <= 400 else 25.0
    bins = [i * step for i in range(int(top // step) + 2)]
    values, weights = zip(*points, strict=True)
    ax.hist(values, bins=bins, weights=weights, color=ACCESS, alpha=0.35, ec=ACCESS)
    ax.set_xlabel("client → PoP → machine RTT (ms)", fontsize=9)
    ax.set_ylabel("clients", fontsize=9)
    share = ax.twinx()
    total, xs, ys = sum(weights), [0.0], [0.0]
    for rtt, clients in points:
        xs += [rtt, rtt]
        ys += [ys[-1], ys[-1] + 100.0 * clients / total]
    share.plot([*xs, bins[-1]], [*ys, 100.0], color=INK, lw=1.5)
    share.set_ylim(0, 103)
    share.set_ylabel("cumulative share of clients (%)", fontsize=9)
    _mark(ax, summary["median_ms"], "median", "-", -14, bins[-1])
    _mark(ax, summary["p95_ms"], "p95", "--", -28, bins[-1])
    ax.set_xlim(0, bins[-1])
    _tidy(ax, share)


def _mark(ax: Axes, value: float, label: str, style: str, down: int, right: float) -> None:
    ax.axvline(value, color=BACKHAUL, ls=style, lw=1.6)
    left = value > 0.7 * right  # near the right edge: write it on the left
    ax.annotate(
        f"{label} {value:.0f} ms", (value, 1.0), xycoords=("data", "axes fraction"),
        xytext=(-4 if left else 4, down), textcoords="offset points", fontsize=9,
        color=BACKHAUL, ha="right" if left else "left",
    )  # fmt: skip


def draw_breakdown(ax: Axes, answer: dict[str, Any]) -> None:
    """Per client region: the way to the PoP and the PoP's way to the machine, stacked."""
    rows = [row for row in answer["regions"] if row["served"]]
    rows.sort(key=lambda row: _mean(row, "rtt_ms"))
    names = [f"{row['region']} ({row['clients']})" for row in rows]
    access = [row["access_ms"] for row in rows]
    backhaul = [_mean(row, "backhaul_ms") for row in rows]
    ax.barh(names, access, color=ACCESS, alpha=0.8, label="client → PoP")
    ax.barh(names, backhaul, left=access, color=BACKHAUL, alpha=0.8, label="PoP → machine")
    for index, row in enumerate(rows):
        path = f"{row['pop']} → {'/'.join(leg['machine_region'] for leg in row['served'])}"
        total = access[index] + backhaul[index]
        ax.text(total + 2, index, path, va="center", fontsize=7.5, color=MUTED)
    ax.set_title(
        "RTT by client region (clients), via PoP → machine region",
        fontsize=11,
        color=INK,
        loc="left",
    )
    ax.set_xlabel("ms", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlim(0, max([a + b for a, b in zip(access, backhaul, strict=True)] + [1]) * 1.25)
    ax.legend(fontsize=8, loc="lower right")
    _tidy(ax)


def _mean(row: dict[str, Any], key: str) -> float:
    clients: int = sum(leg["clients"] for leg in row["served"])
    if clients == 0:
        return float(row["served"][0][key])
    return float(sum(leg[key] * leg["clients"] for leg in row["served"])) / clients


def _tidy(*axes: Axes) -> None:
    for ax in axes:
        ax.tick_params(labelsize=8, colors=INK)
        for side in ("top",):
            ax.spines[side].set_visible(False)
