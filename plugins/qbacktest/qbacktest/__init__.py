"""qcore plugin qbacktest."""
