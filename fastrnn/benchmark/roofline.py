"""The machine's ceilings, measured, and how close a case comes to them.

At batch 1 a step must read its recurrent weights from cache: its floor is the weight
bytes over the read bandwidth at that working-set size (plus the input projection's
FLOPs at the FMA peak, for sequences). At large batch the products dominate: the floor
is the FLOPs over the FMA peak. `fraction` is floor / measured time (1.0: at the
ceiling). The model assumes every step reads all its weights at the bandwidth of the
cache they fit in; the fused kernel's alternating panel order keeps part of weights
larger than L2 cached between steps, and its products can outrun sgemm, so a fraction
above 1.0 means fastrnn beats the model, not the machine.
"""
import dataclasses
import time

import numpy as np
from scipy.linalg import blas
from threadpoolctl import threadpool_limits


def fma_peak_gflops(seconds=0.3):
    """float32 GFLOP/s of a large sgemm (scipy's BLAS, the threads it has now): the
    practical FMA peak."""
    n = 1536
    a = np.asfortranarray(np.random.default_rng(0).standard_normal((n, n)), np.float32)
    blas.sgemm(1.0, a, a)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        blas.sgemm(1.0, a, a)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def read_bandwidth_gbs(nbytes, seconds=0.2):
    """GB/s of reading `nbytes` that stay cached between passes (sdot of two halves):
    the bandwidth a step's weights stream at when they fit in that cache level."""
    n = max(1024, int(nbytes) // 8)
    x = np.ones(n, np.float32)
    y = np.ones(n, np.float32)
    blas.sdot(x, y)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        for _ in range(8):
            blas.sdot(x, y)
        best = max(best, 8 * 8 * n / (time.perf_counter() - t) / 1e9)
    return best


def uses_bandwidth(case):
    """Whether floor_seconds reads the bandwidth for this case (batch 1), or only the
    FMA peak."""
    return case.batch == 1


def floor_seconds(case, peak_gflops, bandwidth_gbs):
    """The least time one call of `case` can take on this machine."""
    steps = 1 if case.streaming else case.seq_len
    if uses_bandwidth(case):
        weights = case.weight_bytes() / (bandwidth_gbs * 1e9) * steps
        input_flops = 0 if case.streaming else case.input_flops_per_step() * steps
        return weights + input_flops / (peak_gflops * 1e9)
    return case.flops_per_step() * steps / (peak_gflops * 1e9)


def floor_us_per_step(case, peak_gflops, bandwidth_gbs):
    """floor_seconds per time step, in microseconds."""
    steps = 1 if case.streaming else case.seq_len
    return floor_seconds(case, peak_gflops, bandwidth_gbs) / steps * 1e6


def shares(case, limit, best_us, peak_gflops, bandwidth_of):
    """A case held to the ceiling: (floor, best_at, asks). floor: fastrnn's least
    microseconds a step (its own weight storage); best_at: the float32 floor over the
    best peer's time (the peers run float32 weights); asks: floor over what the bar
    allows fastrnn (limit x best_us). The shares are None without a peer's time.
    bandwidth_of(case) is asked only where the model reads weights (batch 1)."""
    def floor_of(c):
        return floor_us_per_step(c, peak_gflops,
                                 bandwidth_of(c) if uses_bandwidth(c) else None)

    floor = floor_of(case)
    if not best_us:
        return floor, None, None
    peer_floor = floor_of(dataclasses.replace(case, weight_dtype="float32"))
    return floor, peer_floor / best_us, floor / (limit * best_us)


def ceilings(threads):
    """The FMA peak and the read bandwidth for a case's weights (a function of the
    case, measured once per weight size), with scipy's BLAS on `threads` threads
    (None: the threads it has)."""
    with threadpool_limits(threads, user_api="blas"):
        peak = fma_peak_gflops()
    bandwidth = {}

    def bandwidth_of(case):
        nbytes = case.weight_bytes()
        if nbytes not in bandwidth:
            with threadpool_limits(threads, user_api="blas"):
                bandwidth[nbytes] = read_bandwidth_gbs(nbytes)
        return bandwidth[nbytes]

    return peak, bandwidth_of


def annotate(records, cases_by_key):
    """Add 'floor_us_per_step' and 'roofline_fraction' to fastrnn's records (the
    ceilings measured with the BLAS threads the caller has set)."""
    peak, bandwidth_of = ceilings(None)
    for r in records:
        if r.get("engine") != "fastrnn" or "skipped" in r:
            continue
        case = cases_by_key(r)
        bandwidth = bandwidth_of(case)
        floor = floor_seconds(case, peak, bandwidth)
        steps = 1 if case.streaming else case.seq_len
        r["fma_peak_gflops"] = peak
        r["read_bandwidth_gbs"] = bandwidth
        r["floor_us_per_step"] = floor / steps * 1e6
        r["roofline_fraction"] = floor / r["median_s"]
    return records
