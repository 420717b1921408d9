"""qops: Qlib's expression operators as whole-panel Cython kernels (plus cross-sectional operators) for qcore."""

import os as _os

# Kernel calls are many and short: OpenMP threads that spin between them steal the other core from numpy and
# pandas. Passive waiting costs nothing measurable per call and keeps a busy machine responsive. Set before the
# extension (and so the OpenMP runtime) loads; a value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from qops import _malloc as _malloc  # after the environment is set

#: Whether freed panels stay in the process for reuse (see :mod:`qops._malloc`).
MALLOC_TUNED = _malloc.tune()
