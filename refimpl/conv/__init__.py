"""FFT circular convolutions as invertible layers.

Members: :mod:`refimpl.conv.spectrum` (cached kernel spectra),
:mod:`refimpl.conv.circular` (n-d circular convolution over chosen axes),
:mod:`refimpl.conv.periodic` (multi-channel periodic convolution) and
:mod:`refimpl.conv.embed` (deep-learning kernels as full-size kernels); each
with its inverse, ``(sign, logabsdet)`` and VJPs. Conventions:
``docs/conventions.rst``, section 2.
"""

from . import circular, embed, periodic, spectrum
from .circular import *  # noqa: F403  (each member's __all__ is its public API)
from .embed import *  # noqa: F403
from .periodic import *  # noqa: F403
from .spectrum import *  # noqa: F403

__all__ = [*spectrum.__all__, *circular.__all__, *periodic.__all__, *embed.__all__]
