"""qmine: automated factor research for qcore (``qcore mine``)."""

__version__ = "0.1.0"
