"""Docstring examples run: every ``>>>`` example in refimpl and verify is a doctest."""

import doctest
import importlib
import pkgutil

import pytest

import refimpl
import verify


def _modules():
    for package in (refimpl, verify):
        yield package.__name__
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            if not info.name.endswith("__main__"):  # running it is the CLI, not an example
                yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
