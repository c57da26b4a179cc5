"""Run benchmark cases: build fastrnn and each peer on the same weights and input, check
the peer's output against fastrnn's, time them side by side, and return one record per
engine x case."""
import contextlib

import numpy as np

from fastrnn.benchmark import timing
from fastrnn.benchmark.engines import ENGINES, FastRNN, Unavailable, build_model

# Largest |fastrnn - peer| accepted as agreement, per dtype (T <= 1000).
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


@contextlib.contextmanager
def thread_limits(threads, fastrnn_blas=None):
    """Pin fastrnn (its two-core split and BLAS pool: fastrnn_blas threads, default
    `threads`), numpy's BLAS and torch to `threads`; restore them afterwards."""
    from threadpoolctl import threadpool_limits

    import fastrnn

    torch_threads = None
    try:
        import torch
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    from fastrnn._kernels import _stack
    from fastrnn._threads import _get_blas_threads

    before = (_stack.get_kernel_threads(), _get_blas_threads())
    with threadpool_limits(limits=threads):
        fastrnn.set_num_threads(threads, fastrnn_blas)
        try:
            yield
        finally:
            fastrnn.set_num_threads(*before)
            if torch is not None:
                torch.set_num_threads(torch_threads)


def _input(case, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((case.seq_len, case.batch, case.inputs)).astype(case.dtype)


def run_case(case, peers, threads, rounds, model=None):
    """Records for fastrnn and every requested peer on one case."""
    model = model if model is not None else build_model(case)
    x = _input(case)
    engines, skipped = {}, {}
    # fastrnn as a user would set it for the shape: small batches run its own split
    # steps, which OpenBLAS workers spinning after a multithreaded GEMM would slow
    fastrnn_blas = 1 if case.batch <= model.kernel.fused_max_batch else threads
    with thread_limits(threads, fastrnn_blas):
        engines["fastrnn"] = FastRNN(case, model, threads, x)
        for name in peers:
            try:
                engines[name] = ENGINES[name](case, model, threads, x)
            except Unavailable as exc:
                skipped[name] = str(exc)
        want = engines["fastrnn"]()
        errors = {"fastrnn": 0.0}
        for name in list(engines)[1:]:
            errors[name] = float(np.max(np.abs(np.asarray(engines[name](), np.float64) - want)))
        samples = timing.interleaved(engines, rounds=rounds)
    return records_of(case, threads, samples, errors, skipped)


def records_of(case, threads, samples, errors, skipped, **extra):
    """One record per engine: `samples` {engine: per-call seconds of each round} (fastrnn
    first), `errors` {engine: max |engine - fastrnn|}, `skipped` {engine: why}."""
    steps = 1 if case.streaming else case.seq_len
    base = dict(case.as_dict(), threads=threads, **extra)
    records = []
    fast = timing.summarize(samples["fastrnn"])["median_s"]
    for name in samples:
        stats = timing.summarize(samples[name])
        per_call = stats["median_s"]
        records.append(dict(
            base, engine=name, **stats,
            us_per_step=per_call / steps * 1e6,
            seq_per_s=case.batch / per_call,
            gflops=case.flops_per_step() * steps / per_call / 1e9,
            speedup=per_call / fast,
            max_abs_err=errors[name],
            agrees=errors[name] <= TOLERANCE[case.dtype],
        ))
    for name, why in skipped.items():
        records.append(dict(base, engine=name, skipped=why))
    return records


def run(cases, peers, threads=1, rounds=7, progress=None, models=None):
    """All cases; `progress(case)` is called before each; `models` maps a case to a
    ready model (e.g. one loaded from a checkpoint)."""
    records = []
    for case in cases:
        if progress is not None:
            progress(case)
        model = models.get(case) if models else None
        records.extend(run_case(case, peers, threads, rounds, model))
    return records


def run_split(cases, rounds=7):
    """fastrnn on one core against fastrnn on two (BLAS at one thread), with the
    library's own rules for when and how to split, interleaved; no peers in the
    process, whose idle BLAS / OpenMP workers would spin on the second core."""
    from fastrnn._kernels import _stack

    records = []
    before = _stack.get_kernel_threads()
    for case in cases:
        model = build_model(case)
        x = _input(case)
        steps = 1 if case.streaming else case.seq_len
        if case.streaming:
            stream = model.stream(batch=case.batch)
            x_t = np.ascontiguousarray(x[0])
            call = lambda: stream.step(x_t)  # noqa: E731, B023
        else:
            call = lambda: model(x)  # noqa: E731, B023

        def on(n):
            def run():
                _stack.set_kernel_threads(n)
                return call()  # noqa: B023 (timed within this iteration)
            return run

        with thread_limits(1):
            try:
                samples = timing.interleaved({"1 thread": on(1), "2 threads": on(2)},
                                             rounds=rounds)
            finally:
                _stack.set_kernel_threads(before)
        one = timing.summarize(samples["1 thread"])["median_s"]
        for name in samples:
            stats = timing.summarize(samples[name])
            records.append(dict(case.as_dict(), engine=f"fastrnn {name}", **stats,
                                us_per_step=stats["median_s"] / steps * 1e6,
                                speedup_over_1_thread=one / stats["median_s"]))
    return records
