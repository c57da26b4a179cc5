"""fastrnn's layers against the NumPy reference, over the grid of options."""
import itertools
import pickle

import numpy as np
import pytest
from helpers import TOL, family, make_model, with_plan
from reference import forward as ref_forward

import fastrnn

MODES = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]
GRID = [
    (mode, layers, bidir, bias, proj, batch_first, use_lengths, dtype)
    for mode, layers, bidir, bias, proj, batch_first, use_lengths, dtype in itertools.product(
        MODES, [1, 2, 3], [False, True], [True, False], [0, 3], [False, True],
        [False, True], [np.float32, np.float64])
    if proj == 0 or mode == "LSTM"
]


def _run_both(mode, layers, bidir, bias, proj, batch_first, use_lengths, dtype, rng,
              T=7, B=4, I=5, H=6, with_hx=True, scale=0.6, plan=None):
    kwargs = dict(num_layers=layers, bidirectional=bidir, bias=bias,
                  batch_first=batch_first, dtype=dtype)
    if proj:
        kwargs["proj_size"] = proj
    model, sd = make_model(mode, I, H, scale=scale, **kwargs)
    if plan is not None:
        with_plan(model, **plan)
    D = 2 if bidir else 1
    P = proj or H
    x = rng.standard_normal((T, B, I))
    lengths = rng.integers(1, T + 1, size=B) if use_lengths else None
    h0 = rng.standard_normal((layers * D, B, P)) if with_hx else None
    c0 = rng.standard_normal((layers * D, B, H)) if with_hx else None
    ref_out, ref_h, ref_c = ref_forward(
        family(mode), sd, x, layers, bidir, H, proj, h0, c0, lengths,
        relu=mode == "RNN_RELU")
    hx = None
    if with_hx:
        hx = (h0, c0) if mode == "LSTM" else h0
    x_in = x.transpose(1, 0, 2) if batch_first else x
    out, state = model(x_in.astype(dtype), hx=hx, lengths=lengths)
    if batch_first:
        out = out.transpose(1, 0, 2)
    h_n, c_n = state if mode == "LSTM" else (state, None)
    return (out, h_n, c_n), (ref_out, ref_h, ref_c)


@pytest.mark.parametrize("mode,layers,bidir,bias,proj,batch_first,use_lengths,dtype", GRID)
def test_matches_reference(mode, layers, bidir, bias, proj, batch_first, use_lengths, dtype,
                           rng):
    got, want = _run_both(mode, layers, bidir, bias, proj, batch_first, use_lengths, dtype,
                          rng)
    assert got[0].dtype == dtype and got[1].dtype == dtype
    for name, g, w in zip(["output", "h_n", "c_n"], got, want):
        if w is None:
            assert g is None
            continue
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=0, atol=TOL[dtype], err_msg=name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch", [1, 2, 64])
def test_matches_reference_larger(mode, batch, rng):
    """Sizes where the kernels take their gemv (batch 1) and gemm paths."""
    got, want = _run_both(mode, 2, True, True, 0, False, True, np.float64, rng,
                          T=30, B=batch, I=33, H=40)
    for g, w in zip(got, want):
        if w is not None:
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-11)  # relu grows large


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype,batch", [(np.float64, 3), (np.float32, 1), (np.float32, 3)])
def test_long_sequence_many_chunks(mode, dtype, batch, rng):
    """The input projection runs chunk by chunk (a GEMM, or on the fused float32 path a
    projection from W_ih's panels into panel order); chunk edges must not show."""
    got, want = _run_both(mode, 2, True, True, 0, False, True, dtype, rng,
                          T=40, B=batch, I=4, H=19, plan=dict(chunk_elements=3 * 4 * 24))
    for g, w in zip(got, want):
        if w is not None:   # a GRU has no c
            np.testing.assert_allclose(g, w, rtol=0,
                                       atol=1e-12 if dtype == np.float64 else 2e-5)


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_input(mode, rng):
    model, _ = make_model(mode, 5, 6, num_layers=2, bidirectional=True)
    x = rng.standard_normal((9, 5)).astype(np.float32)
    out, state = model(x)
    out_b, state_b = model(x[:, None, :])
    assert out.shape == (9, 12)
    np.testing.assert_array_equal(out, out_b[:, 0])
    states = state if mode == "LSTM" else (state,)
    states_b = state_b if mode == "LSTM" else (state_b,)
    for s, sb in zip(states, states_b):
        assert s.shape == (4, 6)
        np.testing.assert_array_equal(s, sb[:, 0])


def test_state_carries_over(rng):
    """Running a sequence in two halves, passing the state, equals running it whole."""
    model, _ = make_model("LSTM", 5, 7, num_layers=2)
    x = rng.standard_normal((20, 3, 5)).astype(np.float32)
    out, (h, c) = model(x)
    out1, hx = model(x[:10])
    out2, (h2, c2) = model(x[10:], hx)
    np.testing.assert_allclose(np.concatenate([out1, out2]), out, atol=1e-6)
    np.testing.assert_allclose(h2, h, atol=1e-6)
    np.testing.assert_allclose(c2, c, atol=1e-6)


def test_lengths_equal_running_each_sequence_alone(rng):
    model, _ = make_model("GRU", 4, 5, num_layers=2, bidirectional=True)
    x = rng.standard_normal((12, 5, 4)).astype(np.float32)
    lengths = np.array([3, 12, 7, 1, 12])
    out, h_n = model(x, lengths=lengths)
    for b, n in enumerate(lengths):
        o, h = model(x[:n, b])
        np.testing.assert_allclose(out[:n, b], o, atol=1e-6)
        np.testing.assert_array_equal(out[n:, b], 0)
        np.testing.assert_allclose(h_n[:, b], h, atol=1e-6)


def test_batch_of_zero():
    model = fastrnn.LSTM(3, 4)
    out, (h, c) = model(np.zeros((5, 0, 3), np.float32))
    assert out.shape == (5, 0, 4) and h.shape == (1, 0, 4) and c.shape == (1, 0, 4)


def test_state_dict_round_trip():
    model, sd = make_model("LSTM", 3, 8, num_layers=2, bidirectional=True, proj_size=2)
    got = model.state_dict()
    assert list(got) == list(sd)
    for k in sd:
        assert got[k].dtype == np.float32
        np.testing.assert_array_equal(got[k], sd[k].astype(np.float32))
    got["weight_ih_l0"][:] = 0  # a copy: the model must not change
    assert np.any(model.state_dict()["weight_ih_l0"] != 0)


def test_fresh_model_has_torch_like_init():
    model = fastrnn.GRU(10, 100)
    w = model.state_dict()["weight_hh_l0"]
    assert w.shape == (300, 100)
    assert 0.09 < np.abs(w).max() <= 0.1  # U(-1/sqrt(H), 1/sqrt(H))


def test_input_not_modified_and_non_contiguous_accepted(rng):
    model, _ = make_model("LSTM", 4, 6, num_layers=2)
    base = rng.standard_normal((8, 3, 8)).astype(np.float32)
    x = base[:, :, ::2]  # strided view
    fortran = np.asfortranarray(x)
    want, _ = model(np.ascontiguousarray(x))
    copy = x.copy()
    got, _ = model(x)
    np.testing.assert_array_equal(x, copy)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(model(fortran)[0], want)


def test_float64_model_computes_in_float64(rng):
    model, sd = make_model("GRU", 4, 6, dtype="float64")
    x = rng.standard_normal((5, 2, 4))
    out, h = model(x)
    assert out.dtype == np.float64 and h.dtype == np.float64


def test_pickle_round_trip(rng):
    model, _ = make_model("LSTM", 4, 6, num_layers=2, bidirectional=True, proj_size=3)
    x = rng.standard_normal((5, 2, 4)).astype(np.float32)
    clone = pickle.loads(pickle.dumps(model))
    assert repr(clone) == repr(model)
    np.testing.assert_array_equal(clone(x)[0], model(x)[0])


def test_repr():
    assert repr(fastrnn.LSTM(3, 4, num_layers=2, proj_size=2)) == \
        "LSTM(3, 4, num_layers=2, proj_size=2)"
    assert repr(fastrnn.RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4, nonlinearity='relu')"


@pytest.mark.parametrize("mode,hidden,proj,bidir,layers", [
    (mode, hidden, proj, bidir, layers)
    for mode in MODES for hidden in [1, 15, 16, 17, 40, 64]
    for proj, bidir, layers in [(0, False, 1), (0, True, 2), (5, False, 2)]
    if not proj or (mode == "LSTM" and proj < hidden)
])
def test_fused_batch1_kernel_matches_reference(mode, hidden, proj, bidir, layers, rng):
    """Batch 1 in float32 runs the fused kernel over packed panels of 16 units: hidden
    sizes around the panel width, projections, both directions, several layers."""
    got, want = _run_both(mode, layers, bidir, True, proj, False, False, np.float32, rng,
                          T=50, B=1, I=7, H=hidden, scale=hidden ** -0.5)
    for g, w in zip(got, want):
        if w is not None:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=2e-5)


def test_fused_and_blas_paths_agree(rng):
    x = rng.standard_normal((200, 1, 33)).astype(np.float32)
    for mode in MODES:
        fused, sd = make_model(mode, 33, 70, num_layers=2, scale=70 ** -0.5)
        with_plan(fused, fused_max_batch=64)
        blas = with_plan(make_model(mode, 33, 70, num_layers=2, scale=70 ** -0.5)[0],
                         fused=False)
        assert fused.kernel.fused_max_batch >= 1 and blas.kernel.fused_max_batch == 0
        np.testing.assert_allclose(fused(x)[0], blas(x)[0], atol=2e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("weight_dtype,bound", [("float16", 2e-3), ("bfloat16", 1.5e-2)])
def test_reduced_precision_weights_within_documented_error(mode, weight_dtype, bound, rng):
    """fp16 / bf16 weight storage, computing in float32: the output over T=1000 stays
    within the documented bound of the float32 model (torch-initialised weights)."""
    full = getattr(fastrnn, family(mode))(16, 96, num_layers=2, **(
        {"nonlinearity": "relu"} if mode == "RNN_RELU" else {}))
    half = getattr(fastrnn, family(mode))(16, 96, num_layers=2, weight_dtype=weight_dtype, **(
        {"nonlinearity": "relu"} if mode == "RNN_RELU" else {}))
    half.load_state_dict(full.state_dict())
    x = rng.standard_normal((1000, 1, 16)).astype(np.float32)
    want, _ = full(x)
    got, _ = half(x)
    err = np.abs(got - want).max()
    assert 0 < err < bound
    # every kernel path computes with the same rounded weights: batch 1 (fused, the
    # panels in half precision) equals batch 2 (BLAS on the rounded float32 copy)
    both, _ = half(np.concatenate([x[:50], x[:50]], axis=1))
    np.testing.assert_allclose(half(x[:50])[0][:, 0], both[:, 0], atol=2e-6)
    s = half.stream()
    np.testing.assert_allclose(np.stack([s.step(x[t, 0]) for t in range(50)]), got[:50, 0],
                               atol=2e-6)


def test_weight_dtype_rounds_the_state_dict_and_survives_pickling(rng):
    m = fastrnn.GRU(4, 8, weight_dtype="bfloat16")
    sd = {k: rng.standard_normal(v.shape) for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    w = m.state_dict()["weight_hh_l0"]
    assert w.dtype == np.float32 and not (w.view(np.uint32) & 0xFFFF).any()  # bf16 values
    clone = pickle.loads(pickle.dumps(m))
    assert clone.weight_dtype == "bfloat16" and "weight_dtype='bfloat16'" in repr(clone)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(clone(x)[0], m(x)[0])


def test_weight_dtype_errors():
    with pytest.raises(ValueError, match="weight_dtype must be"):
        fastrnn.LSTM(3, 4, weight_dtype="int8")
    with pytest.raises(ValueError, match="needs dtype='float32'"):
        fastrnn.LSTM(3, 4, dtype="float64", weight_dtype="float16")
    m = fastrnn.RNN(3, 4, weight_dtype="float16")
    sd = m.state_dict()
    sd["weight_hh_l0"][0, 0] = 1e5
    with pytest.raises(ValueError, match="beyond float16's range"):
        m.load_state_dict(sd)


@pytest.mark.parametrize("weight_dtype", [None, "float16", "bfloat16"])
@pytest.mark.parametrize("batch", [2, 3, 5, 8, 16, 64])
@pytest.mark.parametrize("mode,proj", [("LSTM", 0), ("LSTM", 4), ("GRU", 0), ("RNN_RELU", 0)])
def test_fused_small_batch_matches_blas_path(batch, mode, proj, weight_dtype, rng):
    """Small batches through the fused kernel (several sequences per weight load, in
    blocks of 2 to 6: batch 3, 5 and 8 take one block or two fours; the lengths make
    the running batch pass through the other widths), against the BLAS path on the
    same model; with half-precision panels
    the BLAS path runs on the same rounded weights in float32. Input 9 and hidden 37
    are odd: bfloat16 panels pair k, and the last k is alone."""
    kwargs = {"proj_size": proj} if proj else {}
    kwargs["weight_dtype"] = weight_dtype
    model, _ = make_model(mode, 9, 37, num_layers=2, scale=37 ** -0.5, **kwargs)
    x = rng.standard_normal((20, batch, 9)).astype(np.float32)
    lengths = rng.integers(1, 21, size=batch)
    with_plan(model, fused_max_batch=64)
    fused = model(x, lengths=lengths)
    s = model.stream(batch=batch)
    stream = np.stack([s.step(x[t]) for t in range(20)])
    with_plan(model, fused_max_batch=0)
    blas = model(x, lengths=lengths)
    np.testing.assert_allclose(fused[0], blas[0], atol=2e-6)
    for f, b in zip(fused[1] if mode == "LSTM" else (fused[1],),
                    blas[1] if mode == "LSTM" else (blas[1],)):
        np.testing.assert_allclose(f, b, atol=2e-6)
    np.testing.assert_allclose(stream, model(x)[0], atol=2e-6)


@pytest.mark.parametrize("weight_dtype", [None, "bfloat16"])
@pytest.mark.parametrize("mode,proj,bidir", [("LSTM", 0, True), ("LSTM", 4, False),
                                             ("GRU", 0, True), ("RNN_TANH", 0, False)])
def test_batch_above_fused_limit_runs_in_groups(mode, proj, bidir, weight_dtype, rng,
                                                ):
    """A batch larger than one fused call takes runs as near-equal groups through the
    fused kernel where that kernel is the default up to its limit: the same outputs and
    final states as the whole batch through BLAS, with unsorted lengths (each group's
    running prefix differs), an initial state and two layers."""
    kwargs = {"proj_size": proj} if proj else {}
    model, _ = make_model(mode, 9, 37, num_layers=2, bidirectional=bidir,
                          scale=37 ** -0.5, weight_dtype=weight_dtype, **kwargs)
    B, D, P = 130, 2 if bidir else 1, proj or 37
    x = rng.standard_normal((12, B, 9)).astype(np.float32)
    lengths = rng.integers(1, 13, size=B)
    h0 = rng.standard_normal((2 * D, B, P)).astype(np.float32)
    hx = (h0, rng.standard_normal((2 * D, B, 37)).astype(np.float32)) if mode == "LSTM" else h0
    with_plan(model, fused_max_batch=64)
    assert model.kernel.batch_groups(B) == [(0, 43), (43, 86), (86, 130)]
    grouped = model(x, hx, lengths=lengths)
    with_plan(model, fused_max_batch=0)
    assert model.kernel.batch_groups(B) is None
    blas = model(x, hx, lengths=lengths)
    with_plan(model, fused_max_batch=32)   # a lower limit (AVX2's kind): BLAS takes it
    assert model.kernel.batch_groups(B) is None
    np.testing.assert_allclose(grouped[0], blas[0], atol=3e-6)
    states = zip(*(r[1] if mode == "LSTM" else (r[1],) for r in (grouped, blas)))
    for g, b in states:
        np.testing.assert_allclose(g, b, atol=3e-6)


@pytest.mark.parametrize("mode,kwargs,name", [
    ("LSTM", {}, "LSTM"), ("LSTM", {"proj_size": 8}, "LSTM"), ("GRU", {}, "GRU"),
    ("RNN_TANH", {}, "RNN"), ("GRU", {"reset_after": False}, None)])
def test_streamed_limit_follows_the_weights_size(mode, kwargs, name, rng):
    """A model whose W_hh panels exceed plan.cache_bytes runs fused up to its family's
    streamed_max_batch (a textbook GRU, and a family not given: fused_max_batch), one
    whose panels fit up to fused_max_batch; on both sides of either limit the outputs
    and final states are the BLAS path's, over two layers with lengths."""
    model, _ = make_model(mode, 11, 40, num_layers=2, scale=40 ** -0.5, **kwargs)
    panels = max(rec.w_hh_panels.nbytes for rec in model.kernel.records)
    limits = {"LSTM": 5, "GRU": 9, "RNN": 3}
    x = rng.standard_normal((9, 14, 11)).astype(np.float32)
    lengths = rng.integers(1, 10, size=14)
    with_plan(model, fused_max_batch=0)
    blas = [model(x[:, :b], lengths=lengths[:b]) for b in range(1, 15)]
    for cache, streams in ((panels, False), (panels - 1, True)):
        with_plan(model, fused_max_batch=7, streamed_max_batch=limits, cache_bytes=cache)
        assert model.kernel.streams == streams
        limit = limits[name] if streams and name else 7
        assert model.kernel.fused_max_batch == limit
        for b in range(1, 15):
            out = model(x[:, :b], lengths=lengths[:b])
            np.testing.assert_allclose(out[0], blas[b - 1][0], atol=3e-6)
            for got, want in zip(*(r[1] if mode == "LSTM" else (r[1],)
                                   for r in (out, blas[b - 1]))):
                np.testing.assert_allclose(got, want, atol=3e-6)
    # a family without its own limit, and None, follow fused_max_batch
    with_plan(model, fused_max_batch=7, streamed_max_batch={"RNN": 2} if name != "RNN"
              else {"LSTM": 2}, cache_bytes=0)
    assert model.kernel.streams and model.kernel.fused_max_batch == 7


def test_streamed_limit_values(monkeypatch):
    isa = fastrnn.Plan.default().isa
    plan = fastrnn.Plan(isa, fused_max_batch=20, streamed_max_batch={"LSTM": 8, "GRU": 12})
    assert plan.streamed_max_batch == (("GRU", 12), ("LSTM", 8))
    assert [plan.max_batch(f, True) for f in ("LSTM", "GRU", "RNN", "")] == [8, 12, 20, 20]
    assert [plan.max_batch(f, False) for f in ("LSTM", "GRU")] == [20, 20]
    assert fastrnn.Plan(isa, streamed_max_batch=4).streamed_max_batch == (
        ("GRU", 4), ("LSTM", 4), ("RNN", 4))
    assert fastrnn.Plan(isa, streamed_max_batch=[("RNN", 0)]) == fastrnn.Plan(
        isa, streamed_max_batch={"RNN": 0})
    assert fastrnn.Plan(isa, streamed_max_batch={}).streamed_max_batch is None
    assert plan.replace(streamed_max_batch=None).max_batch("LSTM", True) == 20
    for bad, msg in [({"lstm": 3}, "unknown family 'lstm'"),
                     ({"GRU": 65}, r"streamed_max_batch\['GRU'\] must be an int in \[0, 64\], got 65"),
                     ({"GRU": True}, "got True"), ({"GRU": 2.0}, "got 2.0"),
                     (-1, r"streamed_max_batch must be an int in \[0, 64\] \(or a dict"),
                     ("8", "must be None, an int or a dict"),
                     ([("GRU", 1), ("GRU", 2)], "'GRU' given twice")]:
        with pytest.raises(ValueError, match=msg):
            fastrnn.Plan(isa, streamed_max_batch=bad)
    # the environment's limit is every model's
    monkeypatch.setenv("FASTRNN_FUSED_MAX_BATCH", "7")
    monkeypatch.setenv("FASTRNN_PROFILE", "off")
    assert fastrnn.Plan.default().max_batch("LSTM", True) == 7


def test_plan_bounds_and_defaults(monkeypatch):
    plan = fastrnn.Plan.default()
    with pytest.raises(ValueError, match=r"fused_max_batch must be an int \[0, 64\], got 65"):
        plan.replace(fused_max_batch=65)
    with pytest.raises(ValueError, match=r"fused_x_min_batch must be an int >= 1, got 0"):
        plan.replace(fused_x_min_batch=0)
    with pytest.raises(ValueError, match=r"cache_bytes must be an int \[0, .*got -1"):
        plan.replace(cache_bytes=-1)
    with pytest.raises(ValueError, match=r"cache_bytes must be an int .*got True"):
        plan.replace(cache_bytes=True)
    with pytest.raises(ValueError, match="isa must be one of"):
        fastrnn.Plan("sse9")
    with pytest.raises(ValueError, match=r"chunk_elements must be an int >= 1, got 0"):
        plan.replace(chunk_elements=0)
    # the gate buffer: one core's L2 in floats, within [2^15, 2^19]
    from fastrnn._kernels.plan import default_chunk_elements

    isa = plan.isa
    assert fastrnn.Plan(isa, cache_bytes=512 * 1024).chunk_elements == 1 << 17
    assert fastrnn.Plan(isa, cache_bytes=2 << 20).chunk_elements == 1 << 19
    assert fastrnn.Plan(isa, cache_bytes=32 << 20).chunk_elements == 1 << 19
    assert fastrnn.Plan(isa, cache_bytes=0).chunk_elements == 1 << 15
    assert fastrnn.Plan(isa, cache_bytes=1 << 20, chunk_elements=99).chunk_elements == 99
    assert plan.chunk_elements == default_chunk_elements(plan.cache_bytes)
    assert plan.replace(cache_bytes=1 << 20).chunk_elements == 1 << 18
    assert plan.replace(chunk_elements=7).replace(cache_bytes=1 << 20).chunk_elements == 7
    with pytest.raises(TypeError, match="plan must be a fastrnn Plan"):
        fastrnn.GRU(3, 4).plan = {"fused_max_batch": 3}
    monkeypatch.setenv("FASTRNN_FUSED_MAX_BATCH", "7")
    monkeypatch.setenv("FASTRNN_KERNEL", "blas")
    env = fastrnn.Plan.default()
    assert env.fused_max_batch == 7 and not env.fused and env.source != "defaults"
    monkeypatch.setenv("FASTRNN_FUSED_MAX_BATCH", "65")
    with pytest.raises(ValueError, match="FASTRNN_FUSED_MAX_BATCH must be an int in"):
        fastrnn.Plan.default()


def test_weights_are_packed_once_per_load(monkeypatch, rng):
    """A new model's initial weights are packed on first use, so that loading a
    checkpoint (which replaces them unseen) packs once: 0.5 s less for a 250 MB model."""
    import fastrnn.layers as layers
    built = []
    real = layers.pack
    monkeypatch.setattr(layers, "pack", lambda *a, **k: built.append(1) or real(*a, **k))
    fresh = fastrnn.LSTM(5, 8, num_layers=2)
    assert built == []
    x = rng.standard_normal((4, 2, 5)).astype(np.float32)
    first = fresh(x)
    fresh(x)
    assert len(built) == 1
    loaded = fastrnn.load(fresh.state_dict())
    assert len(built) == 2
    np.testing.assert_array_equal(loaded(x)[0], first[0])
    assert len(built) == 2
    streamed = fastrnn.GRU(5, 8).stream()   # a stream packs a fresh model too
    assert streamed.step(x[0, 0]).shape == (8,) and len(built) == 3


@pytest.mark.parametrize("weight_dtype", [None, "float16", "bfloat16"])
def test_packed_weights_and_buffers_are_cache_line_aligned(weight_dtype):
    """Vector loads that straddle two cache lines cost two: every packed array and
    workspace buffer starts on a 64-byte boundary (numpy alone gives 16)."""
    seen = []
    for hidden in (37, 64, 100):
        model = with_plan(fastrnn.GRU(9, hidden, num_layers=2, weight_dtype=weight_dtype))
        for record in model.kernel.records:
            seen.extend(a for name, a in record.arrays().items() if name.endswith("_panels"))
            assert not any(a.flags.writeable for a in record.arrays().values())
        ws = with_plan(fastrnn.LSTM(9, hidden, weight_dtype=weight_dtype)).kernel.workspace(7, 3)
        seen.extend([ws.gates, ws.scratch, ws.state_t])
    assert len(seen) > 20
    assert all(a.ctypes.data % 64 == 0 for a in seen)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
@pytest.mark.parametrize("weight_dtype", [None, "bfloat16"])
def test_input_projection_from_panels_matches_hoisted_gemm(mode, weight_dtype, rng):
    """Fused batches from fused_x_min_batch on take W_ih x from the packed panels at
    every step where the panels fit cache_bytes (below 64 sequences); bidirectional, two
    layers, with lengths, both sides of either threshold give the BLAS path's answer."""
    model, _ = make_model(mode, 11, 29, num_layers=2, bidirectional=True,
                          scale=29 ** -0.5, weight_dtype=weight_dtype)
    x = rng.standard_normal((15, 18, 11)).astype(np.float32)
    lengths = rng.integers(1, 16, size=18)
    outs = []
    # panels, panels, hoisted, hoisted; then panels that do not fit: hoisted
    for threshold, cache in ((1, 1 << 30), (18, 1 << 30), (19, 1 << 30), (1000, 1 << 30),
                             (1, 0)):
        with_plan(model, fused_max_batch=64, fused_x_min_batch=threshold, cache_bytes=cache)
        outs.append(model(x, lengths=lengths))
    with_plan(model, fused_max_batch=0)
    blas = model(x, lengths=lengths)
    for out in outs:
        np.testing.assert_allclose(out[0], blas[0], atol=2e-6)
        for f, b in zip(out[1] if mode == "LSTM" else (out[1],),
                        blas[1] if mode == "LSTM" else (blas[1],)):
            np.testing.assert_allclose(f, b, atol=2e-6)


def test_workspaces_are_reused_and_bounded(rng):
    """One workspace per call shape is kept for the next call of that shape, and no more
    than WORKSPACE_SHAPES shapes are kept (the least recently used goes)."""
    from fastrnn._kernels._stack import WORKSPACE_SHAPES
    model = fastrnn.GRU(3, 5)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    model(x)
    kernel = model.kernel
    ws = kernel.take_workspace(4, 2)
    assert (ws.steps, ws.batch) == (4, 2)
    kernel.give_workspace(ws)
    model(x)
    assert kernel.take_workspace(4, 2) is ws    # the call gave back the one it took
    kernel.give_workspace(ws)
    for steps in range(1, WORKSPACE_SHAPES + 3):
        model(x[:1].repeat(steps, axis=0))
    shapes = kernel.free_shapes()
    assert len(shapes) == WORKSPACE_SHAPES
    # shapes 1 .. WORKSPACE_SHAPES + 2 (4 used again on the way): the first two went
    assert (1, 2) not in shapes and (2, 2) not in shapes and (4, 2) in shapes
    assert kernel.take_workspace(4, 2) is ws
    model.load_state_dict(model.state_dict())   # new weights, a new kernel and pool
    assert model.kernel is not kernel and model.kernel.free_shapes() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("fused_max_batch", [0, 64])
def test_padding_is_never_read_and_outputs_land_in_place(mode, batch_first, fused_max_batch,
                                                         rng):
    """Inputs past a sequence's length are not read (NaN there changes nothing: the
    projection covers only running rows), and the outputs, states and zeros land in the
    caller's order and layout, on the fused path (in groups above 64) and on BLAS."""
    model, sd = make_model(mode, 5, 19, num_layers=2, bidirectional=True, scale=19 ** -0.5,
                           batch_first=batch_first)
    with_plan(model, fused_max_batch=fused_max_batch)
    T, B = 13, 70
    x = rng.standard_normal((T, B, 5)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[3] = T
    padded = x.copy()
    padded[np.arange(T)[:, None] >= lengths[None, :]] = np.nan
    swap = (lambda a: a.transpose(1, 0, 2)) if batch_first else (lambda a: a)
    out, state = model(swap(padded), lengths=lengths)
    want, want_state = model(swap(x), lengths=lengths)
    np.testing.assert_array_equal(out, want)
    for g, w in zip(state if mode == "LSTM" else (state,),
                    want_state if mode == "LSTM" else (want_state,)):
        np.testing.assert_array_equal(g, w)
    out = swap(out)
    assert np.all(out[np.arange(T)[:, None] >= lengths[None, :]] == 0)
    for b in (0, 3, 41):   # each sequence alone gives its own rows
        alone, _ = model(swap(np.ascontiguousarray(x[:lengths[b], b:b + 1])))
        np.testing.assert_allclose(out[:lengths[b], b], swap(alone)[:, 0], rtol=0, atol=3e-6)


def test_batch_groups_cover_any_batch_in_near_equal_groups():
    kernel = with_plan(fastrnn.GRU(3, 4), fused_max_batch=64).kernel
    for batch in (65, 130, 1000, 10**6):   # 10**6: batch * i past 2**31 inside
        groups = kernel.batch_groups(batch)
        assert groups[0][0] == 0 and groups[-1][1] == batch
        assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
        sizes = [end - first for first, end in groups]
        assert max(sizes) <= 64 and max(sizes) - min(sizes) <= 1
    assert kernel.batch_groups(64) is None
    assert with_plan(fastrnn.GRU(3, 4), fused_max_batch=32).kernel.batch_groups(1000) is None


def test_the_public_kernel_refuses_arrays_it_cannot_use(rng):
    """model.kernel.run checks what the call pipeline otherwise guarantees: a bad or
    read-only buffer, a shape that does not fit, counts or rows out of range."""
    model = fastrnn.LSTM(3, 4)
    kernel = model.kernel
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    out = np.zeros((5, 2, 4), np.float32)
    h, c = np.zeros((1, 2, 4), np.float32), np.zeros((1, 2, 4), np.float32)
    kernel.run(x, out, h, c)
    np.testing.assert_allclose(out, model(x)[0], rtol=0, atol=1e-6)
    read_only = np.zeros_like(out)
    read_only.flags.writeable = False
    bad = [(dict(out=read_only), "out must be"), (dict(x=x[0]), "x must be a 3-D"),
           (dict(x=x.astype(">f4")), "x must be"), (dict(out=np.zeros((5, 1, 4), np.float32)), "do not fit"),
           (dict(h_n=np.zeros((1, 1, 4), np.float32)), "h_n must have shape"), (dict(c_n=None), "c_n is needed"),
           (dict(batch_sizes=np.array([2, 2, 3, 1, 1], np.intc)), "batch_sizes must be"),
           (dict(rows=np.array([0, 2], np.intc)), "rows must be")]
    for change, message in bad:
        args = dict(x=x, out=out, h_n=h, c_n=c)
        args.update(change)
        with pytest.raises(ValueError, match=message):
            kernel.run(**args)


def test_l2_cache_size_read_from_sysfs(tmp_path):
    """Plan's default cache_bytes: the level-2 unified or data cache of sysfs, in any
    unit; a missing or malformed description gives the 1 MiB default."""
    from fastrnn._kernels.plan import DEFAULT_CACHE_BYTES, l2_cache_bytes

    def index(name, level, kind, size):
        d = tmp_path / name
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")

    assert l2_cache_bytes(str(tmp_path)) == DEFAULT_CACHE_BYTES
    index("index0", 1, "Data", "48K")
    index("index1", 1, "Instruction", "32K")
    assert l2_cache_bytes(str(tmp_path)) == DEFAULT_CACHE_BYTES
    index("index2", 2, "Unified", "512K")
    index("index3", 3, "Unified", "32768K")
    assert l2_cache_bytes(str(tmp_path)) == 512 << 10
    (tmp_path / "index2" / "size").write_text("2M\n")
    assert l2_cache_bytes(str(tmp_path)) == 2 << 20
    (tmp_path / "index2" / "size").write_text("lots\n")
    assert l2_cache_bytes(str(tmp_path)) == DEFAULT_CACHE_BYTES
    for absurd in ("0K", "-512K", "4096G"):   # out of Plan's bounds: not trusted
        (tmp_path / "index2" / "size").write_text(f"{absurd}\n")
        assert l2_cache_bytes(str(tmp_path)) == DEFAULT_CACHE_BYTES
