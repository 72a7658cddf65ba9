r"""The relative index format of Deep Compression: index gaps of ``bits`` bits, with filler zeros.

A sparse array is stored as its kept entries in C order, each with the gap
from the previous entry in a fixed number of bits; a gap too long for them
is bridged by *filler* entries, which hold a zero weight (Han et al. 2016,
section 2 and Figure 2). ``relative_index_encode`` gives the gaps and which
entries are fillers, ``relative_index_decode`` the mask back. Convention:
docs/conventions.rst, section 9.4.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._validation import (
    require_bool_array,
    require_choice,
    require_integer,
    require_integer_array,
)
from ..backend import get_namespace

__all__ = ["RelativeIndex", "relative_index_decode", "relative_index_encode"]

OFFSETS = ("zeros_skipped", "difference")


class RelativeIndex(NamedTuple):
    """Result of :func:`relative_index_encode`: one ``gaps`` (int64) and ``filler`` (bool) per entry."""

    gaps: Any
    filler: Any


def _exclusive_cumsum(xp, a):
    return xp.cumulative_sum(a, include_initial=True)[:-1]


def relative_index_encode(mask, *, bits, offset="zeros_skipped"):
    r"""The relative index of the ``True`` entries of ``mask`` (flattened in C order).

    With the kept positions :math:`p_1 < p_2 < \dots` and :math:`B = 2^{\text{bits}}`:

    * ``offset="zeros_skipped"`` (default): an entry stores the number of
      zeros since the previous entry, :math:`r_e = p_e - p_{e-1} - 1`
      (:math:`p_0 = -1`), which must be at most :math:`B - 1`; a longer run
      is cut by :math:`\lfloor r_e / B \rfloor` fillers, each storing
      :math:`B - 1` and standing on the zero after them, the entry keeping
      :math:`r_e \bmod B`. Every stored number fits ``bits`` bits.
    * ``offset="difference"``: Figure 2 of the paper, literally: an entry
      stores :math:`d_e = p_e - p_{e-1}` (:math:`p_0 = 0`), at most
      :math:`B`; fillers stand every :math:`B` positions while the
      difference exceeds :math:`B` (:math:`\lceil d_e / B \rceil - 1` of them,
      each storing :math:`B`). The stored numbers take :math:`B + 1` values.

    Zeros after the last entry are not stored (the decoder takes the shape).
    Conventions: docs/conventions.rst, section 9.4.

    Returns
    -------
    RelativeIndex
        ``gaps`` (int64) and ``filler`` (bool), one per stored entry.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import relative_index_encode
    >>> mask = np.zeros(16, dtype=bool)
    >>> mask[[1, 4, 15]] = True  # the paper's Figure 2, 3-bit indices
    >>> index = relative_index_encode(mask, bits=3, offset="difference")
    >>> index.gaps.tolist(), index.filler.tolist()
    ([1, 3, 8, 3], [False, False, True, False])
    >>> relative_index_encode(mask, bits=3).gaps.tolist()
    [1, 2, 7, 2]
    """
    require_bool_array("mask", mask)
    require_integer("bits", bits, 1)
    require_choice("offset", offset, OFFSETS)
    xp, device = get_namespace(mask)
    positions = xp.astype(xp.nonzero(xp.reshape(mask, (-1,)))[0], xp.int64)
    span = 2**bits
    start = xp.asarray([-1 if offset == "zeros_skipped" else 0], dtype=xp.int64, device=device)
    steps = positions - xp.concat([start, positions])[:-1]  # from the previous entry
    if offset == "zeros_skipped":
        runs = steps - 1
        fillers, last, filler_gap = runs // span, runs % span, span - 1
    else:
        fillers = xp.clip(steps - 1, min=0) // span
        last, filler_gap = steps - fillers * span, span
    per_entry = fillers + 1  # the fillers before an entry, and the entry
    owner = xp.repeat(xp.arange(positions.shape[0], dtype=xp.int64, device=device), per_entry)
    within = xp.arange(owner.shape[0], dtype=xp.int64, device=device) \
        - xp.take(_exclusive_cumsum(xp, per_entry), owner)
    filler = within < xp.take(fillers, owner)
    return RelativeIndex(xp.where(filler, filler_gap, xp.take(last, owner)), filler)


def relative_index_decode(gaps, filler, *, shape, offset="zeros_skipped"):
    r"""The mask of shape ``shape`` whose relative index is ``(gaps, filler)``.

    The position of entry :math:`e` is :math:`\sum_{i \le e} (g_i + 1) - 1`
    (``offset="zeros_skipped"``) or :math:`\sum_{i \le e} g_i`
    (``"difference"``); the entries that are not fillers are ``True``.
    Inverse of :func:`relative_index_encode` (docs/conventions.rst,
    section 9.4).

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import relative_index_decode
    >>> mask = relative_index_decode(np.array([1, 2, 7, 2]), np.array([False, False, True, False]),
    ...                              shape=(16,))
    >>> np.nonzero(mask)[0].tolist()
    [1, 4, 15]
    """
    require_integer_array("gaps", gaps)
    require_bool_array("filler", filler)
    require_choice("offset", offset, OFFSETS)
    if gaps.ndim != 1 or tuple(filler.shape) != tuple(gaps.shape):
        raise ValueError(f"gaps and filler must have one shape (n_entries,), got "
                         f"{tuple(gaps.shape)} and {tuple(filler.shape)}")
    if not isinstance(shape, tuple):
        raise ValueError(f"shape must be a tuple of non-negative integers, got {shape!r}")
    for axis, size in enumerate(shape):
        require_integer(f"shape[{axis}]", size, 0)
    xp, device = get_namespace(gaps, filler)
    gaps = xp.astype(gaps, xp.int64)
    size = math.prod(shape)
    advance = gaps + 1 if offset == "zeros_skipped" else gaps
    positions = xp.cumulative_sum(advance) - (1 if offset == "zeros_skipped" else 0)
    if gaps.shape[0] and (int(xp.min(gaps)) < 0 or not bool(xp.all(advance[1:] > 0))):
        raise ValueError("gaps must be non-negative, and positive after the first with "
                         "offset='difference' (entries have increasing positions)")
    if gaps.shape[0] and int(positions[-1]) >= size:
        raise ValueError(f"gaps reach position {int(positions[-1])}, outside shape {shape}")
    kept = positions[~filler]
    cells = xp.arange(size, dtype=xp.int64, device=device)
    if kept.shape[0] == 0:
        return xp.zeros(shape, dtype=xp.bool, device=device)
    slot = xp.clip(xp.searchsorted(kept, cells), max=kept.shape[0] - 1)
    return xp.reshape(xp.take(kept, slot) == cells, shape)
