"""``python -m bridge.cli`` behaves like the ``bridge`` console script."""

import sys

from .app import main

sys.exit(main())
