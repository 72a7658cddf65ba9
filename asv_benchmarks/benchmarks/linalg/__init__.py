"""Benchmarks of refimpl.linalg: one module per member."""
