"""Build the Cython kernels; all metadata lives in pyproject.toml.

Three extension modules: fastrnn._kernels._blas (the BLAS wrappers, no kernel C),
fastrnn._kernels._decode (the decode loops, over _stack's Kernel) and
fastrnn._kernels._stack, the only one that contains the C kernels: the float32 kernels
once per instruction set (src/isa_*.c) and their dispatch (src/dispatch.c); the family
step functions (lstm.pxd, gru.pxd, rnn.pxd) are inline and compile into it.

FASTRNN_DEBUG=1 turns bounds checking and the other Cython safety checks back on (and
compiles -O0 -g). FASTRNN_SANITIZE=1 builds with AddressSanitizer and UBSan
(-fsanitize=address,undefined -O1 -g, compile and link); run the tests with the ASan
runtime preloaded, e.g. LD_PRELOAD=$(gcc -print-file-name=libasan.so).
"""
import glob
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name):
    return os.environ.get(name, "0") not in ("", "0")


DEBUG = _flag("FASTRNN_DEBUG")
SANITIZE = _flag("FASTRNN_SANITIZE")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}

# no-trapping-math lets gcc if-convert (and so vectorise) the branch-free activations
# in src/cell_math.h; nothing here reads FP exception flags or errno.
# -Wno-psabi: the per-ISA vector helpers are always inlined, so the calling-convention
# notes gcc gives for their vector returns do not apply.
# -fno-wrapv undoes the -fwrapv in Python's own CFLAGS: with int overflow defined, gcc
# cannot turn the kernels' int index arithmetic into pointer steps (a batch-1 step at
# hidden 64 ran 15% slower); Cython's code does not rely on it, nor does ours.
if SANITIZE:
    # -fexpensive-optimizations: at -O1 gcc would not contract a * b + c into FMAs, and
    # the AVX-512 activations' Newton step counts on them (without, tanh's error is
    # 2.9e-7, over the tests' 2.5e-7)
    optimise = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g",
                "-fexpensive-optimizations"]
elif DEBUG:
    optimise = ["-O0", "-g"]
else:
    optimise = ["-O3"]
compile_args = optimise + ["-fno-trapping-math", "-fno-math-errno", "-fno-wrapv", "-Wno-psabi"]
link_args = ["-fsanitize=address,undefined"] if SANITIZE else []

KERNELS = "fastrnn/_kernels"
# Each src/isa_*.c includes the template once; on other architectures than x86-64 the
# x86 units compile to nothing and only the generic table exists.
KERNEL_C = [f"{KERNELS}/src/{name}.c"
            for name in ("isa_avx512", "isa_avx2", "isa_generic", "dispatch")]
# the headers both sides include: editing one rebuilds the module
HEADERS = sorted(glob.glob(f"{KERNELS}/*.h") + glob.glob(f"{KERNELS}/src/*.h"))


def extension(name, c_sources=()):
    return Extension(
        f"fastrnn._kernels.{name}",
        [f"{KERNELS}/{name}.pyx", *c_sources],
        depends=HEADERS,
        include_dirs=[np.get_include(), KERNELS],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )


# _decode (the compiled decode loops) reaches the kernels through _stack's Kernel and
# BLAS through _blas: it links no kernel C of its own.
extensions = [extension("_blas"), extension("_stack", KERNEL_C), extension("_decode")]


# The longest compilations start first (gcc 12, one core: the AVX2 unit 17 s, the
# AVX-512 unit and the Cython module of _stack 8 s each, the rest 5 s or less).
_SLOW_FIRST = ("isa_avx2", "isa_avx512", "_stack")


def _compile_order(obj):
    name = os.path.splitext(os.path.basename(obj))[0]
    return _SLOW_FIRST.index(name) if name in _SLOW_FIRST else len(_SLOW_FIRST)


def _compile_concurrently(compiler, jobs):
    """Replace compiler.compile by one that compiles a call's sources on `jobs`
    threads (each runs its own gcc process), as distutils compiles them one by one."""
    def compile(sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                extra_preargs=None, extra_postargs=None, depends=None):
        macros, objects, extra_postargs, pp_opts, build = compiler._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs)
        cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)

        def one(obj):
            if obj in build:
                src, ext = build[obj]
                compiler._compile(obj, src, ext, cc_args, extra_postargs, pp_opts)

        with ThreadPoolExecutor(jobs) as pool:
            for _ in pool.map(one, sorted(objects, key=_compile_order)):
                pass
        return objects

    compiler.compile = compile


class ParallelBuildExt(build_ext):
    """build_ext that builds the extensions in parallel (-j, default: every core) and
    compiles each extension's C sources concurrently: the kernel module's five units
    would otherwise compile one after another."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        jobs = self.parallel if isinstance(self.parallel, int) and self.parallel > 1 else (
            os.cpu_count() or 1)
        _compile_concurrently(self.compiler, jobs)
        super().build_extensions()


setup(
    ext_modules=cythonize(extensions, compiler_directives=directives,
                          nthreads=os.cpu_count() or 1),
    cmdclass={"build_ext": ParallelBuildExt},
)
