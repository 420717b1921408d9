"""Weight strategies (:class:`qcore.trading.WeightStrategy`): the backtest turns their target weights into orders."""
