"""Network layers in PyTorch layouts, with forward passes and hand-written VJPs.

Members: :mod:`~refimpl.nn.dense` (``linear``), :mod:`~refimpl.nn.convolution`
(``conv2d``), :mod:`~refimpl.nn.pooling` (average, max, adaptive average),
:mod:`~refimpl.nn.activation` (ReLU, tanh, sigmoid),
:mod:`~refimpl.nn.normalization` (batch norm in inference mode),
:mod:`~refimpl.nn.reshape` (flatten) and :mod:`~refimpl.nn.network`
(``sequential`` over a list of layers), :mod:`~refimpl.nn.categorical` (softmax, log-softmax),
:mod:`~refimpl.nn.attention` (scaled dot-product and multi-head attention, soft
attention over a memory), :mod:`~refimpl.nn.capsules` (squash, dynamic
routing) and :mod:`~refimpl.nn.distillation`. Each layer is a function with its
``_vjp`` and a class (a frozen dataclass of arrays) for networks.
Conventions: ``docs/conventions.rst``, section 4.
"""

from . import (
    activation,
    attention,
    capsules,
    categorical,
    convolution,
    dense,
    distillation,
    network,
    normalization,
    pooling,
    reshape,
)
from .activation import *  # noqa: F403  (each member's __all__ is its public API)
from .attention import *  # noqa: F403
from .capsules import *  # noqa: F403
from .categorical import *  # noqa: F403
from .convolution import *  # noqa: F403
from .dense import *  # noqa: F403
from .distillation import *  # noqa: F403
from .network import *  # noqa: F403
from .normalization import *  # noqa: F403
from .pooling import *  # noqa: F403
from .reshape import *  # noqa: F403

__all__ = [*dense.__all__, *convolution.__all__, *pooling.__all__, *activation.__all__,
           *normalization.__all__, *reshape.__all__, *network.__all__, *categorical.__all__,
           *attention.__all__, *capsules.__all__, *distillation.__all__]
