"""Records of :mod:`refimpl.flows`: one module per member."""
