"""
Streaming: the latency of one step
==================================

A ``Stream`` carries the state between calls and allocates nothing per step:
``stream.step(x_t, out=y)`` writes the output into ``y``. Here an LSTM of hidden 64
runs 3000 single frames and each call is timed on its own, which shows the whole
distribution (the median and the tail that a real-time system budgets for), not only
an average.
"""
import time

import matplotlib.pyplot as plt
import numpy as np

import fastrnn

model = fastrnn.LSTM(input_size=40, hidden_size=64, num_layers=2)
stream = model.stream(batch=1)
frames = np.random.default_rng(0).standard_normal((3000, 40)).astype(np.float32)
y = np.empty(64, np.float32)

for frame in frames[:300]:          # warm-up: caches, the kernel's first packing
    stream.step(frame, out=y)
stream.reset()

times = np.empty(len(frames))
for i, frame in enumerate(frames):
    t0 = time.perf_counter_ns()
    stream.step(frame, out=y)
    times[i] = (time.perf_counter_ns() - t0) / 1e3

median, p99 = np.percentile(times, [50, 99])
print(f"median {median:.2f} µs, 99th percentile {p99:.2f} µs per step")

# %%
# The same state as one call over the whole sequence: streaming changes the
# latency, not the results.
out, _ = model(frames)
assert np.allclose(out[-1], y, atol=1e-5)

fig, ax = plt.subplots(figsize=(6, 4))
ax.hist(np.clip(times, 0, np.percentile(times, 99.5)), bins=60)
ax.axvline(median, color="k", linestyle="--", label=f"median {median:.2f} µs")
ax.axvline(p99, color="r", linestyle=":", label=f"99th percentile {p99:.2f} µs")
ax.set_xlabel("µs per stream.step (LSTM, 2 layers, hidden 64, batch 1)")
ax.set_ylabel("calls")
ax.legend()
fig.tight_layout()
