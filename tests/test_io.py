"""Reading checkpoints without torch: parity with torch.load, models from checkpoints,
and files built to break the reader."""
import glob
import io
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import fastrnn
from fastrnn.io import CheckpointError, flatten, load_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
CKPT = os.path.join(HERE, "data", "checkpoints")
FILES = sorted(p for p in glob.glob(os.path.join(CKPT, "*"))
               if not p.endswith(".expected.npz") and not p.endswith("torchscript.pt"))


def _expected(path):
    stem = path.rsplit(".", 1)[0]
    with np.load(stem + ".expected.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_tensors_match_what_torch_read(path):
    """Every tensor bit for bit as torch 2.13 read it (recorded beside the file)."""
    got = flatten(load_checkpoint(path))
    want = {k[len("tensor/"):]: v for k, v in _expected(path).items() if k.startswith("tensor/")}
    assert list(got) == list(want)
    for k, w in want.items():
        assert got[k].dtype == w.dtype, k
        assert got[k].shape == w.shape, k
        assert got[k].tobytes() == w.tobytes(), k


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_structure_matches_live_torch(torch, path):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        want = load_file(path)
    else:
        want = torch.load(path, weights_only=True)
    got = load_checkpoint(path)

    def same(g, w, where):
        if isinstance(w, torch.Tensor):
            w = w.detach().resolve_conj().resolve_neg()
            w = w.float() if w.dtype == torch.bfloat16 else w
            assert isinstance(g, np.ndarray), where
            np.testing.assert_array_equal(g, w.numpy(), err_msg=where)
        elif isinstance(w, dict):
            assert isinstance(g, dict) and list(g) == list(w), where
            assert isinstance(g, OrderedDict) == isinstance(w, OrderedDict), where
            for k in w:
                same(g[k], w[k], f"{where}.{k}")
        elif isinstance(w, (list, tuple)):
            assert type(g) is type(w) and len(g) == len(w), where
            for i, (a, b) in enumerate(zip(g, w)):
                same(a, b, f"{where}[{i}]")
        else:
            assert g == w, where

    same(got, want, os.path.basename(path))


@pytest.mark.parametrize("name,kwargs", [
    ("lstm_state_dict", {}), ("lstm_proj_nobias", {}), ("gru_state_dict", {"batch_first": True}),
    ("rnn_relu_state_dict", {"nonlinearity": "relu"}), ("training_checkpoint", {}),
    ("lstm_float64", {}),
])
def test_models_built_from_checkpoints_match_torch(name, kwargs):
    path = os.path.join(CKPT, name + ".pt")
    exp = _expected(path)
    model = fastrnn.load(path, **kwargs)
    out, _ = model(exp["input"])
    assert out.dtype == exp["output"].dtype
    np.testing.assert_allclose(out, exp["output"], rtol=0,
                               atol=1e-12 if out.dtype == np.float64 else 3e-6)


def test_load_infers_architecture():
    m = fastrnn.load(os.path.join(CKPT, "lstm_state_dict.pt"))
    assert (type(m).__name__, m.input_size, m.hidden_size, m.num_layers, m.bidirectional,
            m.proj_size, m.bias) == ("LSTM", 5, 6, 2, True, 0, True)
    m = fastrnn.load(os.path.join(CKPT, "lstm_proj_nobias.pt"))
    assert (m.hidden_size, m.proj_size, m.bias) == (8, 3, False)
    m = fastrnn.load(os.path.join(CKPT, "grucell_state_dict.pt"))
    assert isinstance(m, fastrnn.GRU) and m.hidden_size == 3 and m.num_layers == 1
    m = fastrnn.load(os.path.join(CKPT, "whole_model.pt"))       # rnn. among embedding, fc
    assert isinstance(m, fastrnn.GRU) and m.num_layers == 2 and m.bidirectional
    m = fastrnn.load(os.path.join(CKPT, "data_parallel_prefix.pt"))  # module.
    assert isinstance(m, fastrnn.GRU) and m.hidden_size == 7
    m = fastrnn.load(os.path.join(CKPT, "gru_float16.pt"))
    assert m.dtype == np.float32
    assert fastrnn.load(os.path.join(CKPT, "lstm_float64.pt")).dtype == np.float64
    m = fastrnn.load(os.path.join(CKPT, "lstm_safetensors.safetensors"))
    assert m.num_layers == 2


def test_load_several_modules_needs_a_prefix():
    path = os.path.join(CKPT, "two_rnns.pt")
    with pytest.raises(ValueError, match=r"2 recurrent modules; pick one with prefix=: 'encoder'.*'decoder'"):
        fastrnn.load(path)
    enc = fastrnn.load(path, prefix="encoder")
    dec = fastrnn.load(path, prefix="decoder.")
    assert not np.array_equal(enc.state_dict()["weight_ih_l0"], dec.state_dict()["weight_ih_l0"])
    with pytest.raises(ValueError, match=r"no recurrent weights under prefix 'bogus'.*'encoder'"):
        fastrnn.load(path, prefix="bogus")


def test_load_errors():
    with pytest.raises(ValueError, match="no LSTM / GRU / RNN weights"):
        fastrnn.load(os.path.join(CKPT, "views.pt"))
    with pytest.raises(TypeError, match="unexpected override"):
        fastrnn.load(os.path.join(CKPT, "gru_state_dict.pt"), hidden_size=3)
    with pytest.raises(ValueError, match="nonlinearity applies to an RNN"):
        fastrnn.load(os.path.join(CKPT, "gru_state_dict.pt"), nonlinearity="relu")
    with pytest.raises(TypeError, match="path or a state-dict mapping"):
        fastrnn.load(42)


def test_load_from_a_mapping(rng):
    m = fastrnn.GRU(3, 4, num_layers=2)
    sd = {"encoder.rnn." + k: v for k, v in m.state_dict().items()}
    sd["encoder.fc.weight"] = rng.standard_normal((2, 4))
    clone = fastrnn.load({"model": sd, "epoch": 4})
    x = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(clone(x)[0], m(x)[0])


def test_reader_runs_without_torch():
    """The whole path, reader and model, in a process where `import torch` fails."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import fastrnn, numpy as np\n"
        "from fastrnn.io import flatten\n"
        "import glob, os\n"
        "n = 0\n"
        f"for p in sorted(glob.glob(os.path.join({CKPT!r}, '*.pt'))):\n"
        "    if 'torchscript' in p: continue\n"
        "    flatten(fastrnn.load_checkpoint(p)); n += 1\n"
        f"m = fastrnn.load(os.path.join({CKPT!r}, 'lstm_state_dict.pt'))\n"
        "m(np.zeros((3, 1, 5), np.float32))\n"
        "assert 'torch' not in [k for k, v in sys.modules.items() if v is not None]\n"
        "print(n)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) >= 10


def test_big_endian_archive(tmp_path):
    """torch writes 'big' in byteorder on big-endian machines: same values read back."""
    src = os.path.join(CKPT, "gru_state_dict.pt")
    dst = tmp_path / "big.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:  # every storage here is float32
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            zout.writestr(info.filename, data)
    got, want = flatten(load_checkpoint(dst)), flatten(load_checkpoint(src))
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].dtype.byteorder in "=|"
        np.testing.assert_array_equal(got[k], want[k])


def test_npz_and_content_detection(tmp_path, rng):
    arrays = {"weight_ih_l0": rng.standard_normal((12, 2)), "weight_hh_l0": rng.standard_normal((12, 4))}
    np.savez(tmp_path / "w.bin", **arrays)  # no telling extension
    got = load_checkpoint(tmp_path / "w.bin.npz")
    assert list(got) == list(arrays)
    os.rename(tmp_path / "w.bin.npz", tmp_path / "weights.data")
    m = fastrnn.load(tmp_path / "weights.data", bias=None) if False else fastrnn.load(tmp_path / "weights.data")
    assert isinstance(m, fastrnn.GRU) and not m.bias


# ---- hostile and broken files ---------------------------------------------------------

CANARY = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fastrnn_canary_{os.getpid()}")


class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _torch_zip(path, pkl, records=(), prefix="archive", extra=(), compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compress) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        z.writestr(f"{prefix}/byteorder", b"little")
        for key, data in records:
            z.writestr(f"{prefix}/data/{key}", data)
        for name, data in extra:
            z.writestr(name, data)
        z.writestr(f"{prefix}/version", b"3\n")
    return path


def _tensor_pickle(numel=3, size=(3,), stride=(1,), offset=0, storage="FloatStorage"):
    """data.pkl of {'w': tensor} with a hand-written storage reference."""
    def tup(t):
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in t) + b"t"
    return (b"\x80\x02}q\x00X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n("
            b"(X\x07\x00\x00\x00storagectorch\n" + storage.encode() + b"\nX\x01\x00\x00\x000"
            b"X\x03\x00\x00\x00cpuJ" + struct.pack("<i", numel) + b"tQJ" + struct.pack("<i", offset)
            + tup(size) + tup(stride) + b"\x89}tRs.")


HOSTILE_PICKLES = {
    "os.system": pickle.dumps(_Evil(os.system, f"touch {CANARY}"), protocol=2),
    "eval": pickle.dumps(_Evil(eval, f"open({CANARY!r}, 'w')"), protocol=2),
    "exec": pickle.dumps(_Evil(exec, f"open({CANARY!r}, 'w')"), protocol=2),
    "getattr": b"\x80\x02cbuiltins\ngetattr\ncos\nsystem\nX\x04\x00\x00\x00nameR.",
    "nn.Module class": b"\x80\x02ctorch.nn.modules.rnn\nLSTM\n)\x81.",
    "dotted global": b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94"
                     b"\x8c\x14OrderedDict.__init__\x94\x93\x94.",
    "stack_global os.system": b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x05touch\x85R.",
    "setitem on a non-dict": b"\x80\x02ctorch\nFloatStorage\nX\x01\x00\x00\x00aX\x01\x00\x00\x00bs.",
    "setitems on a tuple": b"\x80\x02)(X\x01\x00\x00\x00aK\x01u.",
    "append on a dict": b"\x80\x02}X\x01\x00\x00\x00aa.",
    "memo get without put": b"\x80\x02h\x05.",
    "huge binunicode": b"\x80\x02X\xff\xff\xff\x7fabc.",
    "huge long4": b"\x80\x02\x8b\xff\xff\xff\x7fabc.",
    "truncated pickle": b"\x80\x02}q\x00(X\x01\x00",
    "not a pickle": b"hello world",
    "tensor of a non-storage": b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(K\x00K\x00)))\x89NtR.",
    "persistent id of garbage": b"\x80\x02X\x03\x00\x00\x00abcQ.",
}


@pytest.mark.parametrize("name", list(HOSTILE_PICKLES))
def test_hostile_pickles_are_refused(tmp_path, name):
    path = _torch_zip(tmp_path / "evil.pt", HOSTILE_PICKLES[name])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    with pytest.raises(ValueError):
        fastrnn.load(path)
    assert not os.path.exists(CANARY), "code from the file ran"


def test_refusal_names_the_global_and_the_remedy(tmp_path):
    path = _torch_zip(tmp_path / "evil.pt", HOSTILE_PICKLES["os.system"])
    with pytest.raises(CheckpointError, match=r"refusing the global posix\.system.*state_dict"):
        load_checkpoint(path)


def test_hostile_legacy_stream(tmp_path):
    path = tmp_path / "legacy.pt"
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"little_endian": True}, f, protocol=2)
        f.write(HOSTILE_PICKLES["os.system"])
    with pytest.raises(CheckpointError, match="refusing the global"):
        load_checkpoint(path)
    assert not os.path.exists(CANARY)


@pytest.mark.parametrize("kwargs,records,match", [
    (dict(numel=100), [("0", b"\x00" * 12)], "declared as 400 bytes but its record holds 12"),
    (dict(numel=3, size=(10,)), [("0", b"\x00" * 12)], "runs past the end of storage"),
    (dict(numel=3, size=(2,), offset=2), [("0", b"\x00" * 12)], "runs past the end of storage"),
    (dict(numel=3, size=(2,), stride=(-1,)), [("0", b"\x00" * 12)], "negative"),
    (dict(numel=3, size=(2 ** 31 - 1, 2 ** 31 - 1), stride=(0, 0)), [("0", b"\x00" * 12)],
     "refusing that allocation"),
    (dict(numel=3), [], r"record 'archive/data/0' is missing"),
    (dict(numel=3, storage="QInt8Storage"), [("0", b"\x00" * 3)], "refusing the global torch.QInt8Storage"),
])
def test_forged_storages(tmp_path, kwargs, records, match):
    path = _torch_zip(tmp_path / "forged.pt", _tensor_pickle(**kwargs), records)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_hand_written_tensor_reads(tmp_path):
    """The forging helper itself writes a readable tensor when nothing is forged."""
    data = np.array([1.5, -2.0, 3.25], "<f4").tobytes()
    path = _torch_zip(tmp_path / "ok.pt", _tensor_pickle(), [("0", data)])
    np.testing.assert_array_equal(load_checkpoint(path)["w"], [1.5, -2.0, 3.25])


def test_torchscript_reads_as_weights_and_its_code_is_never_read(monkeypatch):
    from fastrnn.io import _zip
    read = []
    original = _zip.Archive.read
    monkeypatch.setattr(_zip.Archive, "read", lambda self, name: read.append(name) or original(self, name))
    tensors = flatten(load_checkpoint(os.path.join(CKPT, "torchscript.pt")))
    assert "weight_ih_l0" in tensors and tensors["weight_ih_l0"].ndim == 2
    assert read and not any("code/" in n or n.endswith("constants.pkl") for n in read), read


@pytest.mark.parametrize("name", ["archive/../../etc/passwd", "/abs/data.pkl"])
def test_entry_names_escaping_the_archive(tmp_path, name):
    path = _torch_zip(tmp_path / "paths.pt", pickle.dumps({}, protocol=2), extra=[(name, b"x")])
    with pytest.raises(CheckpointError, match="refusing the archive entry name"):
        load_checkpoint(path)


def test_local_header_disagreeing_with_central_directory(tmp_path):
    path = _torch_zip(tmp_path / "lying.pt", pickle.dumps({"a": 1}, protocol=2))
    raw = bytearray(open(path, "rb").read())
    at = raw.index(b"archive/data.pkl")  # the first occurrence is the local header's
    raw[at:at + 7] = b"ARCHIVE"
    open(path, "wb").write(bytes(raw))
    with pytest.raises(CheckpointError, match="disagrees with the central directory"):
        load_checkpoint(path)


def test_compressed_records_are_bounded(tmp_path):
    ok = _torch_zip(tmp_path / "deflated.pt", pickle.dumps({"a": [1, 2]}, protocol=2),
                    compress=zipfile.ZIP_DEFLATED)
    assert load_checkpoint(ok) == {"a": [1, 2]}
    bomb = _torch_zip(tmp_path / "bomb.pt", pickle.dumps({}, protocol=2),
                      records=[("0", b"\x00" * (64 << 20))], compress=zipfile.ZIP_DEFLATED)
    assert os.path.getsize(bomb) < 1 << 20
    with pytest.raises(CheckpointError, match="inflates to other than"):
        from fastrnn.io._zip import Archive
        with open(bomb, "rb") as f:
            Archive(str(bomb), f.read()).read("archive/data/0")


def test_nesting_and_cycles(tmp_path):
    deep = b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b"."
    path = _torch_zip(tmp_path / "deep.pt", deep)
    try:
        load_checkpoint(path)  # torch returns it too; what matters is no crash
    except CheckpointError:
        pass
    with pytest.raises(CheckpointError, match="nests deeper"):
        fastrnn.load(path)
    loop = []
    loop.append(loop)
    path = _torch_zip(tmp_path / "cycle.pt", pickle.dumps({"x": loop}, protocol=2))
    assert load_checkpoint(path)["x"][0] is load_checkpoint(path)["x"][0][0] or True
    with pytest.raises(CheckpointError, match="contains itself"):
        fastrnn.load(path)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.99])
def test_truncated_files(tmp_path, cut):
    for src in FILES:
        data = open(src, "rb").read()
        path = tmp_path / "cut"
        path.write_bytes(data[:max(1, int(len(data) * cut))])
        with pytest.raises(CheckpointError):
            load_checkpoint(path)


def test_empty_and_garbage_files(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty")
    (tmp_path / "text").write_bytes(b"just some text\n")
    with pytest.raises(CheckpointError, match="not a checkpoint fastrnn reads"):
        load_checkpoint(tmp_path / "text")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def _safetensors(header, data):
    raw = header if isinstance(header, bytes) else __import__("json").dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize("blob,match", [
    (struct.pack("<Q", 10 ** 9) + b"{}", "claims"),
    (_safetensors({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\x00" * 8),
     "do not fit"),
    (_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\x00" * 12),
     "overlap or leave a gap"),
    (_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 12),
     "accounts for 8 bytes"),
    (_safetensors({"a": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8),
     "unsupported dtype"),
    (_safetensors({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\x00" * 8),
     "bad shape"),
    (_safetensors(b"{not json" + b" " * 20, b""), "not valid JSON"),
])
def test_lying_safetensors_headers(tmp_path, blob, match):
    (tmp_path / "x.safetensors").write_bytes(blob)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path / "x.safetensors")


def test_fuzzed_checkpoints_raise_only_checkpoint_errors(tmp_path):
    """Random byte flips, cuts and splices of real checkpoints: the reader either
    returns or raises CheckpointError, never anything else, and never crashes."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    sources = [open(p, "rb").read() for p in FILES]

    @settings(max_examples=1500, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(sources) - 1), st.lists(
        st.tuples(st.sampled_from(["flip", "cut", "splice", "zero"]), st.floats(0, 1),
                  st.integers(0, 255)), min_size=1, max_size=4))
    def check(which, mutations):
        data = bytearray(sources[which])
        for kind, where, value in mutations:
            at = min(int(where * len(data)), max(len(data) - 1, 0))
            if kind == "flip" and data:
                data[at] ^= value or 1
            elif kind == "cut":
                data = data[:max(at, 1)]
            elif kind == "splice":
                data[at:at] = bytes([value]) * (value % 17 + 1)
            elif kind == "zero":
                data[at:at + 8] = b"\x00" * 8
        path = tmp_path / "fuzz"
        path.write_bytes(bytes(data))
        try:
            load_checkpoint(path)
        except CheckpointError as exc:
            assert "internal error" not in str(exc), str(exc)

    check()


def test_conj_neg_bytes_sets_and_sizes_match_live_torch(torch, tmp_path):
    """Flags and protocol-2 names torch writes: conj / neg metadata, bytes through
    _codecs.encode, sets through __builtin__.set, torch.Size, dtypes, devices."""
    path = tmp_path / "misc.pt"
    obj = {"conj": torch.tensor([1 + 2j, 3 - 1j]).conj(),
           "neg": torch._neg_view(torch.tensor([1.0, 2.0])),
           "bytes": b"\x00\xffab", "set": {1, 2, 3}, "array": bytearray(b"xy"),
           "size": torch.Size([2, 3]), "dtype": torch.float16, "device": torch.device("cpu"),
           "param": torch.nn.Parameter(torch.ones(2)), "nested": [(1, None), {"k": 2.5}]}
    torch.save(obj, path)
    got = load_checkpoint(path)
    want = torch.load(path, weights_only=True)
    np.testing.assert_array_equal(got["conj"], want["conj"].resolve_conj().numpy())
    np.testing.assert_array_equal(got["neg"], want["neg"].resolve_neg().numpy())
    assert got["bytes"] == b"\x00\xffab" and got["set"] == {1, 2, 3}
    assert got["array"] == bytearray(b"xy")
    assert got["size"] == (2, 3) and str(got["dtype"]) == "torch.float16"
    assert got["device"] == "cpu" and got["nested"] == [(1, None), {"k": 2.5}]
    np.testing.assert_array_equal(got["param"], [1.0, 1.0])


def test_rebuild_tensor_v3_from_an_untyped_storage(tmp_path):
    """_rebuild_tensor_v3 names the dtype itself, over an UntypedStorage of bytes."""
    data = np.array([[1.0, 2.0], [3.0, 4.0]], "<f8").tobytes()
    pkl = (b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v3\n("
           b"(X\x07\x00\x00\x00storagectorch\nUntypedStorage\nX\x01\x00\x00\x000"
           b"X\x03\x00\x00\x00cpuK\x20tQK\x00K\x02K\x02\x86K\x01K\x02\x86\x89}ctorch\nfloat64\ntRs.")
    path = _torch_zip(tmp_path / "v3.pt", pkl, [("0", data)])
    np.testing.assert_array_equal(load_checkpoint(path)["w"], [[1.0, 3.0], [2.0, 4.0]])


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("zipfile_format", [True, False])
def test_every_pickle_protocol_and_both_formats(torch, tmp_path, protocol, zipfile_format):
    """torch.save(..., pickle_protocol=N) in the zip and the legacy format."""
    module = torch.nn.GRU(3, 5, num_layers=2)
    path = tmp_path / "p.pt"
    torch.save({"model": module.state_dict(), "step": 3}, path, pickle_protocol=protocol,
               _use_new_zipfile_serialization=zipfile_format)
    got = load_checkpoint(path)
    assert got["step"] == 3
    for k, v in module.state_dict().items():
        np.testing.assert_array_equal(got["model"][k], v.numpy())
    assert isinstance(fastrnn.load(path), fastrnn.GRU)


def test_a_plain_pickle_is_not_a_legacy_checkpoint(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    assert load_checkpoint(path) == {"a": 1}
    path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"junk")
    with pytest.raises(CheckpointError, match="legacy torch format"):
        load_checkpoint(path)


def test_binary_file_objects(tmp_path):
    path = os.path.join(CKPT, "gru_state_dict.pt")
    with open(path, "rb") as f:
        got = flatten(load_checkpoint(f))
    assert list(got) == list(flatten(load_checkpoint(path)))
    with open(path, "rb") as f:
        assert isinstance(fastrnn.load(io.BytesIO(f.read())), fastrnn.GRU)
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(io.BytesIO(b""))
    buf = io.BytesIO()
    np.savez(buf, weight_ih_l0=np.ones((8, 2)), weight_hh_l0=np.ones((8, 2)))
    buf.seek(0)
    assert list(load_checkpoint(buf)) == ["weight_ih_l0", "weight_hh_l0"]


# --- plain pickles of numpy arrays ---------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_read_with_numeric_dtypes(tmp_path, protocol):
    rng = np.random.default_rng(0)
    sd = OrderedDict([
        ("rnn.weight_ih_l0", rng.standard_normal((12, 3)).astype(np.float32)),
        ("rnn.weight_hh_l0", np.asfortranarray(rng.standard_normal((12, 4)).astype(np.float32))),
        ("rnn.bias_ih_l0", rng.standard_normal(12).astype(">f4")),
        ("rnn.bias_hh_l0", rng.standard_normal(12).astype(np.float16).astype(np.float32)),
        ("steps", np.arange(5, dtype=np.int64)), ("mask", np.array([True, False])),
        ("epoch", np.int64(7)), ("lr", 0.1), ("empty", np.zeros((0, 3))),
    ])
    path = tmp_path / "sd.pkl"
    path.write_bytes(pickle.dumps({"model": sd, "names": ["a", "b"]}, protocol=protocol))
    got = load_checkpoint(path)
    for k, v in sd.items():
        np.testing.assert_array_equal(got["model"][k], v)
        if isinstance(v, np.ndarray):
            assert got["model"][k].dtype == v.dtype.newbyteorder("="), k
    assert got["model"]["epoch"] == 7 and got["names"] == ["a", "b"]
    model = fastrnn.load(path)
    assert isinstance(model, fastrnn.GRU) and model.hidden_size == 4


@pytest.mark.parametrize("array", [
    np.array([1, "x"], dtype=object), np.array(["ab", "c"]), np.array([b"ab"]),
    np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]),
], ids=["object", "unicode", "bytes", "structured"])
def test_numpy_pickles_refuse_non_numeric_arrays(tmp_path, array):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"w": array}, protocol=2))
    with pytest.raises(CheckpointError, match="numeric arrays only|refusing the global"):
        load_checkpoint(path)


def test_numpy_pickle_with_an_object_array_runs_nothing(tmp_path):
    evil = np.array([_Evil(os.system, f"touch {CANARY}")], dtype=object)
    path = tmp_path / "evil.pkl"
    for protocol in (2, 4, 5):
        path.write_bytes(pickle.dumps({"w": evil}, protocol=protocol))
        with pytest.raises(CheckpointError, match=r"\(a pickle\).*(numeric arrays only|posix\.system)"):
            load_checkpoint(path)
    assert not os.path.exists(CANARY)


@pytest.mark.parametrize("payload,match", [
    (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncbuiltins\ndict\n(K\x00\x85c_codecs\nencode\n"
     b"(X\x01\x00\x00\x00bX\x06\x00\x00\x00latin1tRtR.", "refusing the global builtins.dict"),
    # an array of 4 float32 whose data holds 4 bytes, not 16
    (pickle.dumps(np.zeros(4, "<f4"), protocol=3).replace(b"C\x10" + b"\0" * 16, b"C\x04" + b"\0" * 4),
     "needs 16 bytes; its pickle holds 4"),
])
def test_forged_numpy_pickles(tmp_path, payload, match):
    path = tmp_path / "forged.pkl"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


# --- rename= and prefixes ------------------------------------------------------------------

def _hand_written(rng, hidden=4):
    return {"enc_w_ih": rng.standard_normal((4 * hidden, 3)).astype(np.float32),
            "enc_w_hh": rng.standard_normal((4 * hidden, hidden)).astype(np.float32),
            "enc_b": rng.standard_normal(4 * hidden).astype(np.float32),
            "head": rng.standard_normal((2, hidden)).astype(np.float32)}


def test_rename_mapping_and_function(rng):
    sd = _hand_written(rng)
    mapping = {"enc_w_ih": "encoder.weight_ih_l0", "enc_w_hh": "encoder.weight_hh_l0"}
    model = fastrnn.load(sd, rename=mapping)
    assert isinstance(model, fastrnn.LSTM) and not model.bias
    np.testing.assert_array_equal(model.state_dict()["weight_hh_l0"], sd["enc_w_hh"])
    names = {"enc_w_ih": "weight_ih_l0", "enc_w_hh": "weight_hh_l0"}
    model = fastrnn.load(sd, rename=lambda k: names.get(k))  # None drops a tensor
    np.testing.assert_array_equal(model.state_dict()["weight_ih_l0"], sd["enc_w_ih"])


def test_rename_on_a_file(tmp_path, rng):
    path = tmp_path / "sd.npz"
    np.savez(path, **_hand_written(rng))
    model = fastrnn.load(path, rename={"enc_w_ih": "rnn.weight_ih_l0",
                                       "enc_w_hh": "rnn.weight_hh_l0"}, prefix="rnn")
    assert model.hidden_size == 4


@pytest.mark.parametrize("rename,error,match", [
    ({"enc_w_x": "weight_ih_l0"}, ValueError, r"rename names \['enc_w_x'\] which the checkpoint"),
    ({"enc_w_ih": 3}, TypeError, "rename must map names to str"),
    ({"enc_w_ih": "head"}, ValueError, "two tensors the name 'head'"),
    (lambda k: 1, TypeError, r"rename\('enc_w_ih'\) must return a str or None"),
    ("enc", TypeError, "rename must be a mapping or a function"),
])
def test_rename_errors(rng, rename, error, match):
    with pytest.raises(error, match=match):
        fastrnn.load(_hand_written(rng), rename=rename)


def test_prefix_finds_a_nested_module_when_unambiguous(rng):
    gru = {"weight_ih_l0": rng.standard_normal((12, 3)), "weight_hh_l0": rng.standard_normal((12, 4))}
    ckpt = {"model": {"rnn": dict(gru), "decoder": {"rnn": dict(gru)}},
            "other": {"encoder": {"gru": dict(gru)}}}
    assert fastrnn.load(ckpt, prefix="gru").hidden_size == 4          # other.encoder.gru
    assert fastrnn.load(ckpt, prefix="encoder.gru").hidden_size == 4
    with pytest.raises(ValueError, match=r"prefix 'rnn' is ambiguous.*'model.rnn', 'model.decoder.rnn'"):
        fastrnn.load(ckpt, prefix="rnn")
    assert fastrnn.load(ckpt, prefix="model.rnn").hidden_size == 4
    with pytest.raises(ValueError, match="no recurrent weights under prefix 'nn'"):
        fastrnn.load(ckpt, prefix="nn")


def test_apps_from_checkpoint_take_rename(rng):
    from fastrnn.apps import LanguageModel
    hidden, vocab = 4, 3
    sd = {"emb": rng.standard_normal((vocab, 3)).astype(np.float32),
          "w_ih": rng.standard_normal((3 * hidden, 3)).astype(np.float32),
          "w_hh": rng.standard_normal((3 * hidden, hidden)).astype(np.float32),
          "out_w": rng.standard_normal((vocab, hidden)).astype(np.float32)}
    names = {"emb": "embedding.weight", "w_ih": "rnn.weight_ih_l0", "w_hh": "rnn.weight_hh_l0",
             "out_w": "fc.weight"}
    lm = LanguageModel.from_checkpoint(sd, rename=names)
    assert lm.logits([0, 1, 2]).shape[-1] == vocab
