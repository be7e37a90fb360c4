"""``edgectl ui [--open]``: a one-time link that signs the dashboard in (edge.api.ui_sessions)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from edge.cli.argtypes import SubParsers
from edge.cli.client import ApiClient
from edge.cli.output import print_json


def cmd_ui(client: ApiClient, args: argparse.Namespace) -> int:
    answer = client.post("/v1/ui/login-codes", {})
    url = client.base_url + answer["path"]
    if args.json:
        print_json({"url": url, "expires_in": answer["expires_in"]})
    else:
        print(url)
        print(
            f"(a one-time link, valid {answer['expires_in']:.0f}s: it signs one browser tab in)",
            file=sys.stderr,
        )
    if args.open:
        open_browser(url)
    return 0


def open_browser(url: str) -> None:
    """Try xdg-open; without it (or a display), say so: the printed link still works."""
    opener = shutil.which("xdg-open")
    if opener is None:
        print("Cannot open a browser here (no xdg-open): open the link above.", file=sys.stderr)
        return
    try:
        subprocess.Popen(
            [opener, url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        print(f"Cannot run xdg-open ({exc}): open the link above.", file=sys.stderr)


def register(commands: SubParsers) -> None:
    ui = commands.add_parser("ui", help="print a one-time link that signs the dashboard in")
    ui.add_argument("--open", action="store_true", help="also open it with xdg-open")
    ui.add_argument("-j", "--json", action="store_true", help="print JSON")
    ui.set_defaults(handler=cmd_ui)
