"""Benchmarks of refimpl.conv: one module per member."""
