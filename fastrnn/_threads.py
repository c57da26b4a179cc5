"""How many threads fastrnn's kernels use.

fastrnn's kernels run on the calling thread and call BLAS (scipy's OpenBLAS) from
there; with more than one thread, a batch-1 step is also split across two cores.
Left at OpenBLAS's default (one thread per core), a serving process that runs
models from several threads oversubscribes the cores: two threads streaming hidden-512
LSTMs on 2 cores took as long as one after the other. So fastrnn
sets that pool to one thread when it is imported, and parallelism comes from calling
from several threads; `set_num_threads(n)` (or FASTRNN_NUM_THREADS=n in the
environment) gives large single calls n threads instead. The pool is scipy's: it also
governs scipy.linalg in this process, not NumPy's own BLAS.
"""
import contextlib
import os
from typing import Iterator, Optional

_DEFAULT = 1


def _controller():
    """threadpoolctl's handle on the BLAS that scipy.linalg.cython_blas calls: the
    OpenBLAS bundled in scipy's wheel (scipy.libs/), or every BLAS when scipy links a
    shared one (conda, distributions)."""
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS so that it can be found)
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    bundled = [lib.filepath for lib in blas.lib_controllers
               if os.path.basename(os.path.dirname(lib.filepath)).startswith("scipy")]
    return blas.select(filepath=bundled) if bundled else blas


def set_num_threads(n: int, blas: Optional[int] = None) -> None:
    """Set the threads one call may use, for the whole process.

    With ``n >= 2``, small-batch steps are split across two cores (each core keeps
    half of the weights in its own cache; a helper thread meets the caller at a spin
    barrier), and BLAS (scipy's OpenBLAS pool) gets `blas` threads for the
    large-batch products. fastrnn sets 1 at import (or ``FASTRNN_NUM_THREADS``), so
    that serving from several threads does not oversubscribe the cores.

    Parameters
    ----------
    n : int
        Threads for fastrnn's own kernels (>= 1; the step split uses two).
    blas : int, optional
        Threads of scipy's BLAS pool (default `n`). It also governs ``scipy.linalg``
        in this process.

    Raises
    ------
    ValueError
        `n` or `blas` not an int >= 1.

    See Also
    --------
    num_threads : the same for a ``with`` block.

    Notes
    -----
    OpenBLAS's idle workers spin for a while after each multithreaded call, which
    slows the split steps that follow (LSTM H=512, batch 1: 35 us/step with
    ``blas=1``, 48 with ``blas=2``); a server of batch-1 streams does best with
    ``set_num_threads(2, blas=1)``.

    The split needs a second CPU: a thread allowed one CPU, or a process whose control
    group has a CPU quota of less than 2 CPUs (a container's CPU limit, read here:
    `cpu_quota`), runs split calls alone.

    Examples
    --------
    >>> fastrnn.set_num_threads(2, blas=1)
    >>> fastrnn.get_num_threads()
    2
    >>> fastrnn.set_num_threads(1)
    """
    for name, value in (("n", n), ("blas", n if blas is None else blas)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    from fastrnn._kernels import _stack

    _controller().limit(limits=n if blas is None else blas)
    _stack.set_kernel_threads(n)
    _stack.set_quota_alone(n >= 2 and quota_runs_alone(cpu_quota()))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity; the machine's count where the OS
    does not say)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def quota_runs_alone(quota: Optional[float]) -> bool:
    """Whether split calls run on the calling thread alone under a CPU quota of `quota`
    CPUs (cpu_quota; None: none): two threads at once need two CPUs' time."""
    return quota is not None and quota < 2


def cpu_quota(proc: str = "/proc/self", root: str = "") -> Optional[float]:
    """The CPU time this process's control group may use, in CPUs (a container's CPU
    limit), or None where there is none or it cannot be read.

    cgroup v2's ``cpu.max`` (quota and period) or v1's ``cpu.cfs_quota_us`` and
    ``cpu.cfs_period_us``, for the process's group and each group above it that this
    process can see (the smallest wins), found through ``/proc/self/cgroup`` and the
    mounts in ``/proc/self/mountinfo``. `proc` and `root` (a prefix of every mount
    point) are for the tests.

    Returns
    -------
    float or None
    """
    try:
        with open(os.path.join(proc, "cgroup")) as f:
            groups = [line.rstrip("\n").split(":", 2) for line in f]
        with open(os.path.join(proc, "mountinfo")) as f:
            mounts = [line.split() for line in f]
    except OSError:
        return None
    quotas = []
    for group in groups:
        if len(group) != 3:
            continue
        hierarchy, controllers, path = group
        v2 = hierarchy == "0" and controllers == ""
        if not v2 and "cpu" not in controllers.split(","):
            continue
        for fields in mounts:
            if "-" not in fields or len(fields) < 5:
                continue
            fstype, options = fields[fields.index("-") + 1:][:1], fields[-1].split(",")
            if fstype != (["cgroup2"] if v2 else ["cgroup"]) or (not v2 and "cpu" not in options):
                continue
            mount_root, mount_point = fields[3].rstrip("/"), root + fields[4]
            # the group and its ancestors up to the mount's root; a group outside the
            # mount (a container's view of its own group, mounted from elsewhere): the
            # mount's root group, which is the container's
            rel = path[len(mount_root):].strip("/").split("/") \
                if (path + "/").startswith(mount_root + "/") else [""]
            for depth in range(len(rel) if rel != [""] else 0, -1, -1):
                quota = _group_quota(os.path.join(mount_point, *rel[:depth]), v2)
                if quota is not None:
                    quotas.append(quota)
    return min(quotas) if quotas else None


def _group_quota(directory: str, v2: bool) -> Optional[float]:
    try:
        if v2:
            with open(os.path.join(directory, "cpu.max")) as f:
                quota, period = f.read().split()[:2]
        else:
            with open(os.path.join(directory, "cpu.cfs_quota_us")) as f:
                quota = f.read().strip()
            with open(os.path.join(directory, "cpu.cfs_period_us")) as f:
                period = f.read().strip()
        if quota in ("max", "-1"):
            return None
        cpus = int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return cpus if cpus > 0 else None


def get_num_threads() -> int:
    """Threads a call may use: the larger of the step split's and the BLAS pool's.

    Returns
    -------
    int
    """
    from fastrnn._kernels import _stack

    return max(_get_blas_threads(), _stack.get_kernel_threads())


def _get_blas_threads() -> int:
    return max((lib["num_threads"] for lib in _controller().info()), default=1)


@contextlib.contextmanager
def num_threads(n: int, blas: Optional[int] = None) -> Iterator[None]:
    """Context manager: `set_num_threads` for a block, the previous counts restored.

    Parameters
    ----------
    n : int
        Threads for fastrnn's kernels in the block.
    blas : int, optional
        Threads of the BLAS pool in the block (default `n`).

    Examples
    --------
    >>> with fastrnn.num_threads(2):
    ...     inside = fastrnn.get_num_threads()
    >>> inside, fastrnn.get_num_threads()
    (2, 1)
    """
    from fastrnn._kernels import _stack

    kernel, blas_before = _stack.get_kernel_threads(), _get_blas_threads()
    set_num_threads(n, blas)
    try:
        yield
    finally:
        set_num_threads(kernel, blas_before)


def _set_default():
    env = os.environ.get("FASTRNN_NUM_THREADS")
    try:
        n = int(env) if env else _DEFAULT
    except ValueError:
        raise ValueError(f"FASTRNN_NUM_THREADS must be an int >= 1, got {env!r}") from None
    set_num_threads(n)
