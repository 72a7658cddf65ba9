r"""Knowledge distillation (Hinton et al., 2015): softened-target KL scaled by ``T^2`` plus cross entropy.

Convention (docs/conventions.rst, section 4.11): with ``p^T = softmax(z_s / T)``
of the student and ``q^T = softmax(z_t / T)`` of the teacher,

.. math::  L = \alpha\, T^2\, \frac1N \sum_n \mathrm{KL}(q^T_n \,\|\, p^T_n)
           + (1 - \alpha)\, \frac1N \sum_n -\log \operatorname{softmax}(z_{s,n})_{y_n},

PyTorch's ``T**2 * KLDivLoss(reduction="batchmean")(log_softmax(z_s / T),
softmax(z_t / T))`` (the KL from the teacher to the student) and
``cross_entropy(z_s, y)`` (mean over the batch, temperature 1). Without
labels the loss is the soft term alone.
"""

from __future__ import annotations

import math

from .._results import cotangent_type
from .._validation import dtype_name, require_finite, require_real_floating, require_same_dtype
from ..backend import get_namespace
from .categorical import log_probabilities, probabilities

__all__ = ["distillation_loss", "distillation_loss_vjp"]

DistillationCotangents = cotangent_type("DistillationCotangents", "student_logits teacher_logits",
                                        "labels")


def _check(student_logits, teacher_logits, temperature, labels, alpha, check_finite,
           cotangent=None):
    require_real_floating("student_logits", student_logits)
    require_real_floating("teacher_logits", teacher_logits)
    xp, device = get_namespace(student_logits, teacher_logits, labels, cotangent)
    require_same_dtype(student_logits=student_logits, teacher_logits=teacher_logits)
    if student_logits.ndim != 2 or 0 in student_logits.shape:
        raise ValueError(f"student_logits must have shape (N, C) with N, C >= 1, "
                         f"got {tuple(student_logits.shape)}")
    if tuple(teacher_logits.shape) != tuple(student_logits.shape):
        raise ValueError(f"teacher_logits must have student_logits' shape "
                         f"{tuple(student_logits.shape)}, got {tuple(teacher_logits.shape)}")
    for name, value, ok in (("temperature", temperature, lambda t: t > 0),
                            ("alpha", alpha, lambda a: 0 <= a <= 1)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not ok(value):
            rule = "a positive number" if name == "temperature" else "a number in [0, 1]"
            raise ValueError(f"{name} must be {rule}, got {value!r}")
    if labels is not None:
        _check_labels(xp, labels, *student_logits.shape)
    if cotangent is not None:
        require_real_floating("cotangent", cotangent)
        if cotangent.ndim != 0:
            raise ValueError(f"cotangent must be a scalar (0-d array), got {tuple(cotangent.shape)}")
        require_same_dtype(student_logits=student_logits, cotangent=cotangent)
    if check_finite:
        require_finite("student_logits", student_logits)
        require_finite("teacher_logits", teacher_logits)
    return xp, device


def _check_labels(xp, labels, n, c):
    if not dtype_name(labels).startswith(("int", "uint")) or tuple(labels.shape) != (n,):
        raise ValueError(f"labels must be integer class indices of shape ({n},), "
                         f"got {dtype_name(labels)} of shape {tuple(labels.shape)}")
    if not bool(xp.all((labels >= 0) & (labels < c))):
        raise ValueError(f"labels must lie in [0, {c}) (the number of classes)")


def _one_hot(xp, device, labels, like):
    classes = xp.reshape(xp.arange(like.shape[1], device=device), (1, -1))
    return xp.astype(xp.reshape(labels, (-1, 1)) == classes, like.dtype)


class _Terms:
    r"""The softened teacher distribution and the centred log-ratios, shared by the loss and its VJP.

    With :math:`\delta = (z_s - z_t) / T` and :math:`\delta' = \delta - \sum_c q_c \delta_c`,
    :math:`\log p - \log q = \delta' - \mathrm{KL}` and

    .. math::  \mathrm{KL}(q \| p) = \log \sum_c q_c e^{\delta'_c} - \sum_c q_c \delta'_c
               = \operatorname{log1p}\Big(\sum_c q_c \operatorname{expm1}(\delta'_c)\Big) - r,

    (``r``, zero but for rounding, keeps the shift of the computed :math:`\delta'` out),
    accurate relative to the KL itself when the two distributions
    are close (``q (log q - log p)`` summed would lose it to cancellation);
    a row with some :math:`\delta'_c > 50` takes the shifted log-sum-exp
    instead (``expm1`` would overflow, the KL is large there anyway).
    """

    def __init__(self, xp, student_logits, teacher_logits, temperature):
        self.q = probabilities(xp, teacher_logits / temperature)
        delta = (student_logits - teacher_logits) / temperature
        self.centred = delta - xp.sum(self.q * delta, axis=1, keepdims=True)
        # Rounding leaves r = sum q delta' != 0; log sum q e^delta' - r is the KL for any shift.
        self.residual = xp.sum(self.q * self.centred, axis=1, keepdims=True)
        top = xp.max(self.centred, axis=1, keepdims=True)
        near = xp.log1p(xp.sum(self.q * xp.expm1(xp.minimum(self.centred, 50.0)), axis=1))
        far = top[:, 0] + xp.log(xp.sum(self.q * xp.exp(self.centred - top), axis=1))
        self.kl = xp.where(top[:, 0] > 50.0, far, near) - self.residual[:, 0]


def _soft_weight(labels, alpha):
    return 1.0 if labels is None else alpha


def distillation_loss(student_logits, teacher_logits, temperature, labels=None, alpha=0.5, *,
                      check_finite=True):
    r"""Hinton et al.'s distillation loss: :math:`\alpha T^2\, \mathrm{KL}(q^T \| p^T) + (1 - \alpha)\, \mathrm{CE}`.

    .. math::  L = \alpha\, \frac{T^2}{N} \sum_{n,c} q^T_{nc} \big(\log q^T_{nc} - \log p^T_{nc}\big)
               - \frac{1 - \alpha}{N} \sum_n \log p^1_{n y_n}

    with :math:`p^T = \operatorname{softmax}(z_s / T)`, :math:`q^T =
    \operatorname{softmax}(z_t / T)` along the classes. The ``T^2`` keeps the
    soft term's gradient, which scales as ``1 / T^2``, comparable across
    temperatures. Convention: docs/conventions.rst, section 4.11.

    Parameters
    ----------
    student_logits, teacher_logits : (N, C) arrays
    temperature : float
        ``T > 0``.
    labels : (N,) integer array, optional
        Class indices for the hard term (cross entropy at temperature 1).
        Without them the loss is the soft term alone and ``alpha`` is unused.
    alpha : float
        Weight of the soft term, in ``[0, 1]``; the hard term gets ``1 - alpha``
        (Keras's distillation example weighs the hard term by its ``alpha``).
    check_finite : bool
        Raise ValueError on NaN or infinity in the logits.

    Returns
    -------
    0-d array

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import distillation_loss
    >>> z = np.array([[1.0, 2.0, 3.0]])
    >>> float(distillation_loss(z, z, temperature=4.0))
    0.0
    >>> round(float(distillation_loss(z, z, 4.0, labels=np.array([2]), alpha=0.0)), 10)
    0.4076059644
    """
    xp, device = _check(student_logits, teacher_logits, temperature, labels, alpha, check_finite)
    terms = _Terms(xp, student_logits, teacher_logits, temperature)
    n = student_logits.shape[0]
    loss = _soft_weight(labels, alpha) * temperature ** 2 * xp.sum(terms.kl) / n
    if labels is None:
        return loss
    hard = -xp.sum(_one_hot(xp, device, labels, student_logits)
                   * log_probabilities(xp, student_logits)) / n
    return loss + (1.0 - alpha) * hard


def distillation_loss_vjp(student_logits, teacher_logits, cotangent, temperature, labels=None,
                          alpha=0.5, *, check_finite=True):
    r"""Cotangents ``(student_logits, teacher_logits, labels)`` of :func:`distillation_loss`.

    With :math:`w = \alpha` (1 without labels) and :math:`G` the scalar cotangent:

    .. math::  \bar z_s = G\Big[\frac{w T}{N} (p^T - q^T) + \frac{1 - \alpha}{N} (p^1 - e_y)\Big],\qquad
               \bar z_t = -G\, \frac{w T}{N}\, q^T \odot \delta'

    with :math:`\delta' = \delta - \sum_c q^T_c \delta_c`, :math:`\delta = (z_s - z_t) / T`:
    the second is the softmax backward :math:`q \odot (a - \sum_c q_c a_c)` of
    :math:`a = \log q - \log p = \mathrm{KL} - \delta'` (the :math:`\log q` inside
    the KL has zero derivative). ``labels`` gets ``None``.
    """
    xp, device = _check(student_logits, teacher_logits, temperature, labels, alpha, check_finite,
                        cotangent)
    terms = _Terms(xp, student_logits, teacher_logits, temperature)
    n = student_logits.shape[0]
    scale = cotangent * _soft_weight(labels, alpha) * temperature / n
    # softmax_backward(q, log q - log p) = -q delta': the constant KL drops out.
    d_teacher = -scale * terms.q * (terms.centred - terms.residual)
    d_student = scale * (probabilities(xp, student_logits / temperature) - terms.q)
    if labels is not None:
        d_student = d_student + cotangent * (1.0 - alpha) / n * (
            probabilities(xp, student_logits) - _one_hot(xp, device, labels, student_logits))
    return DistillationCotangents(d_student, d_teacher)
