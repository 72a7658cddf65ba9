"""Records of :mod:`refimpl.linalg`: one module per member."""
