"""Score datasets with a fastrnn model on Dask: `score(model, data)` over a dask.array of
padded sequences, a dask.bag of ragged ones or a dask.dataframe with a list column,
returning the matching lazy collection.

Within each partition the sequences are sorted by length (longest first) and run in
batches of `batch_size`, each padded only to its own longest sequence, then put back in
the input order. The model (with the output function and the batch size: one `_Job`)
travels to each worker once: scattered to every worker when a distributed Client is
active, else a single key of the graph that tasks depend on; tasks never carry a copy
(Dask may send it again when it retries a transfer).

Threads: Dask's nanny starts workers with OMP_NUM_THREADS, MKL_NUM_THREADS and
OPENBLAS_NUM_THREADS set to 1. fastrnn reads none of them: its kernels' threads and
scipy's OpenBLAS pool are set by fastrnn.set_num_threads (1 at import unless
FASTRNN_NUM_THREADS says otherwise). `score(..., threads=n)` sets them explicitly in each
worker process before its first partition (default 1: parallelism comes from the
workers and their Dask threads). In the calling process (synchronous or threaded
scheduler) fastrnn's setting is left as the caller made it.
"""
import collections
import threading
import uuid

import numpy as np

try:
    import dask
    import dask.array as da
    import dask.bag as db
except ImportError as exc:   # pragma: no cover - the extra is installed in CI
    raise ImportError(
        "fastrnn.dask needs Dask: pip install 'fastrnn[dask]' (dask[distributed], pandas, "
        f"pyarrow); {exc}") from exc

from fastrnn import _checks
from fastrnn.apps import LanguageModel, SequenceClassifier
from fastrnn.layers import GRU, LSTM, RNN

__all__ = ["score"]

_MODELS = (LSTM, GRU, RNN)
_APPS = (SequenceClassifier, LanguageModel)

# How many times this process has unpickled each _Job (model), by the job's token: once
# per worker per score() call when the model travels once (tests read it on the workers).
# The last _RECEIVED_KEPT jobs only, so that a long-lived worker does not grow with it.
_models_received = collections.OrderedDict()
_RECEIVED_KEPT = 64
_count_lock = threading.Lock()

# The fastrnn thread count this worker process was given by a score() call, or None.
_worker_threads = None
_threads_lock = threading.Lock()


# -- what runs on the workers -----------------------------------------------------------

class _Job:
    """The model (or app), how its outputs become one row per sequence, and the batch
    size: the one object that travels to each worker.

    kind: "last" / "all" / "callable" for a model; "classify" / "tag" / "loglik" for
    the apps. `timed` kinds give rows (T_b, ...) per sequence, padded for arrays and
    cut to each sequence's length for bags and dataframes.
    """

    def __init__(self, model, kind, output, batch_size, threads):
        self.model, self.kind, self.output = model, kind, output
        self.batch_size, self.threads = batch_size, threads
        self.row_shape, self.row_dtype = None, None   # an array's rows (_probe)
        self.token = uuid.uuid4().hex

    @property
    def timed(self):
        return self.kind in ("all", "tag")

    @property
    def tokens(self):
        return isinstance(self.model, _APPS)

    @property
    def input_dtype(self):
        return np.dtype(np.intp) if self.tokens else self.model.dtype

    @property
    def rnn(self):
        return self.model.rnn if self.tokens else self.model

    def __getstate__(self):
        return dict(self.__dict__)

    def __setstate__(self, state):
        self.__dict__.update(state)
        with _count_lock:
            _models_received[self.token] = _models_received.pop(self.token, 0) + 1
            while len(_models_received) > _RECEIVED_KEPT:
                _models_received.popitem(last=False)

    def rows(self, x, lengths, steps=None):
        """One batch, x (B, T_b[, input_size]) batch-major, lengths (B,) -> rows (B, ...)
        or a list of B rows. steps: the array's padded length, which a callable's
        outputs are padded to (as one model(x, lengths) call over the array gives)."""
        if self.kind == "classify" or self.kind == "tag":
            return self.model(x, lengths)
        if self.kind == "loglik":
            return _log_likelihood(self.model, x, lengths)
        model = self.model
        out, h_n = model(x if model.batch_first else x.transpose(1, 0, 2), lengths=lengths)
        if self.kind == "last":
            h = h_n[0] if isinstance(h_n, tuple) else h_n
            d = 2 if model.bidirectional else 1
            top = h[-d:]                                   # (D, B, H)
            return np.ascontiguousarray(top.transpose(1, 0, 2)).reshape(top.shape[1], -1)
        if not model.batch_first:
            out = out.transpose(1, 0, 2)                   # (B, T_b, F)
        if self.kind == "all":
            return out
        if steps is not None and steps > out.shape[1]:
            full = np.zeros((out.shape[0], steps, out.shape[2]), out.dtype)
            full[:, :out.shape[1]] = out
            out = full
        if not model.batch_first:
            out = out.transpose(1, 0, 2)
        return self.output(out, h_n, lengths)


def _log_likelihood(lm, tokens, lengths):
    """Each sequence's log-probability under a LanguageModel, float64 (B,): the sum of
    log p(token[t + 1] | tokens[:t + 1]) over its length - 1 predicted tokens."""
    rnn = lm.rnn
    x = lm.input(tokens)
    out, _ = rnn(x if rnn.batch_first else np.ascontiguousarray(x.transpose(1, 0, 2)),
                 lengths=lengths)
    out = out if rnn.batch_first else out.transpose(1, 0, 2)
    logits = lm.head(out[:, :-1]).astype(np.float64)       # (B, T_b - 1, V)
    top = logits.max(-1, keepdims=True)
    logp = logits - (top + np.log(np.exp(logits - top).sum(-1, keepdims=True)))
    picked = np.take_along_axis(logp, tokens[:, 1:, None].astype(np.intp), -1)[..., 0]
    mask = np.arange(picked.shape[1])[None, :] < (np.asarray(lengths) - 1)[:, None]
    return (picked * mask).sum(1)


def _use_threads(n):
    """Set this worker process's fastrnn threads to n, once; not outside a worker."""
    global _worker_threads
    if _worker_threads == n:
        return
    try:
        from distributed import get_worker
        get_worker()
    except (ImportError, ValueError):
        return
    import fastrnn
    with _threads_lock:
        if _worker_threads != n:
            fastrnn.set_num_threads(n)
            _worker_threads = n


def _row_list(rows, count, what):
    if isinstance(rows, np.ndarray) and rows.ndim >= 1 and rows.shape[0] == count:
        return rows
    if isinstance(rows, (list, tuple)) and len(rows) == count:
        return rows
    shape = getattr(rows, "shape", None)
    raise ValueError(f"{what} must return one row per sequence ({count} rows: an array with "
                     f"first dimension {count} or a list of {count}), got "
                     f"{type(rows).__name__}{'' if shape is None else ' of shape ' + str(shape)}")


def _batches(job, lengths):
    """Input positions sorted by length (longest first), in batches of batch_size."""
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), job.batch_size):
        yield order[start:start + job.batch_size]


def _score_padded(job, x, lengths):
    """A block of a padded array, x (n, T[, input_size]), lengths (n,) or None -> the
    block's output rows in input order (one array)."""
    _use_threads(job.threads)
    n, steps = x.shape[0], x.shape[1]
    lengths = (np.full(n, steps, np.int64) if lengths is None
               else _checks.check_lengths(lengths, n, steps))
    x = np.asarray(x, job.input_dtype)
    result = None
    for idx in _batches(job, lengths):
        longest = int(lengths[idx[0]])
        rows = job.rows(x[idx, :longest], lengths[idx], steps)
        rows = np.asarray(_row_list(rows, len(idx), "output"))
        if result is None:
            shape = rows.shape[1:]
            if job.timed:
                shape = (steps,) + shape[1:]
            result = np.zeros((n,) + shape, rows.dtype)
        if job.timed:
            result[idx, :rows.shape[1]] = rows
        else:
            result[idx] = rows
    if result is None:   # an empty block: the probed shape, nothing in it
        result = np.zeros((0,) + job.row_shape, job.row_dtype)
    return result


def _sequence(job, item, where):
    """One ragged sequence -> a (T_i, input_size) array (or (T_i,) token ids)."""
    a = np.asarray(item)
    if a.dtype == object:   # a list column read back from Parquet: an array of rows
        try:
            a = np.stack([np.asarray(r) for r in a]) if a.size else a.astype(float)
        except ValueError:
            raise ValueError(f"{where} is ragged inside: its steps have different sizes") from None
    if job.tokens:
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise ValueError(f"{where} must be a 1-D sequence of token ids, got dtype "
                             f"{a.dtype} and shape {a.shape}")
    else:
        size = job.model.input_size
        if a.ndim == 1 and size == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] != size:
            raise ValueError(f"{where} must have shape (length, input_size={size}), got "
                             f"shape {a.shape}")
        if a.dtype.kind not in "fiu":
            raise ValueError(f"{where} must hold numbers, got dtype {a.dtype}")
    if a.shape[0] == 0:
        raise ValueError(f"{where} is empty: every sequence needs at least one step")
    return a


def _score_ragged(job, items, what):
    """Ragged sequences -> a list of rows in their order (timed rows cut to each
    sequence's length)."""
    _use_threads(job.threads)
    seqs = [_sequence(job, item, f"{what} {i}") for i, item in enumerate(items)]
    lengths = np.array([len(s) for s in seqs], np.int64)
    out = [None] * len(seqs)
    for idx in _batches(job, lengths):
        longest = int(lengths[idx[0]])
        batch = np.zeros((len(idx), longest) + seqs[idx[0]].shape[1:], job.input_dtype)
        for j, i in enumerate(idx):
            batch[j, :lengths[i]] = seqs[i]
        rows = _row_list(job.rows(batch, lengths[idx]), len(idx), "output")
        for j, i in enumerate(idx):
            out[i] = rows[j][:lengths[i]] if job.timed else rows[j]
    return out


def _score_bag_partition(items, job):
    return _score_ragged(job, list(items), "bag item")


def _score_frame_partition(frame, job, column, output_column, scalar):
    import pandas as pd

    rows = _score_ragged(job, list(frame[column]), f"row of column {column!r}")
    if scalar:
        values = np.array([float(r) for r in rows], np.float64)
    else:
        values = np.empty(len(rows), object)
        for i, r in enumerate(rows):   # 2-D rows as lists of 1-D rows: Parquet-writable
            values[i] = list(r) if getattr(r, "ndim", 0) >= 2 else r
    return pd.DataFrame({output_column: values}, index=frame.index)


# -- graph construction (all validation happens here) -----------------------------------

def _job(model, output, batch_size, threads):
    if isinstance(model, _MODELS):
        if output is None:
            output = "last"
        if callable(output):
            kind = "callable"
        elif output in ("last", "all"):
            kind = output
        else:
            raise ValueError(f"output must be 'last', 'all' or a callable (output, h_n, "
                             f"lengths) -> rows, got {output!r}")
    elif isinstance(model, _APPS):
        if output is not None:
            raise ValueError(f"output is the app's own for a {type(model).__name__} (its "
                             f"logits or log-likelihoods); leave it None, got {output!r}")
        if isinstance(model, LanguageModel):
            kind = "loglik"
        else:
            kind = "tag" if model.pool == "all" else "classify"
    else:
        raise TypeError(
            "model must be a fastrnn model (fastrnn.LSTM, GRU, RNN: fastrnn.load or "
            "fastrnn.from_torch make one from a torch model) or a fastrnn.apps "
            f"SequenceClassifier / LanguageModel, got {type(model).__module__}."
            f"{type(model).__name__}")
    batch_size = _checks.check_positive_int(batch_size, "batch_size")
    threads = _checks.check_positive_int(threads, "threads")
    return _Job(model, kind, output, batch_size, threads)


def _ship(job, client):
    """A reference to the job that tasks take as an argument: a Future of the job
    scattered to every worker of the client (given or current), else a Delayed."""
    if client is None:
        try:
            from distributed import default_client
            client = default_client()
        except (ImportError, ValueError):
            client = None
    if client is None or client is False:
        return dask.delayed(job, name=f"fastrnn-model-{job.token}")
    return client.scatter(job, broadcast=True, hash=False)


def _probe(job, steps):
    """(row shape, dtype) of the job's rows for padded arrays of `steps` steps: known for
    the built-in outputs, found for a callable by calling it once on one zero sequence
    here (which also checks it before any worker runs)."""
    rnn = job.rnn
    width = (2 if rnn.bidirectional else 1) * (rnn.proj_size or rnn.hidden_size)
    if job.kind == "last":
        return (width,), rnn.dtype
    if job.kind == "all":
        return (steps, width), rnn.dtype
    if job.kind == "loglik":
        return (), np.dtype(np.float64)
    if job.kind in ("classify", "tag"):
        classes = job.model.head.out_features
        return ((classes,) if job.kind == "classify" else (steps, classes)), rnn.dtype
    x = np.zeros((1, steps, rnn.input_size), rnn.dtype)
    rows = np.asarray(_row_list(job.rows(x, np.array([steps]), steps), 1, "output"))
    return rows.shape[1:], rows.dtype


def _check_array(job, data, lengths):
    if data.dtype == object:
        raise ValueError(
            "data is a dask array of objects (ragged sequences?): pad them to (N, T, "
            "input_size) and pass lengths=, or give a dask.bag of (T_i, input_size) arrays")
    if job.tokens:
        if data.ndim != 2 or data.dtype.kind not in "iu":
            raise ValueError(f"data for a {type(job.model).__name__} must be (N, T) token ids "
                             f"(integers), got dtype {data.dtype} and shape {data.shape}")
    else:
        size = job.model.input_size
        if data.ndim != 3:
            raise ValueError(f"data must be (N, T, input_size={size}) padded sequences (batch "
                             f"first, whatever the model's batch_first), got shape {data.shape}")
        if data.shape[2] != size:
            raise ValueError(f"data has the wrong feature size: expected input_size={size} in "
                             f"the last dimension, got shape {data.shape}")
        if data.dtype.kind not in "fiu":
            raise ValueError(f"data must hold numbers, got dtype {data.dtype}")
    if any(np.isnan(c) for c in data.chunks[0]):
        raise ValueError("data has unknown chunk sizes (nan): call data.compute_chunk_sizes() "
                         "first")
    n, steps = data.shape[0], data.shape[1]
    if steps < 1:
        raise ValueError(f"data must hold at least one time step, got shape {data.shape}")
    data = data.rechunk({i: -1 for i in range(1, data.ndim)})
    if lengths is None:
        return data, None, n, steps
    if isinstance(lengths, da.Array):
        if lengths.shape != (n,) or lengths.dtype.kind not in "iu":
            raise ValueError(f"lengths must be ({n},) integers (one per sequence), got dtype "
                             f"{lengths.dtype} and shape {lengths.shape}")
        # values are checked in each block (they are not known here)
        return data, lengths.rechunk((data.chunks[0],)), n, steps
    lengths = _checks.check_lengths(lengths, n, steps)
    return data, da.from_array(lengths, chunks=(data.chunks[0],)), n, steps


def score(model, data, lengths=None, output=None, batch_size=256, column=None,
          output_column="output", threads=1, client=None):
    """Run `model` over every sequence of `data`, lazily: returns the collection of
    `data`'s kind with one row per sequence, in the input order.

    model: a fastrnn LSTM / GRU / RNN, or a fastrnn.apps SequenceClassifier (logits
    per sequence, or per step for pool="all": a tagger) or LanguageModel (each
    sequence's log-likelihood); apps take token ids instead of features.

    data:
      - a dask.array (N, T, input_size) of padded sequences, batch first whatever the
        model's batch_first, with `lengths` (N,) (numpy, list or dask array; default:
        all T). Returns a dask.array (N, ...).
      - a dask.bag of (T_i, input_size) arrays. Returns a dask.bag of rows.
      - a dask.dataframe whose `column` holds one sequence per row (a list of T_i
        lists of input_size numbers, as Parquet's list<list<float>>; for input_size 1
        also a flat list). Returns a dask.dataframe with the same index and one column
        `output_column`.

    output: "last" (default): the top layer's final hidden state, both directions
    concatenated, (num_directions * hidden,) per sequence; "all": the outputs at every
    step, (T, num_directions * hidden), zero past the sequence's length for arrays,
    cut to it for bags and dataframes; or a callable f(output, h_n, lengths) that
    gets each batch's outputs exactly as model(x, lengths=lengths) returns them
    (torch's shapes; padded to the array's T for arrays) and returns one row per
    sequence (an array with a first dimension of the batch, or a list).

    batch_size: sequences per model call within a partition (sorted by length first).
    threads: fastrnn threads of each worker process (see the module's docstring).
    client: the distributed Client that gets the model (default: the current one, if
    any); without one, or with client=False, the model is a single key of the graph
    (what the synchronous and threaded schedulers, or a client made later, run).

    Every check that the inputs' metadata allow happens here, before anything runs;
    for bags and dataframes each sequence's shape is checked where it is read.
    """
    job = _job(model, output, batch_size, threads)
    if lengths is not None and not isinstance(data, da.Array):
        raise ValueError("lengths is only for padded dask arrays: the sequences of a bag or "
                         "a dataframe carry their own lengths")
    if isinstance(data, da.Array):
        data, lengths, n, steps = _check_array(job, data, lengths)
        job.row_shape, job.row_dtype = _probe(job, steps)
        ref = _ship(job, client)
        axes = "pqrstuvw"[:len(job.row_shape)]
        in_axes = "ijk"[:data.ndim]
        args = [data, in_axes] + ([lengths, "i"] if lengths is not None else [None, None])
        return da.blockwise(
            _array_block, "i" + axes, ref, None, *args,
            new_axes=dict(zip(axes, job.row_shape)), concatenate=True,
            dtype=job.row_dtype, meta=np.empty((0,) * (1 + len(axes)), job.row_dtype))
    if isinstance(data, db.Bag):
        if column is not None:
            raise ValueError("column is for dataframes; a bag holds the sequences themselves")
        return data.map_partitions(_score_bag_partition, _ship(job, client))
    frame_types = _frame_types()
    if frame_types and isinstance(data, frame_types):
        return _score_frame(job, data, column, output_column, client)
    if isinstance(data, (list, tuple)) or isinstance(data, np.ndarray):
        raise TypeError(
            f"data must be a Dask collection, got {type(data).__name__}: wrap padded arrays "
            "with dask.array.from_array(x, chunks=(rows, -1, -1)) (and pass lengths=), "
            "ragged sequences with dask.bag.from_sequence(seqs)")
    raise TypeError("data must be a dask.array (N, T, input_size), a dask.bag of "
                    f"sequences or a dask.dataframe, got {type(data).__module__}."
                    f"{type(data).__name__}")


def _array_block(job, x, lengths):
    return _score_padded(job, x, lengths)


def _frame_types():
    try:
        import dask.dataframe as dd
    except ImportError:
        return ()
    return (dd.DataFrame,)


def _score_frame(job, data, column, output_column, client):
    import pandas as pd

    columns = list(data.columns)
    if column is None:
        if len(columns) != 1:
            raise ValueError(f"column= must name the column of sequences; the dataframe has "
                             f"{columns}")
        column = columns[0]
    if column not in columns:
        raise ValueError(f"column {column!r} is not in the dataframe; its columns are "
                         f"{columns}")
    dtype = data.dtypes[column]
    if dtype != object and "list" not in str(dtype):  # noqa: E721 (a dtype, by value)
        hint = ("; dd.from_pandas turns lists into strings unless run under "
                "dask.config.set({'dataframe.convert-string': False}) or given an "
                "ArrowDtype list column" if "str" in str(dtype) else "")
        raise ValueError(f"column {column!r} must hold one sequence per row (a list column), "
                         f"got dtype {dtype}{hint}")
    if not isinstance(output_column, str) or not output_column:
        raise ValueError(f"output_column must be a non-empty str, got {output_column!r}")
    scalar = job.kind == "loglik"
    meta = pd.DataFrame({output_column: pd.Series([], dtype=np.float64 if scalar else object)},
                        index=data._meta.index)
    return data.map_partitions(_score_frame_partition, _ship(job, client), column,
                               output_column, scalar, meta=meta)
