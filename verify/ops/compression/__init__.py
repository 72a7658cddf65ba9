"""Records of :mod:`refimpl.compression`: one module per member."""
