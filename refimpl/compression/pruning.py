r"""Magnitude pruning (Deep Compression) and the masks of dense-sparse-dense training.

A *mask* is a boolean array of the weights' shape, ``True`` where a weight is
kept. Weights are ranked by magnitude over the whole array (flattened in C
order: the flat index breaks ties). Convention: docs/conventions.rst,
section 9.1.
"""

from __future__ import annotations

import math

from .._validation import (
    require_choice,
    require_finite,
    require_ndim,
    require_number,
    require_real_floating,
)
from ..backend import get_namespace

__all__ = ["dsd_masks", "prune_magnitude", "prune_threshold"]

TIES = ("low_index", "high_index")
DSD_TIES = ("prune_all", *TIES)
COUNTS = ("pruned", "kept")
AT_THRESHOLD = ("prune", "keep")


def _check_weights(name, w, check_finite):
    require_real_floating(name, w)
    get_namespace(w)
    if check_finite:
        require_finite(name, w)


def _pruned_count(n: int, sparsity: float, count: str) -> int:
    """How many of ``n`` weights go: ``round(s n)``, or ``n - round((1 - s) n)`` with ``count="kept"``.

    The products are Python floats and ``round`` is Python's (half to even),
    as in ``torch.nn.utils.prune`` (pruned count) and TF-MOT (kept count).
    """
    if count == "pruned":
        return round(sparsity * n)
    return n - round((1.0 - sparsity) * n)


def _magnitude_mask(xp, w, k, ties):
    """Keep all but ``k`` weights of smallest magnitude, ties at the ``k``-th smallest magnitude
    ``t`` by ``ties``: ``prune_all`` prunes every one, ``low_index`` (``high_index``) the lower
    (higher) flat indices first, as many as the count needs."""
    if k == 0:
        return xp.ones(w.shape, dtype=xp.bool, device=w.device)
    a = xp.reshape(xp.abs(w), (-1,))
    t = xp.sort(a)[k - 1]
    if ties == "prune_all":
        return xp.reshape(a > t, w.shape)
    below, tied = a < t, a == t
    wanted = k - int(xp.count_nonzero(below))  # tied weights still to prune, at least one
    rank = xp.cumulative_sum(xp.astype(tied, xp.int64))  # 1, 2, ... along the tied ones
    if ties == "low_index":
        pruned_tied = tied & (rank <= wanted)
    else:
        pruned_tied = tied & (rank > int(rank[-1]) - wanted)
    return xp.reshape(~(below | pruned_tied), w.shape)


def prune_magnitude(w, sparsity, *, ties="low_index", count="pruned", check_finite=True):
    r"""Mask keeping all but the ``k`` weights of smallest magnitude, ``k = round(sparsity * n)``.

    .. math::

        k = \operatorname{round}(s\,n), \qquad
        m_i = [\,\pi(i) \ge k\,], \qquad
        \pi = \text{the place of } i \text{ when } (|w_i|, i) \text{ are sorted increasingly}

    Exactly ``k`` weights are pruned, and no kept weight is smaller in
    magnitude than a pruned one. Conventions (docs/conventions.rst,
    section 9.1): ``round`` is half to even on the double product ``s n``
    (``count="kept"`` rounds the kept count ``(1 - s) n`` instead, as TF-MOT);
    among equal magnitudes the lower flat index is pruned first
    (``ties="high_index"``: the higher one).

    Parameters
    ----------
    w : array
        Weights, any shape, real floating.
    sparsity : float in [0, 1]
        Fraction of the weights to prune.
    ties : {"low_index", "high_index"}
    count : {"pruned", "kept"}
    check_finite : bool

    Returns
    -------
    mask : bool array of ``w``'s shape, ``True`` where kept

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import prune_magnitude
    >>> w = np.array([0.5, -0.1, 0.1, 2.0, -0.3])
    >>> prune_magnitude(w, 0.3).tolist()  # round(1.5) = 2 pruned; |-0.1| = |0.1|
    [True, False, False, True, True]
    >>> prune_magnitude(w, 0.3, count="kept").tolist()  # 5 - round(3.5) = 1 pruned
    [True, False, True, True, True]
    >>> prune_magnitude(w, 0.2, ties="high_index").tolist()
    [True, True, False, True, True]
    """
    _check_weights("w", w, check_finite)
    require_number("sparsity", sparsity, 0.0, 1.0)
    require_choice("ties", ties, TIES)
    require_choice("count", count, COUNTS)
    xp, _ = get_namespace(w)
    return _magnitude_mask(xp, w, _pruned_count(math.prod(w.shape), sparsity, count), ties)


def prune_threshold(w, threshold, *, at_threshold="prune", check_finite=True):
    r"""Mask keeping the weights of magnitude above ``threshold`` (Han et al. 2015).

    .. math::  m_i = [\,|w_i| > t\,] \quad (\texttt{at\_threshold="keep"}:\ |w_i| \ge t)

    A weight exactly at the threshold is pruned by default (Distiller's
    ``|w| > t``); ``at_threshold="keep"`` keeps it (docs/conventions.rst,
    section 9.1).

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import prune_threshold
    >>> prune_threshold(np.array([0.5, -0.25, 0.1]), 0.25).tolist()
    [True, False, False]
    >>> prune_threshold(np.array([0.5, -0.25, 0.1]), 0.25, at_threshold="keep").tolist()
    [True, True, False]
    """
    _check_weights("w", w, check_finite)
    require_number("threshold", threshold, 0.0)
    require_choice("at_threshold", at_threshold, AT_THRESHOLD)
    xp, _ = get_namespace(w)
    return xp.abs(w) >= threshold if at_threshold == "keep" else xp.abs(w) > threshold


def dsd_masks(snapshots, sparsities, *, ties="prune_all", count="pruned", check_finite=True):
    r"""Masks of the phases of dense-sparse-dense training (Han et al. 2017), one per snapshot.

    Phase ``p`` trains under the mask of ``snapshots[p]`` (the weights when
    the phase starts) at sparsity ``sparsities[p]``; a dense phase has
    sparsity 0 and keeps every weight. DSD is ``sparsities = (0, s, 0)``,
    iterated DSD ``(0, s, 0, s, 0)``; a re-dense phase restarts the pruned
    weights from zero, which the sparse phase left them at.

    With the default ``ties="prune_all"`` the mask is DSD's (its Algorithm 1):

    .. math::

        \lambda = \operatorname{sort}(|w|)_k, \qquad m_i = [\,|w_i| > \lambda\,],
        \qquad k = \operatorname{round}(s\,n),

    so every weight tied with the ``k``-th smallest magnitude is pruned (at
    least ``k`` go); ``ties="low_index"``/``"high_index"`` prune exactly
    ``k`` as :func:`prune_magnitude`. ``count`` as there
    (docs/conventions.rst, section 9.1).

    Parameters
    ----------
    snapshots : (P, ...) array
        The weights at the start of each of the ``P`` phases.
    sparsities : sequence of P floats in [0, 1]

    Returns
    -------
    masks : (P, ...) bool array

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.compression import dsd_masks
    >>> w = np.array([0.3, -0.1, 0.2, 0.1])
    >>> dsd_masks(np.stack([w, w, w]), (0.0, 0.25, 0.0)).astype(int).tolist()
    [[1, 1, 1, 1], [1, 0, 1, 0], [1, 1, 1, 1]]
    """
    _check_weights("snapshots", snapshots, check_finite)
    require_ndim("snapshots", snapshots, 1, "(P, ...): one snapshot per phase")
    require_choice("ties", ties, DSD_TIES)
    require_choice("count", count, COUNTS)
    if not isinstance(sparsities, (tuple, list)) or len(sparsities) != snapshots.shape[0]:
        raise ValueError(f"sparsities must be a sequence of one sparsity per phase, "
                         f"snapshots.shape[0] = {snapshots.shape[0]}, got {sparsities!r}")
    for p, s in enumerate(sparsities):
        require_number(f"sparsities[{p}]", s, 0.0, 1.0)
    xp, _ = get_namespace(snapshots)
    n = math.prod(snapshots.shape[1:])
    masks = [_magnitude_mask(xp, snapshots[p, ...], _pruned_count(n, s, count), ties)
             for p, s in enumerate(sparsities)]
    return xp.stack(masks)
