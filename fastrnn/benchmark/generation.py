"""Generation speed: fastrnn's LanguageModel.generate against a torch loop that feeds
nn.LSTM (or GRU / RNN) one token at a time, with the same weights, greedy, side by
side (interleaved rounds)."""
from fastrnn.benchmark import timing
from fastrnn.benchmark.engines import Unavailable, _import
from fastrnn.benchmark.runner import thread_limits


class TorchLoop:
    """embedding -> recurrence -> linear, one token per call, state carried."""

    def __init__(self, lm):
        torch = self.torch = _import("torch")
        rnn = lm.rnn
        if lm.input.embedding is None:
            raise Unavailable("the torch loop is written for models with an embedding")
        emb = lm.input.embedding
        self.embedding = torch.nn.Embedding(emb.num_embeddings, emb.embedding_dim)
        self.embedding.load_state_dict({"weight": torch.from_numpy(emb.weight)})
        kw = dict(num_layers=rnn.num_layers, batch_first=True, bias=rnn.bias)
        if type(rnn).__name__ == "RNN":
            kw["nonlinearity"] = rnn.nonlinearity
        if type(rnn).__name__ == "LSTM":
            kw["proj_size"] = rnn.proj_size
        self.rnn = getattr(torch.nn, type(rnn).__name__)(rnn.input_size, rnn.hidden_size, **kw)
        self.rnn.load_state_dict({k: torch.from_numpy(v) for k, v in rnn.state_dict().items()})
        if len(lm.head.blocks) != 1:
            raise Unavailable("the torch loop is written for a head of one Linear")
        head = lm.head.blocks[0]
        self.fc = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None)
        self.fc.load_state_dict({k: torch.from_numpy(v) for k, v in head.state_dict().items()})
        self.lm = lm

    def generate(self, prompt, n):
        torch = self.torch
        with torch.inference_mode():
            ids = torch.tensor([list(self.lm.encode(prompt))])
            out, hx = self.rnn(self.embedding(ids))
            logits = self.fc(out[0, -1])
            tokens = []
            for _ in range(n):
                tok = int(logits.argmax())
                tokens.append(tok)
                out, hx = self.rnn(self.embedding(torch.tensor([[tok]])), hx)
                logits = self.fc(out[0, -1])
        return self.lm.decode(tokens)


def run_generation(lm, prompt, n=500, threads=1, rounds=5, label="bundled char LSTM"):
    """Records (one per engine) of µs per generated token, greedy; the torch loop's
    text must equal fastrnn's."""
    with thread_limits(threads):
        engines = {"fastrnn": lambda: lm.generate(prompt, n, temperature=0)}
        skipped = None
        try:
            loop = TorchLoop(lm)
            engines["torch"] = lambda: loop.generate(prompt, n)
        except Unavailable as exc:
            skipped = str(exc)
        texts = {name: fn() for name, fn in engines.items()}
        samples = timing.interleaved(engines, rounds=rounds, warmup=1, min_sample=0.0)
    fast = timing.summarize(samples["fastrnn"])["median_s"]
    records = []
    for name in engines:
        stats = timing.summarize(samples[name])
        records.append(dict(case=label, engine=name, threads=threads, tokens=n, **stats,
                            us_per_token=stats["median_s"] / n * 1e6,
                            speedup=stats["median_s"] / fast,
                            same_text=texts[name] == texts["fastrnn"]))
    if skipped:
        records.append(dict(case=label, engine="torch", threads=threads, skipped=skipped))
    return records


# -- the compiled decode loops against their parts and the Python loops they replaced --

def _python_generate(lm, prompt, n):
    """Greedy generation as a Python loop (fastrnn's before the compiled decode loop):
    one stream step, the head's GEMV and an argmax per token."""
    import numpy as np

    from fastrnn import apps
    ids = lm.encode(prompt)
    out, state = lm.rnn(lm.input(ids))
    stream = lm.rnn.stream(batch=1, hx=apps._batched_state(state))
    table = lm.input.embedding.weight
    head = lm.head.blocks[0]
    y = np.empty(lm.rnn.output_size, lm.rnn.dtype)
    logits = head(out[-1])
    tokens = []
    for _ in range(n):
        tok = int(np.argmax(logits))
        tokens.append(tok)
        stream.step(table[tok], out=y)
        np.dot(head.weight, y, out=logits)
        logits += head.bias
    return lm.decode(tokens)


def run_generation_parts(lm, prompt, n=500, threads=1, rounds=5):
    """µs per token of generate (compiled loop), of the Python loop it replaced, and of
    its parts measured alone: one stream step (x and out preallocated) plus the head's
    GEMV (np.dot into a preallocated row). The bar: generate <= 1.25x the parts."""
    import numpy as np
    with thread_limits(threads):
        stream = lm.rnn.stream(batch=1)
        x = lm.input.embedding.weight[0].copy()
        y = np.zeros(lm.rnn.output_size, lm.rnn.dtype)
        head = lm.head.blocks[0]
        logits = np.empty(head.out_features, lm.rnn.dtype)

        def steps():
            for _ in range(n):
                stream.step(x, out=y)

        def gemvs():
            for _ in range(n):
                np.dot(head.weight, y, out=logits)
        engines = {"generate": lambda: lm.generate(prompt, n, temperature=0),
                   "python loop": lambda: _python_generate(lm, prompt, n),
                   "stream step alone": steps, "head GEMV alone": gemvs}
        same = engines["generate"]() == engines["python loop"]()
        samples = timing.interleaved(engines, rounds=rounds, warmup=1, min_sample=0.0)
    us = {k: timing.summarize(v)["median_s"] / n * 1e6 for k, v in samples.items()}
    parts = us["stream step alone"] + us["head GEMV alone"]
    return dict(case="bundled char LSTM", threads=threads, tokens=n, same_text=same,
                **{f"us_{k.replace(' ', '_')}": v for k, v in us.items()},
                us_parts=parts, generate_over_parts=us["generate"] / parts)


def _python_greedy(s2s, src, max_len):
    """Seq2Seq greedy decoding as the Python loop fastrnn ran before: one stream step,
    the head and the bookkeeping per step in Python."""
    import numpy as np

    from fastrnn import apps
    batch = src.shape[0]
    _, state = s2s.encoder(apps._time_major(s2s.encoder, s2s.src(src)))
    stream = s2s.decoder.stream(batch=batch, hx=state)
    tokens = np.full(batch, s2s.sos)
    done = np.zeros(batch, bool)
    results = [[] for _ in range(batch)]
    y = np.empty((batch, s2s.decoder.output_size), s2s.decoder.dtype)
    for _ in range(max_len):
        stream.step(s2s.tgt(tokens), out=y)
        tokens = s2s.head(y).argmax(-1)
        for b in np.flatnonzero(~done):
            if tokens[b] == s2s.eos:
                done[b] = True
            else:
                results[b].append(int(tokens[b]))
        if done.all():
            break
    return results


def grapheme_like_seq2seq(hidden=256, embed=64, vocab=40, seed=0):
    """A GRU encoder-decoder the size of a grapheme-to-phoneme model (random weights;
    eos made unreachable so that every word decodes max_len steps)."""
    import numpy as np

    import fastrnn
    from fastrnn import apps
    from fastrnn.blocks import Embedding, Linear
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(hidden)

    def gru():
        m = fastrnn.GRU(embed, hidden)
        return m.load_state_dict({n: rng.uniform(-k, k, v.shape).astype(np.float32)
                                  for n, v in m.state_dict().items()})
    head = Linear(hidden, vocab)
    head.bias[2] = -1e4
    return apps.Seq2Seq(gru(), gru(), head, Embedding(vocab, embed), Embedding(vocab, embed),
                        sos=1, eos=2)


def run_seq2seq(threads=1, rounds=5, words=100, src_len=8, max_len=20):
    """ms per call of Seq2Seq.greedy (compiled loop) and of the Python loop it replaced:
    one word per call (each of `words` words in turn) and all words in one call."""
    import numpy as np
    s2s = grapheme_like_seq2seq()
    src = np.random.default_rng(1).integers(3, 40, (words, src_len))
    with thread_limits(threads):
        engines = {
            "greedy, one word per call": lambda: [s2s.greedy(src[b:b + 1], max_len=max_len)
                                                  for b in range(words)],
            "python loop, one word per call": lambda: [
                _python_greedy(s2s, src[b:b + 1], max_len) for b in range(words)],
            f"greedy, {words} words per call": lambda: s2s.greedy(src, max_len=max_len),
            f"python loop, {words} words per call": lambda: _python_greedy(s2s, src, max_len),
        }
        same = (engines[f"greedy, {words} words per call"]()
                == engines[f"python loop, {words} words per call"]())
        samples = timing.interleaved(engines, rounds=rounds, warmup=1, min_sample=0.0)
    out = []
    for name, v in samples.items():
        per_word = timing.summarize(v)["median_s"] / words
        out.append(dict(case="GRU seq2seq H=256, 20 steps", engine=name, threads=threads,
                        us_per_word=per_word * 1e6, same_ids=same))
    return out
