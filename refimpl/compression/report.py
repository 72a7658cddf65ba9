r"""The size of a layer after the whole Deep Compression pipeline, bit by bit.

Convention: docs/conventions.rst, section 9.5.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._validation import require_choice, require_integer, require_integer_array
from ..backend import get_namespace
from ._groups import histogram
from .huffman import huffman_code
from .sparse_index import OFFSETS, relative_index_encode

__all__ = ["CompressionReport", "compression_report"]


class CompressionReport(NamedTuple):
    """Result of :func:`compression_report`: 0-d int64 arrays, and two derived figures.

    ``n_weights`` weights, ``n_kept`` of them kept, stored as ``n_entries``
    entries (the kept ones and ``n_entries - n_kept`` fillers);
    ``bits_index`` for the gaps, ``bits_codes`` for the entries' codes,
    ``bits_codebook`` for the centroids; ``bits_total`` their sum and
    ``bits_dense`` the uncompressed size.
    """

    n_weights: Any
    n_kept: Any
    n_entries: Any
    bits_index: Any
    bits_codes: Any
    bits_codebook: Any
    bits_total: Any
    bits_dense: Any

    @property
    def bits_per_weight(self) -> float:
        """``bits_total / n_weights``: the average storage of one weight of the dense layer."""
        return float(self.bits_total) / float(self.n_weights)

    @property
    def ratio(self) -> float:
        """``bits_dense / bits_total``: the compression ratio."""
        return float(self.bits_dense) / float(self.bits_total)


def _stream_bits(xp, symbols, n_symbols, huffman):
    """Bits of a stream of ``symbols`` over ``n_symbols``: Huffman-coded, or fixed-width."""
    if not huffman:
        return symbols.shape[0] * (n_symbols - 1).bit_length()
    counts = histogram(xp, symbols, n_symbols)
    return int(xp.sum(counts * huffman_code(counts).lengths))


def compression_report(codes, *, n_clusters, index_bits, codebook_bits=32, weight_bits=32,
                       huffman=True, offset="zeros_skipped"):
    r"""Bits of a pruned, quantised layer in the relative index format, Huffman-coded.

    ``codes`` (from :func:`~refimpl.compression.kmeans_quantize`, ``-1``
    where pruned) are stored as :func:`~refimpl.compression.relative_index_encode`
    entries with ``index_bits``-bit gaps; each entry holds a code, fillers
    the extra symbol ``n_clusters`` (a zero weight). With ``huffman=True``
    both streams are Huffman-coded on their own counts,

    .. math::

        \text{bits} = \sum_g f_g\, l_g + \sum_c f_c\, l_c + k\,b_c,
        \qquad \text{ratio} = \frac{n\, b_w}{\text{bits}},

    with :math:`l` the optimal lengths of :func:`~refimpl.compression.huffman_code`
    (their sum is the same for every optimal code); otherwise each gap takes
    :math:`\lceil \log_2 A \rceil` bits for its alphabet of :math:`A` values
    and each code :math:`\lceil \log_2 (k + 1) \rceil`. The codebook costs
    ``codebook_bits`` per centroid; the Huffman tables (one length per symbol)
    are not counted, as in the paper (docs/conventions.rst, section 9.5).

    Parameters
    ----------
    codes : integer array
        Values in ``[-1, n_clusters)``.
    n_clusters : int
    index_bits : int
        Bits of a gap (the paper: 8 for convolutions, 5 for dense layers).
    codebook_bits, weight_bits : int, default 32
        Bits of a centroid and of an uncompressed weight.
    huffman : bool, default True
    offset : {"zeros_skipped", "difference"}
        The relative index convention.

    Returns
    -------
    CompressionReport

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import compression_report
    >>> codes = np.array([-1, 1, -1, -1, 0, 1, -1, -1, -1, -1, -1, -1, 1, -1, -1, -1])
    >>> report = compression_report(codes, n_clusters=2, index_bits=2)
    >>> int(report.n_entries), int(report.bits_index), int(report.bits_codes), int(report.bits_total)
    (5, 10, 7, 81)
    >>> round(report.ratio, 2)
    6.32
    """
    require_integer_array("codes", codes)
    require_integer("n_clusters", n_clusters, 1)
    require_integer("index_bits", index_bits, 1)
    require_integer("codebook_bits", codebook_bits, 0)
    require_integer("weight_bits", weight_bits, 1)
    require_choice("offset", offset, OFFSETS)
    if not isinstance(huffman, bool):
        raise ValueError(f"huffman must be True or False, got {huffman!r}")
    xp, device = get_namespace(codes)
    flat = xp.astype(xp.reshape(codes, (-1,)), xp.int64)
    if flat.shape[0] and (int(xp.min(flat)) < -1 or int(xp.max(flat)) >= n_clusters):
        raise ValueError(f"codes must lie in [-1, {n_clusters}) (-1: pruned)")
    kept = flat >= 0
    index = relative_index_encode(kept, bits=index_bits, offset=offset)
    # An entry that is not a filler holds the code of the kept weight of its rank among those.
    rank = xp.cumulative_sum(xp.astype(~index.filler, xp.int64)) - 1
    kept_codes = flat[kept]
    held = xp.take(kept_codes, xp.clip(rank, min=0)) if kept_codes.shape[0] else rank
    entries = xp.where(index.filler, n_clusters, held)
    gap_values = 2**index_bits + (offset == "difference")
    n_weights, n_entries = flat.shape[0], index.gaps.shape[0]
    bits_index = _stream_bits(xp, index.gaps, gap_values, huffman)
    bits_codes = _stream_bits(xp, entries, n_clusters + 1, huffman)
    bits_codebook = n_clusters * codebook_bits
    figures = (n_weights, int(xp.count_nonzero(kept)), n_entries, bits_index, bits_codes,
               bits_codebook, bits_index + bits_codes + bits_codebook, n_weights * weight_bits)
    return CompressionReport(*(xp.asarray(v, dtype=xp.int64, device=device) for v in figures))
