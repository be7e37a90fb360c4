"""``python -m edge`` is ``edge``."""

import sys

from edge.cli.edge import main

sys.exit(main())
