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


def _as_stored(m):
    """m's weights in float32: the rounded values its half-precision storage holds."""
    return {k: np.asarray(v, np.float32) for k, v in m.state_dict().items()}


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
        rounded = _as_stored(m)
        ref = fastrnn.LSTM(I, H)
        ref.load_state_dict(rounded)
        ref.plan = fastrnn.Plan.default(isa=isa).replace(fused=True, fused_max_batch=64)
        np.testing.assert_allclose(m(x[:, :b])[0], ref(x[:, :b])[0], rtol=1e-4, atol=2e-5,
                                   err_msg=f"{weight_dtype} {isa} batch {b}")


@pytest.mark.parametrize("isa", RUNS)
@pytest.mark.parametrize("weight_dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("mode", MODES)
def test_half_storage_projection_widened_by_row_blocks(isa, weight_dtype, mode):
    """The hoisted projection of half-precision panels, widened 64 rows at a time for
    all of a chunk's columns: input sizes on both sides of a row block (and odd, for
    the bfloat16 pairs), steps x batch that leave column groups of 1-6 and a lone
    column past 64, and shorter sequences whose last steps project few rows."""
    for inputs in (1, 63, 64, 65, 131):
        m, _ = make_model(mode, inputs, 20, scale=20 ** -0.5, weight_dtype=weight_dtype)
        rounded = _as_stored(m)
        ref = type(m)(inputs, 20)
        ref.load_state_dict(rounded)
        for model in (m, ref):  # hoisted at every batch
            model.plan = fastrnn.Plan.default(isa=isa).replace(
                fused=True, fused_max_batch=64, fused_x_min_batch=65, cache_bytes=0)
        rng = np.random.default_rng(inputs)
        for steps, batch in ((65, 1), (67, 1), (13, 5), (40, 3)):
            x = rng.standard_normal((steps, batch, inputs)).astype(np.float32)
            np.testing.assert_allclose(m(x)[0], ref(x)[0], rtol=1e-4, atol=2e-5,
                                       err_msg=f"{weight_dtype} {isa} I={inputs} "
                                               f"T={steps} B={batch}")
        x = rng.standard_normal((30, 4, inputs)).astype(np.float32)
        lengths = [30, 17, 2, 1]
        np.testing.assert_allclose(m(x, lengths=lengths)[0], ref(x, lengths=lengths)[0],
                                   rtol=1e-4, atol=2e-5,
                                   err_msg=f"{weight_dtype} {isa} I={inputs} lengths")


@pytest.mark.parametrize("isa", RUNS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("weight_dtype", [None, "bfloat16"])
@pytest.mark.parametrize("x_in_step", [False, True])
def test_panels_of_256_rows_and_more_in_row_blocks(isa, mode, weight_dtype, x_in_step):
    """Panels of 256+ rows go through the column blocks a row block (a fixed number of
    bytes: rows by gate count and storage) at a time, the partial sums kept between
    blocks: 300 recurrent rows (whole blocks and a partial one) and 257 input rows (odd:
    the last bfloat16 pair holds one row), batches of one block of columns (each block
    size: their passes over a panel's row differ) and of several, against float64
    NumPy."""
    hidden, inputs = 300, 257
    m, sd = make_model(mode, inputs, hidden, scale=hidden ** -0.5, weight_dtype=weight_dtype)
    m.plan = fastrnn.Plan.default(isa=isa).replace(
        fused=True, fused_max_batch=64, fused_x_min_batch=1 if x_in_step else 65,
        cache_bytes=1 << 30 if x_in_step else 0)
    sd = _as_stored(m)
    x = np.random.default_rng(3).standard_normal((4, 64, inputs)).astype(np.float32)
    want = reference.forward(family(mode), sd, x.astype(np.float64), 1, False, hidden)[0]
    for b in (2, 3, 4, 5, 7, 9, 13, 64):
        np.testing.assert_allclose(m(x[:, :b])[0], want[:, :b], rtol=1e-4, atol=2e-5,
                                   err_msg=f"{mode} {isa} {weight_dtype} batch {b}")


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
    m, _ = _model(mode, isa, split_min_hidden=0, cache_bytes=0)  # panels, not halves
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


@pytest.mark.parametrize("mode,kwargs", [
    ("LSTM", {}), ("LSTM", {"proj_size": 5}), ("GRU", {}), ("GRU", {"reset_after": False}),
    ("RNN_TANH", {}), ("LSTM", {"weight_dtype": "bfloat16"}),
])
def test_two_halves_of_a_batch_match_one_core(mode, kwargs):
    """With two threads a batch of small layers runs as two halves, one per core (the
    even and odd sequences of the length order): lengths, batch_first, two layers, odd
    batches; outputs and states as one core computes them, and as the reference."""
    rng = np.random.default_rng(3)
    for batch, batch_first in ((4, False), (7, True), (16, False), (64, True)):
        m, sd = make_model(mode, 6, 24, num_layers=2, scale=24 ** -0.5,
                           batch_first=batch_first, **kwargs)
        m.plan = fastrnn.Plan.default().replace(fused=True, fused_max_batch=64)
        x = rng.standard_normal((12, batch, 6)).astype(np.float32)
        if batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        lengths = rng.integers(1, 13, size=batch)
        h0 = rng.standard_normal(m.state_shapes(batch)[0]).astype(np.float32)
        hx = (h0, rng.standard_normal(m.state_shapes(batch)[1]).astype(np.float32)) \
            if mode == "LSTM" else h0
        with kernel_threads(1):
            assert not m.kernel.splits_sequences(12, batch)
            one = m(x, hx, lengths=lengths)
        with kernel_threads(2):
            assert m.kernel.splits_sequences(12, batch)
            two = m(x, hx, lengths=lengths)
        flat = lambda r: [r[0]] + (list(r[1]) if mode == "LSTM" else [r[1]])  # noqa: E731
        for a, b in zip(flat(one), flat(two)):
            np.testing.assert_allclose(b, a, rtol=0, atol=2e-6,
                                       err_msg=f"{mode} {kwargs} batch {batch}")
        if not kwargs:
            want = reference.forward(family(mode), sd, (x.transpose(1, 0, 2) if batch_first
                                                          else x).astype(np.float64),
                                     2, False, 24, relu=False,
                                     h0=np.asarray(h0, np.float64),
                                     c0=(np.asarray(hx[1], np.float64) if mode == "LSTM"
                                         else None),
                                     lengths=lengths)[0]
            got = two[0].transpose(1, 0, 2) if batch_first else two[0]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)


def test_two_halves_only_where_they_pay():
    """The halves need two threads, a unidirectional float32 stack whose layers' panels
    fit the cache (an odd batch: layers below an LSTM's hidden 128), 4+ sequences fused
    and 8+ steps; anything else runs as before (one core, or the panel split)."""
    def kernel(mode="LSTM", hidden=64, **kw):
        plan = dict(dict(fused=True, fused_max_batch=64), **kw.pop("plan", {}))
        m = make_model(mode, 4, hidden, **kw)[0]
        m.plan = fastrnn.Plan.default().replace(**plan)
        return m.kernel

    with kernel_threads(2):
        assert kernel().splits_sequences(8, 4)
        assert not kernel().splits_sequences(7, 4)       # too few steps
        assert not kernel().splits_sequences(8, 3)       # too few sequences
        assert not kernel().splits_sequences(8, 65)      # more than one fused call
        assert kernel(hidden=128).splits_sequences(100, 16)
        assert not kernel(hidden=128).splits_sequences(100, 15)     # odd: copies
        assert kernel(hidden=96).splits_sequences(100, 15)
        assert kernel("GRU", hidden=144).splits_sequences(100, 15)  # an LSTM's 125
        assert not kernel("GRU", hidden=148).splits_sequences(100, 15)
        assert kernel("RNN_TANH", hidden=250).splits_sequences(100, 15)  # an LSTM's 125
        assert not kernel(hidden=512).splits_sequences(100, 16)     # 8 MB of panels
        assert not kernel(bidirectional=True).splits_sequences(100, 16)
        assert not kernel(dtype="float64").splits_sequences(100, 16)
        assert not kernel(plan=dict(cache_bytes=0)).splits_sequences(100, 16)
        assert not kernel(plan=dict(fused_max_batch=8)).splits_sequences(100, 16)
    with kernel_threads(1):
        assert not kernel().splits_sequences(100, 16)


def test_run_pair_refuses_what_it_cannot_run():
    """Kernel.run_pair (public through model.kernel) checks its arrays' kinds and shapes
    before the nogil code reads them."""
    k = fastrnn.GRU(4, 8).kernel
    x = np.zeros((10, 2, 4), np.float32)
    h = np.zeros((1, 2, 8), np.float32)
    rows = np.arange(2, dtype=np.intc)
    out = np.zeros((10, 4, 8), np.float32)
    good = (x, h, None, None, rows)
    k.run_pair(out, [good, (x, h.copy(), None, None, rows + 2)], False)
    ro = out.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be .*writeable"):
        k.run_pair(ro, [good, good], False)
    with pytest.raises(ValueError, match="x must be a 3-D float32 array in native byte"):
        k.run_pair(out, [good, (x.astype(np.float64), h, None, None, rows)], False)
    with pytest.raises(ValueError, match="rows of 4 values"):
        k.run_pair(out, [good, (np.zeros((10, 2, 5), np.float32), h, None, None, rows)],
                   False)
    with pytest.raises(ValueError, match="do not fit the kernel"):
        k.run_pair(out, [good, (np.zeros((9, 2, 4), np.float32), h, None, None, rows)],
                   False)
    # rows and lengths get run's checks: nothing is written outside out
    with pytest.raises(ValueError, match="rows must be 2 row indices in"):
        k.run_pair(out, [good, (x, h, None, None, rows + 3)], False)
    with pytest.raises(ValueError, match="batch_sizes must be 10 non-increasing"):
        k.run_pair(out, [good, (x, h, None, np.full(10, 3, np.intc), rows + 2)], False)
    with pytest.raises(ValueError, match="needs its rows"):
        k.run_pair(out, [good, (x, h, None, None, None)], False)
    with pytest.raises(ValueError, match="rows of out must differ"):
        k.run_pair(out, [good, (x, h, None, None, rows + 1)], False)
    # every other sequence of a batch is read in place; other strides are refused
    both = np.random.default_rng(0).standard_normal((10, 4, 4)).astype(np.float32)
    k.run_pair(out, [(both[:, 0::2], np.zeros_like(h), None, None, rows * 2),
                     (both[:, 1::2], np.zeros_like(h), None, None, rows * 2 + 1)], False)
    one = np.zeros_like(out)
    k.run(both, one, np.zeros((1, 4, 8), np.float32), None)
    np.testing.assert_allclose(out, one, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="one stride apart"):
        k.run_pair(out, [(both[::2, 0::2], h, None, None, rows), good], False)
    with pytest.raises(ValueError, match="two halves of a unidirectional float32"):
        fastrnn.GRU(4, 8, bidirectional=True).kernel.run_pair(out, [good, good], False)


@pytest.mark.parametrize("mode, gates", [("LSTM", 4), ("GRU", 3)])
def test_input_projection_in_step_only_where_the_panels_leave_room(mode, gates):
    """Below 64 sequences the step reads W_ih's panels only where they and W_hh's fill at
    most 7/8 of plan.cache_bytes: panels the size of the L2 leave no room for the rest of
    the step (LSTM hidden 256 on a 2 MB L2 ran batch 16 1.09x slower in step)."""
    hidden = 64                                 # whole panels: no padding rows
    panel_bytes = 2 * gates * hidden * hidden * 4

    def in_step(cache_bytes, batch):
        m = make_model(mode, hidden, hidden)[0]
        m.plan = fastrnn.Plan.default().replace(fused=True, fused_max_batch=64,
                                                fused_x_min_batch=16, cache_bytes=cache_bytes)
        return m.kernel.reads_x_in_step(batch)

    roomy = -(-panel_bytes * 8 // 7)            # the panels fill 7/8 of it
    assert in_step(roomy, 16) and in_step(roomy, 63)
    assert not in_step(roomy - 1, 16)
    assert not in_step(panel_bytes, 16) and not in_step(panel_bytes, 63)
    assert in_step(panel_bytes, 64) and in_step(0, 64)     # 64 sequences per weight load
    assert not in_step(roomy, 15)               # below fused_x_min_batch


@pytest.mark.parametrize("isa", RUNS)
@pytest.mark.parametrize("mode,kwargs", [
    ("RNN_TANH", {}), ("RNN_RELU", {}), ("GRU", {"reset_after": False}),
])
@pytest.mark.parametrize("hidden,inputs", [(130, I), (300, 257)])
def test_one_gate_panels_in_groups_both_directions(isa, mode, kwargs, hidden, inputs):
    """Panels of one gate (an RNN's, the textbook GRU's n rows) multiplied FR_GROUP at a
    time: 9 panels (two groups and one alone) and 19 with rows in row blocks, both
    directions (a reversed direction's group steps down through the panels), every batch
    to 16 and 64, hoisted and in-step W_ih x, against float64 NumPy; and each sequence's
    outputs in a batch of 64 are, bit for bit, those of it in the smaller batches (the
    sums keep their k order whatever the group or block)."""
    m, sd = make_model(mode, inputs, hidden, scale=hidden ** -0.5, bidirectional=True,
                       **kwargs)
    x = np.random.default_rng(4).standard_normal((4, 64, inputs)).astype(np.float32)
    want = reference.forward(family(mode), sd, x.astype(np.float64), 1, True, hidden,
                             relu=mode == "RNN_RELU", **kwargs)[0]
    for x_in_step in (False, True):
        m.plan = fastrnn.Plan.default(isa=isa).replace(
            fused=True, fused_max_batch=64, fused_x_min_batch=1 if x_in_step else 65,
            cache_bytes=1 << 30 if x_in_step else 0)
        full = m(x)[0]
        for b in list(range(1, 17)) + [64]:
            got = m(x[:, :b])[0]
            np.testing.assert_allclose(got, want[:, :b], rtol=1e-4, atol=2e-5,
                                       err_msg=f"{mode} {isa} H={hidden} batch {b}")
            if b >= 2:
                np.testing.assert_array_equal(got, full[:, :b],
                                              err_msg=f"{mode} {isa} H={hidden} batch {b}")


@pytest.mark.parametrize("isa", RUNS)
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_two_halves_bitwise_equal_one_core(isa, mode):
    """A batch split into halves on two cores gives one core's bits, halves of 7 and 13
    included (a block of columns is never left one column, which sums in another
    order: docs/reliability.md)."""
    m, _ = _model(mode, isa)
    x = np.random.default_rng(5).standard_normal((12, 64, I)).astype(np.float32)
    for b in (4, 14, 26, 64):
        with kernel_threads(1):
            one = m(x[:, :b])[0]
        with kernel_threads(2):
            assert m.kernel.splits_sequences(12, b)
            two = m(x[:, :b])[0]
        np.testing.assert_array_equal(one, two, err_msg=f"{mode} {isa} batch {b}")
