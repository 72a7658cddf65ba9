"""refimpl: reference implementations with hand-derived VJPs, for NumPy and CuPy.

Every op takes its array namespace from its inputs (array API standard), so
the same code runs on NumPy, CuPy and any array-API library; every
differentiable op ``f`` has ``f_vjp``. The ops live in family packages, in
the style of ``scipy.linalg``:

* :mod:`refimpl.linalg` -- Householder products (FastH), the SVD-parametrised layer;
* :mod:`refimpl.conv` -- FFT circular and periodic convolutions as invertible layers;
* :mod:`refimpl.flows` -- normalizing flows (coupling, ActNorm, LU, Householder layers), densities;
* :mod:`refimpl.nn` -- network layers in PyTorch layouts, and ``sequential``;
* :mod:`refimpl.attribution` -- layer-wise relevance propagation;
* :mod:`refimpl.vi` -- mean-field variational inference (CAVI, BGMM, ADVI);
* :mod:`refimpl.embedding` -- exact t-SNE with its gradient;
* :mod:`refimpl.analysis` -- channel correspondence between networks, network dissection;
* :mod:`refimpl.compression` -- deep compression: pruning, weight sharing, Huffman coding.

This package itself holds the backend API (:mod:`refimpl.backend`). The
verification suite is the sibling package :mod:`verify`; the conventions
are in ``docs/conventions.rst``.
"""

from . import analysis, attribution, compression, conv, embedding, flows, linalg, nn, vi
from .backend import (
    available_backends,
    get_backend,
    get_namespace,
    set_backend,
    to_numpy,
    use_backend,
)

__version__ = "0.2.0"
CONVENTION_VERSION = "2"

__all__ = [
    "analysis",
    "attribution",
    "available_backends",
    "compression",
    "conv",
    "embedding",
    "flows",
    "get_backend",
    "get_namespace",
    "linalg",
    "nn",
    "set_backend",
    "to_numpy",
    "use_backend",
    "vi",
]
