"""TorchScript archives (torch.jit.save) read as weights, against torch.jit.load; and
archives whose data.pkl asks for more than inert attribute holders."""
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastrnn
from fastrnn.io import CheckpointError, flatten, load_checkpoint

TOL = 3e-5
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]
CANARY = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fastrnn_ts_canary_{os.getpid()}")


def _modules(torch):
    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(11, 5)
            self.rnn = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True)
            self.fc = torch.nn.Linear(12, 3)

        def forward(self, x):
            y, _ = self.rnn(self.embedding(x))
            return self.fc(y)

    class Cells(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTMCell(5, 4)
            self.gru = torch.nn.GRUCell(5, 4)
            self.rnn = torch.nn.RNNCell(5, 4, nonlinearity="relu")

        def forward(self, x):
            h, c = self.lstm(x)
            return h + self.gru(x) + self.rnn(x)

    return Tagger, Cells


def _save(torch, module, example, how, path):
    scripted = torch.jit.script(module) if how == "script" else torch.jit.trace(module, example)
    torch.jit.save(scripted, str(path))
    return torch.jit.load(str(path))


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("kind,kwargs", [
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3)),
    ("GRU", dict(batch_first=True)),
    ("RNN", dict(nonlinearity="relu", bias=False)),
])
def test_bare_recurrent_modules(torch, tmp_path, how, kind, kwargs):
    class Wrapper(torch.nn.Module):  # a scripted bare nn.LSTM has no single forward
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(5, 6, **kwargs)

        def forward(self, x):
            return self.rnn(x)

    torch.manual_seed(0)
    module = Wrapper().eval()
    x = torch.randn(4, 7, 5)
    loaded = _save(torch, module, x, how, tmp_path / "m.pt")
    overrides = {k: kwargs[k] for k in ("nonlinearity", "batch_first") if k in kwargs}
    model = fastrnn.load(tmp_path / "m.pt", **overrides)
    with torch.no_grad():
        want = loaded(x)
    out, state = model(x.numpy())
    np.testing.assert_allclose(out, want[0].numpy(), atol=TOL, rtol=0)
    h_n = state[0] if kind == "LSTM" else state
    want_h = want[1][0] if kind == "LSTM" else want[1]
    np.testing.assert_allclose(h_n, want_h.numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("how", ["script", "trace"])
def test_a_whole_model_and_prefix(torch, tmp_path, how):
    Tagger, _ = _modules(torch)
    torch.manual_seed(1)
    module = Tagger().eval()
    tokens = torch.randint(0, 11, (6, 2))
    loaded = _save(torch, module, tokens, how, tmp_path / "m.pt")
    model = fastrnn.load(tmp_path / "m.pt")  # one recurrent module: found without prefix
    assert fastrnn.load(tmp_path / "m.pt", prefix="rnn").hidden_size == 6
    tree = load_checkpoint(tmp_path / "m.pt")
    emb, fc = tree["embedding"]["weight"], tree["fc"]
    with torch.no_grad():
        want = loaded(tokens).numpy()
    got = model(emb[tokens.numpy()])[0] @ fc["weight"].T + fc["bias"]
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


@pytest.mark.parametrize("how", ["script", "trace"])
def test_cells_are_listed_and_picked_by_prefix(torch, tmp_path, how):
    _, Cells = _modules(torch)
    torch.manual_seed(2)
    module = Cells().eval()
    x = torch.randn(3, 5)
    loaded = _save(torch, module, x, how, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"3 recurrent modules; pick one with prefix=: 'lstm'.*'gru'.*'rnn'"):
        fastrnn.load(tmp_path / "m.pt")
    with torch.no_grad():
        want = loaded(x).numpy()
    got = 0
    for prefix in ("lstm", "gru", "rnn"):
        extra = {"nonlinearity": "relu"} if prefix == "rnn" else {}
        model = fastrnn.load(tmp_path / "m.pt", prefix=prefix, **extra)
        got = got + model.step(x.numpy())[0]
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def _with_data_pkl(src, dst, payload):
    """A copy of a TorchScript archive whose data.pkl is replaced by `payload`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = payload if info.filename.endswith("/data.pkl") else zin.read(info.filename)
            zout.writestr(info.filename, data)
    return dst


class _Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


def test_data_pkl_naming_os_system_is_refused(tmp_path):
    src = os.path.join(os.path.dirname(__file__), "data", "checkpoints", "torchscript.pt")
    path = _with_data_pkl(src, tmp_path / "evil.pt",
                          pickle.dumps(_Evil(os.system, f"touch {CANARY}"), protocol=2))
    with pytest.raises(CheckpointError, match=r"TorchScript.*refusing the global posix\.system"):
        load_checkpoint(path)
    assert not os.path.exists(CANARY), "code from the file ran"


def test_torch_classes_are_inert(tmp_path):
    """A __torch__ class is only an attribute holder: its state is kept as data, no
    method (of any name) runs, and its code under code/ is never read."""
    src = os.path.join(os.path.dirname(__file__), "data", "checkpoints", "torchscript.pt")
    # __torch__.M instantiated with an argument and given a state that names a function
    payload = (b"\x80\x02c__torch__\nM\nq\x00)\x81}X\x04\x00\x00\x00evilX\x0c\x00\x00\x00"
               b"__setstate__sb.")
    path = _with_data_pkl(src, tmp_path / "inert.pt", payload)
    assert load_checkpoint(path) == {"evil": "__setstate__"}
    payload = b"\x80\x02c__torch__\nM\nq\x00)\x81cposix\nsystem\nb."
    path = _with_data_pkl(src, tmp_path / "evil2.pt", payload)
    with pytest.raises(CheckpointError, match="posix.system"):
        load_checkpoint(path)


def test_torchscript_from_a_file_object(torch, tmp_path):
    module = torch.nn.GRU(3, 4).eval()
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buf)
    buf.seek(0)
    model = fastrnn.load(buf)
    assert isinstance(model, fastrnn.GRU) and "weight_hh_l0" in flatten(model.state_dict())
