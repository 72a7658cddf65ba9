"""Benchmarks of refimpl.embedding: one module per member."""
