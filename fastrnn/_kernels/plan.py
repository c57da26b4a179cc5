"""The dispatch plan: which kernels a packed model runs, decided once.

A `Plan` names the instruction set whose kernel table the model uses and the
thresholds that choose between the fused kernels and BLAS. It is made when a model is
packed, from the per-ISA defaults below, the profile `fastrnn tune` measured on this
machine (profile.py) and the FASTRNN_* environment variables (or given by the
caller), and the kernel copies it into C fields: nothing consults a global switch on
every call. How many threads a call may use is not part of the plan:
that is the process's resource (fastrnn.set_num_threads).
"""
import glob
import os
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional, Union

from fastrnn._kernels import _stack

# the instruction sets, and the most sequences one fused call advances (FR_MAXB)
ISAS = _stack.ISA_NAMES
FUSED_BATCH_LIMIT = _stack.FUSED_BATCH_LIMIT

# Largest batch that runs through the fused kernel; larger batches use BLAS (or, where
# the limit is FUSED_BATCH_LIMIT, groups of at most that many sequences: see
# Kernel.batch_groups). Measured per ISA (1 thread, T=50, H 64-512, LSTM and GRU, BLAS
# -> fused us/step): AVX-512 multiplies 6 sequences per weight load and wins everywhere
# up to 64 (3.3x at batch 2-4, 1.2x at 16, LSTM 1.05-1.14x and GRU 0.98-1.07x at 64: the
# packing OpenBLAS redoes every step is saved). AVX2 multiplies up to 6 sequences per
# weight load, one gate at a time, panels of 256+ rows in row blocks with the weights
# prefetched (isa_avx2.c); measured with FASTRNN_ISA=avx2 on an AVX-512 Xeon (KVM, 2
# cores, 1 thread, T=100, LSTM and GRU, hidden 128/256/512, batch 8/16/32/64, medians of
# 7 interleaved processes, machine load 2-4) against OpenBLAS capped to its Haswell
# kernels (env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell), BLAS / fused time:
# 1.37-1.43x at batch 8, 1.22-1.32x at 16, 1.06-1.23x at 32, 1.02-1.15x at 64 (LSTM
# H=512 B=64 1.02x, GRU H=256 1.04x, GRU H=512 1.03x): fused wins at every size up to
# 64, if narrowly at hidden 256-512 from batch 32; at 128 (fused in groups of 64,
# Kernel.batch_groups) BLAS took 1.14x at LSTM H=128, 1.01x at GRU 256, 0.98x at LSTM
# 512. (An earlier run under load 6-11 had
# found BLAS ahead at 64, 1.14-1.39x; the kernel then lacked the prefetch, but at
# hidden 128, which it does not touch, fused led by 1.19x here: that run's ratios were
# the load's.) On a real AVX2 server `fastrnn tune` measures it.
FUSED_MAX_BATCH = {"generic": 0, "avx2": 64, "avx512": 64}

# The families a plan may give a fused limit of their own for models whose W_hh panels
# exceed plan.cache_bytes (Plan.streamed_max_batch): their recurrent weights stream from
# beyond the L2 at every step, where the crossover with BLAS moves and differs by cell.
# On an AMD EPYC with 512 KB of L2 (AVX2, 1 thread, T=50, fused / BLAS time): LSTM
# hidden 256-512 1.08-1.22x at batch 16-64, GRU 512 0.86x at 16 and 1.07x at 64, LSTM
# 128 (W_hh in the L2) 0.97x / 0.82x; no default is set from one machine: `fastrnn
# tune` measures them. (A textbook GRU, reset_after=False, follows fused_max_batch.)
STREAMED_FAMILIES = ("LSTM", "GRU", "RNN")

# Hidden size from which a small-batch step is split across two cores (when the
# process allows two threads), in an LSTM's units: another cell compares the hidden size
# of an LSTM with as many recurrent weights per step (a GRU's H x 0.87, an RNN's H / 2;
# _stack.pyx, lstm_hidden), since the split's gain is the half of those weights each
# core streams and its cost one meeting of the cores per step. Measured at batch 1,
# float32, T=100, one core against two, interleaved, best of 7 (AVX-512 Xeon, KVM, 2
# cores, after the helper thread was kept off its caller's CPU), two runs: LSTM 96
# 0.81x (a loss), 112 1.02-1.04x, 128 1.09-1.20x, 160 1.31-1.34x, 192 1.48x, 256 1.7x;
# GRU 128 (an LSTM's 111) 0.95-1.05x, 144 (125) 1.12-1.23x, 160 (139) 1.14-1.30x, 192
# (166) 1.36x. Earlier measurements on a busier VM had found 80-160 winning in one
# hour and losing in the next (a contended second core wakes slowly); 256 had been
# kept then. Batches split below it once hidden^2 * batch reaches 16384 (_stack.pyx,
# split_pays). Bidirectional layers below 256 run their directions side by side.
SPLIT_MIN_HIDDEN = 128

# From this batch on, a fused sequence takes W_ih x from the packed W_ih panels at
# every step instead of one hoisted projection per chunk. AVX-512: with 16+ sequences
# per weight load the fused product runs nearer the FMA peak (1 thread, T=50, LSTM/GRU
# H 64-512: 1.0-1.12x at 16-64; at 4-8 it loses up to 5% at H >= 256; at batch 1 the
# hoisted projection, reading W_ih once per chunk, wins by far). AVX2, the same 16
# (FASTRNN_ISA=avx2 on the Xeon, 1 thread, T=100, 9 alternating rounds, in-step /
# hoisted time where the panels fit the L2): 0.92-0.97x at batch 16-64 for LSTM hidden
# 32-160 and GRU 64-256 (input = hidden), 1.03x for an LSTM's hidden 64 under input 256
# (within the noise); at batch 8 0.92-1.06x, at 1-3 1.04-1.21x; at 2 threads level
# (0.99-1.01x). AVX2 had hoisted at every batch: when that was set the panels lost
# (1.27-1.48x at batch 8, 1.0-1.11x at 16), and with the kernel before the product's
# passes were sized by vectors they were level at 8 and 0.90-0.98x at 64. On a real
# AVX2 core (AMD EPYC, Zen 3, 512 KB L2, 1 thread, T=100, 4 alternating processes, from
# 8 / from 16) batch 8 pays for an LSTM (hidden 64-96 0.96-0.97x, 48 and 64 at batch
# 10-12 0.96x) and is level for a GRU (32-128 0.99-1.02x) and an RNN (1.00x); at 2
# threads, where the split step fits twice the panels, LSTM 64-160 0.98-1.00x, GRU
# 64-192 1.00-1.01x. At batch 4 (from 4 / from 16) an LSTM's hidden 64 gained 0.96x
# in one run, 0.97-0.98x in fastrnn tune (within its noise), a GRU's was level
# (1.00x), and on the Xeon batches 1-3 lost: AVX2 reads the panels from 8.
FUSED_X_MIN_BATCH = {"generic": 16, "avx2": 8, "avx512": 16}

# Below FUSED_BATCH_LIMIT sequences, W_ih x comes from the panels in the step only where
# W_ih's and W_hh's panels together fill at most 7/8 of this many bytes (a core's L2; per
# core when the step is split): weights read from L3 at every step lost to the hoisted
# projection (AVX-512 Xeon with 2 MB of L2, 1 thread, T=100, in-step / hoisted: LSTM
# hidden 512 1.36x at batch 8, 1.13x at 16, 1.05x at 32, 1.01x at 48, 0.97x at 64; GRU
# 512 1.13x at 16, 1.06x at 32, 0.91x at 64; with 0.5-1.6 MB of weights, hidden 64-224,
# 0.92-1.03x from batch 16; with 2 MB, LSTM 256, 1.09x at 16, 1.02x at 32; _stack.pyx,
# x_from_panels). Read from the CPU's cache description (sysfs); 1 MiB where it says
# nothing.
DEFAULT_CACHE_BYTES = 1 << 20
MAX_CACHE_BYTES = 1 << 40
_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}   # sysfs writes 2048K


def l2_cache_bytes(root="/sys/devices/system/cpu/cpu0/cache"):
    """One core's L2 size in bytes as Linux describes it under `root`, or
    DEFAULT_CACHE_BYTES where it does not (another OS, a container hiding sysfs) or
    gives a size out of [1, MAX_CACHE_BYTES]."""
    for index in sorted(glob.glob(f"{root}/index*")):
        try:
            with open(f"{index}/level") as f:
                level = f.read().strip()
            with open(f"{index}/type") as f:
                kind = f.read().strip()
            with open(f"{index}/size") as f:
                size = f.read().strip()
        except OSError:
            continue
        if level != "2" or kind not in ("Unified", "Data"):
            continue
        try:
            if size[-1:].upper() in _SIZE_UNITS:
                value = int(size[:-1]) * _SIZE_UNITS[size[-1].upper()]
            else:
                value = int(size)
        except ValueError:
            break
        # within Plan's bounds for cache_bytes, or every default plan would be refused
        return value if 1 <= value <= MAX_CACHE_BYTES else DEFAULT_CACHE_BYTES
    return DEFAULT_CACHE_BYTES

# Elements of the gate buffer the input projection fills at once: as many floats as
# one core's L2 holds (plan.cache_bytes / 4), within [CHUNK_MIN, CHUNK_ELEMENTS]. A chunk
# of steps keeps the projection large (64+ rows for small batches, its column groups'
# size) while the buffer stays in cache between the projection and the scan, and
# bounds memory for long sequences. 1 << 19 (2 MB) had been set for every machine, on
# a Xeon with 2 MB of L2, where the rule gives the same. On an AMD EPYC with 512 KB
# of L2 (AVX2, 1 thread, T=100, input = hidden, 2 MB / 512 KB buffer time, minimum of 15
# interleaved calls, 2026-12-02): LSTM hidden 128-256 at batch 8-16 0.79-0.93x, GRU
# 256 batch 16 0.93x, GRU 512 batch 8 0.90-0.97x, rec-only LSTM 256 batch 16 0.74x;
# batch 1 and batch 64, LSTM 512 batch 8, level (0.98-1.02x). A 256 KB buffer there was
# mixed (0.74-1.08x).
CHUNK_ELEMENTS = 1 << 19
CHUNK_MIN = 1 << 15


def default_chunk_elements(cache_bytes):
    """The default gate buffer for a core with `cache_bytes` of L2: its size in
    floats, within [CHUNK_MIN, CHUNK_ELEMENTS]."""
    return max(CHUNK_MIN, min(CHUNK_ELEMENTS, cache_bytes // 4))


def _env_int(name, lo, hi):
    text = os.environ.get(name)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {text!r}")
    return value


@dataclass(frozen=True)
class Plan:
    """Kernel choices for one packed model, made once when its weights are packed.

    Parameters
    ----------
    isa : {"avx512", "avx2", "generic"}
        The instruction set of the float32 kernels, at most what this CPU has.
    fused : bool, optional
        float32 models run the fused kernels over packed weights (False: BLAS and the
        cell loops only, for comparison).
    fused_max_batch : int, optional
        Batches up to this many sequences run fused (0 to 64): every model's, or
        with `streamed_max_batch` those whose recurrent weights fit `cache_bytes`.
    fused_x_min_batch : int, optional
        Fused batches of at least this many read W_ih's panels at every step (None:
        the ISA's default), below 64 sequences only where the panels fill at most 7/8 of
        `cache_bytes`.
    cache_bytes : int, optional
        The L2 cache of one core, in bytes (None: as Linux reports it, else 1 MiB).
    split_min_hidden : int, optional
        With two threads, steps of layers this wide (in an LSTM's hidden units: a GRU
        of hidden H counts 0.87 H, an RNN H / 2) are split across the cores.
    chunk_elements : int, optional
        The gate buffer's size, in elements, for the input projection of a chunk of
        steps (None: `cache_bytes` / 4, within [32768, 524288]; `replace` with a new
        `cache_bytes` moves a default chunk with it).
    streamed_max_batch : int or dict, optional
        The same limit for models whose recurrent weights (W_hh's panels; an LSTM's
        projection W_hr is not counted) exceed `cache_bytes`, for every family (an
        int) or per family (``{"LSTM": 12, "GRU": 16}``: keys "LSTM", "GRU", "RNN"); a
        family not given, or None, follows `fused_max_batch`. Kept as sorted (family,
        limit) pairs.
    source : str, optional
        Where the plan came from, for fastrnn's reports (not compared).

    Raises
    ------
    ValueError
        An unknown ISA or one this CPU lacks, or a threshold out of range.

    See Also
    --------
    Plan.default : the plan models get when none is set.

    Examples
    --------
    >>> m = fastrnn.LSTM(3, 4)
    >>> m.plan = fastrnn.Plan.default(isa="generic")
    >>> m.plan.isa, m.plan.fused_max_batch
    ('generic', 0)
    >>> m.plan = m.plan.replace(fused=False)      # BLAS path only
    >>> m.plan.source
    'given'
    """
    isa: str
    fused: bool = True
    fused_max_batch: int = 0
    fused_x_min_batch: Optional[int] = None   # None: the ISA's default (FUSED_X_MIN_BATCH)
    cache_bytes: Optional[int] = None         # None: l2_cache_bytes()
    split_min_hidden: int = SPLIT_MIN_HIDDEN
    chunk_elements: Optional[int] = None     # None: default_chunk_elements(cache_bytes)
    # given as an int or {family: int}, kept as ((family, limit), ...); None: all follow
    streamed_max_batch: Union[None, int, Mapping[str, int], tuple] = None
    source: str = field(default="defaults", compare=False)

    def __post_init__(self):
        if self.isa not in ISAS:
            raise ValueError(f"isa must be one of {ISAS}, got {self.isa!r}")
        if self.fused_x_min_batch is None:
            object.__setattr__(self, "fused_x_min_batch", FUSED_X_MIN_BATCH[self.isa])
        if self.cache_bytes is None:
            object.__setattr__(self, "cache_bytes", _L2_BYTES)
        if self.chunk_elements is None and isinstance(self.cache_bytes, int):
            object.__setattr__(self, "chunk_elements", default_chunk_elements(self.cache_bytes))
        object.__setattr__(self, "streamed_max_batch",
                           _family_limits(self.streamed_max_batch))
        best = _stack.cpu_isa()
        if ISAS.index(self.isa) > ISAS.index(best):
            raise ValueError(f"isa={self.isa!r} is not available on this CPU (it runs up to "
                             f"{best!r})")
        checks = (("fused_max_batch", 0, FUSED_BATCH_LIMIT), ("fused_x_min_batch", 1, None),
                  ("split_min_hidden", 0, None), ("cache_bytes", 0, MAX_CACHE_BYTES),
                  ("chunk_elements", 1, None))
        for name, lo, hi in checks:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo or (
                    hi is not None and value > hi):
                bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
                raise ValueError(f"{name} must be an int {bound}, got {value!r}")

    @classmethod
    def default(cls, isa=None):
        """The plan models get: defaults, then the tuned profile, then the environment.

        Parameters
        ----------
        isa : {None, "avx512", "avx2", "generic"}, optional
            Default: the best this CPU has, capped by ``FASTRNN_ISA``.

        Returns
        -------
        Plan
            The per-ISA defaults, then the profile ``fastrnn tune`` measured for this
            CPU, ISA and version, then ``FASTRNN_FUSED_MAX_BATCH`` and
            ``FASTRNN_KERNEL=blas``; its ``source`` says which applied.

        Raises
        ------
        ValueError
            An unknown ISA, one this CPU lacks, or a malformed environment variable.
        """
        isa = default_isa() if isa is None else isa
        if isa not in ISAS:
            raise ValueError(f"isa must be one of {ISAS}, got {isa!r}")
        from fastrnn._kernels import profile

        plan = profile.apply(cls(isa, fused_max_batch=FUSED_MAX_BATCH[isa]))
        changes = {}
        limit = _env_int("FASTRNN_FUSED_MAX_BATCH", 0, FUSED_BATCH_LIMIT)
        if limit is not None:   # for every model, streamed weights or not
            changes["fused_max_batch"] = limit
            changes["streamed_max_batch"] = None
        if os.environ.get("FASTRNN_KERNEL", "fused") == "blas":
            changes["fused"] = False
        if changes:
            source = ("environment" if plan.source == "defaults"
                      else f"{plan.source} and environment")
            plan = replace(plan, source=source, **changes)
        return plan

    def max_batch(self, family, streams):
        """The largest batch that runs fused in a model of `family` ("LSTM", "GRU",
        "RNN" or another name: fused_max_batch) whose W_hh panels do (`streams`) or do
        not exceed cache_bytes."""
        if streams and self.streamed_max_batch:
            return dict(self.streamed_max_batch).get(family, self.fused_max_batch)
        return self.fused_max_batch

    def replace(self, **changes):
        """A copy with some fields changed (validated), e.g. ``plan.replace(fused_max_batch=8)``.

        Returns
        -------
        Plan
            Its ``source`` is ``"given"`` unless `changes` sets it.
        """
        changes.setdefault("source", "given")
        if ("cache_bytes" in changes and "chunk_elements" not in changes
                and self.chunk_elements == default_chunk_elements(self.cache_bytes)):
            changes["chunk_elements"] = None   # a default chunk follows the new cache size
        return replace(self, **changes)


def _family_limits(value):
    """streamed_max_batch as sorted (family, limit) pairs, or None; ValueError naming
    what is wrong."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= FUSED_BATCH_LIMIT:
            raise ValueError(f"streamed_max_batch must be an int in [0, {FUSED_BATCH_LIMIT}] "
                             f"(or a dict of family -> int), got {value!r}")
        pairs = [(family, value) for family in STREAMED_FAMILIES]
    elif isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, (tuple, list)) and all(
            isinstance(pair, (tuple, list)) and len(pair) == 2 for pair in value):
        pairs = [tuple(pair) for pair in value]
    else:
        raise ValueError("streamed_max_batch must be None, an int or a dict of family -> "
                         f"int, got {value!r}")
    limits = {}
    for family, limit in pairs:
        if family not in STREAMED_FAMILIES:
            raise ValueError(f"streamed_max_batch: unknown family {family!r} (known: "
                             f"{', '.join(STREAMED_FAMILIES)})")
        if family in limits:
            raise ValueError(f"streamed_max_batch: {family!r} given twice")
        if (isinstance(limit, bool) or not isinstance(limit, int)
                or not 0 <= limit <= FUSED_BATCH_LIMIT):
            raise ValueError(f"streamed_max_batch[{family!r}] must be an int in [0, "
                             f"{FUSED_BATCH_LIMIT}], got {limit!r}")
        limits[family] = limit
    return tuple(sorted(limits.items())) or None


def default_isa():
    """The instruction set models get by default: the widest this CPU has and the build
    supports, capped by FASTRNN_ISA ('generic', 'avx2', 'avx512'; 'auto': no cap)."""
    return _stack.default_isa()


# read once: the cache does not change while the process runs
_L2_BYTES = l2_cache_bytes()
