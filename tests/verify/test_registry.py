"""The registry covers refimpl: every public function with a numeric result is an op of its name.

Also the layout the records mirror: ``refimpl/<family>/<member>.py`` has its records in
``verify/ops/<family>/<member>.py``, its tests in ``tests/<family>/test_<member>.py`` and
its family page in ``docs/blocks/<family>.rst``; ``import refimpl`` gives the backend API
and the family packages, nothing else.
"""

import importlib
import inspect
import pathlib
import pkgutil
import re

import pytest

import refimpl
import verify
from verify.checks import call_forward
from verify.registry import Anchor, Case, Op, Primal, register

ROOT = pathlib.Path(__file__).parents[2]
FAMILIES = ("linalg", "conv", "flows", "nn", "attribution", "vi", "embedding", "analysis",
            "compression")

# Public functions that are not ops, each with the reason (the test fails on a stale entry).
NOT_OPS = {
    "householder_wy": "returns compact-WY factors (a structure), applied by householder_wy_apply",
    "householder_wy_apply": "takes prebuilt WY factors; its math is householder_product's",
    "householder_product_fwd": "the residual-keeping half of householder_product_vjp",
    "householder_product_bwd": "the backward half of householder_product_vjp",
    "svd_linear_prepare": "returns a PreparedSVDLinear (WY blocks built once); its methods are "
                          "svd_linear's, svd_linear_inverse's and their VJPs' math",
    "default_block_size": "a tuning choice (an int), not a mathematical function",
    "kernel_spectrum": "returns a KernelSpectrum (cached FFT), accepted by the circular ops",
    "periodic_kernel_spectrum": "returns a KernelSpectrum, accepted by the periodic ops",
    "activations": "the intermediate values of sequential, checked through it",
    "merge_batchnorm": "returns layers; checked by sequential's property that merging preserves "
                       "outputs",
}


def _family(name):
    return importlib.import_module(f"refimpl.{name}")


def _members(family):
    package = _family(family)
    return [info.name for info in pkgutil.iter_modules(package.__path__)
            if not info.name.startswith("_")]


def _public_functions():
    for family in FAMILIES:
        package = _family(family)
        for name in package.__all__:
            obj = getattr(package, name)
            if inspect.isfunction(obj):
                yield family, name, obj


def test_import_refimpl_gives_the_backend_and_the_families():
    families = {n for n in refimpl.__all__ if inspect.ismodule(getattr(refimpl, n))}
    assert families == set(FAMILIES)
    others = set(refimpl.__all__) - families
    assert all(getattr(refimpl, n).__module__ == "refimpl.backend" for n in others)
    assert not hasattr(refimpl, "householder_product") and not hasattr(refimpl, "predict")


@pytest.mark.parametrize("family", FAMILIES)
def test_family_reexports_exactly_its_members(family):
    package = _family(family)
    members = [importlib.import_module(f"refimpl.{family}.{m}") for m in _members(family)]
    expected = [n for m in members for n in m.__all__]
    assert sorted(package.__all__) == sorted(expected)
    assert len(set(expected)) == len(expected), "two members export the same name"


def test_every_public_function_with_a_numeric_result_is_an_op():
    ops = {op.name: op for op in verify.list_ops()}
    missing = []
    for family, name, fn in _public_functions():
        if name.endswith("_vjp"):
            base = ops.get(name.removesuffix("_vjp"))
            assert base is not None and base.vjp is fn, f"{name} is not the vjp of op {name[:-4]}"
        elif name in NOT_OPS:
            assert name not in ops, f"{name} is an op: remove it from NOT_OPS"
        elif name not in ops:
            missing.append(f"refimpl.{family}.{name}")
    assert not missing, f"public functions without a record: {missing}"
    stale = sorted(set(NOT_OPS) - {name for _, name, _ in _public_functions()})
    assert not stale, f"NOT_OPS names functions that no longer exist: {stale}"


@pytest.mark.parametrize("op", verify.list_ops(), ids=lambda op: op.name)
def test_op_is_the_public_function_of_its_name(op: Op):
    package = _family(op.family)
    assert getattr(package, op.name) is op.forward, f"refimpl.{op.family}.{op.name}"
    assert op.module == f"{op.family}.{op.module.split('.')[1]}"
    if op.vjp is not None:
        assert op.vjp.__name__ == f"{op.name}_vjp" and getattr(package, op.vjp.__name__) is op.vjp
    assert all(isinstance(p, Primal) for p in op.primals)
    assert op.section and op.convention and op.tolerance


@pytest.mark.parametrize("op", verify.list_ops(), ids=lambda op: op.name)
def test_record_mirrors_its_member(op: Op):
    family, member = op.module.split(".")
    record = ROOT / "verify" / "ops" / family / f"{member}.py"
    assert record.is_file(), f"the record of {op.name} belongs in {record}"
    assert f"def {op.name}(" not in record.read_text()  # records never redefine the forward
    assert (ROOT / "tests" / family / f"test_{member}.py").is_file()
    assert (ROOT / "docs" / "blocks" / f"{family}.rst").is_file()


def _conventions(family) -> str:
    """The family page's conventions part, which docs/conventions.rst includes."""
    page = (ROOT / "docs" / "blocks" / f"{family}.rst").read_text()
    start, end = f".. conventions: {family}\n", f".. end of conventions: {family}\n"
    assert start in page and end in page, f"docs/blocks/{family}.rst lacks its conventions markers"
    return page[page.index(start):page.index(end)]


def test_every_section_cited_exists():
    index = (ROOT / "docs" / "conventions.rst").read_text()
    text = index + "".join(_conventions(f) for f in FAMILIES)
    assert all(f".. include:: blocks/{f}.rst" in index for f in FAMILIES)
    sections = set(re.findall(r"^(\d+(?:\.\d+)?)\.? ", text, flags=re.M))
    cited = {op.section for op in verify.list_ops()}
    assert cited <= sections, f"records cite sections {sorted(cited - sections)} that do not exist"
    for family in FAMILIES:
        for member in _members(family):
            source = (ROOT / "refimpl" / family / f"{member}.py").read_text()
            assert "CONVENTIONS.md" not in source
            for number in re.findall(r"docs/conventions\.rst,\s+section (\d+(?:\.\d+)?)", source):
                assert number in sections, f"refimpl/{family}/{member}.py cites section {number}"


@pytest.mark.parametrize("op", verify.list_ops(), ids=lambda op: op.name)
def test_op_has_a_bench_case_and_an_anchor_that_run(op: Op):
    assert op.bench_case is not None and op.bench_anchor is not None, (
        f"{op.name}: give the record bench_case, bench_sizes and bench_anchor")
    case = op.bench_case(op.bench_sizes[0])
    call_forward(op, op.forward, case.primals, case.params, lambda a: a)
    op.anchor(case)()


def _probe(x):
    return x


def _probe_op(**fields):
    return Op(forward=_probe, primals=(Primal("x"),), cases=lambda: None, reference=_probe,
              tolerance={"float64": 1e-12}, convention="x", **fields)


def test_an_anchor_needs_a_bench_case_and_an_identifier():
    anchor = Anchor("copy", lambda case: lambda: case.primals["x"].copy())
    with pytest.raises(ValueError, match="bench_anchor needs a bench_case"):
        register(_probe_op(bench_anchor=anchor))
    with pytest.raises(ValueError, match="bench_case needs bench_sizes"):
        register(_probe_op(bench_case=lambda size: Case({"x": None})))
    with pytest.raises(ValueError, match="must be an identifier"):
        Anchor("numpy copy", anchor.build)
    assert "_probe" not in {op.name for op in verify.list_ops()}


def test_an_anchor_without_build_times_the_reference_called_as_the_op_is():
    calls = []

    def reference(x, w=None, *, scale):
        calls.append((x, w, scale))

    op = Op(forward=_probe, primals=(Primal("x"), Primal("w", optional=True)), cases=lambda: None,
            reference=reference, tolerance={"float64": 1e-12}, convention="x",
            bench_case=lambda size: Case({"x": 1.0, "w": 2.0}, {"scale": 3}), bench_sizes=((1,),),
            bench_anchor=Anchor("definition"))
    op.anchor(op.bench_case((1,)))()
    assert calls == [(1.0, 2.0, 3)]  # required by position, optional and params by name
