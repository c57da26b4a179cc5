"""Issue 18's findings as regression tests: reader memory bounded by the file (under a
resource limit), every problem with a file's content a CheckpointError naming the key,
and application / CLI arguments refused with messages that name them."""
import io
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
from helpers import make_model

import fastrnn
from fastrnn import apps, cli
from fastrnn.blocks import Embedding, Linear, one_hot
from fastrnn.io import CheckpointError, load_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
CKPT = os.path.join(HERE, "data", "checkpoints")


def _rezip(src, dst, edit):
    """A copy of the torch zip `src` with edit(name, bytes) -> bytes applied to each record."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))
    return dst


def _huge_memo_checkpoint(path):
    """A real GRU checkpoint (3.5 KB) whose pickle's first memo store is at index
    2**32 - 16 instead of 0: Python's unpickler would grow its memo table to ~32 GB."""
    def edit(name, data):
        if name.endswith("data.pkl"):
            at = data.index(b"q\x00")  # BINPUT 0
            return data[:at] + b"r" + struct.pack("<I", 2**32 - 16) + data[at + 2:]
        return data
    return _rezip(os.path.join(CKPT, "gru_state_dict.pt"), path, edit)


def test_huge_memo_index_is_refused_within_a_memory_limit(tmp_path):
    """Refused by the pre-scan, in a child process whose address space is capped at
    what it uses after import + 256 MB: a regression fails (MemoryError, or a
    CheckpointError that does not name the memo) rather than eating memory."""
    path = _huge_memo_checkpoint(tmp_path / "memo.pt")
    assert os.path.getsize(path) < 4096
    child = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {os.path.dirname(os.path.dirname(fastrnn.__file__))!r})
        from fastrnn.io import CheckpointError, load_checkpoint
        with open("/proc/self/status") as f:
            vm = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize")][0]
        resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
        try:
            load_checkpoint({str(path)!r})
        except CheckpointError as exc:
            print(exc)
            sys.exit(0 if "memo index" in str(exc) else 3)
        sys.exit(4)
    """)
    res = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    assert "4294967280" in res.stdout and "memo.pt" in res.stdout


def _zip_pickle(tmp_path, pkl):
    path = tmp_path / "x.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", b"little")
    return path


@pytest.mark.parametrize("pkl,match", [
    (b"\x80\x02}r\xff\xff\xff\x0f.", r"LONG_BINPUT at byte 3 names memo index 268435455"),
    (b"\x80\x02}q\x00j\xff\xff\xff\x7f.", r"LONG_BINGET .* memo index 2147483647"),
    (b"\x80\x02}p99999999999\n.", r"PUT .* memo index 99999999999"),
    (b"\x80\x02" + b"(" * 300 + b")" + b"t" * 300 + b".", "more than 256 marks"),
    (b"\x80\x04\x95\xff\xff\xff\xff\x00\x00\x00\x00}.", "frame at byte 2 claims 4294967295"),
    (b"\x80\x02X\xff\xff\xff\x7fabc.", "corrupt pickle.*bytes"),
    (b"\x80\x02\x8e\xff\xff\xff\xff\xff\xff\xff\x00abc.", "corrupt pickle"),
    (b"\x80\x02}q\x00", "before seeing STOP"),
    (b"\x80\x02ccollections\nOrderedDict\n)\x81.", "NEWOBJ at byte"),
    (b"\x80\x02(ccollections\nOrderedDict\no.", "OBJ at byte"),
    (b"\x80\x02\x82\x01.", "EXT1"),
    (b"\x80\x02Pabc\n.", "PERSID"),
    (b"\x80\x05\x97.", "NEXT_BUFFER"),
])
def test_pickle_prescan_refusals(tmp_path, pkl, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(_zip_pickle(tmp_path, pkl))
    assert "x.pt" in str(info.value)


def test_huge_memo_index_in_a_legacy_stream(tmp_path):
    """The legacy format's several pickles are each pre-scanned in place."""
    path = tmp_path / "legacy.pt"
    path.write_bytes(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02}r"
                     + struct.pack("<I", 2**32 - 1) + b".")
    with pytest.raises(CheckpointError, match="memo index 4294967295"):
        load_checkpoint(path)


def test_prescan_accepts_every_real_checkpoint():
    for name in sorted(os.listdir(CKPT)):
        if name.endswith((".pt", ".safetensors")) and name != "torchscript.pt":
            load_checkpoint(os.path.join(CKPT, name))


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_npy_headers_checked_against_the_record(tmp_path):
    good = _npy(np.arange(6, dtype=np.float32).reshape(2, 3))
    lying = good.replace(b"(2, 3)", b"(200000000, 300000)")  # 240 GB claimed
    for data, match in [(lying, r"\(200000000, 300000\) and dtype float32 need 240000000000000"),
                        (good[:-4], "need 24 bytes; the record holds 20"),
                        (good[:8] + b"\xff\xff" + good[10:], "header claims 65535 bytes"),
                        (good[:6] + b"\x07\x00" + good[8:], "version 7.0"),
                        (_npy(np.array([1, "a"], object)), "objects")]:
        (tmp_path / "a.npy").write_bytes(data)
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(tmp_path / "a.npy")
        with zipfile.ZipFile(tmp_path / "a.npz", "w") as z:
            z.writestr("weight_ih_l0.npy", data)
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(tmp_path / "a.npz")


def test_npz_reads_like_numpy(tmp_path, rng):
    arrays = {"a": rng.standard_normal((3, 4)).astype(">f4"),
              "b": np.asfortranarray(rng.standard_normal((2, 5))), "c": np.zeros(0, np.int16)}
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "w.npz", **arrays)
        got = load_checkpoint(tmp_path / "w.npz")
        assert list(got) == list(arrays)
        for k, v in arrays.items():
            assert got[k].dtype == v.dtype.newbyteorder("=") and got[k].dtype.isnative
            np.testing.assert_array_equal(got[k], v)


# ---- every problem with a file's content: a CheckpointError naming the key ------------

def _lstm_dict(rng, **replace):
    sd = OrderedDict((k, v) for k, v in make_model("LSTM", 3, 4)[0].state_dict().items())
    sd.update(replace)
    return sd


@pytest.mark.parametrize("bad,match", [
    (np.arange(48, dtype=np.int64).reshape(16, 3), r"weight_ih_l0 holds int64"),
    (np.zeros((16, 3), np.uint8), r"weight_ih_l0 holds uint8"),
    (np.zeros((16, 3), np.bool_), r"weight_ih_l0 holds bool"),
    (np.zeros((16, 3), np.complex64), r"weight_ih_l0 holds complex64"),
    (np.zeros((16, 0), np.float32), r"no inputs"),
    (np.full((16, 3), np.nan, np.float32), r"weight_ih_l0.*non-finite"),
    (np.zeros((16, 5), np.float32).T, r"gate rows"),
])
def test_bad_weights_in_a_file_are_checkpoint_errors(tmp_path, rng, bad, match):
    path = tmp_path / "w.npz"
    np.savez(path, **_lstm_dict(rng, weight_ih_l0=bad))
    with pytest.raises(CheckpointError, match=match) as info:
        fastrnn.load(path)
    assert "w.npz" in str(info.value)


def test_raw_bytes_and_bad_projection_are_checkpoint_errors(tmp_path, rng):
    path = tmp_path / "w.npz"
    raw = np.frombuffer(b"\x01" * 64, "S1").reshape(16, 4)
    np.savez(path, **_lstm_dict(rng, weight_hh_l0=raw))
    with pytest.raises(CheckpointError, match=r"weight_hh_l0 holds \|S1"):
        fastrnn.load(path)
    np.savez(path, **_lstm_dict(rng, weight_hr_l0=np.zeros(4, np.float32)))
    with pytest.raises(CheckpointError, match="weight_hr_l0 must be 2-D"):
        fastrnn.load(path)
    np.savez(path, **_lstm_dict(rng, weight_hr_l0=np.zeros((4, 4), np.float32)))
    with pytest.raises(CheckpointError, match=r"projects to 4, which must lie in \[1, hidden"):
        fastrnn.load(path)
    np.savez(path, **_lstm_dict(rng, weight_hh_l1=np.zeros((16, 4), np.float32)))
    with pytest.raises(CheckpointError, match="w.npz"):
        fastrnn.load(path)
    np.savez(path, embedding=np.zeros((3, 3), np.float32))
    with pytest.raises(CheckpointError, match="no LSTM / GRU / RNN weights"):
        fastrnn.load(path)


def test_a_mapping_is_told_the_same(rng):
    with pytest.raises(ValueError, match="weight_ih_l0 holds int64"):
        fastrnn.load(_lstm_dict(rng, weight_ih_l0=np.zeros((16, 3), np.int64)))
    with pytest.raises(ValueError, match=r"weight_ih_l0.*non-finite") as info:
        fastrnn.load(_lstm_dict(rng, weight_ih_l0=np.full((16, 3), np.inf, np.float32)))
    assert not isinstance(info.value, CheckpointError)  # the caller's own arrays


# ---- application and CLI arguments ----------------------------------------------------

VOCAB = list("abcde")


@pytest.fixture(scope="module")
def lm():
    rnn = make_model("LSTM", 4, 6)[0]
    return apps.LanguageModel(rnn, Linear(6, 5), Embedding(5, 4), vocab=VOCAB)


@pytest.fixture(scope="module")
def lm_ids():
    rnn = make_model("GRU", 5, 6)[0]
    return apps.LanguageModel(rnn, Linear(6, 5), None, vocab_size=5)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"temperature": float("nan")}, ValueError, "temperature must be >= 0 and finite, got nan"),
    ({"temperature": float("inf")}, ValueError, "temperature must be >= 0 and finite, got inf"),
    ({"temperature": "hot"}, TypeError, "temperature must be a real number, got str 'hot'"),
    ({"temperature": True}, TypeError, "temperature must be a real number, got bool"),
    ({"n": 2.5}, TypeError, "n must be an int, got float 2.5"),
    ({"n": -1}, ValueError, "n must be an int >= 0, got -1"),
    ({"n": True}, ValueError, "n must be an int >= 0, got True"),
    ({"top_k": 2.5}, TypeError, "top_k must be an int, got float 2.5"),
    ({"top_k": 0}, ValueError, "top_k must be an int >= 1, got 0"),
    ({"seed": -3}, ValueError, "seed must be None, an int >= 0 or a numpy Generator, got int -3"),
    ({"seed": 1.5}, TypeError, "seed must be None, an int >= 0 .* got float 1.5"),
    ({"prompt": 5}, TypeError, "prompt must be a string .* got int 5"),
    ({"prompt": "abz"}, ValueError, r"outside the vocabulary: \['z'\]"),
])
def test_generate_arguments(lm, kwargs, exc, match):
    args = dict(prompt="ab", n=3)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        lm.generate(args.pop("prompt"), args.pop("n"), **args)


def test_generate_is_checked_before_running(lm):
    assert lm.generate("ab", 0) == ""
    assert len(lm.generate("ab", np.int64(4), temperature=np.float32(0.5), top_k=np.int32(2),
                           seed=np.int64(1))) == 4


def test_generate_and_decode_without_a_vocabulary(lm_ids):
    with pytest.raises(TypeError, match="prompt must hold integer token ids"):
        lm_ids.generate("ab", 3)
    with pytest.raises(ValueError, match=r"prompt must be a 1-D sequence of token ids, got shape"):
        lm_ids.generate(3, 3)
    with pytest.raises(ValueError, match=r"prompt must lie in \[0, 5\)"):
        lm_ids.generate([1, 7], 3)
    assert len(lm_ids.generate([1, 2], 3, temperature=0)) == 3
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 5\).* 1000000"):
        lm_ids.decode([10**6])


def test_decode_and_logits(lm):
    assert lm.decode([0, 4, 1]) == "aeb"
    assert lm.decode([]) == ""
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 5\) .*from 0 to 1000000"):
        lm.decode([0, 10**6])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 5\) .*-1"):
        lm.decode([-1])
    with pytest.raises(TypeError, match="ids must hold integer token ids, got dtype float64"):
        lm.decode([1.5])
    with pytest.raises(ValueError, match=r"ids must be a 1-D sequence .* \(1, 2\)"):
        lm.decode([[1, 2]])
    with pytest.raises(ValueError, match=r"tokens must be a non-empty 1-D sequence"):
        lm.logits([[1, 2]])


@pytest.fixture(scope="module")
def s2s():
    enc = make_model("GRU", 4, 6)[0]
    dec = make_model("GRU", 4, 6, seed=1)[0]
    return apps.Seq2Seq(enc, dec, Linear(6, 7), Embedding(9, 4), Embedding(7, 4), sos=1, eos=2)


@pytest.mark.parametrize("args,kwargs,exc,match", [
    ((np.zeros((2, 3), int),), {"max_len": -1}, ValueError, "max_len must be an int >= 0, got -1"),
    ((np.zeros((2, 3), int),), {"max_len": 2.7}, TypeError, "max_len must be an int, got float"),
    ((np.zeros((0, 3), int),), {}, ValueError, r"src must be \(batch, time\) ids with batch >= 1 "
                                               r"and time >= 1, got shape \(0, 3\)"),
    ((np.zeros((2, 0), int),), {}, ValueError, r"src .* got shape \(2, 0\)"),
    ((np.zeros(3, int),), {}, ValueError, r"src .* got shape \(3,\)"),
    ((np.full((2, 3), 9),), {}, ValueError, r"src must lie in \[0, 9\)"),
    ((np.zeros((2, 3)),), {}, TypeError, "src must hold integer token ids, got dtype float64"),
    ((np.zeros((2, 3), int), [3, 2**63]), {}, ValueError,
     r"lengths must lie in \[1, 3\] .*got values from 3 to 9223372036854775808"),
])
def test_seq2seq_greedy_arguments(s2s, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        s2s.greedy(*args, **kwargs)


def test_seq2seq_constructor_and_valid_call(s2s):
    out = s2s.greedy(np.zeros((2, 3), int), [3, 1], max_len=np.int64(4))
    assert len(out) == 2 and all(len(o) <= 4 for o in out)
    for bad, exc, match in [(2.5, TypeError, "sos must be an int, got float 2.5"),
                            (9, ValueError, r"sos=9 is outside the target vocabulary \[0, 7\)")]:
        with pytest.raises(exc, match=match):
            apps.Seq2Seq(s2s.encoder, s2s.decoder, s2s.head, s2s.src.embedding,
                         s2s.tgt.embedding, sos=bad, eos=2)


def test_classifier_arguments():
    rnn = make_model("LSTM", 4, 6)[0]
    clf = apps.SequenceClassifier(rnn, Linear(6, 3), Embedding(5, 4))
    with pytest.raises(ValueError, match=r"tokens must be \(batch, time\) ids .* \(0, 4\)"):
        clf(np.zeros((0, 4), int))
    with pytest.raises(TypeError, match="tokens must hold integer token ids"):
        clf(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 4\].*9223372036854775807"):
        clf(np.zeros((2, 4), int), np.array([1, 2**63 - 1]))
    assert clf(np.zeros((2, 4), int), [4, 2]).shape == (2, 3)


def test_lengths_of_2_63_reported_as_given():
    m = make_model("GRU", 2, 3)[0]
    x = np.zeros((4, 2, 2), np.float32)
    with pytest.raises(ValueError, match="got values from 1 to 9223372036854775808"):
        m(x, lengths=np.array([1, 2**63], np.uint64))
    with pytest.raises(ValueError, match="got values from 1 to 9223372036854775808"):
        m(x, lengths=[1, 2**63])
    with pytest.raises(ValueError, match=r"got values from 1.0 to 1e\+30"):
        m(x, lengths=[1.0, 1e30])


def test_one_hot_num_classes():
    with pytest.raises(TypeError, match="num_classes must be an int, got float 2.5"):
        one_hot([1], 2.5)
    with pytest.raises(ValueError, match="num_classes must be an int >= 1, got 0"):
        one_hot([1], 0)


@pytest.mark.parametrize("argv,match", [
    (["generate", "--temperature", "nan"], "--temperature must be >= 0 and finite, got nan"),
    (["generate", "--temperature", "inf"], "--temperature must be >= 0 and finite, got inf"),
    (["generate", "--temperature", "-1"], "--temperature must be >= 0 and finite, got -1.0"),
    (["generate", "-n", "2.5"], "argument -n: invalid int value: '2.5'"),
    (["generate", "-n", "-2"], "-n must be >= 0, got -2"),
    (["generate", "--top-k", "0"], "--top-k must be >= 1, got 0"),
    (["generate", "--seed", "-1", "-n", "1"], "seed must be None, an int >= 0"),
    (["generate", "--prompt", "\x00", "-n", "1"], "outside the vocabulary"),
    (["bench", "--repeat", "0"], "--repeat must be >= 1, got 0"),
    (["bench", "--hidden", "0"], "expected integers >= 1"),
])
def test_cli_arguments(capsys, argv, match):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize("vocab", ['{"tokens": ["a"]}', "42", '{"vocab": "abc"}'])
def test_cli_generate_vocab_file(capsys, tmp_path, vocab):
    (tmp_path / "v.json").write_text(vocab)
    with pytest.raises(SystemExit):
        cli.main(["generate", "--model", os.path.join(CKPT, "lstm_state_dict.pt"),
                  "--vocab", str(tmp_path / "v.json")])
    assert "expected a JSON list of tokens or an object with a 'vocab' list" in \
        capsys.readouterr().err


def test_cli_inspect_reports_checkpoint_errors(capsys, tmp_path):
    path = _huge_memo_checkpoint(tmp_path / "memo.pt")
    assert cli.main(["inspect", str(path)]) == 1
    assert "memo index" in capsys.readouterr().err


def test_expanded_tensors_share_one_allowance(torch, tmp_path, monkeypatch):
    """Stride-0 tensors may address more than their storages hold only up to
    MAX_EXPANSION elements for the whole file, not per tensor."""
    from fastrnn.io import _unpickle
    monkeypatch.setattr(_unpickle, "MAX_EXPANSION", 1000)
    one = torch.zeros(1).expand(600)
    torch.save({"a": one}, tmp_path / "one.pt")
    assert load_checkpoint(tmp_path / "one.pt")["a"].shape == (600,)
    torch.save({"a": one, "b": torch.ones(1).expand(600)}, tmp_path / "two.pt")
    with pytest.raises(CheckpointError, match=r"beyond the 401 more elements .* \(1000\)"):
        load_checkpoint(tmp_path / "two.pt")
    assert load_checkpoint(tmp_path / "one.pt")["a"].shape == (600,)  # a fresh allowance
