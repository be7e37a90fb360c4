"""Typing aliases for argparse objects (evaluated only by type checkers) and argument types."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    SubParsers = argparse._SubParsersAction


def whole_number(text: str) -> int:
    """An argparse type: a whole number in ASCII digits (``int`` alone takes ``٣`` as 3)."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"must be a whole number (0-9), not {text!r}")
    return int(text)


def app_command(sub: SubParsers, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand scoped to one app: ``-a/--app`` (required) and ``-j/--json``."""
    parser = sub.add_parser(name, help=help_text)
    parser.add_argument("-a", "--app", required=True, help="the app")
    parser.add_argument("-j", "--json", action="store_true", help="print JSON")
    return parser
