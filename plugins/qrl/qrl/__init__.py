"""qcore plugin qrl."""
