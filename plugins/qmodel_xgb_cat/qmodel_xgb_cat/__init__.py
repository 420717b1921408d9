"""qcore plugin: XGBoost and CatBoost models with Qlib's arguments (``XGBModel``, ``CatBoostModel``)."""
