"""Benchmarks of refimpl.compression: one module per member."""
