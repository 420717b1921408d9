"""qcore plugin: portfolio construction — risk models, a cvxpy optimiser, benchmark weights, weight strategies."""
