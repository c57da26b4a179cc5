"""fastrnn.dask.score on a LocalCluster of 2 worker processes against Dask's synchronous
scheduler (bitwise) and one model call over all the data (1e-5); a killed worker; one
model transfer per worker; validation at graph construction; pickling of models."""
import os
import pickle
import signal
import subprocess
import sys
import time

# the test extra installs Dask, pandas and pyarrow: these tests run in CI, never skip
import dask
import dask.array as da
import dask.bag as db
import dask.dataframe as dd
import distributed
import numpy as np
import pandas as pd
import pytest
from helpers import make_model

import fastrnn
import fastrnn.dask as fdask
from fastrnn.apps import LanguageModel, SequenceClassifier
from fastrnn.blocks import Embedding, Linear

N, T, I = 60, 9, 5


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, I)).astype(np.float32)
    lengths = rng.integers(1, T + 1, n)
    for i, n_i in enumerate(lengths):
        x[i, n_i:] = 0
    return x, lengths


def _frame(seqs, npartitions):
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_pandas(pd.DataFrame({"id": np.arange(len(seqs)),
                                            "seq": [s.tolist() for s in seqs]}),
                              npartitions=npartitions)


def _collections(model, x, lengths, output, client_arg):
    """The same job as an array, a bag and a dataframe (lengths=None: full length)."""
    full = np.full(len(x), T) if lengths is None else lengths
    seqs = [x[i, :full[i]] for i in range(len(x))]
    arr = fdask.score(model, da.from_array(x, chunks=(16, -1, -1)), lengths=lengths,
                      output=output, batch_size=6, client=client_arg)
    bag = fdask.score(model, db.from_sequence(seqs, npartitions=4), output=output,
                      batch_size=6, client=client_arg)
    frame = fdask.score(model, _frame(seqs, 3), column="seq", output=output, batch_size=6,
                        client=client_arg)
    return arr, bag, frame


CONFIGS = [
    ("LSTM", dict(), True),
    ("GRU", dict(batch_first=True), True),
    ("LSTM", dict(bidirectional=True, num_layers=2), True),
    ("GRU", dict(bidirectional=True), False),
]


@pytest.mark.parametrize("mode,kwargs,with_lengths", CONFIGS)
def test_cluster_bitwise_sync_and_one_call(client, mode, kwargs, with_lengths):
    model, _ = make_model(mode, I, 12, scale=0.3, **kwargs)
    x, lengths = _data()
    if not with_lengths:
        x, lengths = _data()[0] * 1, None
    full = np.full(N, T) if lengths is None else lengths
    xm = x if model.batch_first else x.transpose(1, 0, 2)
    out, h_n = model(xm, lengths=lengths)
    h = h_n[0] if mode == "LSTM" else h_n
    d = 2 if model.bidirectional else 1
    last = np.concatenate(list(h[-d:]), axis=1)
    out_bm = out if model.batch_first else out.transpose(1, 0, 2)

    for output in ("last", "all"):
        arr, bag, frame = _collections(model, x, lengths, output, None)
        arr, bag, frame = *dask.compute(arr, bag), frame.compute()
        s_arr, s_bag, s_frame = _collections(model, x, lengths, output, False)
        s_arr, s_bag = dask.compute(s_arr, s_bag, scheduler="sync")
        s_frame = s_frame.compute(scheduler="sync")
        assert np.array_equal(arr, s_arr)
        assert all(np.array_equal(a, b) for a, b in zip(bag, s_bag))
        assert list(frame.index) == list(range(N)) == list(s_frame.index)
        for a, b in zip(frame["output"], s_frame["output"]):
            assert np.array_equal(np.asarray(a), np.asarray(b))

        want = last if output == "last" else out_bm
        np.testing.assert_allclose(arr, want, atol=1e-5, rtol=0)
        for i in range(N):
            row = want[i] if output == "last" else want[i, :full[i]]
            np.testing.assert_allclose(bag[i], row, atol=1e-5, rtol=0)
            np.testing.assert_allclose(np.asarray(frame["output"][i], np.float32), row,
                                       atol=1e-5, rtol=0)


def test_callable_output_gets_torch_shaped_batches(client):
    model, _ = make_model("LSTM", I, 8, scale=0.3)
    x, lengths = _data(1)
    out, _ = model(x.transpose(1, 0, 2), lengths=lengths)

    def mean_over_steps(output, h_n, lens):
        assert output.shape[0] == T and isinstance(h_n, tuple)   # (T, B, F) padded to T
        return output.sum(0) / np.asarray(lens)[:, None]

    got = fdask.score(model, da.from_array(x, chunks=(25, -1, -1)), lengths=lengths,
                      output=mean_over_steps, batch_size=7).compute()
    np.testing.assert_allclose(got, out.sum(0) / lengths[:, None], atol=1e-5)


def _received(client):
    """{worker: {job token: times unpickled}} read on each worker."""
    return client.run(lambda: dict(__import__("fastrnn.dask").dask._models_received))


def _receipts(client, before):
    """{worker: times it unpickled the one job scored since `before`}."""
    after = _received(client)
    assert set(after) == set(before) and len(after) == 2
    new = {w: {t: n for t, n in got.items() if t not in before[w]} for w, got in after.items()}
    tokens = {t for got in new.values() for t in got}
    assert len(tokens) <= 1, new
    return {w: sum(got.values()) for w, got in new.items()}


def _heavy_tasks(arr, job_bytes):
    """The graph's tasks whose pickle is as large as the model's: the ones carrying it."""
    import cloudpickle
    graph = arr.__dask_graph__()
    return [k for k, task in graph.items() if len(cloudpickle.dumps(task)) >= job_bytes]


def test_model_sent_once_per_worker(client):
    model, _ = make_model("GRU", I, 64, scale=0.3)
    job_bytes = len(pickle.dumps(model))              # ~50 KB; a block of x is ~2 KB
    x, lengths = _data(2, n=200)
    before = _received(client)
    arr = fdask.score(model, da.from_array(x, chunks=(10, -1, -1)), lengths=lengths,
                      batch_size=4)
    assert arr.numblocks[0] == 20
    assert _heavy_tasks(arr, job_bytes) == []         # tasks hold the scattered key only
    arr.compute()
    # Each worker unpickles the job once (a copy per task would be ~10 a worker). Dask
    # may resend data whose transfer it retries (one worker counted 2 once, in a run
    # under AddressSanitizer's slowdown): one resend is tolerated, no more.
    got = _receipts(client, before)
    assert all(1 <= n <= 2 for n in got.values()), got

    # without scattering: one graph key, which a worker fetches when its first task
    # needs it (at most once, but for a retried transfer)
    before = _received(client)
    arr = fdask.score(model, da.from_array(x, chunks=(10, -1, -1)), lengths=lengths,
                      batch_size=4, client=False)
    key = next(k for k in arr.dask if str(k).startswith("fastrnn-model-"))
    assert _heavy_tasks(arr, job_bytes) == [key]
    arr.compute()
    got = _receipts(client, before)
    assert all(n <= 2 for n in got.values()), got


def test_receipt_counts_are_bounded():
    """A long-lived worker keeps counts for the last jobs only, each job's by its token."""
    model, _ = make_model("GRU", I, 8)
    jobs = [fdask._Job(model, "last", None, 4, 1) for _ in range(fdask._RECEIVED_KEPT + 6)]
    for job in jobs:
        blob = pickle.dumps(job)
        pickle.loads(blob)
    pickle.loads(blob)                                  # the last job once more
    counts = fdask._models_received
    assert len(counts) == fdask._RECEIVED_KEPT
    assert jobs[0].token not in counts and counts[jobs[-1].token] == 2
    assert counts[jobs[-2].token] == 1


def test_worker_threads_set_explicitly(client):
    model, _ = make_model("LSTM", I, 8, scale=0.3)
    x, lengths = _data(3)
    threads_here = fastrnn.get_num_threads()
    fdask.score(model, da.from_array(x, chunks=(5, -1, -1)), lengths=lengths,
                threads=2).compute()
    seen = client.run(lambda: (__import__("fastrnn.dask").dask._worker_threads,
                               __import__("fastrnn").get_num_threads()))
    assert any(v == (2, 2) for v in seen.values()), seen
    # synchronous scheduler: the calling process keeps its own setting
    fdask.score(model, da.from_array(x, chunks=(5, -1, -1)), lengths=lengths, threads=2,
                client=False).compute(scheduler="sync")
    assert fastrnn.get_num_threads() == threads_here
    fdask.score(model, da.from_array(x, chunks=(5, -1, -1)), lengths=lengths).compute()
    seen = client.run(lambda: __import__("fastrnn").get_num_threads())
    assert set(seen.values()) <= {1, 2}


def test_killed_worker_job_completes_identically(client):
    model, _ = make_model("LSTM", I, 16, scale=0.3)
    x, lengths = _data(4, n=160)

    def slow_last(output, h_n, lens):
        time.sleep(0.15)
        return h_n[0][-1]

    def job(client_arg):
        return fdask.score(model, da.from_array(x, chunks=(10, -1, -1)), lengths=lengths,
                           output=slow_last, batch_size=10, client=client_arg)

    expected = job(False).compute(scheduler="sync")
    blocks = list(job(None).to_delayed().ravel())
    futures = client.compute(blocks)
    deadline = time.monotonic() + 30
    while sum(f.done() for f in futures) < 3:
        assert time.monotonic() < deadline, "no partition finished"
        time.sleep(0.05)
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    os.kill(pids[victim], signal.SIGKILL)
    assert sum(f.done() for f in futures) < len(futures)   # killed mid-job
    got = np.concatenate(client.gather(futures))
    assert np.array_equal(got, expected)
    client.wait_for_workers(2, timeout=30)


# -- apps -----------------------------------------------------------------------------

def _tokens(seed, n=40, vocab=11):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, T + 1, n)
    tokens = rng.integers(0, vocab, (n, T))
    for i, n_i in enumerate(lengths):
        tokens[i, n_i:] = 0
    return tokens, lengths


@pytest.mark.parametrize("pool", ["last", "all"])
def test_classifier_and_tagger(pool):
    rnn, _ = make_model("GRU", 6, 10, scale=0.3, bidirectional=True)
    clf = SequenceClassifier(rnn, Linear(20, 4), Embedding(11, 6), pool=pool)
    tokens, lengths = _tokens(5)
    want = clf(tokens, lengths)
    got = fdask.score(clf, da.from_array(tokens, chunks=(15, -1)), lengths=lengths,
                      batch_size=4, client=False).compute(scheduler="sync")
    np.testing.assert_allclose(got, want, atol=1e-5)
    bag = fdask.score(clf, db.from_sequence([t[:n] for t, n in zip(tokens, lengths)],
                                            npartitions=3),
                      client=False).compute(scheduler="sync")
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(bag[i], want[i] if pool == "last" else want[i, :n],
                                   atol=1e-5)


def test_language_model_log_likelihood():
    rnn, _ = make_model("LSTM", 6, 10, scale=0.3)
    lm = LanguageModel(rnn, Linear(10, 11), Embedding(11, 6))
    tokens, lengths = _tokens(6)
    got = fdask.score(lm, da.from_array(tokens, chunks=(15, -1)), lengths=lengths,
                      batch_size=4, client=False).compute(scheduler="sync")
    assert got.shape == (len(tokens),) and got.dtype == np.float64
    for i, n in enumerate(lengths):
        logits = lm.logits(tokens[i, :n]).astype(np.float64)[:-1]
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        assert got[i] == pytest.approx(logp[np.arange(n - 1), tokens[i, 1:n]].sum(), abs=1e-4)


# -- validation at graph construction ---------------------------------------------------

def test_bad_inputs_raise_before_anything_runs():
    model, _ = make_model("LSTM", I, 8)
    x, lengths = _data()
    arr = da.from_array(x, chunks=(16, -1, -1))
    with pytest.raises(TypeError, match="must be a fastrnn model.*torch"):
        fdask.score(object(), arr)
    with pytest.raises(ValueError, match="wrong feature size.*input_size=5.*\\(60, 9, 4\\)"):
        fdask.score(model, arr[:, :, :4])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 9\].*to 10"):
        fdask.score(model, arr, lengths=np.full(N, 10))
    with pytest.raises(ValueError, match=r"lengths has the wrong shape: expected \(60,\)"):
        fdask.score(model, arr, lengths=lengths[:5])
    ragged = np.empty(3, object)
    ragged[:] = [np.zeros((2, I)), np.zeros((4, I)), np.zeros((1, I))]
    with pytest.raises(ValueError, match="ragged sequences.*lengths=.*dask.bag"):
        fdask.score(model, da.from_array(ragged, chunks=2))
    with pytest.raises(TypeError, match="dask.bag.from_sequence"):
        fdask.score(model, [np.zeros((2, I)), np.zeros((4, I))])
    with pytest.raises(TypeError, match="from_array"):
        fdask.score(model, x)
    with pytest.raises(ValueError, match="lengths is only for padded dask arrays"):
        fdask.score(model, db.from_sequence([x[0]]), lengths=[3])
    frame = _frame([x[0], x[1]], 1)
    with pytest.raises(ValueError, match="column 'sequence' is not in the dataframe.*'seq'"):
        fdask.score(model, frame, column="sequence")
    with pytest.raises(ValueError, match="column= must name"):
        fdask.score(model, frame)
    with pytest.raises(ValueError, match="list column.*convert-string"):
        fdask.score(model, dd.from_pandas(pd.DataFrame({"s": ["a", "b"]}), npartitions=1),
                    column="s")
    with pytest.raises(ValueError, match="output must be 'last', 'all' or a callable"):
        fdask.score(model, arr, output="mean")
    with pytest.raises(ValueError, match="batch_size must be"):
        fdask.score(model, arr, batch_size=0)
    with pytest.raises(ValueError, match="one row per sequence"):
        fdask.score(model, arr, output=lambda out, h, n: out[0, 0, :3])
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fdask.score(model, arr[arr[:, 0, 0] > 0])


def test_bad_item_named_where_it_is_read():
    model, _ = make_model("GRU", I, 8)
    bag = db.from_sequence([np.zeros((3, I)), np.zeros((2, I + 1))], npartitions=1)
    with pytest.raises(ValueError, match=r"bag item 1 must have shape \(length, input_size=5\)"):
        fdask.score(model, bag, client=False).compute(scheduler="sync")


# -- pickling ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_pickle_is_the_weights_and_runs_on_another_isa(tmp_path, mode):
    model, _ = make_model(mode, 16, 64, scale=0.3, num_layers=2, bidirectional=True)
    x, _ = _data()
    x = np.random.default_rng(0).standard_normal((T, 4, 16)).astype(np.float32)
    want, _ = model(x)   # packed and with a workspace: neither may travel
    blob = pickle.dumps(model)
    weights = sum(v.nbytes for v in model.state_dict().values())
    assert weights <= len(blob) < weights * 1.02 + 4096
    again = pickle.loads(blob)
    assert np.array_equal(again(x)[0], want)

    (tmp_path / "model.pkl").write_bytes(blob)
    np.save(tmp_path / "x.npy", x)
    code = ("import pickle, sys, numpy as np; d = sys.argv[1]; "
            "m = pickle.load(open(d + '/model.pkl', 'rb')); "
            "np.save(d + '/out.npy', m(np.load(d + '/x.npy'))[0])")
    env = dict(os.environ, FASTRNN_ISA="generic")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env,
                   timeout=60)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), want, atol=1e-5, rtol=0)


# -- fastrnn score ------------------------------------------------------------------------

def _score_cli(*args):
    from fastrnn import cli
    return cli.main(["score", *map(str, args)])


def _cli_inputs(tmp_path, n=400, hidden=16, bidirectional=True):
    import pyarrow as pa
    import pyarrow.parquet as pq

    model, sd = make_model("GRU", I, hidden, scale=0.3, bidirectional=bidirectional)
    np.savez(tmp_path / "model.npz", **{k: v.astype(np.float32) for k, v in sd.items()})
    model = fastrnn.load(str(tmp_path / "model.npz"))
    x, lengths = _data(7, n=n)
    np.savez(tmp_path / "in.npz", x=x, lengths=lengths)
    seqs = [x[i, :lengths[i]] for i in range(n)]
    pq.write_table(pa.table({"id": np.arange(n), "seq": pa.array([s.tolist() for s in seqs])}),
                   tmp_path / "in.parquet", row_group_size=n // 4)
    out, h_n = model(x.transpose(1, 0, 2), lengths=lengths)
    d = 2 if bidirectional else 1
    return model, x, lengths, out, np.concatenate(list(h_n[-d:]), axis=1)


def test_score_command_npz_and_parquet(client, tmp_path):
    import pyarrow.parquet as pq

    _, x, lengths, out, last = _cli_inputs(tmp_path)
    addr = client.scheduler.address
    assert _score_cli(tmp_path / "model.npz", tmp_path / "in.npz", "--output",
                      tmp_path / "out.npz", "--scheduler", addr, "--partition-size", 90,
                      "--batch-size", 16) == 0
    z = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(z["output"], last, atol=1e-5, rtol=0)
    assert np.array_equal(z["lengths"], lengths)
    assert not (tmp_path / "out.npz.parts").exists()

    assert _score_cli(tmp_path / "model.npz", tmp_path / "in.parquet", "-o", tmp_path / "ds",
                      "--scheduler", addr, "--output-kind", "all") == 0
    table = pq.read_table(tmp_path / "ds")
    assert table.column("id").to_pylist() == list(range(len(x)))
    for i, row in enumerate(table.column("output").to_pylist()):
        np.testing.assert_allclose(np.array(row), out[:lengths[i], i], atol=1e-5, rtol=0)

    # a finished dataset is not overwritten by accident; bad arguments say what is wrong
    assert _score_cli(tmp_path / "model.npz", tmp_path / "in.parquet", "-o", tmp_path / "ds",
                      "--scheduler", addr) == 1
    assert _score_cli(tmp_path / "model.npz", tmp_path / "in.npz", "-o", tmp_path / "o.npy",
                      "--scheduler", addr) == 1
    assert _score_cli(tmp_path / "model.npz", tmp_path / "in.parquet", "-o", tmp_path / "d2",
                      "--column", "id", "--scheduler", addr) == 1
    with pytest.raises(SystemExit):
        _score_cli(tmp_path / "model.npz", tmp_path / "in.npz", "-o", tmp_path / "o.npz",
                   "--batch-size", 0)


def test_score_command_resume_runs_only_missing_parts(client, tmp_path, capsys):
    import pyarrow.parquet as pq

    from fastrnn import _score_files as files

    model, x, lengths, out, last = _cli_inputs(tmp_path)
    addr = client.scheduler.address
    args = [tmp_path / "model.npz", tmp_path / "in.parquet", "-o", tmp_path / "ds",
            "--scheduler", addr]
    assert _score_cli(*args) == 0
    parts = sorted((tmp_path / "ds").glob("part-*.parquet"))
    assert len(parts) == 4
    parts[2].unlink()
    (tmp_path / "ds" / ".part-00002.parquet.tmp-dead").write_bytes(b"half a part")
    mtimes = {p: p.stat().st_mtime_ns for p in parts if p.exists()}
    capsys.readouterr()
    assert _score_cli(*args, "--resume") == 0
    assert "3 of 4 partition(s) already written, 1 to run" in capsys.readouterr().err
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == [
        "_fastrnn_job.json"] + [f"part-{i:05d}.parquet" for i in range(4)]
    got = np.array(pq.read_table(tmp_path / "ds").column("output").to_pylist())
    np.testing.assert_allclose(got, last, atol=1e-5, rtol=0)

    # an .npz job interrupted after its first partition
    spec = files.plan(tmp_path / "model.npz", str(tmp_path / "in.npz"),
                      str(tmp_path / "out.npz"), partition_size=100, model=model)
    assert files.prepare(spec, resume=False) == [0, 1, 2, 3]
    files.run_part(fdask._job(model, "last", 256, 1), spec, 0)
    capsys.readouterr()
    assert _score_cli(tmp_path / "model.npz", tmp_path / "in.npz", "-o", tmp_path / "out.npz",
                      "--scheduler", addr, "--partition-size", 100, "--resume") == 0
    assert "1 of 4 partition(s) already written, 3 to run" in capsys.readouterr().err
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["output"], last, atol=1e-5)
    # another job's parts are not mixed in
    spec = files.plan(tmp_path / "model.npz", str(tmp_path / "in.npz"),
                      str(tmp_path / "out.npz"), partition_size=100, model=model)
    files.prepare(spec, resume=False)
    assert _score_cli(tmp_path / "model.npz", tmp_path / "in.npz", "-o", tmp_path / "out.npz",
                      "--scheduler", addr, "--partition-size", 50, "--resume") == 1


def test_score_command_survives_a_killed_worker(client, tmp_path):
    import threading

    model, x, lengths, out, last = _cli_inputs(tmp_path, n=3200, hidden=128,
                                               bidirectional=False)
    parts_dir = tmp_path / "out.npz.parts"
    result = {}
    run = threading.Thread(target=lambda: result.setdefault("rc", _score_cli(
        tmp_path / "model.npz", tmp_path / "in.npz", "-o", tmp_path / "out.npz",
        "--scheduler", client.scheduler.address, "--partition-size", 200)))
    run.start()
    deadline = time.monotonic() + 60
    while not list(parts_dir.glob("part-*.npy")):
        assert time.monotonic() < deadline and run.is_alive(), result
        time.sleep(0.01)
    pids = client.run(os.getpid)
    os.kill(pids[sorted(pids)[-1]], signal.SIGKILL)
    written = len(list(parts_dir.glob("part-*.npy")))
    run.join(90)
    assert written < 16 and result == {"rc": 0}
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["output"], last, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz", "in.parquet",
                                                          "model.npz", "out.npz"]
    client.wait_for_workers(2, timeout=30)
