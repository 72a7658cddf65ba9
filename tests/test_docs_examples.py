"""The code the docs show runs: the README's Python examples, the worked candidate of docs/checking.rst.

The README's ``python`` blocks run in order in one namespace (later blocks use
earlier names), the CuPy block only where CuPy has a GPU. The candidate of
"Writing a candidate" must pass :func:`verify.check` in both dtypes (the block
asserts it), and breaking each half of the contract it states must fail.
"""

import pathlib
import re

import pytest

import verify
from refimpl.backend import available_backends

ROOT = pathlib.Path(__file__).parents[1]


def _readme_blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def _rst_section(path, title):
    text = (ROOT / path).read_text()
    start = text.index(f"{title}\n{'-' * len(title)}\n")
    end = re.search(r"^\S.*\n-{3,}\n", text[start + 2 * len(title) + 2:], flags=re.M)
    return text[start:start + 2 * len(title) + 2 + (end.start() if end else len(text))]


def _rst_python_blocks(section):
    """The bodies of ``.. code-block:: python`` directives, dedented."""
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", section, flags=re.M):
        lines = match.group(1).rstrip("\n").split("\n")
        blocks.append("\n".join(line[4:] for line in lines) + "\n")
    return blocks


README = _readme_blocks()


@pytest.fixture(scope="module")
def readme_namespace():
    return {}


@pytest.mark.parametrize("index", range(len(README)), ids=lambda i: f"block{i}")
def test_readme_python_block_runs(index, readme_namespace):
    block = README[index]
    if "import cupy" in block and "cupy" not in available_backends():
        pytest.skip("the CuPy example needs CuPy and a GPU")
    exec(compile(block, f"README.md python block {index}", "exec"), readme_namespace)


def test_readme_has_the_examples_it_promises():
    assert len(README) >= 3 and any("verify.check" in b for b in README)


def _candidate_namespace():
    blocks = _rst_python_blocks(_rst_section("docs/checking.rst", "Writing a candidate"))
    assert len(blocks) == 1, "the section shows one runnable candidate"
    namespace = {}
    exec(compile(blocks[0], "docs/checking.rst, Writing a candidate", "exec"), namespace)
    return namespace


def test_the_worked_candidate_passes_and_each_broken_half_of_the_contract_fails():
    ns = _candidate_namespace()  # the block asserts report.passed in float64 and float32
    np, vjp = ns["np"], ns["spectral_norm_vjp"]

    def without_batch(Vu, s, Vv):
        return np.max(np.abs(s), axis=-1)

    report = verify.check(without_batch, "spectral_norm", vjp=vjp)
    assert "matches ground truth" in {r.property for r in report.failures}
    assert all("output has shape" in r.message for r in report.failures)

    ns["sum_to_shape"] = lambda g, shape: g  # the VJP's one call that sums back, removed
    report = verify.check(ns["spectral_norm"], "spectral_norm", vjp=vjp)
    assert {r.property for r in report.failures} == {
        "vjp: dot-product test", "vjp: autograd", "vjp: matches refimpl"}
    assert all("cotangent of s has shape" in r.message for r in report.failures)
