"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.pg import pg_server, pg_url  # noqa: F401  (fixtures for every tier)


def require_tool(name: str) -> str:
    """The path of a system tool; skip without it, except under CI where it is a failure."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install it, or run .ci/run)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {message}")
        pytest.skip(message)
    return path
