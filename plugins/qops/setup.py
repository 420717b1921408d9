"""Build of the qops Cython kernels (package metadata lives in pyproject.toml)."""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

_BUILD = {
    "include_dirs": [np.get_include(), "qops"],
    "define_macros": [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    # No -ffast-math: the kernels rely on IEEE NaN/inf semantics and on the exact order of their sums.
    # -fno-trapping-math / -fno-math-errno change no result; they let the row kernels be vectorised.
    "extra_compile_args": ["-O3", "-fopenmp", "-fno-trapping-math", "-fno-math-errno"],
    "extra_link_args": ["-fopenmp"],
}

extensions = [
    Extension("qops._rolling", ["qops/_rolling.pyx"], depends=["qops/_rowkernels.h"], **_BUILD),
    Extension("qops._cross", ["qops/_cross.pyx"], **_BUILD),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
