"""Measured profiles: the Plan thresholds `fastrnn tune` found on this machine.

A profile is a small JSON file in the user's cache directory (platformdirs'
user_cache_dir("fastrnn"), FASTRNN_PROFILE=path elsewhere, FASTRNN_PROFILE=off for
none). It names the CPU model, the ISA and the fastrnn version it was measured with,
the thresholds it found and the measurements behind them. Plan.default() applies it
over the per-ISA defaults only when all three keys match this process; a profile of
another CPU, ISA or version, or one that does not read as a profile (bad JSON, wrong
types, values out of range), is ignored with a warning naming the file and the
reason: a threshold decides which kernel runs, so a file is never trusted blindly.
"""
import json
import os
import platform
import threading
import warnings
from dataclasses import dataclass, field

FORMAT = "fastrnn-profile"
SCHEMA = 1
FILENAME = "profile.json"
# Larger files are not profiles (one is about 10 KB): not read.
MAX_BYTES = 1 << 20
# A threshold no layer reaches: "never" (e.g. no hidden size from which splitting won).
NEVER = 1 << 20


def _fused_batch_limit():
    from fastrnn._kernels.plan import FUSED_BATCH_LIMIT
    return FUSED_BATCH_LIMIT


# The Plan fields a profile may set, with their accepted ranges.
def tuned_ranges():
    return {"fused_max_batch": (0, _fused_batch_limit()),
            "fused_x_min_batch": (1, NEVER),
            "split_min_hidden": (0, NEVER)}


# The one field of a profile's plan that is not an int: {family: fused limit} for
# models whose W_hh exceeds the L2 (Plan.streamed_max_batch).
STREAMED = "streamed_max_batch"


def _streamed(value):
    """The profile's {family: limit}, checked by the rule Plan applies to it."""
    from fastrnn._kernels.plan import _family_limits

    if not isinstance(value, dict) or not value:
        raise ProfileError(f"plan.{STREAMED} must be a non-empty object of family -> int, "
                           f"got {value!r}")
    try:
        _family_limits(value)
    except ValueError as exc:
        raise ProfileError(f"plan.{exc}") from None
    return dict(value)


def cpu_model():
    """The CPU's model name (/proc/cpuinfo on Linux, else what platform reports)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hardware_isa():
    """The widest ISA of fastrnn's kernels this CPU supports, from the feature flags in
    /proc/cpuinfo (the same tests as the C dispatch, without FASTRNN_ISA's cap), or
    None where the flags cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None:
        return None
    flags = set(flags)
    if not {"avx2", "fma", "f16c"} <= flags:
        return "generic"
    if {"avx512f", "avx512vl", "avx512dq", "avx512bw"} <= flags:
        return "avx512"
    return "avx2"


def fastrnn_version():
    # the package's version string only (the kernels import nothing else of fastrnn)
    import fastrnn
    return fastrnn.__version__


def default_path():
    """Where `fastrnn tune` writes and models read the profile, or None when
    FASTRNN_PROFILE=off."""
    env = os.environ.get("FASTRNN_PROFILE", "").strip()
    if env.lower() == "off":
        return None
    if env:
        return os.path.abspath(os.path.expanduser(env))
    try:
        from platformdirs import user_cache_dir
        base = user_cache_dir("fastrnn", appauthor=False)
    except ImportError:  # the XDG convention platformdirs follows on Linux
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or
                            os.path.join(os.path.expanduser("~"), ".cache"), "fastrnn")
    return os.path.join(base, FILENAME)


class ProfileError(ValueError):
    """A file that does not read as a profile, or one for another machine."""


def validate(data):
    """The thresholds of a parsed profile ({field: int}), or ProfileError saying what is
    wrong with it. Does not check that it belongs to this machine (see `check_key`)."""
    if not isinstance(data, dict):
        raise ProfileError(f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ProfileError(f"'format' must be {FORMAT!r}, got {data.get('format')!r}")
    if data.get("schema") != SCHEMA:
        raise ProfileError(f"'schema' must be {SCHEMA}, got {data.get('schema')!r}")
    for key in ("cpu", "isa", "fastrnn"):
        if not isinstance(data.get(key), str):
            raise ProfileError(f"{key!r} must be a string, got {data.get(key)!r}")
    plan = data.get("plan")
    if not isinstance(plan, dict) or not plan:
        raise ProfileError(f"'plan' must be a non-empty object, got {plan!r}")
    ranges = tuned_ranges()
    values = {}
    for name, value in plan.items():
        if name == STREAMED:
            values[name] = _streamed(value)
            continue
        if name not in ranges:
            raise ProfileError(f"'plan' has an unknown field {name!r} (known: "
                               f"{', '.join(ranges)}, {STREAMED})")
        lo, hi = ranges[name]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ProfileError(f"plan.{name} must be an int in [{lo}, {hi}], got {value!r}")
        values[name] = value
    if "measurements" in data and not isinstance(data["measurements"], list):
        raise ProfileError("'measurements' must be a list, got "
                           f"{type(data['measurements']).__name__}")
    return values


def check_key(data, isa):
    """ProfileError when the profile was measured on another CPU, ISA or version."""
    here = {"cpu": cpu_model(), "isa": isa, "fastrnn": fastrnn_version()}
    names = {"cpu": "CPU", "isa": "ISA", "fastrnn": "fastrnn version"}
    for key, value in here.items():
        if data[key] != value:
            raise ProfileError(f"stale: measured with {names[key]} {data[key]!r}, this "
                               f"process runs {value!r} (run `fastrnn tune` again)")


@dataclass(frozen=True)
class Lookup:
    """What the profile lookup found for one ISA.

    state: 'off' (FASTRNN_PROFILE=off), 'absent' (no file), 'used' or 'ignored'.
    reason: why it was ignored (or where it would be), values: the thresholds to apply
    (empty unless used), data: the parsed file when it parsed.
    """
    path: str = None
    state: str = "absent"
    reason: str = ""
    values: dict = field(default_factory=dict)
    data: dict = None

    def describe(self):
        if self.state == "off":
            return "off (FASTRNN_PROFILE=off)"
        if self.state == "absent":
            return f"none at {self.path} (`fastrnn tune` writes one)"
        if self.state == "used":
            return f"used: {self.path}"
        return f"ignored: {self.path}: {self.reason}"


_cache = {}
_cache_lock = threading.Lock()


def _read(path):
    """(parsed JSON or None, error message or None); the parse is cached on the file's
    bytes, so that models made one after another parse it once."""
    try:
        if not os.path.isfile(path):
            return (None, None) if not os.path.exists(path) else (None, "is not a regular file")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if len(raw) > MAX_BYTES:
        return None, f"is larger than a profile's {MAX_BYTES} bytes"
    with _cache_lock:
        if (path, raw) in _cache:
            return _cache[path, raw]
    try:
        result = json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        result = None, f"is not valid JSON ({exc})"
    with _cache_lock:
        if len(_cache) > 8:
            _cache.clear()
        _cache[path, raw] = result
    return result


def lookup(isa, path=None):
    """The profile for `isa` on this CPU and version, if there is a good one. Never
    raises for a bad file: the reason is in the result."""
    if path is None:
        path = default_path()
        if path is None:
            return Lookup(state="off")
    data, error = _read(path)
    if error is not None:
        return Lookup(path, "ignored", error)
    if data is None:
        return Lookup(path, "absent")
    try:
        values = validate(data)
    except ProfileError as exc:
        return Lookup(path, "ignored", f"corrupt: {exc}")
    try:
        check_key(data, isa)
    except ProfileError as exc:
        return Lookup(path, "ignored", str(exc), data=data)
    return Lookup(path, "used", values=values, data=data)


def apply(plan):
    """`plan` with the profile's thresholds when one for this CPU, ISA and version
    exists (source 'profile PATH'); a bad or stale one is warned about and ignored."""
    found = lookup(plan.isa)
    if found.state == "ignored":
        warnings.warn(f"fastrnn: ignoring the profile {found.path}: {found.reason}",
                      stacklevel=3)
    if found.state != "used":
        return plan
    from dataclasses import replace
    return replace(plan, source=f"profile {found.path}", **found.values)


def write(path, data):
    """Validate `data` as a profile and write it atomically (a temporary file renamed),
    creating the directory."""
    validate(data)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
