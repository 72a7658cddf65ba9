"""The asv suite: one ratio benchmark per op with an anchor, named after both; an offline dashboard."""

import importlib
import importlib.util
import pathlib
import re
import sys

import pytest

import verify

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture(scope="module")
def bench_registry(monkeypatch_module):
    monkeypatch_module.syspath_prepend(str(ROOT / "asv_benchmarks"))
    yield importlib.import_module("benchmarks.bench_registry")
    for name in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_every_anchored_op_has_its_track_benchmark(bench_registry):
    anchored = [op for op in verify.list_ops() if op.bench_anchor is not None]
    assert anchored
    for op in anchored:
        method = f"track_{op.name}_over_{op.bench_anchor.name}"
        classes = [cls for cls in vars(bench_registry).values()
                   if isinstance(cls, type) and hasattr(cls, method)]
        assert len(classes) == 1, f"{method}: {classes}"
        cls = classes[0]
        assert cls.params == [["x".join(map(str, size)) for size in op.bench_sizes]]
        assert getattr(cls, method).unit == "ratio"


def test_a_ratio_is_the_op_over_its_anchor(bench_registry, monkeypatch):
    """With the timing replaced by call counts, the ratio divides the op's by the anchor's."""
    calls = []
    monkeypatch.setattr(bench_registry.common, "ratio",
                        lambda fn, baseline: (calls.append((fn(), baseline())), 0.5)[1])
    benchmark = bench_registry.HouseholderProduct()
    size = benchmark.params[0][0]
    benchmark.setup(size)
    assert benchmark.track_householder_product_over_gemm(size) == 0.5
    (forward, anchor), = calls
    d, m = (int(n) for n in size.split("x"))
    assert forward.shape == anchor.shape == (d, m)


def _offline_dashboard():
    spec = importlib.util.spec_from_file_location(
        "offline_dashboard", ROOT / "asv_benchmarks" / "offline_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_published_dashboard_loads_nothing_from_the_network():
    asv = pytest.importorskip("asv")  # the bench extra
    page = (pathlib.Path(asv.__file__).parent / "www" / "index.html").read_text()
    offline = _offline_dashboard()
    local = offline.localise(page)
    assert not re.search(r'<(script|link)\b[^>]*(src|href)="https?://', local)
    for path in re.findall(r'(?:src|href)="vendor/([^"]+)"', local):
        assert (ROOT / "asv_benchmarks" / "vendor" / path).is_file(), path
    with pytest.raises(SystemExit, match="no vendored copy"):
        offline.localise('<script src="https://cdn.example/new-library.js"></script>')
