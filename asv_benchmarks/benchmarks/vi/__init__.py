"""Benchmarks of refimpl.vi: one module per member (normal, bgmm, advi)."""
