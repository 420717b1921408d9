"""FinRL-style stock trading with share-count actions."""
