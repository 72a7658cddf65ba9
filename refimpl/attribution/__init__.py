"""Explanations of a network's decisions: relevance propagation, gradients, paths, class
activation maps, perturbations, LIME and activation maximisation.

Members: :mod:`refimpl.attribution.relevance` (every standard LRP rule of
zennit, captum and iNNvestigate, the composites, and :func:`lrp` over a
list of :mod:`refimpl.nn` layers), :mod:`~refimpl.attribution.gradients`
(saliency, sensitivity, input times gradient, SmoothGrad, VarGrad, guided
backpropagation, deconvnet), :mod:`~refimpl.attribution.integrated`
(integrated gradients with captum's quadratures), :mod:`~refimpl.attribution.class_maps`
(CAM, Grad-CAM, guided Grad-CAM), :mod:`~refimpl.attribution.maps` (upsampling
as PyTorch's ``interpolate``, the probabilistic refinement),
:mod:`~refimpl.attribution.perturbation` (occlusion, feature ablation),
:mod:`~refimpl.attribution.surrogate` (LIME) and :mod:`~refimpl.attribution.maximization`
(activation maximisation). Every method reaches the network through the
layers' hand-written VJPs. Conventions: ``docs/conventions.rst``, section 5.
"""

from . import (
    class_maps,
    gradients,
    integrated,
    maps,
    maximization,
    perturbation,
    relevance,
    surrogate,
)
from .class_maps import *  # noqa: F403  (each member's __all__ is its public API)
from .gradients import *  # noqa: F403
from .integrated import *  # noqa: F403
from .maps import *  # noqa: F403
from .maximization import *  # noqa: F403
from .perturbation import *  # noqa: F403
from .relevance import *  # noqa: F403
from .surrogate import *  # noqa: F403

__all__ = [*relevance.__all__, *gradients.__all__, *integrated.__all__, *class_maps.__all__,
           *maps.__all__, *perturbation.__all__, *surrogate.__all__, *maximization.__all__]
