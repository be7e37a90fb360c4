"""Checks ``edgectl`` runs before it acts, so that a command acts on all or none.

A command with several arguments (``machines stop -a APP A B C``, ``ips release``)
first reads the app's current state once and checks every argument against it; only
when all of them can be acted on does it send anything. Any problem is reported for
every argument at once, with "nothing was changed".

After a change that binds listeners (an allocation, a deploy, a new app), the API
answers with the listeners of the app's addresses: one that is not bound is said on
stderr and turns the exit code into ``EXIT_NOT_SERVING``.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from edge.cli.client import ApiClient
from edge.errors import BadRequest

# The change was made, but something it needs does not serve (a listener is unbound).
EXIT_NOT_SERVING = 3

Check = Callable[[dict[str, Any]], str]  # a problem with one known item ("" when none)


def require_all(
    wanted: Sequence[str],
    known: dict[str, dict[str, Any]],
    missing: Callable[[str], str],
    check: Check,
    nothing: str,
) -> None:
    """BadRequest naming every argument that cannot be acted on; ``nothing`` ends it."""
    problems = []
    for key in dict.fromkeys(wanted):
        item = known.get(key)
        problem = missing(key) if item is None else check(item)
        if problem:
            problems.append(problem)
    if problems:
        raise BadRequest("; ".join(problems) + f"; {nothing}")


def no_problem(item: dict[str, Any]) -> str:
    return ""


def check_machines(
    client: ApiClient, app: str, ids: Sequence[str], check: Check = no_problem
) -> None:
    """Every id must be a machine of ``app`` (and pass ``check``), or nothing is sent."""
    machines = client.get(f"/v1/apps/{app}/machines")["machines"]
    require_all(
        ids,
        {m["id"]: m for m in machines},
        lambda key: f"machine {key!r} not found in app {app!r}",
        check,
        "nothing was changed",
    )


def canonical_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise BadRequest(f"Invalid IP address: {text!r}; nothing was released") from None


def check_releasable(client: ApiClient, app: str, addresses: Sequence[str]) -> list[str]:
    """The canonical addresses, each held by ``app`` and not its primary; else nothing."""
    canonical = [canonical_address(a) for a in addresses]
    ips = client.get(f"/v1/apps/{app}/ip_assignments")["ips"]

    def primary(ip: dict[str, Any]) -> str:
        if not ip.get("primary"):
            return ""
        return f"{ip['ip']} is the primary IP of app {app!r} (released only with the app)"

    require_all(
        canonical,
        {ip["ip"]: ip for ip in ips},
        lambda key: f"{key} is not assigned to app {app!r}",
        primary,
        "nothing was released",
    )
    return list(dict.fromkeys(canonical))


def unbound(listeners: Iterable[dict[str, Any]]) -> list[str]:
    """One line per listener the change left unbound."""
    lines = []
    for row in listeners:
        if not row.get("bound"):
            address = f"[{row['address']}]" if ":" in row["address"] else row["address"]
            lines.append(f"{address}:{row['port']}: {row.get('error') or 'not bound'}")
    return lines


def report_listeners(listeners: Iterable[dict[str, Any]] | None, as_json: bool) -> int:
    """0 when every listener is bound; else say which are not, and EXIT_NOT_SERVING.

    The unbound listeners are part of the command's output (stdout; with ``--json`` the
    answer's ``listeners`` say it), and a warning on stderr says the command did not
    fully succeed."""
    lines = unbound(listeners or ())
    if not lines:
        return 0
    if not as_json:
        print("\nNot listening:")
        for line in lines:
            print(f"  {line}")
    print(
        f"Warning: the change was made, but {len(lines)} listener(s) are not bound: "
        + "; ".join(lines)
        + " (`edgectl status` shows every listener)",
        file=sys.stderr,
    )
    return EXIT_NOT_SERVING
