"""Benchmarks of refimpl.nn: one module per member."""
