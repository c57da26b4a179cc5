"""The fuzzer's child process: reads one input path per line on stdin, answers one
verdict per line on stdout. Runs under an address-space limit (RLIMIT_AS) of what it
uses after import plus a headroom, so that memory beyond the bound is a failure.

Verdicts: LOADED (read, made a model, ran it), READ (read, no model in it: refused by
fastrnn.load with a CheckpointError), REFUSED (load_checkpoint raised CheckpointError),
or FAIL <why> for anything else: another exception, a MemoryError turned into a
CheckpointError (memory the checks should have refused first), an internal error.
A crash or hang is seen by the parent (no answer).
"""
import resource
import sys


def _vm_size():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))


def _one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def check(path):
    import numpy as np

    import fastrnn
    from fastrnn.io import CheckpointError, load_checkpoint

    def refused(exc):
        msg = str(exc)
        if "internal error" in msg or "MemoryError" in msg or "more memory" in msg:
            return f"FAIL {_one_line(msg)}"
        return None

    try:
        load_checkpoint(path)
    except CheckpointError as exc:
        return refused(exc) or "REFUSED"
    except BaseException as exc:  # noqa: B902 — anything else breaks the contract
        return f"FAIL load_checkpoint raised {type(exc).__name__}: {_one_line(exc)}"
    try:
        model = fastrnn.load(path)
    except CheckpointError as exc:
        return refused(exc) or "READ"
    except BaseException as exc:
        return f"FAIL fastrnn.load raised {type(exc).__name__}: {_one_line(exc)}"
    try:
        x = np.linspace(-1, 1, 2 * model.input_size, dtype=model.dtype)
        x = x.reshape((1, 2, model.input_size) if model.batch_first else (2, 1, model.input_size))
        out = model(x)[0]
        if not np.isfinite(out).all():
            return "FAIL the loaded model's output is not finite"
    except BaseException as exc:
        return f"FAIL running the loaded model raised {type(exc).__name__}: {_one_line(exc)}"
    return "LOADED"


def main():
    headroom = int(sys.argv[1])
    for path in sys.argv[2:]:  # warm-up: imports, thread pools and their stacks before the cap
        check(path)
    if headroom > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + headroom, hard))
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    for line in sys.stdin:
        sys.stdout.write(check(line.rstrip("\n")) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
