"""A toy market adapter shipped as its own distribution, proving that qcore is extended without kernel changes."""
