"""Benchmarks of refimpl.attribution: one module per member."""
