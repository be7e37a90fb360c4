"""``edgectl``: the client of the edge daemon's REST API.

Errors print one ``Error: ...`` line on stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from edge.cli import (
    ctl_apps,
    ctl_deploy,
    ctl_faults,
    ctl_ips,
    ctl_machines,
    ctl_observe,
    ctl_process,
)
from edge.cli.client import ApiClient
from edge.errors import EdgeError

EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgectl",
        description="Manage apps and IP addresses on an edge daemon "
        "(API: $EDGE_API_URL, token: $EDGE_API_TOKEN or STATE_DIR/token).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ctl_apps.register(commands)
    ctl_ips.register(commands)
    ctl_machines.register(commands)
    ctl_machines.register_checks(commands)
    ctl_deploy.register(commands)
    ctl_faults.register(commands)
    ctl_observe.register(commands)
    ctl_process.register(commands)  # logs
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(ApiClient.from_env(), args))
    except EdgeError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (edgectl ... | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: still one line, never a traceback
        print(f"Error: unexpected failure ({type(exc).__name__}: {exc})", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
