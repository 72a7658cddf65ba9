"""Records of :mod:`refimpl.attribution`: one module per member."""
