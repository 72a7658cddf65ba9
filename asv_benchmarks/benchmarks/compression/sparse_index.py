"""Relative index encoding of a 1M-entry mask (10% kept, 4-bit gaps) against a NumPy one-liner.

The baseline ``np.diff`` + ``divmod`` + ``np.repeat`` is the same arithmetic
without the array-API detours (no scatter, so refimpl interleaves the
fillers by ``repeat`` and indexing).
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.compression.sparse_index import relative_index_decode, relative_index_encode


def numpy_encode(mask, bits):
    steps = np.diff(np.flatnonzero(mask), prepend=-1) - 1
    fillers, rest = np.divmod(steps, 2**bits)
    owner = np.repeat(np.arange(steps.size), fillers + 1)
    within = np.arange(owner.size) - np.repeat(np.cumsum(fillers + 1) - fillers - 1, fillers + 1)
    filler = within < fillers[owner]
    return np.where(filler, 2**bits - 1, rest[owner]), filler


class RelativeIndex1M:
    def setup(self):
        self.mask = np.random.default_rng(0).uniform(size=1_000_000) < 0.1
        self.index = relative_index_encode(self.mask, bits=4)

    def time_encode(self):
        relative_index_encode(self.mask, bits=4)

    def time_decode(self):
        relative_index_decode(*self.index, shape=self.mask.shape)

    def track_encode_over_numpy(self):
        return common.ratio(lambda: relative_index_encode(self.mask, bits=4),
                            lambda: numpy_encode(self.mask, 4))

    track_encode_over_numpy.unit = "ratio"
