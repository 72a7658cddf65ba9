"""Sums and counts grouped by integer labels, in any array namespace.

The array API has no scatter-add (``numpy.bincount``, ``numpy.add.at``): a
grouped sum is a product with the one-hot matrix of the labels, formed in
blocks of rows so that memory stays ``O(block * groups)``; an exact integer
histogram of a long stream over a large alphabet uses a sort instead.
Labels outside ``[0, n_groups)`` (the ``-1`` of a pruned weight) belong to
no group.
"""

from __future__ import annotations

_BLOCK_CELLS = 1 << 16  # entries of one (rows, groups) block: 512 KiB in float64, cache-sized


def row_blocks(n_rows: int, n_groups: int) -> list[slice]:
    """Consecutive slices of ``range(n_rows)`` whose ``(rows, n_groups)`` blocks hold about ``2**16``
    entries."""
    step = max(1, _BLOCK_CELLS // max(n_groups, 1))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def grouped_sums(xp, values, labels, n_groups):
    """``(sums, counts)``: ``sum_i values_i [labels_i = j]`` and ``#{i: labels_i = j}``,
    ``j < n_groups``.

    ``values`` and ``labels`` (int64) are 1-D of one length; ``counts`` is
    int64 and exact (each block's count is below ``2**24``, exact in float32 too).
    """
    ids = xp.arange(n_groups, dtype=xp.int64, device=labels.device)
    sums = xp.zeros(n_groups, dtype=values.dtype, device=values.device)
    counts = xp.zeros(n_groups, dtype=xp.int64, device=values.device)
    for rows in row_blocks(values.shape[0], n_groups):
        block_sums, block_counts = block_grouped_sums(xp, values[rows], labels[rows], ids)
        sums, counts = sums + block_sums, counts + block_counts
    return sums, counts


def block_grouped_sums(xp, values, labels, ids):
    """:func:`grouped_sums` of one block of rows, the groups being ``ids`` (``arange(n_groups)``)."""
    one_hot = xp.astype(labels[:, None] == ids, values.dtype)
    return values @ one_hot, xp.astype(xp.sum(one_hot, axis=0), xp.int64)


def histogram(xp, symbols, n_symbols):
    """Exact int64 counts of ``0, ..., n_symbols - 1`` in the 1-D integer array ``symbols``."""
    ordered = xp.sort(xp.astype(symbols, xp.int64))
    ids = xp.arange(n_symbols, dtype=xp.int64, device=symbols.device)
    return xp.astype(xp.searchsorted(ordered, ids, side="right")
                     - xp.searchsorted(ordered, ids, side="left"), xp.int64)
