"""Portfolio allocation over daily bars: simulator/environment, metrics and baselines."""
