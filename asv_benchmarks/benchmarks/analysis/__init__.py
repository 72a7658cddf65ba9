"""Benchmarks of refimpl.analysis: one module per member."""
