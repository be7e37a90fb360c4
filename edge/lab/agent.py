"""The PoP's announce agent: health-checks the edge node and drives the local BIRD.

Anycast operators tie the BGP announcement to the health of the service behind it, so
a dead node takes its prefix away instead of blackholing its clients. This agent runs
in the PoP's namespace beside BIRD. Every ``--interval`` it asks the node's
``/healthz`` (``--health``) and, every ``--faults-every`` probes, the ``/v1/faults``
of the nodes given with ``--node`` (the lab gives the PoP's own node, the one that
accepts faults for it) for a ``withdraw`` of this PoP. ``edge.lab.announce.step``
decides; on a change it runs ``birdc enable|disable anycast``. Each change is one JSON
line on stdout (logs/agent-POP.log: when the PoP was withdrawn and announced).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from edge.lab.announce import AnnounceRule, AnnounceState, step
from edge.lab.bird import ANYCAST_PROTOCOL

PROBE_TIMEOUT = 0.5  # seconds; the node is on this host, a slower answer is a failure


def probe(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def withdraw_faults(pop: str, nodes: list[tuple[str, Path]]) -> bool | None:
    """True if any reachable node holds a withdraw of ``pop``; None if none answered."""
    answered = False
    for url, token_file in nodes:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
            request = urllib.request.Request(
                f"{url}/v1/faults", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as answer:
                faults = json.loads(answer.read())["faults"]
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            continue
        answered = True
        if any(f.get("kind") == "withdraw" and f.get("target") == pop for f in faults):
            return True
    return False if answered else None


def birdc(socket_path: str, announce: bool) -> bool:
    command = "enable" if announce else "disable"
    result = subprocess.run(
        ["birdc", "-s", socket_path, command, ANYCAST_PROTOCOL],
        capture_output=True, text=True, timeout=5, check=False,
    )  # fmt: skip
    return result.returncode == 0


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"t": round(time.time(), 4), "event": event, **fields}), flush=True)


def run(args: argparse.Namespace) -> None:
    nodes = [(url, Path(token)) for url, token in (item.split("|", 1) for item in args.node)]
    rule = AnnounceRule(rise=args.rise, fall=args.fall)
    state = AnnounceState()
    withdrawn = False
    applied: bool | None = None
    count = 0
    while True:
        started = time.monotonic()
        healthy = probe(args.health)
        if count % args.faults_every == 0 or not healthy:
            found = withdraw_faults(args.pop, nodes)
            withdrawn = withdrawn if found is None else found
        count += 1
        state = step(state, healthy, withdrawn, rule)
        if state.announced != applied:
            if birdc(args.birdc_socket, state.announced):
                applied = state.announced
                emit("announce" if state.announced else "withdraw", pop=args.pop,
                     healthy=state.healthy, fault=withdrawn)  # fmt: skip
            else:
                emit("birdc-failed", pop=args.pop)
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge.lab.agent", description=__doc__)
    parser.add_argument("--pop", required=True)
    parser.add_argument("--health", required=True, metavar="URL")
    parser.add_argument("--node", action="append", default=[], metavar="URL|TOKEN_FILE")
    parser.add_argument("--birdc-socket", required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--faults-every", type=int, default=1)
    parser.add_argument("--rise", type=int, default=2)
    parser.add_argument("--fall", type=int, default=2)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
