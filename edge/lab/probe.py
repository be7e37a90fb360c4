"""A bounded request loop, run in a client namespace: which PoP answers, and when.

``python -m edge.lab.probe --url http://203.0.113.1:8080/ --duration 10`` sends one
request at a time (a new connection each, as a browser's first request would), every
``--interval``, each with a ``--timeout``, and prints one JSON line per request:
time sent, outcome, the PoP that answered (the ``Fly-Region`` the edge node added,
as the machine echoes it) and the time taken. The last line is a summary.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import urllib.parse
from collections import Counter
from typing import Any


def one_request(host: str, port: int, path: str, timeout: float) -> dict[str, Any]:
    started = time.time()
    record: dict[str, Any] = {"t": round(started, 4)}
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        answer = connection.getresponse()
        body = answer.read()
        record["status"] = answer.status
        record["ok"] = answer.status == 200
        try:
            record["pop"] = json.loads(body)["headers"].get("Fly-Region")
        except (ValueError, KeyError, TypeError, AttributeError):
            record["pop"] = None
    except (OSError, http.client.HTTPException) as exc:
        record.update(ok=False, status=0, pop=None, error=type(exc).__name__)
    finally:
        connection.close()
    record["ms"] = round((time.time() - started) * 1000, 2)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge.lab.probe", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    url = urllib.parse.urlsplit(args.url)
    host, port, path = url.hostname or "", url.port or 80, url.path or "/"
    end = time.monotonic() + args.duration
    outcomes: Counter[str] = Counter()
    pops: Counter[str] = Counter()
    while time.monotonic() < end:
        started = time.monotonic()
        record = one_request(host, port, path, args.timeout)
        outcomes["ok" if record["ok"] else "failed"] += 1
        pops[str(record["pop"])] += 1
        print(json.dumps(record), flush=True)
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    print(json.dumps({"summary": True, **outcomes, "pops": dict(pops)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
