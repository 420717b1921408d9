"""qcore plugin: serve a store read-only over Apache Arrow Flight (``qcore serve``) and read it back as the
``qlib_flight`` data provider."""

__version__ = "0.1.0"
