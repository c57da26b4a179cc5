"""What a reader of a benchmark needs to know about where it ran."""
import datetime
import importlib
import os
import platform


def _cpu_model():
    # the name a tuned profile is keyed by
    from fastrnn._kernels.profile import cpu_model
    return cpu_model()


def _version(name):
    try:
        return importlib.import_module(name).__version__
    except Exception:
        return None


def describe(threads):
    from threadpoolctl import threadpool_info

    from fastrnn import __version__
    from fastrnn._kernels._stack import isa

    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "fastrnn": __version__,
        "fastrnn_isa": isa(),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "blas": blas,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
    }
