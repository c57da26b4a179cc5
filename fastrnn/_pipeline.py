"""One call of a model, from the caller's arrays to the kernel and back:

    check the input and state -> order the batch by length -> run (in groups of what one
    fused call takes) -> restore the caller's order and layout.

Functions of the model's configuration and its packed Kernel, nothing private of the
model; the Stream uses the same state checks.
"""
import numpy as np

from fastrnn import _checks


def check_input(x, input_size, batch_first, dtype):
    """x -> (time-major contiguous (T, B, I) array, batched?)."""
    x = _checks.as_float_array(x, "x", dtype)
    if x.ndim == 2:
        batched = False
        x = x[:, None, :]
    elif x.ndim == 3:
        batched = True
        if batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
    else:
        layout = "(B, T, input_size)" if batch_first else "(T, B, input_size)"
        raise ValueError(f"x must be 2-D (T, input_size) or 3-D {layout}, got shape {x.shape}")
    if x.shape[2] != input_size:
        raise ValueError(
            f"x has the wrong feature size: expected input_size={input_size} "
            f"in the last dimension, got shape {x.shape if batched else x[:, 0].shape}")
    if x.shape[0] == 0:
        raise ValueError(f"x must hold at least one time step, got shape {x.shape}")
    return x, batched


def check_state(spec, hx, h_shape, c_shape, dtype, batched):
    """hx -> (h0, c0 or None) as fresh, contiguous (L*D, B, .) arrays the kernel may
    overwrite. h_shape / c_shape: torch's shapes for this call (batched or not)."""
    if hx is None:
        h0 = np.zeros(h_shape, dtype)
        c0 = np.zeros(c_shape, dtype) if spec.has_cell else None
    elif spec.has_cell:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(
                f"hx for an {spec.name} must be a tuple (h_0, c_0), got {type(hx).__name__}")
        h0 = _checks.as_float_array(hx[0], "hx[0] (h_0)", dtype)
        c0 = _checks.as_float_array(hx[1], "hx[1] (c_0)", dtype)
        _checks.check_shape(h0, h_shape, "hx[0] (h_0)")
        _checks.check_shape(c0, c_shape, "hx[1] (c_0)")
        h0, c0 = h0.copy(), c0.copy()
    else:
        if isinstance(hx, (tuple, list)) and not np.isscalar(hx[0]):
            raise TypeError(
                f"hx for a {spec.name} must be one array h_0, got a {type(hx).__name__}")
        h0 = _checks.as_float_array(hx, "hx (h_0)", dtype).copy()
        _checks.check_shape(h0, h_shape, "hx (h_0)")
        c0 = None
    if not batched:
        h0 = h0[:, None, :]
        c0 = c0[:, None, :] if c0 is not None else None
    return np.ascontiguousarray(h0), (np.ascontiguousarray(c0) if c0 is not None else None)


def order_by_length(lengths, x, h, c):
    """Sequences sorted longest first, so that the sequences still running at step t are
    a prefix of the batch (cuDNN's packed order). Returns (order or None when already
    sorted, batch_sizes (T,) int32: sequences running at each step, x, h, c reordered)."""
    steps = x.shape[0]
    order = np.argsort(-lengths, kind="stable")
    batch_sizes = np.count_nonzero(
        lengths[None, :] > np.arange(steps)[:, None], axis=1).astype(np.intc)
    if np.all(order == np.arange(len(lengths))):
        return None, batch_sizes, x, h, c
    return (order, batch_sizes, np.ascontiguousarray(x[:, order]),
            np.ascontiguousarray(h[:, order]),
            np.ascontiguousarray(c[:, order]) if c is not None else None)


def run(kernel, x, h, c, batch_sizes, width, order=None, batch_first=False):
    """The kernel over validated (T, B, I) x in length order, advancing h / c in place:
    the whole batch in one call, or in the near-equal groups the kernel asks for.
    Returns out in the caller's order (order[b]: where sorted sequence b came from) and
    layout ((B, T, width) when batch_first, else (T, B, width)), zero past each
    sequence's end: the kernel writes every row where it belongs, so no copy follows."""
    steps, batch = x.shape[0], x.shape[1]
    make = np.zeros if batch_sizes is not None else np.empty
    out = make((batch, steps, width) if batch_first else (steps, batch, width), kernel.dtype)
    rows = None if order is None else order.astype(np.intc)
    groups = kernel.batch_groups(batch)
    if groups is None and kernel.splits_sequences(steps, batch):
        _run_halves(kernel, x, out, h, c, batch_sizes, rows, batch_first)
        return out
    if groups is None:
        kernel.run_trusted(x, out, h, c, batch_sizes, rows, batch_first)
        return out
    for g0, g1 in groups:
        part = _part(x, h, c, batch_sizes, rows, slice(g0, g1))
        kernel.run_trusted(part[0], out, *part[1:], batch_first)
        _put_back(h, c, slice(g0, g1), part)
    return out


def _part(x, h, c, batch_sizes, rows, pick, x_in_place=False):
    """The kernel's arrays (x, h, c, batch_sizes, rows) for the sequences `pick` (a
    slice) selects of the length order: contiguous copies of their inputs (x a view
    where x_in_place) and states, how many of them run at each step, and their rows of
    out. The picked sequences stay in length order, so those running are a prefix."""
    first, stop, step = pick.indices(x.shape[1])
    sizes = (None if batch_sizes is None
             else ((np.clip(batch_sizes, first, stop) - first + step - 1) // step
                   ).astype(np.intc))
    picked = (rows[pick] if rows is not None else np.arange(first, stop, step)).astype(np.intc)
    return (x[:, pick] if x_in_place else np.ascontiguousarray(x[:, pick]),
            np.ascontiguousarray(h[:, pick]),
            np.ascontiguousarray(c[:, pick]) if c is not None else None, sizes, picked)


def _put_back(h, c, pick, part):
    """The states a part advanced, back into the whole batch's."""
    h[:, pick] = part[1]
    if c is not None:
        c[:, pick] = part[2]


def _run_halves(kernel, x, out, h, c, batch_sizes, rows, batch_first):
    """The batch as two halves on two cores (Kernel.splits_sequences): the even and the
    odd sequences of the length order, so that both halves have the same mix of lengths
    and each stays in length order (its running sequences a prefix at every step)."""
    x = np.ascontiguousarray(x)   # (already so from the checks: the halves' strides rely on it)
    # an even batch's halves are read in place (rows of one stride: Kernel.run_pair); an
    # odd one's are copied
    halves = [slice(k, None, 2) for k in range(2)]
    parts = [_part(x, h, c, batch_sizes, rows, pick, x_in_place=x.shape[1] % 2 == 0)
             for pick in halves]
    kernel.run_pair(out, parts, batch_first)
    for pick, part in zip(halves, parts):
        _put_back(h, c, pick, part)


def restore(out, h, c, order, batched):
    """The caller's batch order for the states (the outputs are in it already), and the
    unbatched shapes: (out, h, c)."""
    if order is not None:
        inverse = np.argsort(order)
        h = h[:, inverse]
        c = c[:, inverse] if c is not None else None
    if not batched:
        out, h = out[:, 0], h[:, 0]
        c = c[:, 0] if c is not None else None
    return out, h, c
