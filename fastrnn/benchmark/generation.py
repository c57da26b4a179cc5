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
        head = lm.head
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
