"""Build the Cython kernels; all metadata lives in pyproject.toml.

FASTRNN_DEBUG=1 turns bounds checking and the other Cython safety checks back on.
"""
import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTRNN_DEBUG", "0") not in ("", "0")
# FASTRNN_SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer (.ci/sanitize.sh)
SANITIZE = (["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
            if os.environ.get("FASTRNN_SANITIZE", "0") not in ("", "0") else [])

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}

KERNELS = ["_blas", "_stack", "lstm", "gru", "rnn"]

extensions = [
    Extension(
        f"fastrnn._kernels.{name}",
        [f"fastrnn/_kernels/{name}.pyx"],
        # the C headers every module includes: editing one rebuilds them all
        depends=sorted(glob.glob("fastrnn/_kernels/*.h")),
        include_dirs=[np.get_include(), "fastrnn/_kernels"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # no-trapping-math lets gcc if-convert (and so vectorise) the branch-free
        # activations in cell_math.h; nothing here reads FP exception flags or errno.
        # -Wno-psabi: the per-ISA vector helpers there are always inlined, so the
        # calling-convention notes gcc gives for their vector returns do not apply.
        # -fno-wrapv undoes the -fwrapv in Python's own CFLAGS: with int overflow
        # defined, gcc cannot turn the kernels' int index arithmetic into pointer
        # steps (a batch-1 step at hidden 64 ran 15% slower); Cython's code does not
        # rely on it, nor does ours.
        extra_compile_args=(["-O0", "-g"] if DEBUG else ["-O3"])
        + ["-fno-trapping-math", "-fno-math-errno", "-fno-wrapv", "-Wno-psabi"] + SANITIZE,
        extra_link_args=SANITIZE,
    )
    for name in KERNELS
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
