"""The performance targets of docs/performance.rst, measured by the suite's own ``track_`` functions.

Runs each target's ``track_*`` benchmark at the size the target names,
``--runs`` times (each a full same-run ratio, see ``benchmarks/common.py``),
and prints the smallest value of each (the largest for speedups, where larger
is better) next to the target. On a loaded machine the best of several runs
is the figure least disturbed by other jobs. From the repository root::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python asv_benchmarks/targets.py --runs 3
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmarks.conv import circular  # noqa: E402
from benchmarks.linalg import householder, svd_layer  # noqa: E402

# (label, benchmark class, setup parameters, track method, comparison, bound)
TARGETS = [
    *(
        row
        for m in (32, 256)
        for row in (
            (f"householder_wy_apply (prebuilt) / GEMM, d=1024 m={m}", householder.Ratios,
             (1024, m), "track_forward_over_gemm", "<=", 2.3),
            (f"householder_product (build incl.) / GEMM, d=1024 m={m}", householder.Ratios,
             (1024, m), "track_forward_with_build_over_gemm", "<=", 3.5 if m == 32 else 2.8),
            (f"householder_product_bwd (from residuals) / GEMM, d=1024 m={m}",
             householder.Ratios, (1024, m), "track_vjp_over_gemm", "<=", 7.5),
            (f"householder_product_vjp (forward incl.) / GEMM, d=1024 m={m}",
             householder.Ratios, (1024, m), "track_build_forward_vjp_over_gemm", "<=",
             10.5 if m == 256 else None),
        )
    ),
    *(
        (f"householder_product / torch householder_product + Q@X, d={d} m={m}",
         householder.TorchPeer, (d, m), "track_forward_over_torch", "<=", 1.2)
        for d in (256, 512, 1024)
        for m in (32, 256)
    ),
    *(
        (f"householder_product_vjp / torch autograd fwd+bwd, d={d} m={m}",
         householder.TorchPeer, (d, m), "track_forward_vjp_over_torch_autograd", "<=", 1.0)
        for d in (256, 1024)
        for m in (32, 256)
    ),
    ("svd_linear_inverse (build incl.): numpy.linalg.solve / ours, d=2048 m=32",
     svd_layer.Layer, (2048, 32), "track_inverse_speedup_over_solve", ">=", 3.0),
    ("PreparedSVDLinear.inverse / GEMM, d=2048 m=32", svd_layer.Prepared, (2048, 32),
     "track_prepared_inverse_over_gemm", "<=", 5.0),
    ("svd_linear_slogdet(check_finite=False), microseconds, d=2048", svd_layer.Slogdet,
     (2048,), "track_slogdet_microseconds", "<=", 20.0),
    ("svd_linear_slogdet (default: reflectors checked), microseconds, d=2048",
     svd_layer.Slogdet, (2048,), "track_slogdet_checked_microseconds", "<=", None),
    ("svd_linear_slogdet(check_finite=False) / its bare NumPy math, d=2048", svd_layer.Slogdet,
     (2048,), "track_slogdet_over_bare_math", "<=", 2.0),
    ("circular_conv (kernel FFT incl.) / rfftn+irfftn floor, 64x64x16", circular.Circular3D,
     ("64x64x16",), "track_forward_over_floor", "<=", 1.5),
    ("circular_conv (kernel FFT incl.) / scipy.fft three-FFT conv, 64x64x16",
     circular.Circular3D, ("64x64x16",), "track_forward_over_scipy_three_fft", "<=", None),
]


def measure(cls, params, method, comparison, runs):
    bench = cls()
    bench.setup(*params)
    values = [getattr(bench, method)(*params) for _ in range(runs)]
    return max(values) if comparison == ">=" else min(values)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--match", default="", help="only the targets whose label contains this")
    args = parser.parse_args(argv)
    for label, cls, params, method, comparison, bound in TARGETS:
        if args.match not in label:
            continue
        try:
            value = measure(cls, params, method, comparison, args.runs)
        except NotImplementedError as exc:  # a peer that is not installed
            print(f"{label:78s} skipped ({exc})", flush=True)
            continue
        if bound is None:
            verdict = "(no target)"
        else:
            met = value <= bound if comparison == "<=" else value >= bound
            verdict = f"{comparison} {bound:g}: {'met' if met else 'MISSED'}"
        print(f"{label:78s} {value:8.2f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
