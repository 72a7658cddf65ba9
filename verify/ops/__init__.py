"""Op records: ``verify/ops/<family>/<member>.py`` mirrors ``refimpl/<family>/<member>.py``.

Each module registers the records of its member's ops on import;
:func:`verify.registry.ops` imports every module here, so a new member needs
no edit outside its own file.
"""
