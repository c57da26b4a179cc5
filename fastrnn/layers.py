"""LSTM, GRU and RNN with torch's constructor arguments, names and shapes.

A model is its parameters (`_Parameters`: configuration, torch's state-dict names,
initialisation, load / state_dict, pickling, and the packed Kernel made from them)
plus the call pipeline (`_pipeline`: validate -> order by length -> run -> restore)
and the streams it makes (`fastrnn.stream.Stream`). What differs between LSTM, GRU and
RNN is their family spec (`_kernels.families`), not code here.
"""
import math
import os
import threading
from collections import OrderedDict

import numpy as np

from fastrnn import _checks, _pipeline
from fastrnn._kernels import families
from fastrnn._kernels.packing import WEIGHT_DTYPES, pack, round_weights
from fastrnn._kernels.plan import Plan
from fastrnn.stream import Stream

__all__ = ["LSTM", "GRU", "RNN", "Stream"]

# Deeper stacks are not trained models; refusing them keeps a typo (num_layers=10**6)
# from spending minutes making millions of arrays.
MAX_LAYERS = 4096


def _memory_bytes():
    """This machine's physical memory, or None when the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class _Parameters:
    """Configuration and weights under torch's names; the packed kernel made from them."""

    family = None   # the FamilySpec (families.py)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float32",
                 nonlinearity="tanh", weight_dtype=None):
        spec = self.family
        self.input_size = _checks.check_positive_int(input_size, "input_size")
        self.hidden_size = _checks.check_positive_int(hidden_size, "hidden_size")
        self.num_layers = _checks.check_positive_int(num_layers, "num_layers")
        if self.num_layers > MAX_LAYERS:
            raise ValueError(f"num_layers must be at most {MAX_LAYERS}, got {num_layers}")
        self.proj_size = _checks.check_positive_int(proj_size, "proj_size", minimum=0)
        if self.proj_size and not spec.projects:
            raise ValueError(
                f"proj_size is only supported for LSTM, got proj_size={proj_size}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size ({hidden_size}), got {proj_size}")
        if nonlinearity not in spec.nonlinearities:
            allowed = " or ".join(repr(n) for n in spec.nonlinearities)
            raise ValueError(f"nonlinearity must be {allowed}, got {nonlinearity!r}")
        if (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
                or not 0 <= dropout <= 1):
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
        self._check_memory()
        self._plan = None
        self._pack_lock = threading.Lock()
        self._init_weights()

    # -- configuration -----------------------------------------------------------------

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def output_size(self):
        """Features of each output step: num_directions * (proj_size or hidden_size)."""
        return self.num_directions * (self.proj_size or self.hidden_size)

    def state_shapes(self, batch=None):
        """torch's (h shape, c shape or None) for `batch` sequences (None: unbatched)."""
        return self.family.state_shapes(self.num_layers * self.num_directions, batch,
                                        self.proj_size or self.hidden_size, self.hidden_size)

    def _expected_shapes(self):
        """torch's state-dict names -> shapes, in torch's order."""
        shapes = OrderedDict()
        rows = self.family.gates * self.hidden_size
        h_size = self.proj_size or self.hidden_size
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                in_size = self.input_size if layer == 0 else self.output_size
                shapes["weight_ih" + sfx] = (rows, in_size)
                shapes["weight_hh" + sfx] = (rows, h_size)
                if self.bias:
                    shapes["bias_ih" + sfx] = (rows,)
                    shapes["bias_hh" + sfx] = (rows,)
                if self.proj_size:
                    shapes["weight_hr" + sfx] = (self.proj_size, self.hidden_size)
        return shapes

    def _check_memory(self):
        """Refuse, before allocating anything, weights that cannot fit in this machine's
        memory (with their packed copies)."""
        rows = self.family.gates * self.hidden_size
        h_size = self.proj_size or self.hidden_size
        per_direction = rows * (h_size + 2 * self.bias) + self.proj_size * self.hidden_size
        inputs = self.input_size + (self.num_layers - 1) * self.output_size
        count = self.num_directions * (self.num_layers * per_direction + rows * inputs)
        need = 2 * count * self.dtype.itemsize   # the weights and their packed panels
        have = _memory_bytes()
        if have is not None and need > have:
            raise ValueError(
                f"{type(self).__name__}(input_size={self.input_size}, hidden_size="
                f"{self.hidden_size}, num_layers={self.num_layers}) needs {need / 2**30:.1f} "
                f"GiB for its weights, more than this machine's {have / 2**30:.1f} GiB")

    # -- weights -----------------------------------------------------------------------

    def _init_weights(self, seed=None):
        """torch's default initialisation: U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)),
        packed on first use: loading a checkpoint, which replaces them unseen, then
        packs once, not twice."""
        rng = np.random.default_rng(seed)
        k = 1.0 / math.sqrt(self.hidden_size)
        self._params = OrderedDict(
            (name, round_weights(
                (rng.random(size=shape, dtype=self.dtype) * (2 * k) - k).astype(self.dtype),
                self.weight_dtype))
            for name, shape in self._expected_shapes().items())
        self._kernel = None

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
                f"state_dict is missing {missing} for {self!r}; it holds {list(state_dict)}")
        if unexpected and strict:
            raise ValueError(
                f"state_dict has unexpected key(s) {unexpected} for {self!r}; "
                f"expected {list(expected)}")
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
            params[name] = round_weights(arr, self.weight_dtype).copy()
        self._params = params
        self._kernel = self._pack()
        return self

    def state_dict(self):
        """torch-named numpy arrays (copies)."""
        return OrderedDict((k, v.copy()) for k, v in self._params.items())

    # -- the packed kernel -------------------------------------------------------------

    @property
    def plan(self):
        """The dispatch Plan the kernel runs by: the one set here, or else the one made
        when the weights were packed (per-ISA defaults and FASTRNN_* variables, read at
        each packing). Setting a plan (None: the defaults again) repacks on next use."""
        return self.kernel.plan

    @plan.setter
    def plan(self, plan):
        if plan is not None and not isinstance(plan, Plan):
            raise TypeError(f"plan must be a fastrnn Plan or None, got {type(plan).__name__}")
        self._plan = plan
        self._kernel = None

    @property
    def kernel(self):
        """The packed Kernel, packing the weights first if they are not yet."""
        kernel = self._kernel
        if kernel is None:
            with self._pack_lock:   # two threads' first calls pack once
                kernel = self._kernel
                if kernel is None:
                    kernel = self._kernel = self._pack()
        return kernel

    def _pack(self):
        """One (w_ih, w_hh, b_ih, b_hh, w_hr) per (layer, direction) -> a Kernel."""
        p = self._params
        cells = []
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                cells.append((p["weight_ih" + sfx], p["weight_hh" + sfx],
                              p.get("bias_ih" + sfx), p.get("bias_hh" + sfx),
                              p.get("weight_hr" + sfx)))
        plan = self._plan if self._plan is not None else Plan.default()
        return pack(self.family, cells, self.num_directions, plan, self.weight_dtype,
                    relu=self.nonlinearity == "relu")

    # -- python protocol ---------------------------------------------------------------

    def _config(self):
        cfg = dict(input_size=self.input_size, hidden_size=self.hidden_size,
                   num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                   dropout=self.dropout, bidirectional=self.bidirectional,
                   dtype=self.dtype.name)
        if self.family.projects:
            cfg["proj_size"] = self.proj_size
        if len(self.family.nonlinearities) > 1:
            cfg["nonlinearity"] = self.nonlinearity
        if self.weight_dtype != self.dtype.name:
            cfg["weight_dtype"] = self.weight_dtype
        if self.family.reset_after is not None:
            cfg["reset_after"] = self.family.reset_after
        return cfg

    def __repr__(self):
        cfg = self._config()
        defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0,
                        bidirectional=False, proj_size=0, dtype="float32", nonlinearity="tanh",
                        reset_after=True)
        args = [str(cfg.pop("input_size")), str(cfg.pop("hidden_size"))]
        args += [f"{k}={v!r}" for k, v in cfg.items() if defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(args)})"

    def __getstate__(self):
        """The configuration and torch-named weights only: no packed copies, no
        workspaces, no plan (the unpickling machine makes its own)."""
        return {"config": self._config(), "params": self._params}

    def __setstate__(self, state):
        self.__init__(**state["config"])
        self.load_state_dict(state["params"])


class _RNNBase(_Parameters):
    """The call pipeline and streams over the parameters."""

    def __call__(self, x, hx=None, lengths=None):
        """output, h_n (GRU / RNN) or output, (h_n, c_n) (LSTM), exactly as torch.

        lengths: one length per sequence (torch's packed-sequence semantics): outputs
        past a sequence's end are 0 and its final state is the one at its last step.
        """
        x, batched = _pipeline.check_input(x, self.input_size, self.batch_first, self.dtype)
        return self._forward(x, batched, hx, lengths)

    forward = __call__

    def _forward(self, x, batched, hx, lengths):
        """x: validated, time-major (T, B, I)."""
        steps, batch = x.shape[0], x.shape[1]
        h_shape, c_shape = self.state_shapes(batch if batched else None)
        h, c = _pipeline.check_state(self.family, hx, h_shape, c_shape, self.dtype, batched)
        order = batch_sizes = None
        if lengths is not None:
            if not batched:
                raise ValueError("lengths needs batched input: x is unbatched (T, input_size)")
            lengths = _checks.check_lengths(lengths, batch, steps)
            order, batch_sizes, x, h, c = _pipeline.order_by_length(lengths, x, h, c)
        out = _pipeline.run(self.kernel, x, h, c, batch_sizes, self.output_size, order,
                            batched and self.batch_first)
        out, h, c = _pipeline.restore(out, h, c, order, batched)
        return out, ((h, c) if self.family.has_cell else h)

    def _check_streamable(self):
        if self.bidirectional:
            raise ValueError(
                f"{self!r} cannot run step by step: the reverse direction of a "
                "bidirectional layer starts from the end of the sequence; call the "
                "model on the whole sequence instead")

    def step(self, x_t, hx=None):
        """One time step: x_t (B, input_size) or (input_size,) -> (y_t, hx), with hx
        shaped as torch's states ((h, c) for an LSTM). Convenient, not the fastest
        path: for a hot loop use `stream()`, which allocates nothing per call."""
        self._check_streamable()
        x_t = _checks.as_float_array(x_t, "x_t", self.dtype)
        if x_t.ndim not in (1, 2) or x_t.shape[-1] != self.input_size:
            raise ValueError(
                f"x_t must be (batch, input_size={self.input_size}) or "
                f"(input_size={self.input_size},), got shape {x_t.shape}")
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
        return Stream(self, batch, hx)


class LSTM(_RNNBase):
    """Long short-term memory, torch.nn.LSTM's arguments and results, numpy in and out."""

    family = families.LSTM

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype="float32",
                 weight_dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype, weight_dtype=weight_dtype)


class GRU(_RNNBase):
    """Gated recurrent unit, torch.nn.GRU's arguments and results, numpy in and out.

    reset_after=True is torch's (and cuDNN's, Keras's default) form,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); reset_after=False the textbook GRU
    of Cho et al. (2014), n = tanh(W_in x + b_in + W_hn (r * h) + b_hn), which ONNX
    writes as linear_before_reset=0 (docs/gru-forms.md). The parameters have torch's
    names and shapes in both forms.
    """

    family = families.GRU

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype="float32", weight_dtype=None,
                 reset_after=True):
        self.family = families.gru_form(reset_after)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, weight_dtype=weight_dtype)

    @property
    def reset_after(self):
        """True: torch's GRU; False: the textbook GRU."""
        return self.family.reset_after


class RNN(_RNNBase):
    """Elman RNN with tanh or relu, torch.nn.RNN's arguments and results."""

    family = families.RNN

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype="float32",
                 weight_dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, nonlinearity, weight_dtype)


MODELS = {cls.family.name: cls for cls in (LSTM, GRU, RNN)}
