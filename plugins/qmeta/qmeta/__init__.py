"""qmeta: meta-learning for concept drift in qcore (DDG-DA: learned sample weights per rolling window)."""
