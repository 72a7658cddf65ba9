"""Records of :mod:`refimpl.nn`: one module per member."""
