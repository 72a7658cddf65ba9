r"""Gradient attributions: saliency, sensitivity, input times gradient, SmoothGrad, VarGrad,
guided backpropagation and deconvnet.

Convention (docs/conventions.rst, section 5.2). Every method explains the score
:math:`f_t(x) = y_{n, t_n}` of one output unit per sample (``y = sequential(layers, x)``
of shape ``(N, C)``, ``target`` an integer array ``(N,)``) by its gradient
:math:`g = \partial f_t / \partial x`, computed by one forward pass and one
backward pass through the layers' hand-written VJPs, seeded with the one-hot rows
of ``target`` (captum's ``target``). Samples are independent.

* ``saliency``: :math:`|g|` (captum's ``Saliency``, ``abs=True``), or :math:`g`.
* ``sensitivity``: :math:`g^2`, which sums to :math:`\|g\|^2` (sensitivity analysis).
* ``input_x_gradient``: :math:`x \odot g` (captum's ``InputXGradient``).
* ``smoothgrad`` and ``vargrad``: the mean and the population variance (divisor
  :math:`S`) of the saliency at the noisy inputs :math:`x + \varepsilon_s`, with the
  noise :math:`\varepsilon` given (captum's ``NoiseTunnel`` over ``Saliency``).
* ``guided_backprop`` and ``deconvnet``: the backward pass with every ReLU's rule
  replaced (captum's ``GuidedBackprop``, ``Deconvolution``); other layers, max
  pooling included (to each window's first maximum), keep their VJPs.
"""

from __future__ import annotations

from .._validation import require_finite, require_real_floating, require_same_dtype
from ..backend import get_namespace
from ._network import target_gradient

__all__ = [
    "deconvnet",
    "guided_backprop",
    "input_x_gradient",
    "saliency",
    "sensitivity",
    "smoothgrad",
    "vargrad",
]


def _finite(check_finite, **arrays):
    """Type-check the arrays and, with ``check_finite``, refuse NaN and infinity in them."""
    for name, value in arrays.items():
        require_real_floating(name, value)
        if check_finite:
            require_finite(name, value)


def _gradient(layers, x, target, check_finite, relu="gradient"):
    _finite(check_finite, x=x)
    return target_gradient(layers, x, target, relu)[1]


def saliency(layers, x, target, *, abs=True, check_finite=True):
    r"""Saliency: the gradient of the target score, in absolute value by default.

    .. math::  S(x) = \Big|\frac{\partial f_t}{\partial x}\Big|\quad(\texttt{abs=True}),
               \qquad \frac{\partial f_t}{\partial x}\quad(\texttt{abs=False})

    Parameters
    ----------
    layers : list of refimpl.nn layers
        The network; its output has shape ``(N, C)``.
    x : (N, ...) array
        Input batch.
    target : (N,) integer array
        The output unit explained for each sample.
    abs : bool
        captum's default ``True`` (Simonyan et al.); ``False`` keeps the sign.
    check_finite : bool
        Check ``x`` for NaN and infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from refimpl.nn import Linear
    >>> from refimpl.attribution import saliency
    >>> net = [Linear(np.array([[1.0, -2.0], [3.0, 0.5]]))]
    >>> saliency(net, np.array([[1.0, 1.0]]), np.array([0])).tolist()
    [[1.0, 2.0]]
    """
    gradient = _gradient(layers, x, target, check_finite)
    if not abs:
        return gradient
    xp, _ = get_namespace(gradient)
    return xp.abs(gradient)


def sensitivity(layers, x, target, *, check_finite=True):
    r"""Sensitivity analysis: the squared gradient, :math:`R_i = (\partial f_t / \partial x_i)^2`.

    Per sample, :math:`\sum_i R_i = \|\nabla_x f_t\|^2`. Arguments as :func:`saliency`.
    """
    gradient = _gradient(layers, x, target, check_finite)
    return gradient * gradient


def input_x_gradient(layers, x, target, *, check_finite=True):
    r"""Input times gradient: :math:`R_i = x_i\, \partial f_t / \partial x_i`.

    On a bias-free ReLU network it is LRP-0 (the epsilon rule with
    :math:`\epsilon \to 0`). Arguments as :func:`saliency`.
    """
    return x * _gradient(layers, x, target, check_finite)


def _noisy_saliency(layers, x, target, noise, abs, check_finite):
    """The saliency at each noisy input ``x + noise[s]``, one at a time (a generator)."""
    _finite(check_finite, x=x, noise=noise)
    get_namespace(x, noise)
    require_same_dtype(x=x, noise=noise)
    if noise.ndim != x.ndim + 1 or tuple(noise.shape[1:]) != tuple(x.shape) or noise.shape[0] < 1:
        raise ValueError(f"noise must have shape (n_samples, *x.shape) = (S, "
                         f"{', '.join(map(str, x.shape))}) with S >= 1, got {tuple(noise.shape)}")
    return (saliency(layers, x + noise[s, ...], target, abs=abs, check_finite=False)
            for s in range(noise.shape[0]))


def _welford(samples):
    """``(mean, sum of squared deviations)`` in one stable pass (Welford's update)."""
    mean = squares = None
    for k, value in enumerate(samples, start=1):
        if mean is None:
            mean, squares = value, 0.0 * value
            continue
        shift = value - mean
        mean = mean + shift / k
        squares = squares + shift * (value - mean)
    return mean, squares


def smoothgrad(layers, x, target, noise, *, abs=True, check_finite=True):
    r"""SmoothGrad: the mean saliency over given input noise.

    .. math::  \mathrm{SG}(x) = \frac1S \sum_{s=1}^S S(x + \varepsilon_s)

    with :math:`S` the :func:`saliency` (``abs`` as there: captum's ``NoiseTunnel``
    over ``Saliency``; Smilkov et al. average the signed gradient, ``abs=False``).

    Parameters
    ----------
    noise : array of shape (S, N, ...)
        The perturbations :math:`\varepsilon_s` (captum draws
        :math:`\mathcal N(0, \sigma^2)`; here they are given, so results are
        deterministic). Zero noise gives the saliency.
    layers, x, target, abs, check_finite
        As :func:`saliency`.
    """
    return _welford(_noisy_saliency(layers, x, target, noise, abs, check_finite))[0]


def vargrad(layers, x, target, noise, *, abs=True, check_finite=True):
    r"""VarGrad: the population variance of the saliency over given input noise.

    .. math::  \mathrm{VG}(x) = \frac1S \sum_{s=1}^S \big(S(x + \varepsilon_s) - \mathrm{SG}(x)\big)^2

    captum's ``NoiseTunnel`` (``nt_type="vargrad"``) forms :math:`E[S^2] - E[S]^2`,
    which cancels; the same value is accumulated here by Welford's update.
    Arguments as :func:`smoothgrad`.
    """
    samples = _noisy_saliency(layers, x, target, noise, abs, check_finite)
    return _welford(samples)[1] / noise.shape[0]


def guided_backprop(layers, x, target, *, check_finite=True):
    r"""Guided backpropagation: at every ReLU with input :math:`a`, :math:`g \mapsto [a > 0] \max(g, 0)`.

    Every other layer keeps its VJP (max pooling to each window's first
    maximum; tanh and sigmoid their derivatives), as captum's ``GuidedBackprop``
    (which overrides ``nn.ReLU`` modules only). Arguments as :func:`saliency`.
    """
    return _gradient(layers, x, target, check_finite, relu="guided")


def deconvnet(layers, x, target, *, check_finite=True):
    r"""Deconvnet: at every ReLU, :math:`g \mapsto \max(g, 0)`, whatever the sign of its input.

    Every other layer keeps its VJP, as captum's ``Deconvolution``. Arguments as
    :func:`saliency`.
    """
    return _gradient(layers, x, target, check_finite, relu="deconvnet")
