"""Records of :mod:`refimpl.conv`: one module per member."""
