"""qcore plugin: signal analysis over any predictions and labels, portfolio and position analysis of a backtest's
outputs, their HTML report sections, the ``analysis`` record and ``qcore analyze``."""
