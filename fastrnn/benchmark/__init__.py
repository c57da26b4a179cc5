"""The benchmark harness behind `fastrnn bench` and the scripts in bench/."""
from fastrnn.benchmark.cases import Case, default_cases, grid
from fastrnn.benchmark.engines import PEERS
from fastrnn.benchmark.environment import describe
from fastrnn.benchmark.runner import run, run_case

__all__ = ["Case", "default_cases", "grid", "PEERS", "describe", "run", "run_case"]
