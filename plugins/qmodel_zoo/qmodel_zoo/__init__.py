"""qcore plugin qmodel_zoo."""
