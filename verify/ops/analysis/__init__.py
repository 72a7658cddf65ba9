"""Records of :mod:`refimpl.analysis`: one module per member."""
