"""``edgectl``: the client of the edge daemon's REST API.

Exit codes: 0 done; 1 failed, and nothing was changed (one ``Error: ...`` line on
stderr; with ``--json`` a JSON object ``{"error": ..., "status": ...}`` instead);
2 usage error; 3 done, but a listener it needs is not bound (said on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from edge import __version__
from edge.cli import (
    ctl_apps,
    ctl_deploy,
    ctl_faults,
    ctl_ips,
    ctl_machines,
    ctl_observe,
    ctl_process,
    ctl_ui,
)
from edge.cli.client import ApiClient, ApiError
from edge.errors import EdgeError

EXIT_FAILED, EXIT_USAGE = 1, 2


class JsonErrorParser(argparse.ArgumentParser):
    """With ``--json`` on the command line, a usage error is JSON on stderr too."""

    def error(self, message: str) -> NoReturn:
        report_error(f"{self.prog}: {message}", 0, as_json=True)
        sys.exit(EXIT_USAGE)


def build_parser(json_errors: bool = False) -> argparse.ArgumentParser:
    parser_class = JsonErrorParser if json_errors else argparse.ArgumentParser
    parser = parser_class(
        prog="edgectl",
        description="Manage apps and IP addresses on an edge daemon "
        "(API: $EDGE_API_URL, token: $EDGE_API_TOKEN or STATE_DIR/token).",
    )
    parser.add_argument("--version", action="version", version=f"edgectl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ctl_apps.register(commands)
    ctl_ips.register(commands)
    ctl_machines.register(commands)
    ctl_machines.register_checks(commands)
    ctl_deploy.register(commands)
    ctl_faults.register(commands)
    ctl_observe.register(commands)
    ctl_ui.register(commands)
    ctl_process.register(commands)  # logs
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(json_errors="--json" in words or "-j" in words).parse_args(words)
    try:
        return int(args.handler(ApiClient.from_env(), args))
    except EdgeError as exc:
        status = exc.status if isinstance(exc, ApiError) else exc.http_status
        report_error(exc.message, status, as_json=bool(getattr(args, "json", False)))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (edgectl ... | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: still one line, never a traceback
        message = f"unexpected failure ({type(exc).__name__}: {exc})"
        report_error(message, 0, as_json=bool(getattr(args, "json", False)))
        return EXIT_FAILED


def report_error(message: str, status: int, *, as_json: bool) -> None:
    """One ``Error:`` line on stderr, or with ``--json`` one JSON object there.

    ``status`` is the API's HTTP status (0: the API was not reached or not asked)."""
    if as_json:
        print(json.dumps({"error": message, "status": status}), file=sys.stderr)
    else:
        print(f"Error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
