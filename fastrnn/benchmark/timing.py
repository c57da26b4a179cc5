"""The timing protocol: warm up, then interleaved rounds (each engine in turn, the order
rotating every round) so that drift on a shared machine hits every engine alike; each
sample averages enough calls to last `min_sample` seconds; report medians and spread."""
import time

import numpy as np


def _calibrate(fn, min_sample):
    """Calls per sample so that one sample lasts about min_sample seconds."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    return max(1, int(min_sample / max(once, 1e-7)))


def interleaved(engines, rounds=7, warmup=2, min_sample=0.02):
    """engines: {name: zero-argument callable}. Returns {name: per-call seconds of each
    round} (a list of `rounds` floats)."""
    names = list(engines)
    for name in names:
        for _ in range(warmup):
            engines[name]()
    inner = {name: _calibrate(engines[name], min_sample) for name in names}
    samples = {name: [] for name in names}
    perf = time.perf_counter
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, n = engines[name], inner[name]
            t0 = perf()
            for _ in range(n):
                fn()
            samples[name].append((perf() - t0) / n)
    return samples


def summarize(seconds):
    """median and the interquartile spread relative to it."""
    a = np.asarray(seconds)
    med = float(np.median(a))
    q1, q3 = np.percentile(a, [25, 75])
    return {"median_s": med, "q1_s": float(q1), "q3_s": float(q3),
            "spread": float((q3 - q1) / med) if med else 0.0, "rounds": len(a)}
