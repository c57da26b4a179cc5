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


def test_ceilings_measure_under_the_thread_limit(monkeypatch):
    limits = []

    class Limit:
        def __init__(self, threads, user_api):
            limits.append((threads, user_api))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(roofline, "threadpool_limits", Limit)
    monkeypatch.setattr(roofline, "fma_peak_gflops", lambda: 90.0)
    monkeypatch.setattr(roofline, "read_bandwidth_gbs", lambda nbytes: 40.0)
    _, bandwidth_of = roofline.ceilings(2)
    bandwidth_of(Case(hidden=64))
    assert limits == [(2, "blas"), (2, "blas")]


def test_shares_hold_fastrnn_to_its_storage_and_the_peer_to_float32():
    asked = []

    def bandwidth_of(case):
        asked.append(case.weight_dtype)
        return 50.0

    case = Case(mode="LSTM", hidden=64, batch=1, seq_len=10, weight_dtype="bfloat16")
    floor, best_at, asks = roofline.shares(case, 0.5, 4.0, 100.0, bandwidth_of)
    assert floor == pytest.approx(roofline.floor_us_per_step(case, 100.0, 50.0))
    f32 = Case(mode="LSTM", hidden=64, batch=1, seq_len=10)
    assert best_at == pytest.approx(roofline.floor_us_per_step(f32, 100.0, 50.0) / 4.0)
    assert asks == pytest.approx(floor / (0.5 * 4.0))
    assert floor < best_at * 4.0   # half the bytes of W_hh
    assert asked == ["bfloat16", "float32"]


def test_shares_of_a_batch_need_no_bandwidth():
    def bandwidth_of(case):
        raise AssertionError("a batch's floor is its FLOPs at the peak")

    case = Case(mode="GRU", hidden=128, batch=16)
    floor, best_at, asks = roofline.shares(case, 0.85, 50.0, 100.0, bandwidth_of)
    assert floor == pytest.approx(case.flops_per_step() / 100e9 * 1e6)
    assert best_at == pytest.approx(floor / 50.0)
    assert asks == pytest.approx(floor / (0.85 * 50.0))
    assert roofline.shares(case, 0.85, None, 100.0, bandwidth_of) == (floor, None, None)


def test_annotate_puts_the_floor_on_fastrnns_records(monkeypatch):
    monkeypatch.setattr(roofline, "fma_peak_gflops", lambda: 100.0)
    monkeypatch.setattr(roofline, "read_bandwidth_gbs", lambda nbytes: 50.0)
    case = Case(mode="LSTM", hidden=128, batch=16, seq_len=100)
    floor_s = roofline.floor_seconds(case, 100.0, 50.0)
    records = [dict(engine="fastrnn", median_s=2 * floor_s), dict(engine="torch", median_s=1.0),
               dict(engine="fastrnn", skipped="why")]
    roofline.annotate(records, lambda r: case)
    assert records[0]["floor_us_per_step"] == pytest.approx(floor_s / 100 * 1e6)
    assert records[0]["roofline_fraction"] == pytest.approx(0.5)
    assert "roofline_fraction" not in records[1] and "roofline_fraction" not in records[2]
