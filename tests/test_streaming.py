"""Step-by-step inference: model.step and model.stream."""
import os
import pickle
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest
from helpers import TOL, helper_threads_started, kernel_threads, make_model, with_plan

MODES = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]


def _states(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_equals_whole_sequence(mode, layers, batch, dtype, rng):
    kwargs = dict(num_layers=layers, dtype=dtype)
    if mode == "LSTM" and layers == 3:
        kwargs["proj_size"] = 3
    model, _ = make_model(mode, 5, 7, **kwargs)
    x = rng.standard_normal((25, batch, 5)).astype(dtype)
    want, want_state = model(x)
    s = model.stream(batch=batch)
    got = np.stack([s.step(x[t]) for t in range(25)])
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype])
    for g, w in zip(_states(s.state), _states(want_state)):
        np.testing.assert_allclose(g, w, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_stream_above_fused_limit_steps_in_groups(mode, rng):
    """A stream of more sequences than one fused call takes steps them as groups (like
    a sequence, Kernel.batch_groups), each group with its own state: outputs and
    state as the whole sequence gives, an initial state taken and reset honoured."""
    model, _ = make_model(mode, 5, 7, num_layers=2, scale=7 ** -0.5)
    with_plan(model, fused_max_batch=64)
    B = 130
    x = rng.standard_normal((9, B, 5)).astype(np.float32)
    h0 = rng.standard_normal((2, B, 7)).astype(np.float32)
    hx = (h0, rng.standard_normal((2, B, 7)).astype(np.float32)) if mode == "LSTM" else h0
    want, want_state = model(x, hx)
    s = model.stream(batch=B, hx=hx)
    assert len(model.kernel.batch_groups(B)) == 3
    out = np.empty((B, 7), np.float32)
    got = np.stack([s.step(x[t], out=out).copy() for t in range(9)])
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    for g, w in zip(_states(s.state), _states(want_state)):
        np.testing.assert_allclose(g, w, rtol=0, atol=2e-6)
    s.reset()
    np.testing.assert_allclose(s.step(x[0]), model(x[:1])[0][0], rtol=0, atol=2e-6)


@pytest.mark.parametrize("mode", MODES)
def test_model_step_equals_whole_sequence(mode, rng):
    model, _ = make_model(mode, 4, 6, num_layers=2)
    x = rng.standard_normal((12, 2, 4)).astype(np.float32)
    want, want_state = model(x)
    hx = None
    for t in range(12):
        y, hx = model.step(x[t], hx)
        np.testing.assert_allclose(y, want[t], atol=2e-6)
    for g, w in zip(_states(hx), _states(want_state)):
        np.testing.assert_allclose(g, w, atol=2e-6)


def test_unbatched_step_and_stream(rng):
    model, _ = make_model("GRU", 3, 5, num_layers=2)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    want, h = model(x)
    s = model.stream()
    ys = [s.step(x[t]) for t in range(8)]
    assert ys[0].shape == (5,)
    np.testing.assert_allclose(np.stack(ys), want, atol=2e-6)
    y, hx = model.step(x[0])
    assert y.shape == (5,) and hx.shape == (2, 5)


def test_out_argument_is_written_and_returned(rng):
    model, _ = make_model("LSTM", 3, 4)
    s = model.stream(batch=2)
    out = np.empty((2, 4), np.float32)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    res = s.step(x, out=out)
    assert res is out
    want, _ = model(x[None])
    np.testing.assert_allclose(out, want[0], atol=1e-6)


def test_state_round_trip_and_reset(rng):
    model, _ = make_model("LSTM", 3, 4, num_layers=2)
    x = rng.standard_normal((10, 1, 3)).astype(np.float32)
    s = model.stream()
    for t in range(5):
        s.step(x[t])
    saved = s.state
    rest = [s.step(x[t]) for t in range(5, 10)]
    s.state = saved                      # rewind
    again = [s.step(x[t]) for t in range(5, 10)]
    np.testing.assert_array_equal(np.stack(rest), np.stack(again))
    s.reset()
    h, c = s.state
    assert not h.any() and not c.any()
    # a stream started from a given state equals the sequence call with that hx
    h0 = rng.standard_normal((2, 1, 4)).astype(np.float32)
    c0 = rng.standard_normal((2, 1, 4)).astype(np.float32)
    want, _ = model(x, (h0, c0))
    s2 = model.stream(hx=(h0, c0))
    np.testing.assert_allclose(np.stack([s2.step(x[t]) for t in range(10)]), want, atol=2e-6)


def test_state_is_a_copy(rng):
    model, _ = make_model("GRU", 3, 4)
    s = model.stream()
    s.step(np.ones(3, np.float32))
    h = s.state
    h[:] = 123
    assert not np.any(s.state == 123)


def test_bidirectional_refuses_to_stream():
    model, _ = make_model("LSTM", 3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        model.stream()
    with pytest.raises(ValueError, match="bidirectional"):
        model.step(np.zeros(3, np.float32))


def test_stream_errors():
    model, _ = make_model("LSTM", 3, 4)
    s = model.stream(batch=2)
    with pytest.raises(ValueError, match=r"x has the wrong shape: expected \(2, 3\), got \(3,\)"):
        s.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"x has the wrong shape: expected \(2, 3\), got \(2, 4\)"):
        s.step(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="x must hold real floating-point"):
        s.step(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"out must be a C-contiguous float32 array of shape \(2, 4\)"):
        s.step(np.zeros((2, 3), np.float32), out=np.zeros((2, 4), np.float64))
    with pytest.raises(ValueError, match="out must be"):
        s.step(np.zeros((2, 3), np.float32), out=np.zeros((4, 2), np.float32).T)
    with pytest.raises(ValueError, match=r"hx\[0\] \(h_0\)"):
        s.state = (np.zeros((1, 3, 4)), np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="batch must be an int >= 1"):
        model.stream(batch=0)
    with pytest.raises(ValueError, match=r"x_t must be \(batch, input_size=3\)"):
        model.step(np.zeros((2, 5), np.float32))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_run_equals_steps(mode, batch, dtype, rng):
    """run() advances by a chunk of steps: the same outputs and state as step() one by
    one, chunks of any length mixed with single steps (the fused kernel's panel order
    keeps its turn across both)."""
    # weights of torch's scale: a ReLU net of larger ones grows to ~100 in 17 steps,
    # where float32 rounding alone exceeds TOL (a chunk and single steps sum W_ih x in
    # different orders)
    model, _ = make_model(mode, 5, 20, num_layers=2, dtype=dtype, scale=20 ** -0.5)
    x = rng.standard_normal((17, batch, 5)).astype(dtype)
    s, r = model.stream(batch=batch), model.stream(batch=batch)
    want = np.stack([s.step(x[t]) for t in range(17)])
    if batch == 1:   # a stream of one also takes (T, input_size), as step takes (input_size,)
        x, want = x[:, 0], want[:, 0]
    got = np.concatenate([r.run(x[:5]), r.step(x[5])[None], r.run(x[6:7]), r.run(x[7:])])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype])
    for g, w in zip(_states(r.state), _states(s.state)):
        np.testing.assert_allclose(g, w, rtol=0, atol=TOL[dtype])
    out = np.empty_like(want)
    assert model.stream(batch=batch).run(x, out=out) is out
    np.testing.assert_allclose(out, want, rtol=0, atol=TOL[dtype])


def test_stream_run_in_groups(rng):
    """A stream stepped as groups (more sequences than one fused call takes) runs a
    chunk group by group: the whole sequence's outputs and state."""
    model, _ = make_model("LSTM", 5, 7, num_layers=2, scale=7 ** -0.5)
    with_plan(model, fused_max_batch=64)
    x = rng.standard_normal((9, 130, 5)).astype(np.float32)
    want, want_state = model(x)
    s = model.stream(batch=130)
    assert len(model.kernel.batch_groups(130)) == 3
    got = np.concatenate([s.run(x[:4]), s.run(x[4:])])
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    for g, w in zip(s.state, want_state):
        np.testing.assert_allclose(g, w, rtol=0, atol=2e-6)


def test_stream_run_errors():
    model, _ = make_model("GRU", 3, 4)
    s = model.stream(batch=2)
    for bad in (np.zeros((0, 2, 3)), np.zeros((5, 3)), np.zeros((5, 1, 3)), np.zeros((5, 2, 4))):
        with pytest.raises(ValueError, match=r"xs must be \(T, batch=2, input_size\)"):
            s.run(bad.astype(np.float32))
    with pytest.raises(TypeError, match="xs must hold real floating-point"):
        s.run(np.zeros((5, 2, 3), np.int32))
    xs = np.zeros((5, 2, 3), np.float32)
    for out in (np.zeros((5, 2, 4)), np.zeros((5, 4, 2), np.float32).transpose(0, 2, 1),
                np.zeros((4, 2, 4), np.float32), [0.0]):
        with pytest.raises(ValueError, match=r"out must be a C-contiguous float32 array of "
                                             r"shape \(5, 2, 4\)"):
            s.run(xs, out=out)
    with pytest.raises(ValueError, match=r"xs must be \(T, input_size\)"):
        model.stream().run(np.zeros((5, 2), np.float32))


def test_stream_converts_other_float_dtypes(rng):
    model, _ = make_model("GRU", 3, 4)
    x = rng.standard_normal(3)
    np.testing.assert_allclose(model.stream().step(x), model.stream().step(x.astype(np.float32)))


@pytest.mark.parametrize("n_threads", [1, 2, 4])
def test_threads_sharing_one_model_give_the_serial_answers(n_threads, rng):
    model, _ = make_model("LSTM", 16, 64, num_layers=2)
    xs = [rng.standard_normal((300, 16)).astype(np.float32) for _ in range(n_threads)]

    def run(x):
        s = model.stream()
        return np.stack([s.step(x[t]) for t in range(len(x))])

    want = [run(x) for x in xs]
    got = [None] * n_threads
    barrier = threading.Barrier(n_threads)

    def worker(i):
        barrier.wait()
        got[i] = run(xs[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_pickled_model_streams_the_same(rng):
    model, _ = make_model("GRU", 3, 5, num_layers=2)
    clone = pickle.loads(pickle.dumps(model))
    x = rng.standard_normal((6, 3)).astype(np.float32)
    a, b = model.stream(), clone.stream()
    for t in range(6):
        np.testing.assert_array_equal(a.step(x[t]), b.step(x[t]))


def test_many_step_calls_leave_memory_flat():
    model, _ = make_model("LSTM", 8, 16)
    s = model.stream()
    x = np.ones(8, np.float32)
    out = np.empty(16, np.float32)
    for _ in range(1000):
        s.step(x, out=out)
        s.step(x)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(50_000):
        s.step(x, out=out)
        s.step(x)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after - before < 64 * 1024, after - before


def test_thread_count_control():
    import fastrnn
    before = fastrnn.get_num_threads()
    assert before >= 1
    with fastrnn.num_threads(2):
        assert fastrnn.get_num_threads() == 2
    assert fastrnn.get_num_threads() == before
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        fastrnn.set_num_threads(0)
    with pytest.raises(ValueError, match="blas must be an int >= 1"):
        fastrnn.set_num_threads(2, blas=0)
    from fastrnn._kernels import _stack
    kernel_before = _stack.get_kernel_threads()
    with fastrnn.num_threads(2, blas=1):
        assert _stack.get_kernel_threads() == 2 and fastrnn.get_num_threads() == 2
    assert _stack.get_kernel_threads() == kernel_before


def test_default_is_one_blas_thread_and_env_overrides():
    import os
    code = "import fastrnn; print(fastrnn.get_num_threads())"
    env = {k: v for k, v in os.environ.items() if k != "FASTRNN_NUM_THREADS"}
    here = os.path.dirname(os.path.abspath(__file__))  # not the source tree: the installed fastrnn
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=here).stdout.strip()
    assert out == "1"
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, FASTRNN_NUM_THREADS="2"),
                         capture_output=True, text=True, check=True, cwd=here).stdout.strip()
    assert out == "2"


@pytest.mark.parametrize("mode,kwargs", [
    ("LSTM", {}), ("LSTM", {"proj_size": 7}), ("GRU", {}), ("RNN_TANH", {}),
    ("LSTM", {"weight_dtype": "float16"}), ("GRU", {"weight_dtype": "bfloat16"}),
])
def test_two_core_split_gives_identical_results(mode, kwargs, rng):
    """A step split by panels across two cores does the same arithmetic, and so does a
    sequence's input projection, split by the same panels: bitwise equal results."""
    model, _ = make_model(mode, 6, 40, num_layers=2, scale=40 ** -0.5, **kwargs)  # 3 panels
    with_plan(model, split_min_hidden=0)
    x = rng.standard_normal((30, 1, 6)).astype(np.float32)
    with kernel_threads(1):
        seq1 = model(x)[0]
        s = model.stream()
        step1 = np.stack([s.step(x[t, 0]) for t in range(30)])
    with kernel_threads(2):
        seq2 = model(x)[0]
        s = model.stream()
        step2 = np.stack([s.step(x[t, 0]) for t in range(30)])
    np.testing.assert_array_equal(seq1, seq2)
    np.testing.assert_array_equal(step1, step2)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("batch", [4, 20])
def test_two_core_split_of_batches_matches_one_core(mode, batch, rng):
    """Batches split by panels too (batch 4: the hoisted projection by panels; batch 20:
    W_ih from the panels at every step), with lengths: bitwise equal to one core."""
    model, _ = make_model(mode, 6, 40, num_layers=2, scale=40 ** -0.5)
    # cache_bytes=0: by panels (a batch of small layers otherwise goes as two halves)
    with_plan(model, fused_max_batch=64, split_min_hidden=0, cache_bytes=0)
    x = rng.standard_normal((25, batch, 6)).astype(np.float32)
    lengths = rng.integers(1, 26, size=batch)
    runs = []
    for threads in (1, 2):
        with kernel_threads(threads):
            s = model.stream(batch=batch)
            runs.append((model(x, lengths=lengths)[0],
                         np.stack([s.step(x[t]) for t in range(25)])))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_split_steps_while_the_helper_sleeps_match_one_core(mode, rng):
    """After a pause longer than the helper's spin it sleeps, and a short split job does
    not wake it: the caller runs both halves of each step (stream steps 5 ms apart);
    a long call wakes it part way (steps of the caller alone, then shared). Either way
    bitwise the results of one core."""
    model, _ = make_model(mode, 6, 40, num_layers=2, scale=40 ** -0.5)   # 3 panels
    with_plan(model, split_min_hidden=0)
    x = rng.standard_normal((400, 1, 6)).astype(np.float32)
    runs = []
    for threads in (1, 2):
        with kernel_threads(threads):
            s = model.stream()
            steps = []
            for t in range(12):
                time.sleep(0.005)
                steps.append(s.step(x[t, 0]))
            time.sleep(0.005)
            runs.append((np.stack(steps), model(x)[0]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux CPU affinity")
def test_a_thread_bound_to_one_cpu_runs_split_calls_alone():
    """Two threads asked for, one CPU allowed: no helper thread is started (it could only
    take turns with its caller) and the results are one core's; allowed a second CPU
    again, the same call starts it."""
    code = """if True:
        import os, time, numpy as np, fastrnn
        m = fastrnn.LSTM(8, 256)
        # the fused kernels, split from any hidden size, whatever FASTRNN_ISA is (the
        # generic ISA's defaults run batch 1 through BLAS, which never splits); the
        # suite's with_plan, which this child cannot import (PYTHONSAFEPATH)
        m.plan = fastrnn.Plan.default().replace(fused=True, fused_max_batch=64,
                                                split_min_hidden=0)
        x = np.ones((20, 1, 8), np.float32)
        fastrnn.set_num_threads(1)
        one = m(x)[0]
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpus)})
        tasks = len(os.listdir("/proc/self/task"))
        fastrnn.set_num_threads(2, blas=1)
        two = m(x)[0]
        assert len(os.listdir("/proc/self/task")) == tasks, "a helper thread started"
        assert (one == two).all()
        os.sched_setaffinity(0, cpus)
        time.sleep(0.15)   # the CPUs a thread may use are read again every 100 ms
        m(x)
        print(len(os.listdir("/proc/self/task")) - tasks)
    """
    helper_threads_started(code)


def _assert_one_and_two_cores_agree(model, x, lengths):
    """The model on one core and with two threads (the library's own split rules):
    outputs and final states bitwise equal."""
    runs = []
    for threads in (1, 2):
        with kernel_threads(threads):
            out, state = model(x, lengths=lengths)
            runs.append([out, *_states(state)])
    for one, two in zip(*runs):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("batch", [1, 3])
def test_two_core_split_of_bidirectional_steps_matches_one_core(batch, rng):
    """From hidden 256 a bidirectional layer splits each step's panels instead of
    running its directions side by side: bitwise equal to one core, with lengths."""
    model, _ = make_model("LSTM", 6, 256, num_layers=2, bidirectional=True,
                          scale=256 ** -0.5)
    x = rng.standard_normal((12, batch, 6)).astype(np.float32)
    _assert_one_and_two_cores_agree(model, x, rng.integers(1, 13, size=batch))


def _forked_child(q):
    import fastrnn
    from fastrnn._kernels import _stack
    _stack.set_kernel_threads(2)
    m = with_plan(fastrnn.GRU(8, 64), split_min_hidden=0)
    q.put(float(m(np.ones((20, 1, 8), np.float32))[0].sum()))


def test_split_survives_fork():
    """The helper thread does not exist in a forked child: it must make its own, not
    wait for its parent's."""
    import multiprocessing as mp
    with kernel_threads(2):
        fastrnn_model = with_plan(make_model("GRU", 8, 64)[0], split_min_hidden=0)
        fastrnn_model(np.ones((5, 1, 8), np.float32))   # the parent's helper is running
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=_forked_child, args=(q,))
        p.start()
        p.join(60)
        assert p.exitcode == 0, "the forked child hung or failed"
        assert np.isfinite(q.get(timeout=5))


@pytest.mark.parametrize("mode,kwargs", [("LSTM", {}), ("LSTM", {"proj_size": 5}),
                                         ("GRU", {"weight_dtype": "bfloat16"}),
                                         ("RNN_RELU", {})])
@pytest.mark.parametrize("batch", [1, 3, 20])
def test_bidirectional_layers_run_their_directions_on_two_cores(mode, kwargs, batch, rng):
    """With two threads a bidirectional layer runs its two directions side by side, on
    their own buffers: the same arithmetic as one core, so bitwise the same, with
    lengths, over three layers (both inter-layer buffers)."""
    model, _ = make_model(mode, 7, 24, num_layers=3, bidirectional=True,
                          scale=24 ** -0.5, **kwargs)
    x = rng.standard_normal((120, batch, 7)).astype(np.float32)
    _assert_one_and_two_cores_agree(model, x, rng.integers(1, 121, size=batch))


def test_stream_refuses_buffers_it_must_not_write_and_reads_swapped_bytes(rng, tmp_path):
    """out= must be writeable and native: a read-only array, an immutable bytes object
    seen through np.frombuffer, a read-only memory map and a big-endian array are each
    refused before the kernel runs; a big-endian input is converted, not misread."""
    model, _ = make_model("GRU", 3, 4)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    want = model(x[:, None])[0][:, 0]
    path = tmp_path / "out.bin"
    np.zeros(4, np.float32).tofile(path)
    read_only = np.zeros(4, np.float32)
    read_only.flags.writeable = False
    bad_outs = [("read-only", read_only),
                ("read-only", np.frombuffer(bytes(16), np.float32)),
                ("read-only", np.memmap(path, np.float32, mode="r", shape=(4,))),
                ("byte order", np.zeros(4, ">f4"))]
    for problem, out in bad_outs:
        s = model.stream()
        with pytest.raises(ValueError, match=problem):
            s.step(x[0], out=out)
        with pytest.raises(ValueError, match=problem):
            s.run(x[:1], out=out[None])
    assert not np.memmap(path, np.float32, mode="r", shape=(4,)).any()
    s = model.stream()
    got = np.stack([s.step(x[t].astype(">f4")) for t in range(6)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.stream().run(x.astype(">f4")), want, rtol=0, atol=1e-6)


def test_stream_writes_into_a_writeable_ndarray_subclass(rng, tmp_path):
    """out= is checked for what the kernel needs, not for the exact type: a writeable
    memory map of the right dtype and shape receives the step's output."""
    model, _ = make_model("GRU", 3, 4)
    x = rng.standard_normal(3).astype(np.float32)
    out = np.memmap(tmp_path / "out.bin", np.float32, mode="w+", shape=(4,))
    assert model.stream().step(x, out=out) is out
    np.testing.assert_array_equal(out, model.stream().step(x))
