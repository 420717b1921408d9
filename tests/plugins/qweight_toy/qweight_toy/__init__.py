"""A toy third-party weight strategy, written only against qcore's trading contracts (no backtest import)."""
