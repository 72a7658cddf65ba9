"""``python -m verify``: the same as ``refimpl-verify``."""

import sys

from .cli import main

sys.exit(main())
