"""Sphinx configuration. Builds offline; the registry table is generated from verify.registry."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "refimpl"
author = "refimpl developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc"]
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
        lines += [title, "-" * len(title), "",
                  f"Module :mod:`refimpl.{op.module}`; primals ``{', '.join(op.primals)}``.", "",
                  _text(op.convention), "",
                  ".. list-table::", "   :header-rows: 1", "",
                  "   * - property", "     - dtypes", "     - what it checks"]
        for p in properties_of(op):
            lines += [f"   * - {_text(p.name)}", f"     - {', '.join(p.dtypes)}",
                      f"     - {_text(p.description)}"]
        tol = ", ".join(f"{k}: {v:g}" for k, v in op.tolerance.items())
        lines += ["", f"Tolerance (normwise relative): {tol}.", ""]
        if op.references:
            lines += ["References:", ""] + [f"* {_text(r)}" for r in op.references] + [""]
    with open(os.path.join(out, "registry.rst"), "w") as fh:
        fh.write("\n".join(lines))


def setup(app):
    app.connect("builder-inited", _write_registry_table)
