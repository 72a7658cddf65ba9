"""The compression report of a 1M-weight layer (10% kept, 32 clusters) against its parts.

The baseline is the part every implementation pays: the histograms of the
two streams (``numpy.bincount``) after the relative index; the ratio shows
the cost of the Huffman lengths and the bookkeeping on top.
"""

from .. import common
from ..common import repeat, rounds  # noqa: F401 (asv reads its sampling from the module)

import numpy as np

from refimpl.compression.report import compression_report
from refimpl.compression.sparse_index import relative_index_encode


class Report1M:
    def setup(self):
        gen = np.random.default_rng(0)
        self.codes = np.where(gen.uniform(size=1_000_000) < 0.1, gen.integers(0, 32, 1_000_000), -1)

    def report(self):
        compression_report(self.codes, n_clusters=32, index_bits=5)

    def index_and_histograms(self):
        gaps, _ = relative_index_encode(self.codes >= 0, bits=5)
        np.bincount(gaps, minlength=32)
        np.bincount(self.codes[self.codes >= 0], minlength=32)

    def time_report(self):
        self.report()

    def track_report_over_index_and_histograms(self):
        return common.ratio(self.report, self.index_and_histograms)

    track_report_over_index_and_histograms.unit = "ratio"
