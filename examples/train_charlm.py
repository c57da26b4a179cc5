"""Train the character-level LSTM bundled with fastrnn (fastrnn/data/charlm.pt).

    pip install torch==2.13.0 && python examples/train_charlm.py

Corpus: the docstrings of the Python standard library of the interpreter running this
script (CPython's Lib/, under the PSF License Agreement, a permissive licence; see
https://docs.python.org/3/license.html), printable ASCII only. The text is on every
machine with Python, so training needs nothing from the network.

Model: embedding 48 -> LSTM(48, 256, num_layers=2, batch_first=True) -> linear, saved
as a float16 state_dict (about 1.7 MB) with the vocabulary beside it (charlm.json).
"""
import argparse
import ast
import glob
import json
import os
import sys
import sysconfig
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fastrnn", "data")


class CharLM(torch.nn.Module):
    def __init__(self, vocab_size, embedding_dim=48, hidden_size=256, num_layers=2):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, embedding_dim)
        self.rnn = torch.nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True)
        self.fc = torch.nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens, hx=None):
        out, hx = self.rnn(self.embedding(tokens), hx)
        return self.fc(out), hx


def corpus(limit):
    stdlib = sysconfig.get_paths()["stdlib"]
    texts = []
    for path in sorted(glob.glob(os.path.join(stdlib, "*.py"))):
        try:
            tree = ast.parse(open(path, encoding="utf-8").read())
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 80:
                    texts.append(doc.strip() + "\n\n")
    text = "".join(texts)
    text = "".join(ch for ch in text if ch == "\n" or 32 <= ord(ch) < 127)
    return text[:limit], stdlib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--chars", type=int, default=1_500_000)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    text, stdlib = corpus(args.chars)
    vocab = sorted(set(text))
    index = {ch: i for i, ch in enumerate(vocab)}
    data = torch.tensor([index[ch] for ch in text])
    print(f"corpus: {len(text):,} chars from {stdlib}, vocab {len(vocab)}", flush=True)
    model = CharLM(len(vocab))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    batch, seq = 32, 128
    t0 = time.time()
    for step in range(args.steps):
        starts = torch.randint(0, len(data) - seq - 1, (batch,))
        x = torch.stack([data[s:s + seq] for s in starts])
        y = torch.stack([data[s + 1:s + seq + 1] for s in starts])
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - t0:.0f}s)", flush=True)
    os.makedirs(OUT, exist_ok=True)
    torch.save({k: v.half() for k, v in model.state_dict().items()},
               os.path.join(OUT, "charlm.pt"))
    with open(os.path.join(OUT, "charlm.json"), "w") as f:
        json.dump({"vocab": vocab, "embedding": "embedding.", "rnn": "rnn.", "head": "fc.",
                   "source": "docstrings of the Python standard library "
                             f"(CPython {sys.version.split()[0]} Lib/*.py), PSF License",
                   "prompt": "Return the ",
                   "final_loss": round(loss.item(), 3), "steps": args.steps}, f, indent=1)
    print("saved", os.path.getsize(os.path.join(OUT, "charlm.pt")), "bytes")


if __name__ == "__main__":
    main()
