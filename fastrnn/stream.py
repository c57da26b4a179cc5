"""Step-by-step inference: a Stream of one or more sequences fed a frame at a time."""
import numpy as np

from fastrnn import _checks, _pipeline
from fastrnn._kernels._stack import StreamCore

__all__ = ["Stream"]


class Stream(StreamCore):
    """Step-by-step inference for one or more sequences; made by ``model.stream()``.

    ``step(x_t, out=None)`` advances every sequence by one frame (``x_t``
    ``(batch, input_size)``, or ``(input_size,)`` for a stream of one) and returns the
    last layer's output; with `out` (a C-contiguous array of the output's shape and
    the model's dtype) nothing is allocated. `run` takes a chunk of frames at once,
    ``reset()`` zeroes the state, and `state` reads or sets it in torch's shapes.

    Parameters
    ----------
    model : LSTM, GRU or RNN
        A unidirectional model; the stream runs the weights it has now.
    batch : int, optional
        Sequences advanced together.
    hx : array_like or tuple of array_like, optional
        The initial state in torch's shapes (default zeros).

    Raises
    ------
    ValueError
        Frames, `out` or states of the wrong shape or dtype.

    Notes
    -----
    One Stream belongs to one thread at a time; streams of the same model may run in
    parallel threads.

    Examples
    --------
    >>> m = fastrnn.LSTM(3, 4)
    >>> s = m.stream(batch=1)
    >>> y = np.empty(4, np.float32)
    >>> for x_t in np.ones((5, 3), np.float32):
    ...     _ = s.step(x_t, out=y)       # allocates nothing
    >>> h, c = s.state                   # torch's shapes
    >>> h.shape
    (1, 1, 4)
    >>> s.reset()                        # zeros again
    """

    def __init__(self, model, batch=1, hx=None):
        # StreamCore.__cinit__ took (model's kernel, batch); see LSTM.stream
        self.model = model
        if hx is not None:
            self.state = hx

    def __new__(cls, model, batch=1, hx=None):
        return super().__new__(cls, model.kernel, batch)

    def run(self, xs, out=None):
        """Advance every sequence by ``len(xs)`` steps in one call: a chunk of frames.

        The same results as ``len(xs)`` calls of ``step``, faster per frame at larger
        hidden sizes: the chunk's input projection is one product, as for a whole
        sequence.

        Parameters
        ----------
        xs : array_like
            ``(T, batch, input_size)``, or ``(T, input_size)`` for a stream of one.
        out : numpy.ndarray, optional
            Where to write the outputs: writeable, C-contiguous, of the returned shape
            and the model's dtype.

        Returns
        -------
        numpy.ndarray
            The last layer's outputs, ``(T, batch, output_size)`` or
            ``(T, output_size)`` (`out` when given).

        Raises
        ------
        ValueError
            `xs` or `out` of the wrong shape, dtype or layout, or an empty chunk.

        Examples
        --------
        >>> s = fastrnn.GRU(3, 4).stream()
        >>> s.run(np.ones((10, 3), np.float32)).shape
        (10, 4)
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
        else:
            _checks.check_out(out, shape, self.dtype, "out")
        self._advance(steps, xs.reshape(steps, B, I), out.reshape(steps, B, P))
        return out

    def _check_x(self, x):
        xa = _checks.as_float_array(x, "x", self.dtype)
        if xa.ndim == 1 and self.batch == 1:
            _checks.check_shape(xa, (self.input_size,), "x")
        else:
            _checks.check_shape(xa, (self.batch, self.input_size), "x")
        return xa

    def _check_out(self, out, flat):
        shape = (self.output_size,) if flat else (self.batch, self.output_size)
        _checks.check_out(out, shape, self.dtype, "out")

    @property
    def state(self):
        """A copy of the state: ``h`` ``(num_layers, batch, H)``, or ``(h, c)`` for an LSTM.

        Setting it checks the shapes as a model call's `hx` and copies the values in.
        """
        h, c = self._get_state()
        return (h.copy(), c.copy()) if self.has_c else h.copy()

    @state.setter
    def state(self, hx):
        model = self.model
        h_shape, c_shape = model.state_shapes(self.batch)
        h, c = _pipeline.check_state(self.model.family, hx, h_shape, c_shape, self.dtype, True)
        self._set_state(h, c)

    def __repr__(self):
        return f"Stream({self.model!r}, batch={self.batch})"
