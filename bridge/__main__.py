"""``python -m bridge`` behaves exactly like the ``bridge`` console script."""

import sys

from .cli import main

sys.exit(main())
