"""Deep compression: pruning, weight sharing, Huffman coding, sparse storage and its size.

The pipeline of Han et al. (2016), "Deep compression", and the masks of
dense-sparse-dense training (Han et al. 2017). Members:
:mod:`~refimpl.compression.pruning` (magnitude and threshold masks, DSD
phases), :mod:`~refimpl.compression.sharing` (k-means quantisation as
scikit-learn's Lloyd, the shared weights and the centroid gradient),
:mod:`~refimpl.compression.huffman` (optimal canonical codes, encoding and
decoding of bit arrays), :mod:`~refimpl.compression.sparse_index` (the
relative index format with filler zeros) and
:mod:`~refimpl.compression.report` (the bits of the whole pipeline).
Conventions: ``docs/conventions.rst``, sections 9.1 to 9.5.
"""

from . import huffman, pruning, report, sharing, sparse_index
from .huffman import *  # noqa: F403  (each member's __all__ is its public API)
from .pruning import *  # noqa: F403
from .report import *  # noqa: F403
from .sharing import *  # noqa: F403
from .sparse_index import *  # noqa: F403

__all__ = [*pruning.__all__, *sharing.__all__, *huffman.__all__, *sparse_index.__all__,
           *report.__all__]
