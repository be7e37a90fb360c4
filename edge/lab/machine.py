"""A machine of the lab's app, in its own namespace: the edge's demo HTTP machine.

``python -m edge.lab.machine --app hello --id hello-lhr-1 --region lhr --listen
198.18.3.2:8080`` serves the same answers as a demo machine (JSON naming the machine
and echoing the request headers, ``/healthz``), but at a real address across the lab's
links, so the edge node reaches it over the modelled latency.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys

from edge.runtime.demo import DemoIdentity, MachineState
from edge.runtime.demo_http import DemoHttpProtocol


async def serve(identity: DemoIdentity, host: str, port: int) -> None:
    state = MachineState(identity, hanging=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: DemoHttpProtocol(state), sock=sock)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge.lab.machine", description=__doc__)
    parser.add_argument("--app", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    import uvloop

    uvloop.run(serve(DemoIdentity(args.app, args.id, args.region), host, int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
