"""The benchmark harness behind `fastrnn bench` and the scripts in bench/.

With more than one thread, engines measured in turn on the same cores disturb each
other through threads that spin while idle; `quiet_spinning()` (called by the CLI and
bench/run.py before torch is imported) asks OpenMP to sleep instead, and the ONNX
Runtime peer is built without spinning. fastrnn's own helper spins for 200 us after
a call, then sleeps.
"""
import os

from fastrnn.benchmark import runner
from fastrnn.benchmark.cases import DEFAULT_GRID, GRU_FORMS, QUICK_GRID, Case, grid
from fastrnn.benchmark.engines import PEERS
from fastrnn.benchmark.environment import describe
from fastrnn.benchmark.runner import run, run_case


def quiet_spinning():
    """OMP_WAIT_POLICY=PASSIVE unless the caller chose: must run before torch loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


__all__ = ["quiet_spinning", "runner", "Case", "DEFAULT_GRID", "QUICK_GRID", "GRU_FORMS",
           "grid", "PEERS", "describe", "run", "run_case"]
