"""The kernels' building blocks: BLAS wrappers, activations, ISA dispatch, the GIL."""
import threading
import time

import numpy as np
import pytest
from helpers import kernel_threads, make_model, with_plan

import fastrnn
from fastrnn._kernels import _blas
from fastrnn._kernels._blas import BLAS_Trans
from fastrnn._kernels._stack import ISA_NAMES, _activations_f32, cpu_isa, isa

NoTrans, Trans = BLAS_Trans.NoTrans, BLAS_Trans.Trans
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [NoTrans, Trans])
@pytest.mark.parametrize("tb", [NoTrans, Trans])
def test_gemm_matches_numpy(dtype, ta, tb, rng):
    m, n, k = 7, 5, 3
    A = rng.standard_normal((m, k) if ta == NoTrans else (k, m)).astype(dtype)
    B = rng.standard_normal((k, n) if tb == NoTrans else (n, k)).astype(dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    opA = A if ta == NoTrans else A.T
    opB = B if tb == NoTrans else B.T
    want = 1.5 * opA @ opB + 0.5 * C
    _blas._gemm_memview(ta, tb, dtype(1.5), A, B, dtype(0.5), C)
    np.testing.assert_allclose(C, want, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [NoTrans, Trans])
def test_gemv_matches_numpy(dtype, ta, rng):
    A = rng.standard_normal((6, 4)).astype(dtype)
    x = rng.standard_normal(4 if ta == NoTrans else 6).astype(dtype)
    y = rng.standard_normal(6 if ta == NoTrans else 4).astype(dtype)
    want = 2.0 * (A if ta == NoTrans else A.T) @ x + 1.0 * y
    _blas._gemv_memview(ta, dtype(2.0), A, x, dtype(1.0), y)
    np.testing.assert_allclose(y, want, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 5])  # the gemv and gemm paths
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_matmul_bt(dtype, m, beta, rng):
    A = rng.standard_normal((m, 9)).astype(dtype)
    B = rng.standard_normal((4, 9)).astype(dtype)
    C = rng.standard_normal((m, 4)).astype(dtype)
    want = A @ B.T + beta * C
    _blas._matmul_bt_memview(A, B, dtype(beta), C)
    np.testing.assert_allclose(C, want, rtol=RTOL[dtype], atol=RTOL[dtype])


def _check_activations(sig, th, x):
    xd = x.astype(np.float64)
    with np.errstate(over="ignore"):   # exp(3e38) is inf in float64 too: sigmoid 0
        want = 1.0 / (1.0 + np.exp(-xd))
    assert np.abs(sig - want).max() < 2.5e-7
    assert np.abs(th - np.tanh(xd)).max() < 2.5e-7
    assert np.all((sig >= 0) & (sig <= 1)) and np.all(np.abs(th) <= 1)
    assert np.all(np.isfinite(sig)) and np.all(np.isfinite(th))


ACTIVATION_GRID = np.concatenate([
    np.linspace(-100, 100, 400_001), np.linspace(-1, 1, 200_001),
    [0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0, 89.0, -104.0, 3e38, -3e38]]).astype(np.float32)


def test_float32_activations_accuracy():
    """The documented error of cell_math.h's sigmoid and tanh (float32): the scalar form
    of the cell loops and the fused kernels' vector form on this CPU's ISA."""
    for vector in (False, True):
        sig, th = _activations_f32(ACTIVATION_GRID, vector)
        _check_activations(sig, th, ACTIVATION_GRID)
        zero = _activations_f32(np.zeros(3, np.float32), vector)
        assert (zero[0] == 0.5).all() and (zero[1] == 0).all()
        nan = _activations_f32(np.full(3, np.nan, np.float32), vector)
        assert np.isnan(nan[0]).all() and np.isnan(nan[1]).all()   # NaN is not clamped away


def _runs(name):
    """Whether this CPU (and build) runs the kernels of ISA `name`."""
    return ISA_NAMES.index(name) <= ISA_NAMES.index(cpu_isa())


@pytest.mark.parametrize("name", ISA_NAMES)
def test_vector_activations_accuracy_per_isa(name):
    """The fused kernels' vector sigmoid and tanh of each ISA's table, in this process;
    an ISA the CPU lacks is refused by name."""
    if not _runs(name):
        with pytest.raises(ValueError, match=f"isa '{name}' is not available on this CPU"):
            _activations_f32(ACTIVATION_GRID, True, isa=name)
        return
    sig, th = _activations_f32(ACTIVATION_GRID, True, isa=name)
    _check_activations(sig, th, ACTIVATION_GRID)
    z = _activations_f32(np.zeros(3, np.float32), True, isa=name)
    assert (z[0] == 0.5).all() and (z[1] == 0).all()
    n = _activations_f32(np.full(3, np.nan, np.float32), True, isa=name)
    assert np.isnan(n[0]).all() and np.isnan(n[1]).all()


def test_isa_tables_differ():
    """Each ISA's table is its own code: on a CPU with more than the baseline, the
    vector exp of AVX2 / AVX-512 rounds differently from the generic one somewhere."""
    names = [name for name in ISA_NAMES if _runs(name)]
    outs = {name: _activations_f32(ACTIVATION_GRID, True, isa=name)[0] for name in names}
    for name in names[1:]:
        assert not np.array_equal(outs[name], outs["generic"]), name


def test_isa_argument_checked():
    with pytest.raises(ValueError, match="isa must be one of generic, avx2, avx512, got 'sse9'"):
        _activations_f32(np.zeros(3, np.float32), True, isa="sse9")
    with pytest.raises(ValueError, match="isa must be one of"):
        fastrnn.Plan("avx1024")
    for name in ISA_NAMES:
        if not _runs(name):
            with pytest.raises(ValueError, match="not available on this CPU"):
                fastrnn.Plan(name)


def test_isa_environment_checked(monkeypatch):
    m, _ = make_model("GRU", 3, 8)
    monkeypatch.setenv("FASTRNN_ISA", "avx3")
    with pytest.raises(ValueError, match="FASTRNN_ISA must be one of auto, generic, avx2, "
                                         "avx512, got 'avx3'"):
        isa()
    with pytest.raises(ValueError, match="FASTRNN_ISA"):   # read when weights are packed
        m.load_state_dict(m.state_dict())


def test_isa_is_reported():
    assert isa() in ("avx512", "avx2", "generic")


def _isa_outputs(isa_name=None):
    """Outputs of every family, batch 1 and batch 3 through the fused kernel (even where
    BLAS is the default), streams included, on `isa_name` (default: what the environment
    gives a model)."""
    x = np.random.default_rng(0).standard_normal((60, 3, 5)).astype(np.float32)
    outs, isas = [], set()
    for mode in ['LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU']:
        for hidden, wd in ((37, None), (64, None), (40, 'float16'), (40, 'bfloat16')):
            m, _ = make_model(mode, 5, hidden, num_layers=2, scale=hidden ** -0.5,
                              weight_dtype=wd)
            with_plan(m, fused_max_batch=64, **({"isa": isa_name} if isa_name else {}))
            s = m.stream()
            s3 = m.stream(batch=3)
            outs += [m(x)[0].ravel(), m(x[:, :1])[0].ravel(), s.step(x[0, 0]),
                     s3.step(x[0]).ravel()]
            isas.add(m.kernel.isa)
    return np.concatenate(outs), isas


@pytest.mark.parametrize("cap", ["generic", "avx2"])
def test_isa_cap_by_environment(cap, monkeypatch):
    """FASTRNN_ISA caps the instruction set of the models packed while it is set (in
    this process, next to models on other ISAs); every family gives the results of the
    default ISA (up to summation order: torch-scale weights keep the dynamics from
    amplifying it)."""
    outs = {}
    for isa_env in (cap, "auto"):
        monkeypatch.setenv("FASTRNN_ISA", isa_env)
        outs[isa_env] = _isa_outputs()
    want = cap if _runs(cap) else cpu_isa()
    assert outs[cap][1] == {want}
    assert outs["auto"][1] == {cpu_isa()}
    # summation orders differ between ISAs; a real fault would be off by O(0.1)
    np.testing.assert_allclose(outs[cap][0], outs["auto"][0], rtol=1e-4, atol=5e-5)



def test_forward_releases_the_gil():
    """While one thread is inside a long kernel call, another Python thread keeps running.

    Holding the GIL for the whole call would leave the main thread frozen until the
    call returned; with it released the main thread ticks throughout.
    """
    model, _ = make_model("LSTM", 64, 256)
    x = np.random.default_rng(0).standard_normal((16000, 1, 64)).astype(np.float32)
    model(x[:10])
    started, done = threading.Event(), threading.Event()

    def work():
        started.set()
        model(x)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    ticks = 0
    t0 = time.perf_counter()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    t.join()
    # ~one tick per ms of kernel time if the GIL is free; a held GIL allows a handful
    assert elapsed > 0.02, "the kernel call was too short to tell"
    assert ticks >= 10 and ticks >= 0.2 * elapsed * 1000, (ticks, elapsed)


def test_two_threads_two_models_agree_with_serial(rng):
    """Concurrent calls on two models (and on one shared model) give the serial answers."""
    m1, _ = make_model("GRU", 8, 32, seed=1, num_layers=2)
    m2, _ = make_model("LSTM", 8, 32, seed=2, bidirectional=True)
    xs = [rng.standard_normal((200, 4, 8)).astype(np.float32) for _ in range(6)]
    want = [(m1(x)[0], m2(x)[0]) for x in xs]
    got = [None] * len(xs)

    def run(i):
        got[i] = (m1(xs[i])[0], m2(xs[i])[0])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (g1, g2), (w1, w2) in zip(got, want):
        np.testing.assert_array_equal(g1, w1)
        np.testing.assert_array_equal(g2, w2)


def test_denormals_flushed_inside_and_restored_after():
    """Kernels run with FTZ/DAZ (a state decaying through denormals stays fast) and
    leave the caller's floating-point mode as it was."""
    tiny = np.float32(1e-39)  # a float32 denormal
    assert tiny * np.float32(1.0) != 0
    model, _ = make_model("GRU", 4, 40)   # 3 panels: a split gives the helper some
    model.load_state_dict({k: np.zeros_like(v) for k, v in model.state_dict().items()})
    # zero weights: n = 0, z = 1/2, so h' = h / 2; from a denormal h, IEEE arithmetic
    # gives denormals, flush-to-zero gives exactly 0
    x = np.zeros((3, 1, 4), np.float32)
    h0 = np.full((1, 1, 40), 1e-39, np.float32)
    with_plan(model, split_min_hidden=0)
    for threads in (1, 2):   # 2: the helper thread's half of a split step too
        with kernel_threads(threads):
            for batch in (1, 3):  # the fused kernel, and the BLAS path where it is used
                out, h_n = model(np.repeat(x, batch, 1), np.repeat(h0, batch, 1))
                assert not out.any() and not h_n.any()
    assert (model(x, h0 * 1e10)[0] != 0).all()  # normal numbers still halve
    s = model.stream()
    s.step(np.zeros(4, np.float32))
    assert tiny * np.float32(1.0) != 0, "the caller's denormal mode was not restored"


@pytest.mark.parametrize("cap", ["generic", "avx2", "auto"])
def test_float16_subnormal_weights_widen_exactly(cap, monkeypatch):
    """float16 storage keeps weights below 2^-14 (half subnormals) exactly, on every
    instruction set, although the kernels run with denormals-are-zero: the widening
    must not pass through a float32 denormal. The fused kernel is forced (the
    baseline build leaves even batch 1 to BLAS by default)."""
    monkeypatch.setenv("FASTRNN_ISA", cap)
    m = fastrnn.RNN(1, 16, nonlinearity='relu', bias=False, weight_dtype='float16')
    tiny = 2.0 ** -20   # a half subnormal, exactly
    m.load_state_dict({'weight_ih_l0': np.full((16, 1), tiny),
                       'weight_hh_l0': np.eye(16) * 3 * tiny})
    with_plan(m, fused_max_batch=64)
    s = m.stream()
    a = s.step(np.array([1e4], np.float32)).copy()
    b = s.step(np.array([0.0], np.float32))
    assert m.kernel.isa == (cap if cap != "auto" and _runs(cap) else cpu_isa())
    a_min, a_max, b_min, b_max = a.min(), a.max(), b.min(), b.max()
    want_a = np.float32(np.float32(2.0 ** -20) * np.float32(1e4))
    assert a_min == a_max == want_a
    want_b = np.float32(np.float32(3 * 2.0 ** -20) * want_a)
    assert b_min == b_max and abs(b_min - want_b) <= 1e-6 * want_b


@pytest.mark.parametrize("name", [n for n in ISA_NAMES if _runs(n)])
def test_plan_isa_picks_the_table_in_process(name):
    """A plan names the ISA whose kernels a model runs: models on different ISAs live
    side by side in one process, each giving the default ISA's results up to summation
    order."""
    outs, isas = _isa_outputs(name)
    assert isas == {name}
    want, _ = _isa_outputs(cpu_isa())
    np.testing.assert_allclose(outs, want, rtol=1e-4, atol=5e-5)
