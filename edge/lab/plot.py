"""The picture of docs/anycast-lab.md: the lab's topology and catchments, and failovers.

``python -m edge.lab.plot MEASURE.json OUT.png`` (MEASURE.json from ``scripts/lab
measure --out``) draws the regions where they are, the router mesh with each link's
modelled RTT, the PoPs and where each client region's BGP route goes (the nearest
policy), next to the timelines of a withdraw and of a SIGKILL under load.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from edge.config.regions import default_catalogue
from edge.lab.control import latency_model
from edge.lab.topology import DEFAULT_CLIENTS, DEFAULT_POPS, build_topology, expected_catchments

COLOURS = {
    "lhr": "#1f77b4",
    "iad": "#2ca02c",
    "syd": "#d62728",
    "nrt": "#9467bd",
    "None": "#7f7f7f",
}


def draw(measured: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, floor = latency_model()
    topology = build_topology(model, floor, DEFAULT_POPS, DEFAULT_CLIENTS, ("lhr", "iad", "syd"))
    catalogue = default_catalogue()
    where = {r: (catalogue[r].longitude, catalogue[r].latitude) for r in topology.regions}
    figure = plt.figure(figsize=(13, 8.5))
    grid = figure.add_gridspec(2, 2, height_ratios=[1.2, 1])
    ax = figure.add_subplot(grid[0, :])
    for link in topology.links:
        if link.kind == "router":
            a, b = link.name.split("-")
            (x1, y1), (x2, y2) = where[a], where[b]
            ax.plot([x1, x2], [y1, y2], color="#bbbbbb", zorder=1)
            rtt = model.rtt(a, b) * 1000
            ax.text((x1 + x2) / 2, (y1 + y2) / 2, f"{rtt:.0f} ms", fontsize=8, color="#555555")
    for withdrawn, style in ((frozenset(), "-"), (frozenset({"syd"}), ":")):
        for client, pop in expected_catchments(topology, withdrawn).items():
            if pop is None or pop == client:
                continue
            (x1, y1), (x2, y2) = where[client], where[pop]
            ax.annotate("", xy=(x2, y2), xytext=(x1, y1), zorder=2,
                        arrowprops={"arrowstyle": "->", "color": COLOURS[pop], "linestyle": style,
                                    "lw": 1.5, "connectionstyle": "arc3,rad=0.15"})  # fmt: skip
    for region, (x, y) in where.items():
        is_pop = region in DEFAULT_POPS
        ax.scatter([x], [y], s=260 if is_pop else 120, marker="s" if is_pop else "o",
                   color=COLOURS.get(region, "#333333"), zorder=3, edgecolor="black")  # fmt: skip
        label = f"{region}\n{'PoP + router' if is_pop else 'router'}, client"
        ax.text(x + 3, y - 9, label, fontsize=9)
    ax.set_title("The lab: routers in a full mesh (links carry the modelled RTT), PoPs (squares) "
                 "announcing 203.0.113.0/24;\narrows: BGP catchment of client regions without "
                 "their own PoP (solid), and with syd withdrawn (dotted)", fontsize=10)  # fmt: skip
    ax.set_xlim(-110, 185)
    ax.set_ylim(-55, 75)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    for column, key, title in (
        (0, "withdraw", "withdraw of syd"),
        (1, "sigkill", "syd edge node SIGKILLed"),
    ):
        _timeline(figure.add_subplot(grid[1, column]), measured[key], title)
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def _timeline(ax: Any, part: dict[str, Any], title: str) -> None:
    rows = part["timeline"]
    start = rows[0]["t"]
    moved = part["moved_after_s"]
    for pop in sorted({str(r["pop"]) for r in rows if r["ok"]}):
        ok = [r for r in rows if r["ok"] and str(r["pop"]) == pop]
        ax.scatter([r["t"] - start for r in ok], [r["ms"] for r in ok], s=8,
                   color=COLOURS.get(pop, "#333333"), label=f"answered by {pop}")  # fmt: skip
    failed = [r for r in rows if not r["ok"]]
    ax.scatter([r["t"] - start for r in failed], [max(r["ms"], 1.0) for r in failed], s=18,
               marker="x", color="black", label=f"failed ({len(failed)})")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("request time, ms")
    failed_count, total = part["failed"], part["requests"]
    ax.set_title(f"{title}: next PoP after {moved} s, {failed_count} of {total} failed",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left")


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python -m edge.lab.plot MEASURE.json OUT.png", file=sys.stderr)
        return 2
    draw(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")), Path(sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
