"""Run a benchmark script under the project's .venv, creating it first if needed.

A newcomer runs ``scripts/bench`` right after ``git clone``: the script re-executes
itself with ``.venv/bin/python`` after ``scripts/_venv.sh`` has made (or refreshed) the
virtual environment, exactly as ``scripts/run`` and ``scripts/test`` do. Imports only
the standard library, so it works before ``edge`` is installed anywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"


def ensure_venv() -> None:
    """Return if already under .venv; else install into it and exec this script there."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    script = f'source "{ROOT}/scripts/_venv.sh" && ensure_venv test'
    done = subprocess.run(["bash", "-c", script], check=False)
    if done.returncode != 0:
        sys.exit(f"error: could not prepare {VENV} (see above)")
    python = VENV / "bin" / "python"
    os.execv(python, [str(python), sys.argv[0], *sys.argv[1:]])
