"""Records of :mod:`refimpl.vi`: one module per member (normal, bgmm, advi)."""
