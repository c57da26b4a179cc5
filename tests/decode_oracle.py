"""The Python decode loops fastrnn ran before the compiled ones (fastrnn 0.x apps.py),
kept as test oracles: one stream step, the head in NumPy and the choice of token per
Python iteration. The compiled loops must give the same ids, the same draws for a seed
and the same logits within float32 tolerance."""
import numpy as np

from fastrnn import apps


def generate(lm, prompt, n, temperature=1.0, top_k=None, seed=None):
    """LanguageModel.generate as a Python loop: (ids, (n, vocab) logits)."""
    rng = np.random.default_rng(seed)
    ids = lm.encode(prompt)
    out, state = lm.rnn(lm.input(ids))
    stream = lm.rnn.stream(batch=1, hx=apps._batched_state(state))
    table = (lm.input.embedding.weight if lm.input.embedding is not None
             else np.eye(lm.input.vocab_size, dtype=lm.rnn.dtype))
    logits = lm.head(out[-1])
    tokens, seen = [], []
    for _ in range(n):
        seen.append(logits.copy())
        tok = apps._sample(logits, temperature, top_k, rng)
        tokens.append(tok)
        y = stream.step(table[tok])
        logits = lm.head(y)
    return tokens, np.array(seen).reshape(n, -1)


def greedy(s2s, src, lengths=None, max_len=50):
    """Seq2Seq.greedy as a Python loop over the whole batch (finished sources keep
    running, their tokens ignored): (ids per source, (steps, B, vocab) logits)."""
    src = np.asarray(src)
    batch = src.shape[0]
    _, state = s2s.encoder(apps._time_major(s2s.encoder, s2s.src(src)), lengths=lengths)
    stream = s2s.decoder.stream(batch=batch, hx=state)
    tokens = np.full(batch, s2s.sos)
    done = np.zeros(batch, bool)
    results = [[] for _ in range(batch)]
    seen = []
    for _ in range(max_len):
        y = stream.step(s2s.tgt(tokens))
        logits = s2s.head(y)
        seen.append(logits)
        tokens = logits.argmax(-1)
        for b in np.flatnonzero(~done):
            if tokens[b] == s2s.eos:
                done[b] = True
            else:
                results[b].append(int(tokens[b]))
        if done.all():
            break
    return results, np.array(seen)
