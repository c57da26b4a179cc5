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
    """Configuration and weights under torch's names; the packed kernel made from them.

    The methods and properties here are shared by `LSTM`, `GRU` and `RNN`.
    """

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
        self._zero_shapes = {}   # batch -> state_shapes(batch), for calls without hx
        self._pack_lock = threading.Lock()
        self._init_weights()

    # -- configuration -----------------------------------------------------------------

    @property
    def num_directions(self):
        """2 for a bidirectional model, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self):
        """Features of each output step: ``num_directions * (proj_size or hidden_size)``."""
        return self.num_directions * (self.proj_size or self.hidden_size)

    def state_shapes(self, batch=None):
        """The shapes of the state torch's module takes and returns.

        Parameters
        ----------
        batch : int or None, optional
            Sequences in the batch; None for unbatched input.

        Returns
        -------
        h_shape : tuple of int
            ``(num_layers * num_directions, batch, proj_size or hidden_size)``, without
            the batch axis for ``batch=None``.
        c_shape : tuple of int or None
            The cell state's shape for an LSTM (its last axis is ``hidden_size``), None
            for GRU and RNN.

        Examples
        --------
        >>> fastrnn.LSTM(3, 8, num_layers=2).state_shapes(4)
        ((2, 4, 8), (2, 4, 8))
        """
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
        count = sum(math.prod(shape) for shape in self._expected_shapes().values())
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

        Parameters
        ----------
        state_dict : mapping
            torch's names (``weight_ih_l0``, ``weight_hh_l0_reverse``, ...) to arrays
            or tensors, e.g. ``torch_module.state_dict()``. The values are copied.
        strict : bool, optional
            False ignores unexpected keys (as torch does) but never missing ones: a
            half-loaded model would compute garbage.

        Returns
        -------
        self
            The model, so that loading can be chained.

        Raises
        ------
        TypeError
            `state_dict` is not a mapping.
        ValueError
            A key is missing or (with `strict`) unexpected, or a value has the wrong
            shape, is not a float array, holds NaN or infinity, or is beyond float16's
            range for ``weight_dtype="float16"``. Nothing is changed then.

        Examples
        --------
        >>> m = fastrnn.LSTM(3, 4)
        >>> m2 = fastrnn.LSTM(3, 4).load_state_dict(m.state_dict())
        >>> sorted(m2.state_dict())
        ['bias_hh_l0', 'bias_ih_l0', 'weight_hh_l0', 'weight_ih_l0']
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
        """The weights under torch's names.

        Returns
        -------
        collections.OrderedDict of str to numpy.ndarray
            Copies, in torch's order; with ``weight_dtype`` float16 or bfloat16 the
            values are those the model computes with (rounded to the storage type).
        """
        return OrderedDict((k, v.copy()) for k, v in self._params.items())

    # -- the packed kernel -------------------------------------------------------------

    @property
    def plan(self):
        """The dispatch `Plan` the kernel runs by.

        The one set here, or else the one made when the weights were packed (per-ISA
        defaults, the tuned profile and ``FASTRNN_*`` variables, read at each packing).
        Setting a plan (None: the defaults again) repacks on next use; anything else
        raises TypeError.
        """
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
        state = {"config": self._config(), "params": self._params}
        if getattr(self, "default_state", None) is not None:
            state["default_state"] = self.default_state
        return state

    def __setstate__(self, state):
        self.__init__(**state["config"])
        self.load_state_dict(state["params"])
        if state.get("default_state") is not None:
            self.default_state = state["default_state"]


class _RNNBase(_Parameters):
    """The call pipeline and streams over the parameters (shared by LSTM, GRU, RNN)."""

    #: The initial state a call, `step` or `stream` starts from when given no `hx`:
    #: None for zeros, or torch-shaped arrays (``h_0``, or ``(h_0, c_0)`` for an LSTM)
    #: of one batch size, e.g. the constant ``initial_h`` / ``initial_c`` of an ONNX
    #: graph (`fastrnn.load` sets it, as ONNX Runtime runs that graph). A call of
    #: another batch size must pass its own `hx`.
    default_state = None

    def _initial_state(self, hx, batch):
        """hx, or the default state for `batch` sequences (None: unbatched)."""
        if hx is not None or self.default_state is None:
            return hx
        state = self.default_state
        h0 = state[0] if self.family.has_cell else state
        have = np.shape(h0)[1] if np.ndim(h0) == 3 else None
        if batch is None and have == 1:   # unbatched: the default's one sequence
            return (tuple(np.asarray(s)[:, 0] for s in state) if self.family.has_cell
                    else np.asarray(state)[:, 0])
        if have != batch:
            raise ValueError(
                f"default_state is for a batch of {have} sequences (torch-shaped "
                f"{np.shape(h0)}), the input has "
                f"{'one unbatched sequence' if batch is None else f'{batch}'}: pass hx= "
                "for this batch, or set default_state = None for zeros")
        return state

    def __call__(self, x, hx=None, lengths=None):
        """Run the model over whole sequences, as torch's ``module(x, hx)``.

        Parameters
        ----------
        x : array_like
            ``(T, batch, input_size)``, ``(batch, T, input_size)`` with `batch_first`,
            or unbatched ``(T, input_size)``. Converted to the model's dtype.
        hx : array_like or tuple of array_like, optional
            The initial state in torch's shapes (see `state_shapes`): ``h_0`` for GRU
            and RNN, ``(h_0, c_0)`` for an LSTM. Default `default_state` (zeros unless
            set).
        lengths : sequence of int, optional
            One length per sequence, in any order (torch's packed-sequence semantics):
            outputs past a sequence's end are 0, its final state is the one at its last
            step, and the reverse direction starts at that step.

        Returns
        -------
        output : numpy.ndarray
            The last layer's outputs, ``(T, batch, output_size)`` (batch first with
            `batch_first`; ``(T, output_size)`` unbatched).
        h_n : numpy.ndarray or tuple of numpy.ndarray
            The final state: ``h_n`` for GRU and RNN, ``(h_n, c_n)`` for an LSTM.

        Raises
        ------
        ValueError
            Shapes that do not fit, non-finite input, lengths out of range; the message
            names the argument, the expected and the given shape.
        TypeError
            Inputs that are not numeric arrays.

        Examples
        --------
        >>> m = fastrnn.GRU(input_size=3, hidden_size=5)
        >>> x = np.zeros((7, 2, 3), np.float32)
        >>> out, h_n = m(x, lengths=[7, 4])
        >>> out.shape, h_n.shape
        ((7, 2, 5), (1, 2, 5))
        >>> float(abs(out[4:, 1]).max())      # zeros past the second sequence's end
        0.0
        """
        x, batched = _pipeline.check_input(x, self.input_size, self.batch_first, self.dtype)
        return self._forward(x, batched, hx, lengths)

    forward = __call__

    def _zero_state(self, batch):
        """Fresh zero states (L*D, batch, .) for the kernel (the shapes kept per batch
        size: a call's fixed cost counts for one-step calls)."""
        shapes = self._zero_shapes.get(batch)
        if shapes is None:
            shapes = self._zero_shapes[batch] = self.state_shapes(batch)
        return (np.zeros(shapes[0], self.dtype),
                np.zeros(shapes[1], self.dtype) if shapes[1] is not None else None)

    def _forward(self, x, batched, hx, lengths):
        """x: validated, time-major (T, B, I)."""
        steps, batch = x.shape[0], x.shape[1]
        if hx is None and self.default_state is None:
            h, c = self._zero_state(batch)   # batch 1 for unbatched x, as the kernel takes
        else:
            h_shape, c_shape = self.state_shapes(batch if batched else None)
            hx = self._initial_state(hx, batch if batched else None)
            h, c = _pipeline.check_state(self.family, hx, h_shape, c_shape, self.dtype,
                                         batched)
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
        """Advance one time step (unidirectional models).

        Convenient, not the fastest path: for a hot loop use `stream`, which
        allocates nothing per call.

        Parameters
        ----------
        x_t : array_like
            ``(batch, input_size)`` or ``(input_size,)``.
        hx : array_like or tuple of array_like, optional
            The state before the step, in torch's shapes; default `default_state`
            (zeros unless set).

        Returns
        -------
        y_t : numpy.ndarray
            The last layer's output, ``(batch, output_size)`` or ``(output_size,)``.
        hx : numpy.ndarray or tuple of numpy.ndarray
            The state after the step, to pass to the next call.

        Raises
        ------
        ValueError
            A bidirectional model, or `x_t` / `hx` of the wrong shape.

        Examples
        --------
        >>> m = fastrnn.LSTM(3, 4)
        >>> y, hx = m.step(np.ones(3, np.float32))
        >>> y, hx = m.step(np.ones(3, np.float32), hx)
        >>> y.shape, hx[0].shape
        ((4,), (1, 4))
        """
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
        """A `Stream` of `batch` sequences fed one step at a time.

        State and buffers are allocated once; ``stream.step(x_t, out=y)`` allocates
        nothing. The stream runs the weights the model has when it is made.

        Parameters
        ----------
        batch : int, optional
            Sequences advanced together.
        hx : array_like or tuple of array_like, optional
            The initial state, in torch's shapes (default `default_state`, zeros unless
            set).

        Returns
        -------
        Stream

        Raises
        ------
        ValueError
            A bidirectional model, a batch below 1, or `hx` of the wrong shape.

        Examples
        --------
        >>> s = fastrnn.GRU(3, 4).stream()
        >>> y = np.empty(4, np.float32)
        >>> for frame in np.ones((5, 3), np.float32):
        ...     _ = s.step(frame, out=y)
        >>> s.state.shape
        (1, 1, 4)
        """
        self._check_streamable()
        batch = _checks.check_positive_int(batch, "batch")
        return Stream(self, batch, self._initial_state(hx, batch))


class LSTM(_RNNBase):
    """Long short-term memory: torch.nn.LSTM's arguments and results, numpy in and out.

    Parameters
    ----------
    input_size : int
        Features of each input step.
    hidden_size : int
        Features of the hidden and cell state.
    num_layers : int, optional
        Stacked layers; each feeds its output sequence to the next.
    bias : bool, optional
        Whether the layers have ``bias_ih`` and ``bias_hh``.
    batch_first : bool, optional
        Inputs and outputs are ``(batch, T, features)`` instead of
        ``(T, batch, features)``; states keep torch's layout either way.
    dropout : float, optional
        Accepted for torch parity; inference does not drop anything.
    bidirectional : bool, optional
        Each layer also runs over reversed time; outputs concatenate both directions.
    proj_size : int, optional
        With ``proj_size > 0``, ``h`` is projected to that many features
        (``weight_hr``), as torch's LSTM with projections.
    dtype : {"float32", "float64"}, optional
        What the model computes in and returns.
    weight_dtype : {None, "float16", "bfloat16"}, optional
        Storage of a float32 model's weights: half the bytes, widened in registers,
        computed in float32 (None: the model's dtype).

    Raises
    ------
    ValueError
        A size that is not a positive int, ``proj_size >= hidden_size``, an unknown
        dtype, or weights larger than this machine's memory.

    See Also
    --------
    fastrnn.load : a model from a checkpoint file, its architecture inferred.
    fastrnn.from_torch : a model from a live torch module.

    Notes
    -----
    The weights start with torch's initialisation, U(-1/sqrt(H), 1/sqrt(H)); load
    trained ones with `load_state_dict`. Models are thread-safe to call and pickle
    (configuration and weights only).

    Examples
    --------
    >>> m = fastrnn.LSTM(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    >>> out, (h_n, c_n) = m(np.zeros((10, 2, 3), np.float32))
    >>> out.shape, h_n.shape, c_n.shape
    ((10, 2, 8), (4, 2, 4), (4, 2, 4))
    """

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
    """Elman RNN with tanh or ReLU: torch.nn.RNN's arguments and results.

    ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or ``relu``).

    Parameters
    ----------
    input_size : int
        Features of each input step.
    hidden_size : int
        Features of the hidden state.
    num_layers : int, optional
        Stacked layers.
    nonlinearity : {"tanh", "relu"}, optional
        The activation (third positionally, as in torch).
    bias : bool, optional
        Whether the layers have ``bias_ih`` and ``bias_hh``.
    batch_first : bool, optional
        Inputs and outputs are ``(batch, T, features)``.
    dropout : float, optional
        Accepted for torch parity; unused at inference.
    bidirectional : bool, optional
        Each layer also runs over reversed time.
    dtype : {"float32", "float64"}, optional
        What the model computes in and returns.
    weight_dtype : {None, "float16", "bfloat16"}, optional
        Storage of a float32 model's weights.

    Raises
    ------
    ValueError
        A size that is not a positive int, an unknown nonlinearity or dtype.

    Examples
    --------
    >>> m = fastrnn.RNN(3, 4, nonlinearity="relu")
    >>> out, h_n = m(np.ones((6, 3), np.float32))    # unbatched (T, input_size)
    >>> out.shape, h_n.shape, bool((out >= 0).all())
    ((6, 4), (1, 4), True)
    """

    family = families.RNN

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype="float32",
                 weight_dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, nonlinearity, weight_dtype)


MODELS = {cls.family.name: cls for cls in (LSTM, GRU, RNN)}
