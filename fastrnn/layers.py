"""LSTM, GRU and RNN layers with torch's constructor arguments, names and shapes.

A model holds its weights under torch's state-dict names, packs them once into a
kernel (`_kernels._stack.Kernel`), and on each call validates the input, lays out
states and a workspace, and hands everything to the nogil driver.
"""
import math
import os
import threading
from collections import OrderedDict

import numpy as np

from fastrnn import _checks
from fastrnn._kernels import _stack
from fastrnn._kernels._stack import Family, Kernel

__all__ = ["LSTM", "GRU", "RNN", "Stream"]

# Elements of the gate buffer the input projection fills at once. A chunk of steps
# this size keeps the GEMM large (>= several hundred rows for small batches) while
# the buffer stays in L2/L3 between the GEMM and the scan, and bounds memory for
# long sequences.
GATE_CHUNK_ELEMENTS = 1 << 19

# How many call shapes keep a cached workspace; beyond that the oldest is dropped.
WORKSPACE_SHAPES = 8

# float32 models run batch-1 steps through the fused kernel over packed weights
# (cell_math_impl.h); FASTRNN_KERNEL=blas keeps them on BLAS gemv + cell update, for
# comparison. Read when a model's weights are packed.
FUSED_KERNEL = os.environ.get("FASTRNN_KERNEL", "fused") != "blas"


def _panels(w, gates, hidden, units=_stack.PANEL_UNITS):
    """(gates*hidden, K) torch-ordered rows -> (panels, K, gates, units), zero-padded:
    the layout the fused kernel streams (one panel's rows for every k together)."""
    k = w.shape[1]
    npan = -(-hidden // units)
    padded = np.zeros((gates, npan * units, k), w.dtype)
    padded[:, :hidden] = w.reshape(gates, hidden, k)
    return np.ascontiguousarray(padded.reshape(gates, npan, units, k).transpose(1, 3, 0, 2))


WEIGHT_DTYPES = ("float32", "float16", "bfloat16")


def _round_weights(w, weight_dtype):
    """float32 weights rounded to the storage type (round to nearest even), as float32."""
    if weight_dtype == "float16":
        return w.astype(np.float16).astype(np.float32)
    if weight_dtype == "bfloat16":
        bits = w.astype(np.float32).view(np.uint32)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.view(np.float32)
    return w


def _store(w, weight_dtype):
    """Packed float32 panels (panels, K, gates, units) in their storage type: float16,
    or bfloat16 bits (already rounded by _round_weights, so the low half is zero) with
    k in pairs, (panels, K/2, gates, units, 2), K padded to even: the kernel widens a
    pair's two 16-bit halves with a shift and a mask (cell_math_impl.h)."""
    if weight_dtype == "float16":
        return w.astype(np.float16)
    if weight_dtype == "bfloat16":
        npan, k, gates, units = w.shape
        bits = np.zeros((npan, k + k % 2, gates, units), np.uint16)
        bits[:, :k] = w.view(np.uint32) >> 16
        pairs = bits.reshape(npan, (k + k % 2) // 2, 2, gates, units)
        return np.ascontiguousarray(pairs.transpose(0, 1, 3, 4, 2))
    return w


def _empty_aligned(shape, dtype, align=64):
    """np.empty whose data starts on an `align`-byte boundary: the kernels load whole
    cache lines, and a vector load that straddles two lines costs two (numpy's own
    buffers are only 16-byte aligned)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.empty(nbytes + align, np.uint8)
    start = -buf.ctypes.data % align
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def _aligned(a):
    """A C-contiguous, cache-line-aligned copy of `a` (packed weights)."""
    out = _empty_aligned(a.shape, a.dtype)
    out[...] = a
    return out


def _bias_panels(b, gates, hidden, units=_stack.PANEL_UNITS):
    """(gates*hidden,) -> (panels, gates, units), zero-padded."""
    return np.ascontiguousarray(_panels(b[:, None], gates, hidden, units)[:, 0])


class _Workspace:
    """Buffers for one call shape: gate rows for a chunk of steps, the cell scratch,
    and the inter-layer outputs."""

    __slots__ = ("gates", "chunk", "scratch", "state_t", "buf_a", "buf_b")

    def __init__(self, model, steps, batch):
        dtype = model.dtype
        # hidden padded to whole panels: the fused path's projection is in panel order
        units = _stack.PANEL_UNITS
        gate_rows = model._gates * (-(-model.hidden_size // units) * units)
        self.chunk = max(1, min(steps, GATE_CHUNK_ELEMENTS // max(1, batch * gate_rows)))
        # a bidirectional layer's two directions may run side by side on two cores,
        # each on its own set of these (_stack.run_stack)
        d = model._num_directions
        self.gates = _empty_aligned((d, self.chunk, batch, gate_rows), dtype)
        self.scratch = _empty_aligned((d, batch, gate_rows), dtype)
        # h and c transposed for the feature-major layout; the fused kernel's second h
        self.state_t = _empty_aligned(d * batch * (model._h_size + model.hidden_size), dtype)
        width = model._num_directions * model._h_size
        layers = model.num_layers
        self.buf_a = np.empty((steps, batch, width), dtype) if layers > 1 else None
        self.buf_b = np.empty((steps, batch, width), dtype) if layers > 2 else None


class _RNNBase:
    _mode = None    # "LSTM", "GRU", "RNN"
    _gates = None   # gate rows per hidden unit

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float32",
                 nonlinearity="tanh", weight_dtype=None):
        self.input_size = _checks.check_positive_int(input_size, "input_size")
        self.hidden_size = _checks.check_positive_int(hidden_size, "hidden_size")
        self.num_layers = _checks.check_positive_int(num_layers, "num_layers")
        self.proj_size = _checks.check_positive_int(proj_size, "proj_size", minimum=0)
        if self.proj_size and self._mode != "LSTM":
            raise ValueError(f"proj_size is only supported for LSTM, got proj_size={proj_size}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size ({hidden_size}), got {proj_size}"
            )
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)  # training only: kept for the repr and torch parity
        self.nonlinearity = nonlinearity
        self.dtype = _checks.check_dtype(dtype)
        self.weight_dtype = self.dtype.name if weight_dtype is None else str(weight_dtype)
        if self.weight_dtype not in WEIGHT_DTYPES[1:] + (self.dtype.name,):
            raise ValueError(
                f"weight_dtype must be None (the model's dtype) or, for float32 models, "
                f"'float16' or 'bfloat16'; got {weight_dtype!r} with dtype={self.dtype.name}")
        if self.weight_dtype != self.dtype.name and self.dtype != np.float32:
            raise ValueError(f"weight_dtype={weight_dtype!r} needs dtype='float32'")
        self._lock = threading.Lock()
        self._workspaces = OrderedDict()
        self._init_weights()

    # -- configuration -----------------------------------------------------------------

    @property
    def _num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def _h_size(self):
        """Width of h: proj_size when an LSTM projects, else hidden_size."""
        return self.proj_size or self.hidden_size

    def _expected_shapes(self):
        """torch's state-dict names -> shapes, in torch's order."""
        shapes = OrderedDict()
        rows = self._gates * self.hidden_size
        for layer in range(self.num_layers):
            for direction in range(self._num_directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                in_size = self.input_size if layer == 0 else self._num_directions * self._h_size
                shapes["weight_ih" + sfx] = (rows, in_size)
                shapes["weight_hh" + sfx] = (rows, self._h_size)
                if self.bias:
                    shapes["bias_ih" + sfx] = (rows,)
                    shapes["bias_hh" + sfx] = (rows,)
                if self.proj_size:
                    shapes["weight_hr" + sfx] = (self.proj_size, self.hidden_size)
        return shapes

    # -- weights -----------------------------------------------------------------------

    def _init_weights(self, seed=None):
        """torch's default initialisation: U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)),
        packed on first use (_ready_kernel): loading a checkpoint, which replaces them
        unseen, then packs once, not twice."""
        rng = np.random.default_rng(seed)
        k = 1.0 / math.sqrt(self.hidden_size)
        self._params = OrderedDict(
            (name, _round_weights(
                (rng.random(size=shape, dtype=self.dtype) * (2 * k) - k).astype(self.dtype),
                self.weight_dtype))
            for name, shape in self._expected_shapes().items()
        )
        self._kernel = None

    def _ready_kernel(self):
        """The packed kernel, packing the weights first if they are not yet."""
        kernel = self._kernel
        if kernel is None:   # two threads may both pack here: the same weights, either wins
            self._pack()
            kernel = self._kernel
        return kernel

    def load_state_dict(self, state_dict, strict=True):
        """Load torch-named weights (numpy arrays or torch tensors).

        Missing or unexpected keys, shapes that do not fit, non-float or non-finite
        values raise before anything is changed. strict=False ignores unexpected keys
        (as torch does) but never missing ones: a half-loaded model would be garbage.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        expected = self._expected_shapes()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        if missing:
            raise ValueError(
                f"state_dict is missing {missing} for {self!r}; it holds {list(state_dict)}"
            )
        if unexpected and strict:
            raise ValueError(
                f"state_dict has unexpected key(s) {unexpected} for {self!r}; "
                f"expected {list(expected)}"
            )
        params = OrderedDict()
        for name, shape in expected.items():
            arr = _checks.as_float_array(state_dict[name], f"state_dict[{name!r}]", self.dtype)
            _checks.check_shape(arr, shape, f"state_dict[{name!r}]")
            _checks.check_finite(arr, f"state_dict[{name!r}]")
            if self.weight_dtype == "float16" and np.abs(arr).max(initial=0) > 65504:
                raise ValueError(
                    f"state_dict[{name!r}] has values beyond float16's range (65504); "
                    "use weight_dtype='bfloat16' or 'float32'")
            # our own copy (the caller's array may change later), rounded to the storage
            # type so that every kernel path computes with the same weights
            params[name] = _round_weights(arr, self.weight_dtype).copy()
        self._params = params
        self._pack()
        return self

    def state_dict(self):
        """torch-named numpy arrays (copies)."""
        return OrderedDict((k, v.copy()) for k, v in self._params.items())

    def _pack(self):
        """Pack the weights once into the kernel's records: biases folded where the
        equations allow (never the GRU's b_hn), arrays read-only from here on."""
        rows = self._gates * self.hidden_size
        H = self.hidden_size
        records = []
        for layer in range(self.num_layers):
            for direction in range(self._num_directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                p = self._params
                if self.bias:
                    b_ih, b_hh = p["bias_ih" + sfx], p["bias_hh" + sfx]
                else:
                    b_ih = b_hh = np.zeros(rows, self.dtype)
                bias = b_ih + b_hh
                b_hn = None
                if self._mode == "GRU":
                    bias[2 * H:] = b_ih[2 * H:]
                    b_hn = np.ascontiguousarray(b_hh[2 * H:])
                rec = {
                    "w_ih": p["weight_ih" + sfx],
                    "w_hh": p["weight_hh" + sfx],
                    "bias": bias,
                    "b_hn": b_hn,
                    "w_hr": p.get("weight_hr" + sfx),
                }
                if FUSED_KERNEL and self.dtype == np.float32:
                    wd = self.weight_dtype
                    rec["panel_dtype"] = wd
                    rec["w_hh_panels"] = _aligned(
                        _store(_panels(rec["w_hh"], self._gates, H), wd))
                    # streamed steps and large fused batches read W_ih x from these
                    rec["w_ih_panels"] = _aligned(
                        _store(_panels(rec["w_ih"], self._gates, H), wd))
                    rec["bias_panels"] = _aligned(_bias_panels(bias, self._gates, H))
                    if b_hn is not None:
                        rec["b_hn_panels"] = _aligned(_bias_panels(b_hn, 1, H))
                records.append(rec)
        for rec in records:
            for arr in rec.values():
                if isinstance(arr, np.ndarray):
                    arr.flags.writeable = False
        family = {"LSTM": Family.LSTM, "GRU": Family.GRU, "RNN": Family.RNN}[self._mode]
        self._kernel = Kernel(family, records, self.dtype == np.float64,
                              self._num_directions, self.nonlinearity == "relu")
        with self._lock:
            self._workspaces.clear()

    # -- workspaces --------------------------------------------------------------------

    def _take_workspace(self, steps, batch):
        """A free workspace for this shape, or a new one. Each call owns the one it
        takes until it gives it back, so concurrent calls never share buffers."""
        with self._lock:
            free = self._workspaces.get((steps, batch))
            if free:
                return free.pop()
        return _Workspace(self, steps, batch)

    def _give_workspace(self, steps, batch, ws):
        """Back to the free list of its shape; the least recently given shape goes
        when more than WORKSPACE_SHAPES are kept."""
        key = (steps, batch)
        with self._lock:
            free = self._workspaces.get(key)
            if free is None:
                free = self._workspaces[key] = []
                if len(self._workspaces) > WORKSPACE_SHAPES:
                    self._workspaces.popitem(last=False)
            else:
                self._workspaces.move_to_end(key)
            free.append(ws)

    # -- forward -----------------------------------------------------------------------

    def _state_shapes(self, batch, batched):
        """(h shape, c shape or None) as torch expects them."""
        lead = self.num_layers * self._num_directions
        h = (lead, batch, self._h_size) if batched else (lead, self._h_size)
        c = (lead, batch, self.hidden_size) if batched else (lead, self.hidden_size)
        return h, (c if self._mode == "LSTM" else None)

    def _check_input(self, x):
        """x -> (time-major contiguous (T, B, I) array, batched?)."""
        x = _checks.as_float_array(x, "x", self.dtype)
        if x.ndim == 2:
            batched = False
            x = x[:, None, :]
        elif x.ndim == 3:
            batched = True
            if self.batch_first:
                x = np.ascontiguousarray(x.transpose(1, 0, 2))
        else:
            layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            raise ValueError(
                f"x must be 2-D (T, input_size) or 3-D {layout}, got shape {x.shape}"
            )
        if x.shape[2] != self.input_size:
            raise ValueError(
                f"x has the wrong feature size: expected input_size={self.input_size} "
                f"in the last dimension, got shape {x.shape if batched else x[:, 0].shape}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"x must hold at least one time step, got shape {x.shape}")
        return x, batched

    def _check_state(self, hx, batch, batched):
        """hx -> (h0, c0 or None) as fresh (L*D, B, .) arrays the kernel may overwrite."""
        if hx is None:   # zeros, made in the kernel's (L*D, B, .) shapes directly
            h_shape, c_shape = self._state_shapes(batch, True)
            return (np.zeros(h_shape, self.dtype),
                    np.zeros(c_shape, self.dtype) if c_shape else None)
        h_shape, c_shape = self._state_shapes(batch, batched)
        if self._mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(
                    f"hx for an LSTM must be a tuple (h_0, c_0), got {type(hx).__name__}"
                )
            h0 = _checks.as_float_array(hx[0], "hx[0] (h_0)", self.dtype)
            c0 = _checks.as_float_array(hx[1], "hx[1] (c_0)", self.dtype)
            _checks.check_shape(h0, h_shape, "hx[0] (h_0)")
            _checks.check_shape(c0, c_shape, "hx[1] (c_0)")
            h0, c0 = h0.copy(), c0.copy()
        else:
            if isinstance(hx, (tuple, list)) and not np.isscalar(hx[0]):
                raise TypeError(
                    f"hx for a {self._mode} must be one array h_0, got a {type(hx).__name__}"
                )
            h0 = _checks.as_float_array(hx, "hx (h_0)", self.dtype)
            _checks.check_shape(h0, h_shape, "hx (h_0)")
            h0, c0 = h0.copy(), None
        if not batched:
            h0 = h0[:, None, :]
            c0 = c0[:, None, :] if c0 is not None else None
        return np.ascontiguousarray(h0), (np.ascontiguousarray(c0) if c0 is not None else None)

    def __call__(self, x, hx=None, lengths=None):
        """output, h_n (GRU / RNN) or output, (h_n, c_n) (LSTM), exactly as torch.

        lengths: one length per sequence (torch's packed-sequence semantics): outputs
        past a sequence's end are 0 and its final state is the one at its last step.
        """
        x, batched = self._check_input(x)
        return self._forward(x, batched, hx, lengths)

    def _forward(self, x, batched, hx, lengths):
        """x: validated, time-major (T, B, I)."""
        steps, batch = x.shape[0], x.shape[1]
        h_n, c_n = self._check_state(hx, batch, batched)
        order = batch_sizes = None
        if lengths is not None:
            if not batched:
                raise ValueError("lengths needs batched input: x is unbatched (T, input_size)")
            lengths = _checks.check_lengths(lengths, batch, steps)
            order = np.argsort(-lengths, kind="stable")
            batch_sizes = np.count_nonzero(
                lengths[None, :] > np.arange(steps)[:, None], axis=1
            ).astype(np.intc)
            if np.all(order == np.arange(batch)):
                order = None
            else:
                x = np.ascontiguousarray(x[:, order])
                h_n = np.ascontiguousarray(h_n[:, order])
                c_n = np.ascontiguousarray(c_n[:, order]) if c_n is not None else None
        width = self._num_directions * self._h_size
        out = (np.zeros if lengths is not None else np.empty)((steps, batch, width), self.dtype)
        groups = self._batch_groups(batch)
        if groups is None:
            self._run(x, out, h_n, c_n, batch_sizes)
        else:
            for g0, g1 in groups:
                part = slice(g0, g1)
                h_g = np.ascontiguousarray(h_n[:, part])
                c_g = np.ascontiguousarray(c_n[:, part]) if c_n is not None else None
                out_g = (np.zeros if lengths is not None else np.empty)(
                    (steps, g1 - g0, width), self.dtype)
                sizes_g = (None if batch_sizes is None
                           else np.clip(batch_sizes - g0, 0, g1 - g0).astype(np.intc))
                self._run(np.ascontiguousarray(x[:, part]), out_g, h_g, c_g, sizes_g)
                out[:, part] = out_g
                h_n[:, part] = h_g
                if c_n is not None:
                    c_n[:, part] = c_g
        return self._pack_result(out, h_n, c_n, order, batched)

    def _run(self, x, out, h_n, c_n, batch_sizes):
        """The kernel over validated, contiguous arrays, in a workspace of this shape."""
        steps, batch = x.shape[0], x.shape[1]
        if batch:
            kernel = self._ready_kernel()
            ws = self._take_workspace(steps, batch)
            try:
                kernel.forward(x, out, h_n, c_n, batch_sizes, ws.gates, ws.chunk,
                               ws.scratch, ws.state_t, ws.buf_a, ws.buf_b)
            finally:
                self._give_workspace(steps, batch, ws)

    def _batch_groups(self, batch):
        """Near-equal slices of a batch larger than one fused call takes, or None.

        Where the fused kernel is the default up to its limit (AVX-512), it beats BLAS
        there, and a larger batch runs faster as groups of at most that many sequences
        than through BLAS whole: 1.1-1.3x at batch 65-256, hidden 32-1024, copies
        included. Elsewhere (AVX2's measured limit is lower) BLAS takes the batch.
        """
        limit = _stack.get_fused_max_batch()
        if (batch <= limit or limit < _stack.FUSED_BATCH_LIMIT
                or not FUSED_KERNEL or self.dtype != np.float32):
            return None
        count = -(-batch // limit)
        edges = [batch * i // count for i in range(count + 1)]
        return list(zip(edges[:-1], edges[1:]))

    # -- streaming ---------------------------------------------------------------------

    def _check_streamable(self):
        if self.bidirectional:
            raise ValueError(
                f"{self!r} cannot run step by step: the reverse direction of a "
                "bidirectional layer starts from the end of the sequence; call the "
                "model on the whole sequence instead"
            )

    def step(self, x_t, hx=None):
        """One time step: x_t (B, input_size) or (input_size,) -> (y_t, hx), with hx
        shaped as torch's states ((h, c) for an LSTM). Convenient, not the fastest
        path: for a hot loop use `stream()`, which allocates nothing per call."""
        self._check_streamable()
        x_t = _checks.as_float_array(x_t, "x_t", self.dtype)
        if x_t.ndim not in (1, 2) or x_t.shape[-1] != self.input_size:
            raise ValueError(
                f"x_t must be (batch, input_size={self.input_size}) or "
                f"(input_size={self.input_size},), got shape {x_t.shape}"
            )
        batched = x_t.ndim == 2
        x = x_t[None] if batched else x_t[None, None]
        out, state = self._forward(x, batched, hx, None)
        return out[0], state

    def stream(self, batch=1, hx=None):
        """A `Stream` of `batch` sequences fed one step at a time: state and buffers
        allocated once, nothing allocated per `step(x_t, out=...)` call. hx: the
        initial state, shaped as torch's (default zeros)."""
        self._check_streamable()
        batch = _checks.check_positive_int(batch, "batch")
        groups = self._batch_groups(batch)   # stepped as groups, as sequences run
        stream = Stream(self._ready_kernel(), batch, self.input_size, self.hidden_size,
                        self._h_size, self.dtype, self._mode == "LSTM",
                        _Workspace(self, 1, batch) if groups is None else None,
                        None if groups is None else [
                            (first, end, _Workspace(self, 1, end - first))
                            for first, end in groups])
        stream._model = self
        if hx is not None:
            stream.state = hx
        return stream

    forward = __call__

    def _pack_result(self, out, h_n, c_n, order, batched):
        if order is not None:
            inverse = np.argsort(order)
            out = out[:, inverse]
            h_n = h_n[:, inverse]
            c_n = c_n[:, inverse] if c_n is not None else None
        if not batched:
            out, h_n = out[:, 0], h_n[:, 0]
            c_n = c_n[:, 0] if c_n is not None else None
        elif self.batch_first:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        hidden = (h_n, c_n) if self._mode == "LSTM" else h_n
        return out, hidden

    # -- python protocol ---------------------------------------------------------------

    def _config(self):
        cfg = dict(input_size=self.input_size, hidden_size=self.hidden_size,
                   num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                   dropout=self.dropout, bidirectional=self.bidirectional,
                   dtype=self.dtype.name)
        if self._mode == "LSTM":
            cfg["proj_size"] = self.proj_size
        if self._mode == "RNN":
            cfg["nonlinearity"] = self.nonlinearity
        if self.weight_dtype != self.dtype.name:
            cfg["weight_dtype"] = self.weight_dtype
        return cfg

    def __repr__(self):
        cfg = self._config()
        defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0,
                        bidirectional=False, proj_size=0, dtype="float32", nonlinearity="tanh")
        args = [str(cfg.pop("input_size")), str(cfg.pop("hidden_size"))]
        args += [f"{k}={v!r}" for k, v in cfg.items() if defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(args)})"

    def __getstate__(self):
        return {"config": self._config(), "params": self._params}

    def __setstate__(self, state):
        self.__init__(**state["config"])
        self.load_state_dict(state["params"])


class Stream(_stack.Stream):
    """Step-by-step inference for one or more sequences (see `model.stream()`).

        s = model.stream(batch=1)
        for x_t in frames:
            y_t = s.step(x_t)            # or s.step(x_t, out=y) to allocate nothing
        s.state                          # h (GRU, RNN) or (h, c) (LSTM), torch's shapes
        s.reset()                        # zeros again

    The weights are the model's at the time stream() was called. One Stream belongs
    to one thread at a time; streams of the same model may run in parallel threads.
    """

    def run(self, xs, out=None):
        """Advance every stream by len(xs) time steps in one call: a chunk of frames.

        xs: (T, batch, input_size), or (T, input_size) for a stream of batch 1. Returns
        the last layer's outputs, (T, batch, output_size) or (T, output_size); with `out`
        (a C-contiguous array of that shape and the model's dtype) they are written
        there. The same results as T calls of step(), faster per step at larger hidden
        sizes: the chunk's input projection is one product, as for a whole sequence.
        """
        xs = _checks.as_float_array(xs, "xs", self.dtype)
        B, I, P = self.batch, self.input_size, self.output_size
        flat = xs.ndim == 2 and B == 1
        want = "(T, input_size)" if B == 1 else f"(T, batch={B}, input_size)"
        if not (flat or xs.ndim == 3) or xs.shape[-1] != I or (
                xs.ndim == 3 and xs.shape[1] != B) or xs.shape[0] == 0:
            raise ValueError(f"xs must be {want} with input_size={I} and T >= 1, "
                             f"got shape {xs.shape}")
        steps = xs.shape[0]
        shape = (steps, P) if flat else (steps, B, P)
        if out is None:
            out = np.empty(shape, self.dtype)
        elif (not isinstance(out, np.ndarray) or out.dtype != self.dtype
              or out.shape != shape or not out.flags.c_contiguous):
            raise ValueError(
                f"out must be a C-contiguous {self.dtype.name} array of shape {shape}, got "
                f"{getattr(out, 'dtype', '')} {getattr(out, 'shape', type(out).__name__)}")
        x3, o3 = xs.reshape(steps, B, I), out.reshape(steps, B, P)
        groups = self._states()
        for group, (first, end, _, _) in enumerate(groups):
            x_g, o_g = x3, o3
            if len(groups) > 1:   # a group's rows, contiguous
                x_g = np.ascontiguousarray(x3[:, first:end])
                o_g = np.empty((steps, end - first, P), self.dtype)
            ws = self._model._take_workspace(steps, end - first)
            try:
                self._advance(steps, x_g, o_g, ws, group)
            finally:
                self._model._give_workspace(steps, end - first, ws)
            if o_g is not o3:
                o3[:, first:end] = o_g
        self._advanced(steps)
        return out

    @property
    def state(self):
        """A copy of the state: h (num_layers, batch, H), and c for an LSTM."""
        h, c = self._get_state()
        return (h.copy(), c.copy()) if self.has_c else h.copy()

    @state.setter
    def state(self, hx):
        h, c = self._model._check_state(hx, self.batch, True)
        self._set_state(h, c)

    def __repr__(self):
        return f"Stream({self._model!r}, batch={self.batch})"


class LSTM(_RNNBase):
    """Long short-term memory, torch.nn.LSTM's arguments and results, numpy in and out."""

    _mode = "LSTM"
    _gates = 4

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float32",
                 weight_dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype, weight_dtype=weight_dtype)


class GRU(_RNNBase):
    """Gated recurrent unit, torch.nn.GRU's arguments and results, numpy in and out."""

    _mode = "GRU"
    _gates = 3

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype="float32", weight_dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, weight_dtype=weight_dtype)


class RNN(_RNNBase):
    """Elman RNN with tanh or relu, torch.nn.RNN's arguments and results."""

    _mode = "RNN"
    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype="float32",
                 weight_dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, nonlinearity, weight_dtype)
