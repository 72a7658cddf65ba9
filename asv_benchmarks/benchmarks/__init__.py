"""asv benchmarks of refimpl.

``environment_type: existing`` installs nothing, so the checkout's own
``refimpl`` and ``verify`` are put first on ``sys.path``: the benchmarks time
the code of the working tree asv runs in, not whatever is installed.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
