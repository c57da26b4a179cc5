"""Write the golden files in tests/data with torch (run with torch==2.13.0):

    python tests/data/make_golden.py

Each case gives <name>.pt (the module's state_dict, as torch.save writes it) and
<name>.npz (the same weights under "sd/<key>", the config as JSON, the input, the
initial state, the lengths, and torch's output and final states), so parity is
checked without torch installed.
"""
import json
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    "lstm_2layer_bidir": dict(mode="LSTM", input_size=5, hidden_size=8, num_layers=2,
                              bidirectional=True, T=12, B=3),
    "lstm_proj_lengths": dict(mode="LSTM", input_size=4, hidden_size=10, proj_size=3,
                              num_layers=2, T=9, B=4, lengths=[9, 2, 5, 9], hx=True),
    "gru_bidir_lengths": dict(mode="GRU", input_size=6, hidden_size=7, num_layers=1,
                              bidirectional=True, T=10, B=4, lengths=[4, 10, 1, 7]),
    "gru_float64_hx": dict(mode="GRU", input_size=3, hidden_size=5, num_layers=3,
                           dtype="float64", T=15, B=2, hx=True),
    "rnn_relu_batch_first": dict(mode="RNN", nonlinearity="relu", input_size=4,
                                 hidden_size=6, num_layers=2, batch_first=True, T=8, B=3),
    "rnn_tanh_nobias_long": dict(mode="RNN", input_size=2, hidden_size=16, bias=False,
                                 T=300, B=1),
    "lstm_unbatched": dict(mode="LSTM", input_size=3, hidden_size=4, T=6, B=None),
}


def build(cfg):
    kw = {k: cfg[k] for k in ("num_layers", "bias", "batch_first", "bidirectional") if k in cfg}
    kw["dtype"] = getattr(torch, cfg.get("dtype", "float32"))
    cls = getattr(torch.nn, cfg["mode"])
    if cfg["mode"] == "LSTM":
        kw["proj_size"] = cfg.get("proj_size", 0)
    if cfg["mode"] == "RNN":
        kw["nonlinearity"] = cfg.get("nonlinearity", "tanh")
    return cls(cfg["input_size"], cfg["hidden_size"], **kw).eval()


def main():
    for i, (name, cfg) in enumerate(CASES.items()):
        torch.manual_seed(100 + i)
        module = build(cfg)
        dtype = getattr(torch, cfg.get("dtype", "float32"))
        T, B, I = cfg["T"], cfg["B"], cfg["input_size"]
        shape = (T, I) if B is None else ((B, T, I) if cfg.get("batch_first") else (T, B, I))
        x = torch.randn(*shape, dtype=dtype)
        D = 2 if cfg.get("bidirectional") else 1
        L = cfg.get("num_layers", 1)
        P = cfg.get("proj_size") or cfg["hidden_size"]
        hx = None
        arrays = {}
        if cfg.get("hx"):
            h0 = torch.randn(L * D, B, P, dtype=dtype)
            c0 = torch.randn(L * D, B, cfg["hidden_size"], dtype=dtype)
            hx = (h0, c0) if cfg["mode"] == "LSTM" else h0
            arrays["h0"] = h0.numpy()
            if cfg["mode"] == "LSTM":
                arrays["c0"] = c0.numpy()
        with torch.no_grad():
            if cfg.get("lengths"):
                lengths = torch.tensor(cfg["lengths"])
                packed = torch.nn.utils.rnn.pack_padded_sequence(
                    x, lengths, batch_first=bool(cfg.get("batch_first")), enforce_sorted=False)
                out, state = module(packed, hx)
                out, _ = torch.nn.utils.rnn.pad_packed_sequence(
                    out, batch_first=bool(cfg.get("batch_first")), total_length=T)
                arrays["lengths"] = lengths.numpy()
            else:
                out, state = module(x, hx)
        states = state if isinstance(state, tuple) else (state,)
        arrays.update(x=x.numpy(), out=out.numpy(), h_n=states[0].numpy())
        if len(states) == 2:
            arrays["c_n"] = states[1].numpy()
        sd = module.state_dict()
        for k, v in sd.items():
            arrays["sd/" + k] = v.numpy()
        arrays["config"] = np.array(json.dumps(cfg))
        arrays["torch_version"] = np.array(torch.__version__)
        np.savez(os.path.join(HERE, name + ".npz"), **arrays)
        torch.save(sd, os.path.join(HERE, name + ".pt"))
        print(name, {k: v.shape for k, v in arrays.items() if not k.startswith("sd/")})


if __name__ == "__main__":
    main()
