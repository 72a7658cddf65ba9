"""Benchmarks of refimpl.flows: one module per member."""
