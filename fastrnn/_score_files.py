"""`fastrnn score`: a model over a file of sequences on a Dask cluster, partition by
partition, each partition's rows written by the worker that scored it.

Inputs and outputs come in families: .npy (N, T, input_size) padded sequences of full
length -> .npy rows; .npz with `x` and optionally `lengths` -> .npz with `output` (and
`lengths`); Parquet (a file or a directory of files) with a list column, one
partition per row group -> a Parquet dataset (a directory) with the input's other
columns and `output`.

Each partition is written to a temporary name and renamed when complete, so a part
file is either whole or absent: a task retried after its worker died rewrites the same
rows under the same name, and `--resume` re-runs only the partitions without a file.
.npy / .npz outputs are assembled from the parts (in OUTPUT.parts/) when all are done.
Workers read the input and write the parts themselves: with --scheduler, both paths
must be visible to every worker (a shared filesystem).
"""
import hashlib
import json
import os
import uuid
import zipfile

import numpy as np

JOB_FILE = "_fastrnn_job.json"


class JobError(ValueError):
    """A score job that cannot start: bad input, output or resume state."""


def _kind(path):
    lower = str(path).lower()
    if lower.endswith(".npy"):
        return "npy"
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith(".parquet") or lower.endswith(".pq") or os.path.isdir(path):
        return "parquet"
    raise JobError(f"{path}: expected a .npy, .npz or Parquet (.parquet, or a directory of "
                   "Parquet files) input")


# -- reading ------------------------------------------------------------------------------

def _npz_member(path, key):
    """An uncompressed .npz member as a read-only memmap (workers read their rows only);
    a compressed one is read whole."""
    with zipfile.ZipFile(path) as zf:
        name = key + ".npy"
        if name not in zf.namelist():
            raise JobError(f"{path} has no array {key!r}; it holds "
                           f"{[n[:-4] for n in zf.namelist()]}")
        info = zf.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            return np.load(path)[key]
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") \
                + int.from_bytes(local[28:30], "little")
            f.seek(start)
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read(f)
            offset = f.tell()
    if fortran or dtype.hasobject:
        return np.load(path)[key]
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset)


def _padded(spec):
    """(x, lengths or None) of the whole input, memory-mapped."""
    if spec["kind"] == "npy":
        return np.load(spec["path"], mmap_mode="r"), None
    x = _npz_member(spec["path"], "x")
    with np.load(spec["path"]) as z:
        lengths = z["lengths"] if "lengths" in z.files else None
    return x, lengths


def _parquet_files(path):
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if not f.startswith(("_", ".")) and f.endswith((".parquet", ".pq")))
        if not files:
            raise JobError(f"{path} holds no .parquet files")
        return files
    return [path]


def _sequences(column, input_size, where):
    """A pyarrow list<list<number>> (or list<number> for input_size 1) column -> a list
    of (T_i, input_size) float arrays, without going through Python lists."""
    import pyarrow as pa

    arr = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if arr.null_count:
        raise ValueError(f"{where} has {arr.null_count} null sequence(s)")
    if not pa.types.is_list(arr.type) and not pa.types.is_large_list(arr.type):
        raise ValueError(f"{where} must be a list column, got {arr.type}")
    offsets = np.asarray(arr.offsets)
    inner = arr.values.slice(offsets[0], offsets[-1] - offsets[0])
    offsets = offsets - offsets[0]
    if pa.types.is_list(inner.type) or pa.types.is_large_list(inner.type):
        steps = np.diff(np.asarray(inner.offsets))
        if steps.size and (steps.min() != input_size or steps.max() != input_size):
            bad = steps[steps != input_size][0]
            raise ValueError(f"{where} has a step of {bad} features; the model's input_size "
                             f"is {input_size}")
        first = inner.offsets[0].as_py()
        values = inner.values.slice(first, len(inner) * input_size)
    elif input_size == 1:
        values = inner
    else:
        raise ValueError(f"{where} holds flat lists of numbers: one list of input_size="
                         f"{input_size} numbers per step is needed (list<list<float>>)")
    flat = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    flat = flat.reshape(-1, input_size)
    if np.any(np.diff(offsets) == 0):
        raise ValueError(f"{where} has an empty sequence: every sequence needs a step")
    return np.split(flat, offsets[1:-1])


def _output_array(rows, lengths, timed):
    """Rows -> a pyarrow list<float> (last) or list<list<float>> (all, cut to lengths)."""
    import pyarrow as pa

    if not timed:
        rows = np.asarray(rows)
        width = rows.shape[1]
        offsets = np.arange(len(rows) + 1, dtype=np.int32) * width
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(rows.ravel()))
    width = rows[0].shape[1]
    flat = np.concatenate([r.ravel() for r in rows])
    steps = np.arange(int(sum(lengths)) + 1, dtype=np.int32) * width
    inner = pa.ListArray.from_arrays(pa.array(steps), pa.array(flat))
    outer = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(outer), inner)


# -- the job ------------------------------------------------------------------------------

def plan(model_path, input_path, output_path, column=None, partition_size=10000,
         output_kind="last", model=None):
    """Everything the workers need, checked here: the partitions and the paths."""
    if not os.path.exists(input_path):
        raise JobError(f"input {input_path} does not exist")
    kind = _kind(input_path)
    out_kind = {".npy": "npy", ".npz": "npz"}.get(str(output_path).lower()[-4:], "parquet")
    if out_kind != kind:
        wanted = {"npy": "an .npy file", "npz": "an .npz file"}.get(kind, "a directory")
        raise JobError(f"--output {output_path}: the input is {kind}, so the output must be "
                       f"{wanted}")
    spec = {"kind": kind, "path": os.path.abspath(input_path), "output_kind": output_kind,
            "output": os.path.abspath(output_path)}
    if kind == "parquet":
        import pyarrow.parquet as pq

        files = _parquet_files(input_path)
        schema = pq.read_schema(files[0])
        lists = [f.name for f in schema if f.type.__class__.__name__.endswith("ListType")]
        if column is None:
            if len(lists) != 1:
                raise JobError(f"--column must name the column of sequences; {input_path} has "
                               f"list columns {lists}")
            column = lists[0]
        if column not in schema.names:
            raise JobError(f"--column {column!r} is not in {input_path}; its columns are "
                           f"{schema.names}")
        if column not in lists:
            raise JobError(f"--column {column!r} must be a list column, got "
                           f"{schema.field(column).type}")
        parts = [(f, g) for f in files for g in range(pq.ParquetFile(f).num_row_groups)]
        if parts:   # one row's shape, so that a wrong feature size stops the job here
            first = pq.ParquetFile(parts[0][0]).read_row_group(0, columns=[column])
            _sequences(first.column(column).slice(0, 1), model.input_size,
                       f"{input_path} column {column!r}")
        spec.update(column=column, parts=parts, parts_dir=spec["output"])
    else:
        x, lengths = _padded(spec)
        if x.ndim != 3 or x.shape[2] != model.input_size:
            raise JobError(f"{input_path}: x must be (N, T, input_size={model.input_size}) "
                           f"padded sequences, got shape {x.shape}")
        if lengths is not None:
            from fastrnn import _checks
            try:
                _checks.check_lengths(lengths, x.shape[0], x.shape[1])
            except (TypeError, ValueError) as exc:
                raise JobError(f"{input_path}: {exc}") from None
        n = x.shape[0]
        size = max(1, int(partition_size))
        spec.update(rows=n, parts=[(a, min(a + size, n)) for a in range(0, n, size)],
                    parts_dir=spec["output"] + ".parts", has_lengths=lengths is not None)
    spec["fingerprint"] = {
        "model": _digest(model_path), "input": _digest(input_path),
        "output_kind": output_kind, "column": spec.get("column"),
        "parts": [list(map(str, p)) for p in spec["parts"]]}
    return spec


def _digest(path):
    """size, mtime and the sha256 of the first and last MB: enough to tell files apart
    without reading a large input whole."""
    if os.path.isdir(path):
        return [_digest(os.path.join(path, f)) for f in sorted(os.listdir(path))
                if not f.startswith(("_", "."))]
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, st.st_size - (1 << 20)))
        h.update(f.read(1 << 20))
    return [st.st_size, int(st.st_mtime), h.hexdigest()]


def part_path(spec, i):
    ext = "parquet" if spec["kind"] == "parquet" else "npy"
    return os.path.join(spec["parts_dir"], f"part-{i:05d}.{ext}")


def prepare(spec, resume):
    """The parts directory, its job file, and the partitions still to do."""
    parts_dir = spec["parts_dir"]
    job_file = os.path.join(parts_dir, JOB_FILE)
    if os.path.exists(parts_dir) and os.listdir(parts_dir):
        if not resume:
            raise JobError(f"{parts_dir} already exists: pass --resume to finish that job, or "
                           "remove it")
        try:
            with open(job_file) as f:
                before = json.load(f)
        except (OSError, ValueError):
            raise JobError(f"{parts_dir} has no readable {JOB_FILE}: not a fastrnn score "
                           "job's output; remove it or choose another --output") from None
        if before != spec["fingerprint"]:
            raise JobError(f"{parts_dir} holds parts of another job (a different model, "
                           "input, --output-kind, --column or --partition-size); remove it "
                           "or run without --resume elsewhere")
    else:
        os.makedirs(parts_dir, exist_ok=True)
        _write_atomic(job_file, lambda f: f.write(json.dumps(spec["fingerprint"]).encode()))
    for name in os.listdir(parts_dir):   # leftovers of writes that never finished
        if name.startswith(".") and ".tmp-" in name:
            os.remove(os.path.join(parts_dir, name))
    return [i for i in range(len(spec["parts"])) if not os.path.exists(part_path(spec, i))]


def _write_atomic(path, write):
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def run_part(job, spec, i):
    """Score partition i and write its part file; returns (i, rows). Runs on a worker."""
    from fastrnn import dask as fdask

    if spec["kind"] == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path, group = spec["parts"][i]
        table = pq.ParquetFile(path).read_row_group(group)
        seqs = _sequences(table.column(spec["column"]), job.model.input_size,
                          f"{path} row group {group} column {spec['column']!r}")
        rows = fdask._score_ragged(job, seqs, "sequence")
        lengths = [len(s) for s in seqs]
        rest = table.drop_columns([spec["column"]])
        out = rest.append_column("output", _output_array(rows, lengths, job.timed)) \
            if "output" not in rest.column_names else \
            rest.append_column("fastrnn_output", _output_array(rows, lengths, job.timed))
        _write_atomic(part_path(spec, i), lambda f: pq.write_table(out, pa.PythonFile(f)))
        return i, table.num_rows
    x, lengths = _padded(spec)
    a, b = spec["parts"][i]
    rows = fdask._score_padded(job, np.asarray(x[a:b]),
                               None if lengths is None else np.asarray(lengths[a:b]))
    _write_atomic(part_path(spec, i), lambda f: np.save(f, rows))
    return i, b - a


def assemble(spec):
    """.npy / .npz: the parts concatenated into the output file, then the parts removed;
    Parquet: the dataset cleared of temporary files that a killed worker left."""
    if spec["kind"] == "parquet":
        for name in os.listdir(spec["parts_dir"]):
            if name.startswith(".") and ".tmp-" in name:
                os.remove(os.path.join(spec["parts_dir"], name))
        return
    import shutil

    paths = [part_path(spec, i) for i in range(len(spec["parts"]))]
    first = np.load(paths[0], mmap_mode="r")
    shape = (spec["rows"],) + first.shape[1:]
    out = spec["output"]
    if spec["kind"] == "npy":
        def write(f):
            np.lib.format.write_array_header_1_0(
                f, {"descr": np.lib.format.dtype_to_descr(first.dtype),
                    "fortran_order": False, "shape": shape})
            for p in paths:
                f.write(np.ascontiguousarray(np.load(p)).tobytes())
    else:
        def write(f):
            arrays = {"output": np.concatenate([np.load(p) for p in paths])}
            if spec["has_lengths"]:
                arrays["lengths"] = np.asarray(_padded(spec)[1])
            np.savez(f, **arrays)
    _write_atomic(out, write)
    shutil.rmtree(spec["parts_dir"])
