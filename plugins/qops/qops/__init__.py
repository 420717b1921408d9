"""qops: Qlib's expression operators as whole-panel Cython kernels (plus cross-sectional operators) for qcore."""
