"""Records of :mod:`refimpl.embedding`: one module per member."""
