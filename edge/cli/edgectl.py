"""``edgectl``: the client of the edge daemon's REST API."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    print("edgectl: no commands yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
