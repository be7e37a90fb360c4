"""Where the daemon keeps its persistent state, and making sure it is usable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from edge.errors import StartupError


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$EDGE_STATE_DIR``, else ``$XDG_STATE_HOME/edge``, else ``~/.local/state/edge``."""
    env = os.environ if env is None else env
    if env.get("EDGE_STATE_DIR"):
        return Path(env["EDGE_STATE_DIR"])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "edge"
    return Path(env.get("HOME", str(Path.home()))) / ".local" / "state" / "edge"


def prepare_state_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700 if missing; fail clearly when it is unusable."""
    if path.exists() and not path.is_dir():
        raise StartupError(f"state directory {path} exists but is not a directory")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create state directory {path}: {exc.strerror}") from None
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise StartupError(
            f"state directory {path} is not readable and writable by this user; "
            "fix its permissions or pass --state-dir"
        )
    return path
