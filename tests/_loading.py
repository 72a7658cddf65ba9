"""Loading test helper modules by path (teeth files live beside their family's tests)."""

import importlib.util
import pathlib

TESTS = pathlib.Path(__file__).parent


def load_module(path: pathlib.Path):
    """Import the module at ``path`` (relative to ``tests/`` or absolute) under its file stem."""
    path = TESTS / path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
