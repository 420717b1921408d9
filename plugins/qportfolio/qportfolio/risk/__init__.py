"""Risk models: covariance estimators on a returns matrix, a fundamental factor model on a store, risk-data files."""
