"""The fuzzer: mutates the seed checkpoints and hands each input to a worker process
(worker.py) under a memory limit, with a timeout; any verdict but a load or a
CheckpointError, a crash (the worker dies) or a hang (no answer in time) is a failure,
saved with its input for replay.

Mutations: byte-level (bit flips, interesting bytes and 4- / 8-byte integers, cuts,
insertions, deletions, duplicated ranges, splices from another seed) on the whole
file, or structure-aware: one record of a zip (data.pkl, a storage, an .npy) mutated
and the archive rewritten valid, pickle opcodes inserted into data.pkl, the numbers of
a safetensors header replaced. Input i of seed s is a function of (s, i) only.
"""
import io
import os
import random
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")
# What a worker may take beyond what it uses after import and warm-up. Every seed is
# under 5 KB and a mutation adds at most a few hundred bytes, so a correct reader and
# model stay far below this; the largest legal allocation from a small file is the
# stride-0 expansion allowance (2**24 elements, 128 MB in float64, and its copies).
HEADROOM = 512 << 20
TIMEOUT = 10.0

INTERESTING8 = [0, 1, 0x7F, 0x80, 0xFF]
INTERESTING32 = [0, 1, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 28]
INTERESTING64 = [0xFFFFFFFFFFFFFFFF, 1 << 63, (1 << 63) - 1, 1 << 40, 1 << 32]
# opcodes that build, store or nest: what a hostile pickle reaches for
PICKLE_OPS = [b"(", b")", b"]", b"}", b"t", b"l", b"d", b"e", b"u", b"s", b"a", b"0", b"2",
              b"1", b"R", b"b", b"Q", b"\x81", b"\x85", b"\x86", b"\x87", b"\x88", b"N",
              b"q\xff", b"h\x00", b"r\xff\xff\xff\x7f", b"j\x00\x00\x00\x00", b"\x94",
              b"\x95\xff\x00\x00\x00\x00\x00\x00\x00", b"K\xff", b"J\xff\xff\xff\xff",
              b"X\xff\xff\x00\x00", b"\x8a\x08", b"\x8b\xff\xff\xff\xff", b"ctorch\nSize\n",
              b"ccollections\nOrderedDict\n", b"ctorch._utils\n_rebuild_tensor_v2\n"]


def load_seeds(folder=SEEDS):
    seeds = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            seeds.append((name, f.read()))
    if not seeds:
        raise RuntimeError(f"no seed files in {folder}")
    return seeds


def _mutate_bytes(data, rng, seeds, rounds):
    data = bytearray(data)
    for _ in range(rounds):
        n = len(data)
        at = rng.randrange(n) if n else 0
        kind = rng.randrange(10)
        if kind == 0 and n:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1 and n:
            data[at] = rng.choice(INTERESTING8)
        elif kind == 2 and n >= 4:
            at = min(at, n - 4)
            data[at:at + 4] = struct.pack(rng.choice("<>") + "I", rng.choice(INTERESTING32))
        elif kind == 3 and n >= 8:
            at = min(at, n - 8)
            data[at:at + 8] = struct.pack(rng.choice("<>") + "Q", rng.choice(INTERESTING64))
        elif kind == 4 and n > 1:
            data = data[:max(1, at)]
        elif kind == 5:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif kind == 6 and n > 1:
            del data[at:at + rng.randrange(1, 33)]
        elif kind == 7 and n:
            chunk = data[at:at + rng.randrange(1, 65)]
            to = rng.randrange(n)
            data[to:to] = chunk
        elif kind == 8:
            other = rng.choice(seeds)[1]
            start = rng.randrange(len(other))
            data[at:at + rng.randrange(0, 65)] = other[start:start + rng.randrange(1, 129)]
        elif n:
            data[at] = rng.randrange(256)
    return bytes(data)


def _rezip(data, rng, seeds):
    """One record of the archive mutated (data.pkl and .npy records most often), the
    archive written again, valid: the fuzz reaches the pickle / npy parsers."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        records = [(i, z.read(i.filename)) for i in z.infolist()]
    weights = [8 if i.filename.endswith(("data.pkl", ".npy")) else 1 for i, _ in records]
    pick = rng.choices(range(len(records)), weights)[0]
    info, body = records[pick]
    if info.filename.endswith("data.pkl") and rng.random() < 0.5:
        body = bytearray(body)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(2, len(body))
            body[at:at] = rng.choice(PICKLE_OPS)
        body = bytes(body)
    else:
        body = _mutate_bytes(body, rng, seeds, rng.randrange(1, 4))
    records[pick] = (info, body)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info, body in records:
            z.writestr(info.filename, body, compress_type=info.compress_type)
    return out.getvalue()


_NUMBER = re.compile(rb"\d+")


def _safetensors_header(data, rng):
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n]
    spans = [m.span() for m in _NUMBER.finditer(header)]
    if not spans:
        return data
    for _ in range(rng.randrange(1, 3)):
        a, b = rng.choice(spans)
        value = str(rng.choice(INTERESTING32 + INTERESTING64 + [0, 1, 2, 3])).encode()
        header = header[:a] + value + header[b:]
        spans = [m.span() for m in _NUMBER.finditer(header)]
    return len(header).to_bytes(8, "little") + header + data[8 + n:]


def mutate(seeds, rng):
    """(seed name, how, mutated bytes)."""
    name, data = rng.choice(seeds)
    roll = rng.random()
    if data.startswith(b"PK") and roll < 0.6:
        try:
            return name, "record", _rezip(data, rng, seeds)
        except (zipfile.BadZipFile, ValueError):
            pass
    if name.endswith(".safetensors") and roll < 0.5:
        return name, "header", _safetensors_header(data, rng)
    return name, "bytes", _mutate_bytes(data, rng, seeds, rng.choice([1, 1, 2, 3, 4, 8]))


class Worker:
    """A worker process; check(path) -> its verdict, or FAIL crash / FAIL hang (after
    which the worker is replaced)."""

    script = os.path.join(HERE, "worker.py")

    def __init__(self, headroom=HEADROOM, warmup=()):
        self.headroom, self.warmup = headroom, list(warmup)
        self.proc = None

    def _start(self):
        import fastrnn
        env = dict(os.environ)
        here = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
        env["PYTHONPATH"] = os.pathsep.join([here] + [p for p in [env.get("PYTHONPATH")] if p])
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, self.script, str(self.headroom)] + self.warmup,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=env,
            text=True, bufsize=1)
        ready = self._answer(120.0)
        if ready != "READY":
            raise RuntimeError(f"the fuzz worker did not start: {ready}")

    def _answer(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            return f"FAIL hang (no answer in {timeout:.0f} s)"
        line = self.proc.stdout.readline()
        if line:
            return line.rstrip("\n")
        code = self.proc.wait()
        self.stderr.seek(0)
        tail = self.stderr.read().decode("utf-8", "replace").strip().splitlines()[-6:]
        self.proc = None
        why = f"signal {-code}" if code < 0 else f"exit status {code}"
        return f"FAIL crash ({why}): " + " | ".join(tail)

    def check(self, path, timeout=TIMEOUT):
        if self.proc is None:
            self._start()
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        return self._answer(timeout)

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait()
            self.proc = None


def run(inputs=None, minutes=None, seed=0, out=None, headroom=HEADROOM, timeout=TIMEOUT,
        log=None):
    """Fuzz until `inputs` inputs or `minutes` have passed (whichever first). Returns
    (Counter of verdicts, [(index, seed name, how, verdict, saved path)])."""
    if inputs is None and minutes is None:
        raise ValueError("give inputs= or minutes=")
    seeds = load_seeds()
    deadline = time.monotonic() + minutes * 60 if minutes is not None else float("inf")
    work = tempfile.mkdtemp(prefix="fastrnn-fuzz-")
    worker = Worker(headroom, [os.path.join(SEEDS, n) for n, _ in seeds if n.endswith(".pt")][:1])
    counts, failures = Counter(), []
    i = 0
    try:
        while (inputs is None or i < inputs) and time.monotonic() < deadline:
            name, how, data = mutate(seeds, random.Random(f"{seed}:{i}"))
            path = os.path.join(work, "input")
            with open(path, "wb") as f:
                f.write(data)
            verdict = worker.check(path, timeout)
            counts[verdict.split()[0]] += 1
            if verdict.startswith("FAIL"):
                saved = None
                if out is not None:
                    os.makedirs(out, exist_ok=True)
                    saved = os.path.join(out, f"seed{seed}-input{i}-{name}")
                    shutil.copyfile(path, saved)
                failures.append((i, name, how, verdict, saved))
                if log:
                    log(f"input {i} ({name}, {how}): {verdict}" + (f" -> {saved}" if saved else ""))
            i += 1
            if log and i % 1000 == 0:
                log(f"{i} inputs: {dict(counts)}")
    finally:
        worker.close()
        shutil.rmtree(work, ignore_errors=True)
    return counts, failures


def replay(paths, headroom=HEADROOM, timeout=TIMEOUT):
    """The verdict for each saved input."""
    worker = Worker(headroom)
    try:
        return [(p, worker.check(os.path.abspath(p), timeout)) for p in paths]
    finally:
        worker.close()
