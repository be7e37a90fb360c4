"""The bench's table: runs side by side, ratios edge/HAProxy against the issue's goals."""

from __future__ import annotations

from typing import Any

GOALS = (
    "raw TCP keep-alive >= 0.9x HAProxy tcp",
    "raw TCP new connections >= 0.7x",
    "http keep-alive >= 0.7x HAProxy http",
    "http p99 <= 1.5x HAProxy's at the same offered load",
    "<= 8 KiB per idle proxied connection",
)


def _find(runs: list[Any], target: str, load: str) -> Any | None:
    return next((r for r in runs if r.target == target and r.load == load), None)


def _ms(value: float) -> str:
    return f"{value * 1000:.0f}us" if value < 1 else f"{value:.2f}ms"


def _table(runs: list[Any]) -> list[str]:
    header = (
        f"{'path':34} {'load':10} {'conns':>5} {'req/s':>10} {'p50':>9} {'p99':>9}"
        f" {'proxy CPU/req':>13} {'errors':>6}"
    )
    lines = [header, "-" * len(header)]
    for run in runs:
        cpu = "" if run.proxy_cpu_us_per_req is None else f"{run.proxy_cpu_us_per_req:.1f}us"
        if run.target == "direct":
            cpu = "(backend)" if cpu else ""
        lines.append(
            f"{run.name:34} {run.load:10} {run.connections:>5} {run.rps:>10,.0f}"
            f" {_ms(run.p50_ms):>9} {_ms(run.p99_ms):>9} {cpu:>13}"
            f" {run.errors + run.non_2xx:>6}"
        )
    return lines


Ratio = tuple[str, float | None, str, bool | None, float | None]


def _cpu_ratio(edge: Any, haproxy: Any) -> float | None:
    """Edge CPU per request over HAProxy's: steadier than req/s when neighbours are busy."""
    if edge.proxy_cpu_us_per_req and haproxy.proxy_cpu_us_per_req:
        return float(edge.proxy_cpu_us_per_req / haproxy.proxy_cpu_us_per_req)
    return None


def _ratios(runs: list[Any]) -> list[Ratio]:
    """(what, edge/HAProxy, goal, met, CPU ratio) for each goal HAProxy numbers exist for."""
    out: list[Ratio] = []
    checks = (
        ("raw TCP keep-alive req/s", "tcp", "keep-alive", "rps", ">= 0.9x", 0.9),
        ("raw TCP new-connection req/s", "tcp", "close", "rps", ">= 0.7x", 0.7),
        ("http keep-alive req/s", "http", "keep-alive", "rps", ">= 0.7x", 0.7),
        ("http new-connection req/s", "http", "close", "rps", "(no goal)", None),
        ("http p99, same offered load", "http", "paced", "p99_ms", "<= 1.5x", 1.5),
    )
    for what, mode, load, attr, goal, limit in checks:
        edge, haproxy = _find(runs, f"edge-{mode}", load), _find(runs, f"haproxy-{mode}", load)
        if edge is None or haproxy is None or not getattr(haproxy, attr):
            out.append((what, None, goal, None, None))
            continue
        ratio = getattr(edge, attr) / getattr(haproxy, attr)
        met = None if limit is None else (ratio <= limit if attr == "p99_ms" else ratio >= limit)
        out.append((what, ratio, goal, met, _cpu_ratio(edge, haproxy)))
    return out


def _compiled_vs_pure(runs: list[Any]) -> list[dict[str, Any]]:
    """The edge compiled (mypyc) against itself as pure Python, for each mode and load."""
    rows = []
    for what, mode, load in (
        ("raw TCP keep-alive", "tcp", "keep-alive"),
        ("raw TCP new connections", "tcp", "close"),
        ("http keep-alive", "http", "keep-alive"),
        ("http new connection per request", "http", "close"),
    ):
        compiled, pure = _find(runs, f"edge-{mode}", load), _find(runs, f"edge-{mode}-pure", load)
        if compiled is None or pure is None:
            continue
        cpu_c, cpu_p = compiled.proxy_cpu_us_per_req, pure.proxy_cpu_us_per_req
        rows.append(
            {
                "what": what,
                "compiled_cpu_us_per_req": cpu_c,
                "pure_cpu_us_per_req": cpu_p,
                "cpu_ratio": cpu_c / cpu_p if cpu_c and cpu_p else None,
                "rps_ratio": compiled.rps / pure.rps if pure.rps else None,
            }
        )
    return rows


def _compiled_vs_pure_lines(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        "",
        f"{'edge compiled vs pure Python':36} {'CPU/req compiled':>16} {'pure':>8}"
        f" {'CPU ratio':>9} {'req/s ratio':>11}",
    ]
    for row in rows:
        cpu_c, cpu_p = row["compiled_cpu_us_per_req"], row["pure_cpu_us_per_req"]
        cpu_ratio, rps_ratio = row["cpu_ratio"], row["rps_ratio"]
        lines.append(
            f"{row['what']:36} {'n/a' if cpu_c is None else f'{cpu_c:.1f}us':>16}"
            f" {'n/a' if cpu_p is None else f'{cpu_p:.1f}us':>8}"
            f" {'n/a' if cpu_ratio is None else f'{cpu_ratio:.3f}x':>9}"
            f" {'n/a' if rps_ratio is None else f'{rps_ratio:.3f}x':>11}"
        )
    return lines


def render(environment: dict[str, Any], runs: list[Any], memory: dict[str, Any]) -> dict[str, Any]:
    lines = ["", "== edge vs HAProxy, same backend, wrk -t1 (all on 127.0.0.1)"]
    lines += [f"   {key}: {value}" for key, value in environment.items()]
    lines += ["", *_table(runs), ""]
    paced = _find(runs, "edge-http", "paced")
    if paced is not None and paced.notes:
        lines.append(f"paced: {paced.notes[0]} (wrk's Lua delay(); closed loop, not wrk2)")
    lines += [
        "",
        f"{'ratio edge/HAProxy':36} {'measured':>9}  {'goal':10} {'result':6}"
        "  edge CPU per request",
    ]
    ratios = _ratios(runs)
    for what, ratio, goal, met, cpu in ratios:
        shown = "n/a" if ratio is None else f"{ratio:.3f}x"  # 3 digits: 0.899 is not 0.9
        verdict = "" if met is None else ("ok" if met else "MISSED")
        cpu_text = "" if cpu is None else f"{cpu:.2f}x HAProxy's"
        lines.append(f"{what:36} {shown:>9}  {goal:10} {verdict:6}  {cpu_text}")
    per_conn = memory["kib_per_connection"]
    lines.append(
        f"{'memory per idle proxied connection':36} {per_conn:>6.2f}KiB  {'<= 8 KiB':10}"
        f" {'ok' if per_conn <= 8 else 'MISSED'}"
    )
    fds = "yes" if memory["fds_back_to_baseline"] else "NO"
    lines.append(
        f"   {memory['proxied']}/{memory['connections']} proxied; edge RSS"
        f" {memory['baseline_rss_kib']} -> {memory['rss_kib_with_connections']} KiB;"
        f" fds {memory['baseline_fds']} -> {memory['fds_with_connections']} ->"
        f" {memory['fds_after_close']} (back to baseline: {fds},"
        f" {memory['seconds_to_release']} s)"
    )
    versus_pure = _compiled_vs_pure(runs)
    lines += _compiled_vs_pure_lines(versus_pure)
    data = {
        "compiled_vs_pure": versus_pure,
        "ratios": [
            {"what": what, "ratio": ratio, "goal": goal, "met": met, "cpu_ratio": cpu}
            for what, ratio, goal, met, cpu in ratios
        ],
    }
    return {"text": "\n".join(lines), "data": data}
