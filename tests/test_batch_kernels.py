"""The fused kernels' multi-column products (batch 2-64) on every ISA this CPU runs:
every column-group remainder (sixes, fives, fours, threes, twos, a single column), a
hidden size that is no multiple of a panel (130: a partial last panel, an odd k count
for the bfloat16 pairs' neighbours), the input projection hoisted and in the step, both
sides of the plan's thresholds (each ISA's own defaults), and one core against two."""
import numpy as np
import pytest
import reference
from helpers import family, kernel_threads, make_model

import fastrnn
from fastrnn._kernels._stack import ISA_NAMES, cpu_isa

RUNS = [n for n in ISA_NAMES if ISA_NAMES.index(n) <= ISA_NAMES.index(cpu_isa())]
MODES = ["LSTM", "GRU", "RNN_TANH"]
T, I, H = 3, 7, 130


def _model(mode, isa, weight_dtype=None, **plan):
    m, sd = make_model(mode, I, H, scale=H ** -0.5, weight_dtype=weight_dtype)
    plan.setdefault("fused_max_batch", 64)
    m.plan = fastrnn.Plan.default(isa=isa).replace(fused=True, **plan)
    return m, sd


def _reference(mode, sd, x):
    out = reference.forward(family(mode), sd, x.astype(np.float64), 1, False, H,
                            relu=mode == "RNN_RELU")[0]
    return out


def _x(batch=64, seed=1):
    return np.random.default_rng(seed).standard_normal((T, batch, I)).astype(np.float32)


@pytest.mark.parametrize("isa", RUNS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("x_in_step", [False, True])
def test_every_batch_1_to_64_matches_reference(isa, mode, x_in_step):
    """Batch b's outputs equal the reference's first b sequences for every b in 1-64
    (each remainder of the column groups); W_ih x from the hoisted projection or from
    the step's own product."""
    # in-step: the panels fit the cache (as at these sizes); hoisted: they are never
    # read in the step, or (cache_bytes=0) only at 64 sequences
    m, sd = _model(mode, isa, fused_x_min_batch=1 if x_in_step else 65,
                   cache_bytes=1 << 30 if x_in_step else 0)
    x = _x()
    want = _reference(mode, sd, x)
    for b in range(1, 65):
        got = m(x[:, :b])[0]
        np.testing.assert_allclose(got, want[:, :b], rtol=1e-4, atol=2e-5,
                                   err_msg=f"{mode} {isa} batch {b}")
    assert m.kernel.isa == isa


@pytest.mark.parametrize("isa", RUNS)
@pytest.mark.parametrize("weight_dtype", ["float16", "bfloat16"])
def test_half_storage_batches_match_float32_of_the_same_values(isa, weight_dtype):
    """float16 / bfloat16 panels (bfloat16: k in pairs) through the multi-column
    products, against float32 panels of the same rounded values."""
    x = _x()
    for b in (2, 3, 5, 7, 13, 64):
        m, _ = _model("LSTM", isa, weight_dtype=weight_dtype)
        rounded = {k: np.asarray(v, np.float32) for k, v in m.state_dict().items()}
        ref = fastrnn.LSTM(I, H)
        ref.load_state_dict(rounded)
        ref.plan = fastrnn.Plan.default(isa=isa).replace(fused=True, fused_max_batch=64)
        np.testing.assert_allclose(m(x[:, :b])[0], ref(x[:, :b])[0], rtol=1e-4, atol=2e-5,
                                   err_msg=f"{weight_dtype} {isa} batch {b}")


@pytest.mark.parametrize("isa", RUNS)
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_both_sides_of_the_default_thresholds(isa, mode):
    """The ISA's own defaults: batches at and past fused_max_batch (fused, then BLAS)
    and fused_x_min_batch (hoisted, then in-step) give the reference's outputs."""
    m, sd = make_model(mode, I, H, scale=H ** -0.5)
    m.plan = fastrnn.Plan.default(isa=isa)
    plan = m.plan
    x = _x()
    want = _reference(mode, sd, x)
    edges = {plan.fused_max_batch, plan.fused_max_batch + 1, plan.fused_x_min_batch - 1,
             plan.fused_x_min_batch}
    for b in sorted(e for e in edges if 1 <= e <= 64):
        np.testing.assert_allclose(m(x[:, :b])[0], want[:, :b], rtol=1e-4, atol=2e-5,
                                   err_msg=f"{mode} {isa} batch {b}")


@pytest.mark.parametrize("isa", RUNS)
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_two_cores_bitwise_equal_one(isa, mode):
    """A batch split across two cores (by panels) gives one core's bits."""
    m, _ = _model(mode, isa, split_min_hidden=0)
    x = _x()
    for b in (2, 7, 16, 64):
        with kernel_threads(1):
            one = m(x[:, :b])[0]
        with kernel_threads(2):
            two = m(x[:, :b])[0]
        np.testing.assert_array_equal(one, two, err_msg=f"{mode} {isa} batch {b}")


@pytest.mark.parametrize("isa", RUNS)
def test_every_batch_matches_live_torch(torch, isa):
    """Against torch itself, LSTM and GRU, every batch 1-64 (one torch call of 64)."""
    x = _x()
    for mode in ("LSTM", "GRU"):
        torch.manual_seed(0)
        tm = getattr(torch.nn, mode)(I, H)
        m = fastrnn.from_torch(tm)
        m.plan = fastrnn.Plan.default(isa=isa).replace(fused=True, fused_max_batch=64)
        with torch.no_grad():
            want = tm(torch.from_numpy(x))[0].numpy()
        for b in range(1, 65):
            np.testing.assert_allclose(m(x[:, :b])[0], want[:, :b], rtol=1e-4, atol=2e-5,
                                       err_msg=f"{mode} {isa} batch {b}")
