"""qcore plugin: online serving of a rolling run's latest model (``qcore online predict/simulate/status``)."""

__version__ = "0.1.0"
