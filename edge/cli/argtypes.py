"""Typing aliases for argparse objects (evaluated only by type checkers)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    SubParsers = argparse._SubParsersAction


def app_command(sub: SubParsers, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand scoped to one app: ``-a/--app`` (required) and ``-j/--json``."""
    parser = sub.add_parser(name, help=help_text)
    parser.add_argument("-a", "--app", required=True, help="the app")
    parser.add_argument("-j", "--json", action="store_true", help="print JSON")
    return parser
