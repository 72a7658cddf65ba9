"""One module per building block; each registers its op records on import.

:func:`verify.registry.ops` imports every module here, so a new building
block needs no edit outside its own file.
"""
