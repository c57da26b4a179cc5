"""The benchmark's ceiling model (fastrnn.benchmark.roofline), from made-up ceilings."""
import pytest

from fastrnn.benchmark import roofline
from fastrnn.benchmark.cases import Case


def test_batch_floor_is_the_flops_at_the_peak():
    case = Case(mode="LSTM", hidden=128, batch=16, seq_len=100)
    # 2 * 16 sequences * 512 gate rows * (128 inputs + 128 hidden) per step
    assert case.flops_per_step() == 2 * 16 * 512 * 256
    assert roofline.floor_us_per_step(case, 100.0, 50.0) == pytest.approx(
        2 * 16 * 512 * 256 / 100e9 * 1e6)


def test_batch_one_floor_reads_the_recurrent_weights_each_step():
    case = Case(mode="GRU", hidden=64, batch=1, seq_len=10)
    w_hh = 3 * 64 * 64 * 4
    projection = 2 * 3 * 64 * 64
    assert roofline.floor_us_per_step(case, 100.0, 50.0) == pytest.approx(
        (w_hh / 50e9 + projection / 100e9) * 1e6)
    # half-precision storage halves the bytes, not the FLOPs
    half = Case(mode="GRU", hidden=64, batch=1, seq_len=10, weight_dtype="bfloat16")
    assert roofline.floor_us_per_step(half, 100.0, 50.0) == pytest.approx(
        (w_hh / 2 / 50e9 + projection / 100e9) * 1e6)


def test_streamed_step_reads_both_matrices():
    case = Case(mode="RNN", hidden=32, batch=1, streaming=True)
    assert roofline.floor_us_per_step(case, 100.0, 50.0) == pytest.approx(
        2 * 32 * 32 * 4 / 50e9 * 1e6)


def test_ceilings_measure_once_per_weight_size(monkeypatch):
    calls = []
    monkeypatch.setattr(roofline, "fma_peak_gflops", lambda: 90.0)
    monkeypatch.setattr(roofline, "read_bandwidth_gbs",
                        lambda nbytes: calls.append(nbytes) or 40.0)
    peak, bandwidth_of = roofline.ceilings(1)
    small, large = Case(hidden=64), Case(hidden=512)
    assert peak == 90.0
    assert [bandwidth_of(c) for c in (small, large, small)] == [40.0] * 3
    assert calls == [small.weight_bytes(), large.weight_bytes()]
