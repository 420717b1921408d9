"""Portfolio optimisers on cvxpy: problems built once with parameters (DPP) and re-solved each day."""
