"""Write the fuzzer's seed checkpoints with torch (run once; the seeds are committed):
small LSTM / GRU / RNN state dicts in torch.save's zip and legacy formats, a
safetensors file and an .npz, so that every reader starts from a real file.

    python -m tests.fuzz.make_seeds
"""
import os

import numpy as np
import torch

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def main():
    torch.manual_seed(0)
    os.makedirs(SEEDS, exist_ok=True)
    models = {
        "lstm": torch.nn.LSTM(3, 4, num_layers=2),
        "lstm_proj_bidir": torch.nn.LSTM(2, 4, proj_size=2, bidirectional=True),
        "gru": torch.nn.GRU(3, 4, bias=False),
        "rnn_relu": torch.nn.RNN(2, 3, nonlinearity="relu", batch_first=True),
        "grucell": torch.nn.GRUCell(2, 3),
    }
    for name, m in models.items():
        sd = m.state_dict()
        torch.save(sd, os.path.join(SEEDS, f"{name}.pt"))
    # legacy stream, half-precision storage, a training checkpoint around a module
    torch.save(models["lstm"].state_dict(), os.path.join(SEEDS, "lstm_legacy.pt"),
               _use_new_zipfile_serialization=False)
    torch.save({k: v.half() for k, v in models["gru"].state_dict().items()},
               os.path.join(SEEDS, "gru_half_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save({"model": {f"rnn.{k}": v.bfloat16() for k, v in
                          models["rnn_relu"].state_dict().items()}, "epoch": 3, "lr": 0.1},
               os.path.join(SEEDS, "training_bf16.pt"))
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in models["lstm_proj_bidir"].state_dict().items()},
              os.path.join(SEEDS, "lstm_proj_bidir.safetensors"))
    np.savez(os.path.join(SEEDS, "gru.npz"),
             **{k: v.numpy() for k, v in models["gru"].state_dict().items()})
    np.savez_compressed(os.path.join(SEEDS, "lstm_compressed.npz"),
                        **{k: v.numpy() for k, v in models["lstm"].state_dict().items()})


if __name__ == "__main__":
    main()
