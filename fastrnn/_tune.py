"""`fastrnn tune`: measure the Plan thresholds on this machine, in a bounded time.

Four crossovers decide which kernel a call runs (plan.py); the defaults of three were
measured on other CPUs (streamed_max_batch has none of its own). Each is measured here
by timing the two alternatives on the same weights and input, interleaved (A B, B A,
... so that a shared machine's drift hits both), and comparing the per-round ratios:

- fused_max_batch: fused kernels against BLAS, 1 thread, LSTM and GRU at each hidden
  size whose W_hh fits plan.cache_bytes, batches ascending; the answer is the largest
  batch up to which the fused kernels win or tie everywhere, so a batch past a loss
  never runs fused. A loss (or a win, where a phase asks for one) is beyond NOISE in
  the median and in every round but one, and where it would move a threshold off the
  defaults, again in a second measurement of the same pair: anything less is a tie,
  and a tie keeps the default's choice. streamed_max_batch: the same, per family, at
  the sizes whose W_hh streams from beyond the L2, where the crossover can move apart
  from the sizes that fit (on a 512 KB L2 one limit for both had sent every size to
  BLAS from batch 16 on a loss at an LSTM's 256, making 5 of 8 cases slower than the
  defaults).
- fused_x_min_batch: fused batches taking W_ih x from the panels at every step against
  one hoisted projection (only where the weights fit plan.cache_bytes: elsewhere both
  run the hoisted one), batches descending from the largest fused one; the answer is
  the smallest batch from which the panels win everywhere. A tie (within NOISE) keeps
  what the default does at that batch: it moves only on evidence (a first run here
  put it at 64 on a 1.002x tie at batch 48).
- split_min_hidden: with two threads (BLAS at one), batch 1 split across the two cores
  against not, hidden sizes descending; the answer is the smallest hidden size from
  which splitting wins beyond NOISE in the median and in every round but one, where
  a tie keeps the default's choice as for fused_x_min_batch (a busy second core loses
  many rounds; one lost round of seven, on a VM whose speed drifts, had made a 14%
  median gain at an LSTM's 128 read as a loss in one run of two). Sizes
  are an LSTM's, as the threshold is: a GRU is timed at the hidden size whose step has
  as many recurrent weights (same_weights; GRU 148 for an LSTM's 128).

Each phase gets a share of the budget; a measurement that would overrun it is not
started, and a phase cut short keeps the default where it did not measure.
"""
import math
import statistics
import sys
import time

import numpy as np

FAMILIES = ("LSTM", "GRU")
HIDDEN = (64, 128, 256, 512)
# fused_max_batch's class of the sizes whose W_hh fits plan.cache_bytes
FITS = "fits"
BATCHES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
X_BATCHES = (4, 8, 12, 16, 24, 32, 48, 64)
SPLIT_HIDDEN = (64, 96, 128, 192, 256, 384, 512)
SEQ_LEN = 50
ROUNDS = 7
# A median ratio within 3% is a tie: the fused kernels keep a tied batch.
NOISE = 0.03


def slower(rec):
    """A (the first alternative) clearly slower than B: beyond NOISE in the median and
    in every round but one. On a VM with half its time stolen, rounds of the same pair
    ranged 0.85-1.42x; medians of 1.03-1.05x there had moved thresholds that a later
    A/B found level or wrong (every phase now asks this of its evidence)."""
    ratios = sorted(rec["ratios"])
    return rec["ratio"] > 1 + NOISE and ratios[min(1, len(ratios) - 1)] > 1


def faster(rec):
    """A clearly faster than B (as `slower`, the other way)."""
    ratios = sorted(rec["ratios"])
    return rec["ratio"] < 1 - NOISE and ratios[max(-2, -len(ratios))] < 1


# Shares of the budget: the fused/BLAS grid is the largest.
SHARES = {"fused_max_batch": 0.45, "fused_x_min_batch": 0.3, "split_min_hidden": 0.25}
# Each timed sample lasts at least this long (many calls of a small case); the split
# phase's longer, so that a sample spans the second core's stalls on a shared host
# rather than falling in or out of one (10 ms samples there ranged 0.77-1.78x at an
# LSTM's 384, where 50 ms samples found the split 1.44x faster).
MIN_SAMPLE = 0.01
MIN_SAMPLE_SPLIT = 0.05
DEFAULT_BUDGET = 120.0


def cores():
    """CPUs this process may run on: 1 under a CPU quota of less than 2, where split
    calls run alone (fastrnn._threads.cpu_quota)."""
    from fastrnn._threads import cpu_quota, quota_runs_alone, usable_cpus

    return 1 if quota_runs_alone(cpu_quota()) else usable_cpus()


def measure_pair(point, call_a, call_b, rounds, time_left, min_sample=MIN_SAMPLE):
    """Per-call seconds of `rounds` interleaved samples of each alternative at `point`
    (phase, family, hidden, batch: for the record), or None when the measurement would
    take longer than `time_left` seconds. A sample of calls shorter than a tenth of
    `min_sample` follows one untimed call of its alternative, which finds the caches,
    and a split step its helper thread, as the alternative before left them: a model
    called in a loop does not pay that (a longer call hardly does, and a warm-up would
    double the time of the largest cases)."""
    perf = time.perf_counter
    once = []
    for call in (call_a, call_b):
        call()  # first call: packing, workspaces
        t0 = perf()
        call()
        once.append(perf() - t0)
    n = max(1, int(min_sample / max(max(once), 1e-7)))
    warm = 10 * max(once) <= min_sample
    if 2 * rounds * (n + warm) * max(once) > time_left:
        return None
    samples = ([], [])
    for r in range(rounds):
        for k in ((0, 1) if r % 2 == 0 else (1, 0)):
            call = (call_a, call_b)[k]
            if warm:
                call()
            t0 = perf()
            for _ in range(n):
                call()
            samples[k].append((perf() - t0) / n)
    return samples


class _Progress:
    """A tqdm bar of the budget's seconds on a terminal's stderr, else silent."""

    def __init__(self, budget, enabled):
        self.bar = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=round(budget), file=sys.stderr, unit="s", leave=False,
                                bar_format="{desc} {bar} {n:.0f}/{total:.0f} s")
            except ImportError:
                pass
        self.start = time.perf_counter()
        self.shown = 0.0

    def __call__(self, label):
        if self.bar is not None:
            elapsed = min(time.perf_counter() - self.start, self.bar.total)
            self.bar.update(elapsed - self.shown)
            self.shown = elapsed
            self.bar.set_description_str(label)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def same_weights(family, hidden):
    """The hidden size of `family` whose step multiplies as many recurrent weights as an
    LSTM's of `hidden` (the smallest whose LSTM equivalent, as the kernels reckon it:
    _stack.lstm_equivalent, is `hidden` or more): split_min_hidden is in an LSTM's
    units."""
    from fastrnn._kernels._stack import lstm_equivalent

    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[family]
    size = int(hidden * math.sqrt(4 / gates))
    while lstm_equivalent(gates, size) < hidden:
        size += 1
    while size > 1 and lstm_equivalent(gates, size - 1) >= hidden:
        size -= 1
    return size


class Tuner:
    """One tuning run. `measure` (measure_pair's signature) is what tests replace to
    decide from made-up timings without measuring anything."""

    def __init__(self, budget=DEFAULT_BUDGET, isa=None, measure=measure_pair, rounds=ROUNDS,
                 progress=False, cpus=None):
        from fastrnn._kernels.plan import FUSED_MAX_BATCH, Plan, default_isa

        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
            raise ValueError(f"budget must be a number of seconds > 0, got {budget!r}")
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
        self.isa = default_isa() if isa is None else isa
        # the per-ISA defaults, neither a profile nor the environment
        self.base = Plan(self.isa, fused_max_batch=FUSED_MAX_BATCH[self.isa], source="tune")
        self.budget, self.measure, self.rounds = float(budget), measure, rounds
        self.cpus = cores() if cpus is None else cpus
        self.progress = _Progress(self.budget, progress)
        self.measurements, self.notes = [], {}
        self.start = None
        self._models = {}

    # -- measuring ---------------------------------------------------------------------

    def _model(self, family, hidden, plan):
        import fastrnn

        key = (family, hidden, plan)
        if key not in self._models:
            model = getattr(fastrnn, family)(hidden, hidden)
            model._init_weights(0)
            model.plan = plan
            self._models[key] = model
        return self._models[key]

    def _compare(self, phase, family, hidden, batch, plans, names, deadline, a_by_default):
        """(record, stop) of one A-against-B measurement, (None, None) when out of time.
        Where the defaults run A here (`a_by_default`) the phase stops where A is
        clearly slower; where they run B, unless A is clearly faster. That evidence, the
        kind that moves a threshold off the defaults, is measured again and the second
        record decides: a threshold moves only on two that agree (one alone, on a VM
        with half its time stolen, had sent an LSTM's 256 at batch 24 to BLAS on 1.13x
        where a longer A/B found 1.04x)."""
        moves = slower if a_by_default else faster
        rec = self._measure(phase, family, hidden, batch, plans, names, deadline)
        if rec is not None and moves(rec):
            rec = self._measure(phase, family, hidden, batch, plans, names, deadline)
        if rec is None:
            return None, None
        return rec, slower(rec) if a_by_default else not faster(rec)

    def _measure(self, phase, family, hidden, batch, plans, names, deadline):
        label = f"{phase}: {family} H={hidden} B={batch}"
        self.progress(label)
        x = np.random.default_rng(0).standard_normal((SEQ_LEN, batch, hidden)).astype(
            np.float32)
        a, b = (self._model(family, hidden, p) for p in plans)
        point = {"phase": phase, "family": family, "hidden": hidden, "batch": batch}
        extra = {"min_sample": MIN_SAMPLE_SPLIT} if phase == "split_min_hidden" else {}
        samples = self.measure(point, lambda: a(x), lambda: b(x), self.rounds,
                               deadline - time.perf_counter(), **extra)
        if samples is None:
            return None
        ta, tb = samples
        ratios = [x / y for x, y in zip(ta, tb)]
        record = {**point, "seq_len": SEQ_LEN, "a": names[0], "b": names[1],
                  "a_us_per_step": statistics.median(ta) / SEQ_LEN * 1e6,
                  "b_us_per_step": statistics.median(tb) / SEQ_LEN * 1e6,
                  "ratio": statistics.median(ratios), "ratios": ratios}
        self.measurements.append(record)
        return record

    def _deadline(self, share):
        """The end of a phase: its share of the time left (later phases' shares in
        self.rest), so that time an earlier phase did not use carries over."""
        now = time.perf_counter()
        left = max(0.0, self.start + self.budget - now)
        return now + left * share / max(self.rest, share, 1e-9)

    # -- the three phases --------------------------------------------------------------

    def fused_max_batch(self, share):
        """Fused against BLAS, batches ascending, in two classes of model: those whose
        W_hh fits plan.cache_bytes, one limit for every family (fused_max_batch), and
        those whose W_hh streams from beyond it, a limit per family
        (streamed_max_batch). Each stops at the first batch where BLAS is clearly faster
        at one of its sizes, or, past the default limit (where the defaults run BLAS),
        where fused is not clearly faster. Returns (fused_max_batch, {family: limit} or
        None)."""
        phase, default = "fused_max_batch", self.base.fused_max_batch
        deadline = self._deadline(share)
        plans = (self.base.replace(fused_max_batch=64), self.base.replace(fused_max_batch=0))
        groups = {}   # "fits" or a family's name (its streamed sizes): [(family, hidden)]
        for family in FAMILIES:
            for hidden in HIDDEN:
                streams = self._model(family, hidden, plans[0]).kernel.streams
                groups.setdefault(family if streams else FITS, []).append((family, hidden))
        verified = dict.fromkeys(groups, 0)
        found = {}   # group -> (limit, note)
        for batch in BATCHES:
            for group, cases in groups.items():
                if group in found:
                    continue
                for family, hidden in cases:
                    # within the default limit fused must lose to stop, past it win to go on
                    rec, stop = self._compare(phase, family, hidden, batch, plans,
                                              ("fused", "blas"), deadline, batch <= default)
                    if rec is None:
                        for g in groups:
                            if g not in found:
                                value = max(verified[g], default)
                                found[g] = (value, "" if verified[g] == BATCHES[-1] else (
                                    f"budget ran out at batch {batch}: fused verified up "
                                    f"to {verified[g]}, kept {value}"))
                        return self._limits(found)
                    if stop:
                        found[group] = (verified[group], (
                            f"BLAS {'faster' if slower(rec) else 'as fast'} at {family} "
                            f"H={hidden} B={batch} ({rec['ratio']:.2f}x fused's time)"))
                        break
                else:
                    verified[group] = batch
        for group in groups:
            found.setdefault(group, (verified[group], ""))
        return self._limits(found)

    def _limits(self, found):
        """fused_max_batch's phase result from {group: (limit, note)}; notes kept."""
        default = self.base.fused_max_batch
        fits, note = found.pop(FITS, (default, f"kept the default: no size of {HIDDEN} "
                                      f"fits {self.base.cache_bytes} bytes"))
        if note:
            self.notes["fused_max_batch"] = note
        notes = [f"{family}: {note}" for family, (_, note) in found.items() if note]
        if notes:
            self.notes["streamed_max_batch"] = "; ".join(notes)
        # a family at the same limit as the sizes that fit needs no entry of its own
        return fits, {family: limit for family, (limit, _) in found.items()
                      if limit != fits} or None

    def fused_x_min_batch(self, share, fused_max, streamed):
        """Batches descending from the largest fused one (under the limits the fused
        phase found: a case that runs BLAS is not timed), at the sizes whose panels
        this batch reads in the step. From the default up, where the default reads the
        panels, stop where the hoisted projection is clearly faster; below it, where the
        panels are not clearly faster."""
        from fastrnn._kernels.plan import FUSED_BATCH_LIMIT

        phase, default = "fused_x_min_batch", self.base.fused_x_min_batch
        largest = max([fused_max, *(streamed or {}).values()])
        batches = [b for b in X_BATCHES if b <= largest]
        if not batches:
            self.notes[phase] = f"kept the default: no batch of {X_BATCHES[0]}+ runs fused"
            return default
        deadline = self._deadline(share)
        limits = {"fused_max_batch": fused_max, "streamed_max_batch": streamed}
        plans = (self.base.replace(fused_x_min_batch=1, **limits),
                 self.base.replace(fused_x_min_batch=1000, **limits))
        smallest = None
        for batch in reversed(batches):
            for family in FAMILIES:
                for hidden in HIDDEN:
                    if not self._model(family, hidden, plans[0]).kernel.reads_x_in_step(batch):
                        continue   # BLAS, or weights beyond the L2: hoisted either way
                    rec, stop = self._compare(phase, family, hidden, batch, plans,
                                              ("panels", "hoisted"), deadline, batch >= default)
                    if rec is None:
                        value = default if smallest is None else min(smallest, default)
                        self.notes[phase] = (
                            f"budget ran out at batch {batch}: panels verified from "
                            f"{smallest or '-'}, kept {value}")
                        return value
                    # panels must win beyond noise where the default hoists, and
                    # lose beyond it where the default reads panels
                    if stop:
                        self.notes[phase] = (
                            f"hoisted projection faster at {family} H={hidden} B={batch} "
                            f"({rec['ratio']:.2f}x panels' time)" if batch >= default else
                            f"panels not clearly faster at {family} H={hidden} B={batch} "
                            f"({min(rec['ratios']):.2f}-{max(rec['ratios']):.2f}x the "
                            f"hoisted projection's time)")
                        if smallest is not None:
                            return smallest
                        return FUSED_BATCH_LIMIT + 1 if batch >= default else default
            smallest = batch
        return smallest

    def split_min_hidden(self, share):
        """Hidden sizes descending at batch 1, two threads. From the default up, where
        the default splits, a size keeps the split unless one core is clearly faster
        there; below it, splitting must be clearly faster to move the threshold down. A
        tie keeps what the default does: on a VM whose second core is stolen at times,
        rounds of one pair ranged 0.41-2.22x, and an LSTM's 512 on a 512 KB L2 (its 4 MB
        of W_hh from L3 either way) tied while 192-384 ran 1.4-1.8x faster split."""
        import fastrnn
        from fastrnn._kernels.profile import NEVER

        phase, default = "split_min_hidden", self.base.split_min_hidden
        if self.cpus < 2:
            self.notes[phase] = f"kept the default: this process has {self.cpus} core"
            return default
        deadline = self._deadline(share)
        plans = (self.base.replace(split_min_hidden=0), self.base.replace(split_min_hidden=NEVER))
        smallest = None
        with fastrnn.num_threads(2, blas=1):
            for hidden in reversed(SPLIT_HIDDEN):
                for family in FAMILIES:
                    size = same_weights(family, hidden)
                    rec, stop = self._compare(phase, family, size, 1, plans,
                                              ("split", "one core"), deadline, hidden >= default)
                    if rec is None:
                        value = default if smallest is None else min(smallest, default)
                        self.notes[phase] = (
                            f"budget ran out at hidden {hidden}: split verified from "
                            f"{smallest or '-'}, kept {value}")
                        return value
                    if stop:
                        self.notes[phase] = (
                            f"one core {'faster' if slower(rec) else 'as fast'} at {family} "
                            f"H={size} (an LSTM's {hidden}; split/one core "
                            f"{min(rec['ratios']):.2f}-{max(rec['ratios']):.2f}x)")
                        return NEVER if smallest is None else smallest
                smallest = hidden
        return NEVER if smallest is None else smallest

    # -- the run -----------------------------------------------------------------------

    def run(self):
        """Measure and return the profile (a dict, as written to the file)."""
        import datetime

        import fastrnn
        from fastrnn._kernels import profile

        self.start = time.perf_counter()
        shares = dict(SHARES)
        if self.cpus < 2:
            shares = {"fused_max_batch": 0.7, "fused_x_min_batch": 0.3, "split_min_hidden": 0}
        self.rest = 1.0
        try:
            with fastrnn.num_threads(1, blas=1):
                fused_max, streamed = self.fused_max_batch(shares["fused_max_batch"])
                self.rest -= shares["fused_max_batch"]
                fused_x = self.fused_x_min_batch(shares["fused_x_min_batch"], fused_max,
                                                 streamed)
                self.rest -= shares["fused_x_min_batch"]
            split = self.split_min_hidden(shares["split_min_hidden"])
        finally:
            self.progress.close()
        plan = {"fused_max_batch": fused_max, "fused_x_min_batch": fused_x,
                "split_min_hidden": split}
        defaults = {k: getattr(self.base, k) for k in plan}
        if streamed:
            plan[profile.STREAMED] = streamed
        return {
            "format": profile.FORMAT, "schema": profile.SCHEMA,
            "cpu": profile.cpu_model(), "isa": self.isa, "fastrnn": profile.fastrnn_version(),
            "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "plan": plan, "defaults": defaults, "notes": self.notes,
            "cores": self.cpus, "budget_s": self.budget,
            "elapsed_s": round(time.perf_counter() - self.start, 2),
            "seq_len": SEQ_LEN, "rounds": self.rounds, "noise": NOISE,
            "measurements": self.measurements,
        }


def tune(budget=DEFAULT_BUDGET, progress=False, **kwargs):
    """Measure this machine's thresholds; returns the profile (not written)."""
    return Tuner(budget, progress=progress, **kwargs).run()
