"""Golden outputs of the application models, written by torch (torch==2.13.0):

    python tests/data/make_app_golden.py

- apps/apps_charlm.npz: greedy generation of 500 characters by the bundled model
  (fastrnn/data/charlm.pt) from its prompt, with the logits of every step, computed
  by a torch loop that feeds nn.LSTM one character at a time;
- apps/apps_seq2seq.npz: greedy decoding of a batch of digit strings by
  tests/data/apps/seq2seq_reverse.pt, tokens and per-step logits;
- apps/apps_tagger.npz: tests/data/checkpoints/whole_model.pt (embedding -> bidirectional
  GRU -> linear) over a padded batch: logits at every step and at each last step.
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "examples"))


def charlm():
    from train_charlm import CharLM
    meta = json.load(open(os.path.join(ROOT, "fastrnn", "data", "charlm.json")))
    vocab = meta["vocab"]
    model = CharLM(len(vocab))
    sd = torch.load(os.path.join(ROOT, "fastrnn", "data", "charlm.pt"), weights_only=True)
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    model.eval()
    prompt = meta["prompt"]
    ids = torch.tensor([[vocab.index(c) for c in prompt]])
    tokens, logits_seen = [], []
    with torch.no_grad():
        logits, hx = model(ids)
        logits = logits[0, -1]
        for _ in range(500):
            logits_seen.append(logits.numpy())
            tok = int(logits.argmax())
            tokens.append(tok)
            out, hx = model(torch.tensor([[tok]]), hx)
            logits = out[0, -1]
    text = "".join(vocab[t] for t in tokens)
    np.savez(os.path.join(HERE, "apps", "apps_charlm.npz"), prompt=np.array(prompt), text=np.array(text),
             tokens=np.array(tokens), logits=np.array(logits_seen, np.float32))
    print("charlm:", repr(prompt + text[:80]))


def seq2seq():
    from train_seq2seq import EOS, SOS, Seq2Seq, batch
    model = Seq2Seq()
    model.load_state_dict(torch.load(os.path.join(HERE, "apps", "seq2seq_reverse.pt"), weights_only=True))
    model.eval()
    src, lengths, _, _ = batch(6, torch.Generator().manual_seed(123))
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(model.src_embedding(src), lengths,
                                                         enforce_sorted=False)
        _, state = model.encoder(packed)
        tok = torch.full((6,), SOS)
        seen, steps = [], []
        for _ in range(12):
            out, state = model.decoder(model.tgt_embedding(tok)[None], state)
            logits = model.fc(out[0])
            seen.append(logits.numpy())
            tok = logits.argmax(-1)
            steps.append(tok.numpy())
    np.savez(os.path.join(HERE, "apps", "apps_seq2seq.npz"), src=src.T.numpy(), lengths=lengths.numpy(),
             steps=np.array(steps), logits=np.array(seen), sos=SOS, eos=EOS)
    print("seq2seq:", src.T[0].tolist(), "->", np.array(steps)[:, 0].tolist())


def tagger():
    sys.path.insert(0, HERE)
    from make_checkpoints import Tagger
    model = Tagger()
    model.load_state_dict(torch.load(os.path.join(HERE, "checkpoints", "whole_model.pt"),
                                     weights_only=True))
    model.eval()
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, 20, (4, 9), generator=g)
    lengths = torch.tensor([9, 4, 7, 1])
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(model.embedding(tokens), lengths,
                                                         batch_first=True, enforce_sorted=False)
        rnn = torch.nn.GRU(6, 8, num_layers=2, bidirectional=True, batch_first=True)
        rnn.load_state_dict(model.rnn.state_dict())
        out, _ = rnn(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=9)
        every = model.fc(out)
        mask = (torch.arange(9)[None, :] < lengths[:, None]).float()[..., None]
        every = every * mask
        last = model.fc(out[torch.arange(4), lengths - 1])
    np.savez(os.path.join(HERE, "apps", "apps_tagger.npz"), tokens=tokens.numpy(), lengths=lengths.numpy(),
             every=every.numpy(), last=last.numpy())
    print("tagger ok")


if __name__ == "__main__":
    torch.set_num_threads(1)
    charlm()
    seq2seq()
    tagger()
