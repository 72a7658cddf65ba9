"""Test configuration: one BLAS thread, deterministic hypothesis profiles."""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from hypothesis import HealthCheck, settings  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

# On 2-core machines a second BLAS thread makes small products 10-60x slower.
threadpool_limits(1)

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=25, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
