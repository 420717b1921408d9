"""Single-asset order execution: simulator, interpreters, reward, environment and baselines."""
