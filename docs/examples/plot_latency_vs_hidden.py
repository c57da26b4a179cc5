"""
Latency against hidden size, from ``fastrnn bench --json``
===========================================================

``fastrnn bench`` times fastrnn against the peers installed beside it and checks each
peer's output against fastrnn's. With ``--json`` it writes every record, which is
all a plot needs. This sweep is tiny so that the docs build stays fast: LSTM and GRU,
hidden 16 to 128, batch 1, 20 steps, fastrnn against the NumPy reference loop. Three
rounds on a busy machine scatter; more ``--repeat`` on idle cores steadies the points
(the measured tables are on the performance page).
"""
import json
import os
import subprocess
import sys
import tempfile

import matplotlib.pyplot as plt

out = os.path.join(tempfile.mkdtemp(), "bench.json")
subprocess.run([sys.executable, "-m", "fastrnn", "bench", "--hidden", "16,32,64,128",
                "--batch", "1", "--seq-len", "20", "--peers", "numpy", "--repeat", "3",
                "--json", out], check=True, stdout=subprocess.DEVNULL)
with open(out) as f:
    records = json.load(f)["records"]

# %%
# Each record is one engine on one case: its median time per step, spread and
# whether its output agreed with fastrnn's.
print({k: records[0][k] for k in ("engine", "mode", "hidden", "us_per_step", "agrees")})

fig, ax = plt.subplots(figsize=(6, 4))
for mode in ("LSTM", "GRU"):
    for engine, style in (("fastrnn", "-o"), ("numpy", "--s")):
        rows = sorted((r["hidden"], r["us_per_step"]) for r in records
                      if r["mode"] == mode and r["engine"] == engine)
        ax.plot(*zip(*rows), style, label=f"{mode} {engine}")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("hidden size")
ax.set_ylabel("µs per time step (batch 1, 1 thread)")
ax.set_title("fastrnn bench --json, a quick sweep")
ax.legend()
fig.tight_layout()
