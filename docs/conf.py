"""Sphinx configuration. Builds offline.

Generated at build time: the registry table (from :mod:`verify.registry`) and
one API page per family (``automodule`` of each member module, which follows
the member's ``__all__``): adding an op or a member needs no edit here.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "refimpl"
author = "refimpl developers"
# Maths renders offline: sphinx-mathjax-offline copies MathJax into _static/mathjax and
# points mathjax_path there (Sphinx's default loads MathJax from a CDN).
extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax", "sphinx-mathjax-offline", "numpydoc"]
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
suppress_warnings = []


def _text(s):
    """Plain text for RST: registry strings use |x| for norms and * for products."""
    for ch in ("\\", "|", "*", "`", "_"):
        s = s.replace(ch, "\\" + ch)
    return s


def _write_registry_table(app):
    """docs/_generated/registry.rst: one section per registered op, from its record."""
    from verify.engine import properties_of
    from verify.registry import ops

    out = os.path.join(app.srcdir, "_generated")
    os.makedirs(out, exist_ok=True)
    lines = []
    for op in ops():
        title = f"``{op.name}``"
        primals = ", ".join(p.name + ("=None" if p.optional else "") for p in op.primals)
        section = f" (conventions, section {op.section})" if op.section else ""
        vjp = "" if op.vjp is not None else " No VJP: no gradient checks."
        lines += [title, "-" * len(title), "",
                  f"Function :func:`refimpl.{op.family}.{op.name}` in :mod:`refimpl.{op.module}`; "
                  f"primals ``{primals}``.{vjp}", "",
                  _text(op.convention), "",
                  ".. list-table::", "   :header-rows: 1", "",
                  "   * - property", "     - dtypes", "     - what it checks"]
        for p in properties_of(op):
            lines += [f"   * - {_text(p.name)}", f"     - {', '.join(p.dtypes)}",
                      f"     - {_text(p.description)}"]
        tol = ", ".join(f"{k}: {v:g}" for k, v in op.tolerance.items())
        lines += ["", f"Tolerance (normwise relative): {tol}{section}.", ""]
        if op.references:
            lines += ["References:", ""] + [f"* {_text(r)}" for r in op.references] + [""]
    with open(os.path.join(out, "registry.rst"), "w") as fh:
        fh.write("\n".join(lines))


def _families():
    """The family packages ``import refimpl`` gives (its ``__all__`` modules)."""
    import inspect

    import refimpl

    return [n for n in refimpl.__all__ if inspect.ismodule(getattr(refimpl, n))]


def _write_api_pages(app):
    """docs/_generated/api/<family>.rst: the family's docstring and each member's automodule."""
    import importlib
    import pkgutil

    out = os.path.join(app.srcdir, "_generated", "api")
    os.makedirs(out, exist_ok=True)
    for family in _families():
        package = importlib.import_module(f"refimpl.{family}")
        title = f"refimpl.{family}"
        lines = [title, "=" * len(title), "", f".. automodule:: {title}", ""]
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue
            lines += [f".. automodule:: {title}.{info.name}", "   :members:", ""]
        with open(os.path.join(out, f"{family}.rst"), "w") as fh:
            fh.write("\n".join(lines))


def setup(app):
    app.connect("builder-inited", _write_registry_table)
    app.connect("builder-inited", _write_api_pages)
