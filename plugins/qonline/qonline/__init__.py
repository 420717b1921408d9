"""qcore plugin: the online routine after each close (``qcore online update/retrain/predict/orders/monitor``)."""

__version__ = "0.1.0"
