"""Train the small encoder-decoder the tests use (tests/data/apps/seq2seq_reverse.pt):
reverse a string of 3 to 8 digits. Synthetic data, nothing downloaded.

    pip install torch==2.13.0 && python examples/train_seq2seq.py

Tokens: 0 = padding, 1 = start (sos), 2 = end (eos), 3..12 = the digits 0..9.
Layout: src_embedding, encoder (LSTM 16 -> 64), tgt_embedding, decoder (LSTM 16 -> 64),
fc (64 -> 13): load it with fastrnn.apps.Seq2Seq.from_checkpoint(path, sos=1, eos=2).
"""
import os

import torch

PAD, SOS, EOS, VOCAB = 0, 1, 2, 13
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                   "apps", "seq2seq_reverse.pt")


class Seq2Seq(torch.nn.Module):
    def __init__(self, emb=16, hidden=64):
        super().__init__()
        self.src_embedding = torch.nn.Embedding(VOCAB, emb)
        self.encoder = torch.nn.LSTM(emb, hidden)
        self.tgt_embedding = torch.nn.Embedding(VOCAB, emb)
        self.decoder = torch.nn.LSTM(emb, hidden)
        self.fc = torch.nn.Linear(hidden, VOCAB)

    def forward(self, src, lengths, tgt_in):
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            self.src_embedding(src), lengths, enforce_sorted=False)
        _, state = self.encoder(packed)
        out, _ = self.decoder(self.tgt_embedding(tgt_in), state)
        return self.fc(out)


def batch(n, generator):
    lengths = torch.randint(3, 9, (n,), generator=generator)
    T = int(lengths.max())
    src = torch.full((T, n), PAD)
    tgt_in = torch.full((T + 1, n), PAD)
    tgt_out = torch.full((T + 1, n), PAD)
    for b in range(n):
        digits = torch.randint(3, 13, (int(lengths[b]),), generator=generator)
        L = len(digits)
        src[:L, b] = digits
        rev = digits.flip(0)
        tgt_in[0, b] = SOS
        tgt_in[1:L + 1, b] = rev
        tgt_out[:L, b] = rev
        tgt_out[L, b] = EOS
    return src, lengths, tgt_in, tgt_out


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = Seq2Seq()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(1200):
        src, lengths, tgt_in, tgt_out = batch(64, g)
        logits = model(src, lengths, tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tgt_out.reshape(-1),
                                                 ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0:
            print(f"step {step} loss {loss.item():.4f}", flush=True)
    print(f"final loss {loss.item():.4f}")
    torch.save(model.state_dict(), OUT)
    print("saved", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
