"""Weights -> the packed layout the kernels read, written beside the code that reads it.

The fused kernels (cell_math_impl.h) stream the recurrent weights panel by panel: a
panel is PANEL_UNITS (16) hidden units, and holds, for every k of the product, the
rows of all the family's gates for those units, so one pass over a panel computes a
whole slice of the cell update:

    torch:  W (gates*H, K), gate-major        panels: (npan, K, gates, 16)
            [ i rows 0..H-1 ]                         panel p, row k:
            [ f rows 0..H-1 ]      ->                 [ i[16p..16p+15, k] f[...] g[...] o[...] ]
            [ g rows 0..H-1 ]                         (hidden padded with zero rows to 16*npan)
            [ o rows 0..H-1 ]

Half-precision storage keeps the same order: float16 as is; bfloat16 pairs k in
32-bit words, (npan, ceil(K/2), gates, 16, 2), K padded to even, so that a shift and a
mask widen two weight vectors per load. Biases go to (npan, gates, 16). Every packed
array starts on a cache line.

The textbook GRU (reset_after=False) multiplies W_hn by r * h, which exists only once
every panel's r does: its fused step runs in two phases (grut_fused_f32), so its W_hh
keeps the n rows in panels of their own, after the r, z rows' (textbook_panels):

    [ r, z rows: (npan, K, 2, 16) ][ n rows: (npan, K, 1, 16) ]     (each in storage)

and each phase streams whole panels of the rows it needs. Its W_ih and bias keep the
three-gate layout above. The kernels' hoisted input projection writes its rows in
the same panel order (Kernel.workspace sizes for it).
"""
import numpy as np

from fastrnn._kernels._stack import PANEL_UNITS, CellRecord, Kernel, empty_aligned

__all__ = ["WEIGHT_DTYPES", "round_weights", "panels", "store", "bias_panels", "aligned",
           "textbook_panels", "pack"]

WEIGHT_DTYPES = ("float32", "float16", "bfloat16")


def round_weights(w, weight_dtype):
    """float32 weights rounded to the storage type (round to nearest even), as float32:
    every kernel path then computes with the same weights."""
    if weight_dtype == "float16":
        return w.astype(np.float16).astype(np.float32)
    if weight_dtype == "bfloat16":
        bits = w.astype(np.float32).view(np.uint32)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.view(np.float32)
    return w


def panels(w, gates, hidden, units=PANEL_UNITS):
    """(gates*hidden, K) torch-ordered rows -> (panels, K, gates, units), zero-padded."""
    k = w.shape[1]
    npan = -(-hidden // units)
    padded = np.zeros((gates, npan * units, k), w.dtype)
    padded[:, :hidden] = w.reshape(gates, hidden, k)
    return np.ascontiguousarray(padded.reshape(gates, npan, units, k).transpose(1, 3, 0, 2))


def store(w, weight_dtype):
    """Packed float32 panels (panels, K, gates, units) in their storage type: float16,
    or bfloat16 bits (already rounded by round_weights, so the low half is zero) with
    k in pairs, (panels, K/2, gates, units, 2), K padded to even."""
    if weight_dtype == "float16":
        return w.astype(np.float16)
    if weight_dtype == "bfloat16":
        npan, k, gates, units = w.shape
        bits = np.zeros((npan, k + k % 2, gates, units), np.uint16)
        bits[:, :k] = w.view(np.uint32) >> 16
        pairs = bits.reshape(npan, (k + k % 2) // 2, 2, gates, units)
        return np.ascontiguousarray(pairs.transpose(0, 1, 3, 4, 2))
    return w


def bias_panels(b, gates, hidden, units=PANEL_UNITS):
    """(gates*hidden,) -> (panels, gates, units), zero-padded."""
    return np.ascontiguousarray(panels(b[:, None], gates, hidden, units)[:, 0])


def textbook_panels(w_hh, hidden, weight_dtype):
    """The textbook GRU's W_hh (3*hidden, K) -> its r, z rows' panels then its n rows'
    panels, flat, in weight_dtype storage (cell_math_impl.h, grut_body, reads them)."""
    rz = store(panels(w_hh[:2 * hidden], 2, hidden), weight_dtype)
    n = store(panels(w_hh[2 * hidden:], 1, hidden), weight_dtype)
    return np.concatenate([rz.ravel(), n.ravel()])


def aligned(a):
    """A C-contiguous, cache-line-aligned, read-only copy of `a`."""
    out = empty_aligned(a.shape, a.dtype)
    out[...] = a
    out.flags.writeable = False
    return out


def _frozen(a):
    a = np.ascontiguousarray(a) if a is not None else None
    if a is not None:
        a.flags.writeable = False
    return a


def pack(spec, cells, num_directions, plan, weight_dtype="float32", relu=False):
    """A Kernel of `spec`'s family from one (w_ih, w_hh, b_ih, b_hh, w_hr) per (layer,
    direction), layer-major, arrays of the model's dtype (biases None without bias,
    w_hr None without projection), already rounded to weight_dtype.

    Biases fold where the family allows (never the GRU's b_hn); float32 models whose
    plan runs the fused kernels also get panels, in weight_dtype storage.
    """
    records = []
    for w_ih, w_hh, b_ih, b_hh, w_hr in cells:
        hidden = w_hr.shape[1] if w_hr is not None else w_hh.shape[1]
        rows = spec.gates * hidden
        if b_ih is None:
            b_ih = b_hh = np.zeros(rows, w_ih.dtype)
        bias, b_hn = spec.fold_biases(b_ih, b_hh, hidden)
        fused = {}
        if plan.fused and w_ih.dtype == np.float32:
            if spec.reset_after is False:
                w_hh_panels = textbook_panels(w_hh, hidden, weight_dtype)
            else:
                w_hh_panels = store(panels(w_hh, spec.gates, hidden), weight_dtype)
            fused = dict(
                panel_dtype=weight_dtype,
                w_hh_panels=aligned(w_hh_panels),
                # streamed steps and large fused batches read W_ih x from these
                w_ih_panels=aligned(store(panels(w_ih, spec.gates, hidden), weight_dtype)),
                bias_panels=aligned(bias_panels(bias, spec.gates, hidden)),
                b_hn_panels=aligned(bias_panels(b_hn, 1, hidden)) if b_hn is not None
                else None)
        records.append(CellRecord(_frozen(w_ih), _frozen(w_hh), _frozen(bias), _frozen(b_hn),
                                  _frozen(w_hr), **fused))
    return Kernel(spec.kernel_id, records, num_directions, plan, relu)
