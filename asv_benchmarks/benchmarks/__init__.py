"""asv benchmarks of refimpl (docs/performance.rst).

asv always runs the benchmarks of the working tree, against the refimpl and
verify installed in the environment: a commit's own wheel in a virtualenv
(``asv run``), or the editable install of the working tree
(``asv run -E existing:...``). So nothing here may import from the checkout
by path, and a benchmark of a newer op simply fails on commits without it.
"""
