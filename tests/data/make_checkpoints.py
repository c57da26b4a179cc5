"""Write the checkpoints in tests/data/checkpoints with torch (torch==2.13.0):

    python tests/data/make_checkpoints.py

Each <name>.<ext> has a <name>.expected.npz beside it: every tensor of the checkpoint
(flattened dotted keys, as fastrnn.io.flatten names them; bfloat16 widened to float32)
as torch.load reads it, so the reader is checked bit for bit without torch. Models
that a test builds from a checkpoint also get their input and torch's output there.
"""
import os
from collections import OrderedDict

import numpy as np
import torch

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")


def flat(obj, prefix=""):
    out = OrderedDict()
    if isinstance(obj, torch.Tensor):
        t = obj.detach().resolve_conj().resolve_neg()
        out[prefix[:-1]] = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flat(v, f"{prefix}{k}."))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flat(v, f"{prefix}{i}."))
    return out


class Tagger(torch.nn.Module):
    """A whole model: embedding -> bidirectional GRU -> linear head."""

    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(20, 6)
        self.rnn = torch.nn.GRU(6, 8, num_layers=2, bidirectional=True)
        self.fc = torch.nn.Linear(16, 5)


class Seq2Seq(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.LSTM(4, 6)
        self.decoder = torch.nn.LSTM(4, 6)


def save(name, obj, ext="pt", model_input=None, module=None, **kwargs):
    path = os.path.join(HERE, f"{name}.{ext}")
    if ext == "safetensors":
        from safetensors.torch import save_file
        save_file(obj, path)
    else:
        torch.save(obj, path, **kwargs)
    expected = flat(torch.load(path, weights_only=True) if ext != "safetensors"
                    else __import__("safetensors.torch").torch.load_file(path))
    arrays = {"tensor/" + k: v for k, v in expected.items()}
    if model_input is not None:
        with torch.no_grad():
            out = module(model_input)[0]
        arrays["input"] = model_input.numpy()
        arrays["output"] = out.numpy()
    np.savez(os.path.join(HERE, f"{name}.expected.npz"), **arrays)
    print(name, os.path.getsize(path), "bytes")


def main():
    os.makedirs(HERE, exist_ok=True)
    torch.manual_seed(0)
    x = torch.randn(7, 2, 5)
    lstm = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True).eval()
    save("lstm_state_dict", lstm.state_dict(), model_input=x, module=lstm)
    proj = torch.nn.LSTM(5, 8, proj_size=3, bias=False).eval()
    save("lstm_proj_nobias", proj.state_dict(), model_input=x, module=proj)
    gru = torch.nn.GRU(5, 7, batch_first=True).eval()
    save("gru_state_dict", gru.state_dict(), model_input=x.transpose(0, 1).contiguous(),
         module=gru)
    rnn = torch.nn.RNN(5, 4, nonlinearity="relu", num_layers=3).eval()
    save("rnn_relu_state_dict", rnn.state_dict(), model_input=x, module=rnn)
    cell = torch.nn.GRUCell(5, 3)
    save("grucell_state_dict", cell.state_dict())

    # a training checkpoint: model, optimizer state, epoch, under "model."-less keys
    opt = torch.optim.Adam(lstm.parameters())
    lstm(x)[0].sum().backward()
    opt.step()
    save("training_checkpoint", {"model": lstm.state_dict(), "optimizer": opt.state_dict(),
                                 "epoch": 3, "loss": 0.25, "note": "adam", "flags": (True, None)},
         model_input=x, module=lstm)
    tagger = Tagger()
    save("whole_model", tagger.state_dict())
    wrapped = OrderedDict(("module." + k, v) for k, v in gru.state_dict().items())
    save("data_parallel_prefix", wrapped)
    save("two_rnns", Seq2Seq().state_dict())

    # dtypes, views into shared storages, the legacy format, a CRC-less archive
    half = torch.nn.GRU(5, 7).half()
    save("gru_float16", half.state_dict())
    save("gru_bfloat16", torch.nn.GRU(5, 7).to(torch.bfloat16).state_dict())
    dbl = torch.nn.LSTM(5, 6, dtype=torch.float64).eval()
    save("lstm_float64", dbl.state_dict(), model_input=x.double(), module=dbl)
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    save("views", {"base": base, "transposed": base.t(), "sliced": base[2:5, 3:9],
                   "strided": base[::2, ::3], "row": base[4], "scalar": base[1, 1],
                   "empty": base[:0], "ints": torch.arange(5), "mask": torch.tensor([True, False]),
                   "int8": torch.arange(-3, 3, dtype=torch.int8)})
    save("lstm_legacy", lstm.state_dict(), _use_new_zipfile_serialization=False)
    torch.serialization.set_crc32_options(False)
    try:
        save("gru_no_crc", gru.state_dict())
    finally:
        torch.serialization.set_crc32_options(True)
    save("lstm_safetensors", {k: v.contiguous() for k, v in lstm.state_dict().items()},
         ext="safetensors")
    # not weights: a TorchScript archive (code/ and constants.pkl), to be refused
    torch.jit.save(torch.jit.script(torch.nn.GRU(3, 4)), os.path.join(HERE, "torchscript.pt"))


if __name__ == "__main__":
    main()
