"""Whole models around a recurrence, from torch checkpoints of the usual layout:
a sequence classifier / tagger, a token (character) language model with sampling,
and an encoder-decoder with greedy decoding.

Each is built from a checkpoint by naming the prefixes of its parts (`embedding.`,
`rnn.`, `fc.` ...), runs the prompt or the source through the sequence kernel and
steps one token at a time through the streaming path.
"""
import json
import os

import numpy as np

from fastrnn import _checks, io as fio
from fastrnn._load import load as _load_rnn
from fastrnn._load import rename_tensors
from fastrnn.blocks import Embedding, Linear, _ids, one_hot

__all__ = ["SequenceClassifier", "LanguageModel", "Seq2Seq", "bundled_char_model"]

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _tensors(source, rename=None):
    if isinstance(source, (str, bytes, os.PathLike)):
        return rename_tensors(fio.flatten(fio.load_checkpoint(source)), rename)
    return rename_tensors(fio.flatten(dict(source)), rename)


def _part(tensors, prefix, what):
    """The tensors under `prefix`, prefix stripped."""
    prefix = prefix if prefix.endswith(".") else prefix + "."
    part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not part:
        roots = sorted({k.split(".")[0] + "." for k in tensors})
        raise ValueError(f"no {what} weights under prefix {prefix!r}; prefixes present: {roots}")
    return part


def _embedding(tensors, prefix):
    part = _part(tensors, prefix, "embedding")
    w = part.get("weight")
    if w is None or w.ndim != 2:
        raise ValueError(f"{prefix}weight must be a 2-D embedding matrix")
    return Embedding(*w.shape).load_state_dict(part)


def _linear(tensors, prefix):
    part = _part(tensors, prefix, "linear head")
    w = part.get("weight")
    if w is None or w.ndim != 2:
        raise ValueError(f"{prefix}weight must be a 2-D matrix")
    return Linear(w.shape[1], w.shape[0], bias="bias" in part).load_state_dict(part)


class _TokenInput:
    """Token ids -> the recurrence's input: an embedding, or one-hot vectors."""

    def __init__(self, embedding, vocab_size, input_size):
        if embedding is not None:
            if embedding.embedding_dim != input_size:
                raise ValueError(
                    f"the embedding's dimension {embedding.embedding_dim} is not the "
                    f"recurrence's input_size {input_size}")
            self.vocab_size = embedding.num_embeddings
        else:
            if vocab_size != input_size:
                raise ValueError(
                    f"one-hot input of a {vocab_size}-token vocabulary needs input_size "
                    f"{vocab_size}, the recurrence has {input_size}")
            self.vocab_size = vocab_size
        self.embedding = embedding

    def __call__(self, tokens):
        if self.embedding is not None:
            return self.embedding(tokens)
        return one_hot(tokens, self.vocab_size)


def _time_major(rnn, x_btf):
    """(B, T, F) -> what rnn expects."""
    return x_btf if rnn.batch_first else np.ascontiguousarray(x_btf.transpose(1, 0, 2))


def _batch_major(rnn, out):
    return out if rnn.batch_first else out.transpose(1, 0, 2)


class SequenceClassifier:
    """tokens -> embedding (or one-hot) -> recurrence -> linear head, over each
    sequence's last valid step (pool="last": classify) or every step (pool="all": tag).

        clf = SequenceClassifier.from_checkpoint("clf.pt", embedding="embedding.",
                                                 rnn="rnn.", head="fc.")
        logits = clf(tokens, lengths)          # tokens (B, T) ints, padded
    """

    def __init__(self, rnn, head, embedding=None, vocab_size=None, pool="last"):
        if pool not in ("last", "all"):
            raise ValueError(f"pool must be 'last' or 'all', got {pool!r}")
        width = rnn.output_size
        if head.in_features != width:
            raise ValueError(f"the head takes {head.in_features} features, the recurrence "
                             f"gives {width}")
        self.rnn, self.head, self.pool = rnn, head, pool
        self.input = _TokenInput(embedding, vocab_size, rnn.input_size)

    @classmethod
    def from_checkpoint(cls, source, rnn="rnn.", head="fc.", embedding="embedding.",
                        vocab_size=None, pool="last", rename=None, **rnn_overrides):
        tensors = _tensors(source, rename)
        emb = _embedding(tensors, embedding) if embedding else None
        model = _load_rnn(tensors, prefix=rnn, **rnn_overrides)
        return cls(model, _linear(tensors, head), emb, vocab_size, pool)

    def __call__(self, tokens, lengths=None):
        """logits (B, classes) for pool="last", (B, T, classes) for pool="all" (zero
        past each sequence's length)."""
        tokens = _ids(tokens, self.input.vocab_size, "tokens")
        if tokens.ndim != 2 or 0 in tokens.shape:
            raise ValueError(f"tokens must be (batch, time) ids with batch >= 1 and time >= 1, "
                             f"got shape {tokens.shape}")
        x = self.input(tokens)
        out, _ = self.rnn(_time_major(self.rnn, x), lengths=lengths)
        out = _batch_major(self.rnn, out)                      # (B, T, F)
        if self.pool == "all":
            logits = self.head(out)
            if lengths is not None:
                mask = np.arange(out.shape[1])[None, :] < np.asarray(lengths)[:, None]
                logits = logits * mask[..., None]
            return logits
        last = (np.asarray(lengths) if lengths is not None
                else np.full(out.shape[0], out.shape[1])) - 1
        return self.head(out[np.arange(out.shape[0]), last])

    def predict(self, tokens, lengths=None):
        return self(tokens, lengths).argmax(-1)


class LanguageModel:
    """A token (character) language model: embedding or one-hot -> recurrence -> head.

        lm = LanguageModel.from_checkpoint("lm.pt", vocab=list(chars))
        text = lm.generate("The ", 200, temperature=0.8, top_k=20, seed=0)

    Token ids are positions in `vocab`; without a vocabulary, prompts and results are
    lists of ids.
    """

    def __init__(self, rnn, head, embedding=None, vocab=None, vocab_size=None):
        if rnn.bidirectional:
            raise ValueError("a language model generates left to right: the recurrence "
                             "must be unidirectional")
        self.rnn, self.head = rnn, head
        self.vocab = list(vocab) if vocab is not None else None
        size = vocab_size or (len(self.vocab) if self.vocab is not None else None)
        self.input = _TokenInput(embedding, size, rnn.input_size)
        if self.vocab is not None:
            if len(set(self.vocab)) != len(self.vocab):
                raise ValueError("vocab has repeated tokens")
            if len(self.vocab) != self.input.vocab_size or head.out_features != len(self.vocab):
                raise ValueError(
                    f"vocab has {len(self.vocab)} tokens; the model has "
                    f"{self.input.vocab_size} inputs and {head.out_features} outputs")
            self._index = {tok: i for i, tok in enumerate(self.vocab)}

    @classmethod
    def from_checkpoint(cls, source, vocab=None, rnn="rnn.", head="fc.",
                        embedding="embedding.", rename=None, **rnn_overrides):
        tensors = _tensors(source, rename)
        emb = _embedding(tensors, embedding) if embedding else None
        return cls(_load_rnn(tensors, prefix=rnn, **rnn_overrides), _linear(tensors, head),
                   emb, vocab)

    def encode(self, text):
        if self.vocab is None:
            ids = _ids(text, self.input.vocab_size, "prompt")
            if ids.ndim != 1:
                raise ValueError(
                    f"prompt must be a 1-D sequence of token ids, got shape {ids.shape}")
            return ids
        if not isinstance(text, (str, list, tuple)):
            raise TypeError(f"prompt must be a string (or a list of vocabulary tokens), got "
                            f"{type(text).__name__} {text!r}")
        try:
            unknown = sorted({ch for ch in text if ch not in self._index}, key=repr)
        except TypeError:  # an unhashable token: a nested list
            unknown = ["an unhashable token"]
        if unknown:
            raise ValueError(f"the prompt has token(s) outside the vocabulary: {unknown}")
        return np.array([self._index[ch] for ch in text], np.intp)

    def decode(self, ids):
        ids = _ids(ids, self.input.vocab_size, "ids")
        if ids.ndim != 1:
            raise ValueError(f"ids must be a 1-D sequence of token ids, got shape {ids.shape}")
        if self.vocab is None:
            return [int(i) for i in ids]
        return "".join(self.vocab[i] for i in ids)

    def logits(self, tokens):
        """Next-token logits after every position of one sequence: (T, vocab)."""
        ids = self.encode(tokens) if isinstance(tokens, str) else _ids(tokens, self.input.vocab_size)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"tokens must be a non-empty 1-D sequence, got shape {ids.shape}")
        out, _ = self.rnn(self.input(ids[None])[0])
        return self.head(out)

    def generate(self, prompt, n, temperature=1.0, top_k=None, seed=None,
                 return_logits=False):
        """Continue `prompt` by `n` tokens. temperature=0 is greedy (argmax); otherwise
        tokens are drawn from softmax(logits / temperature), over the top_k most likely
        when top_k is given, with a generator seeded by `seed` (reproducible).

        The prompt goes through the sequence kernel in one call; each new token then
        takes one streaming step. Returns the continuation (a string with a vocabulary,
        else a list of ids), and the (n, vocab) logits each token was drawn from with
        return_logits=True.
        """
        n = _checks.check_positive_int(n, "n", minimum=0)
        temperature = _checks.check_real(temperature, "temperature", minimum=0)
        if top_k is not None:
            top_k = _checks.check_positive_int(top_k, "top_k")
        rng = _rng(seed)
        ids = self.encode(prompt)
        if len(ids) == 0:
            raise ValueError("the prompt is empty: generation starts from at least one token")
        out, state = self.rnn(self.input(ids))
        stream = self.rnn.stream(batch=1, hx=_batched_state(state))
        # the per-token loop, with every buffer made once: an input row per token, the
        # stream's output, the head's logits
        table = (self.input.embedding.weight if self.input.embedding is not None
                 else np.eye(self.input.vocab_size, dtype=self.rnn.dtype))
        w, b = self.head.weight, self.head.bias
        y = np.empty(self.rnn.output_size, self.rnn.dtype)
        logits = self.head(out[-1])
        tokens, seen = [], []
        for _ in range(n):
            if return_logits:
                seen.append(logits.copy())
            tok = _sample(logits, temperature, top_k, rng)
            tokens.append(tok)
            stream.step(table[tok], out=y)
            np.dot(w, y, out=logits)
            if b is not None:
                logits += b
        text = self.decode(tokens)
        return (text, np.array(seen).reshape(n, -1)) if return_logits else text


def _rng(seed):
    """numpy's generator for `seed`: None, an int >= 0, a SeedSequence or a Generator."""
    if isinstance(seed, (bool, np.bool_, float, np.floating)):
        raise TypeError(f"seed must be None, an int >= 0 or a numpy Generator, got "
                        f"{type(seed).__name__} {seed!r}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"seed must be None, an int >= 0 or a numpy Generator, got "
                        f"{type(seed).__name__} {seed!r} ({exc})") from None


def _batched_state(state):
    """An unbatched model state ((L, H) arrays) as a batch of one."""
    if isinstance(state, tuple):
        return tuple(s[:, None, :] for s in state)
    return state[:, None, :]


def _sample(logits, temperature, top_k, rng):
    """argmax at temperature 0, else a draw from softmax(logits / temperature) over the
    top_k largest (all by default), by inverse CDF (rng.choice costs 5x more)."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.size:
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cut, z, -np.inf)
    cdf = np.cumsum(np.exp(z - z.max()))
    return min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), z.size - 1)


class Seq2Seq:
    """An encoder-decoder: the encoder's final state starts the decoder, which decodes
    greedily from `sos` until `eos` (or max_len), a batch of sources at once.

        s2s = Seq2Seq.from_checkpoint("s2s.pt", sos=1, eos=2)
        outputs = s2s.greedy(src, lengths, max_len=20)   # one list of ids per source
    """

    def __init__(self, encoder, decoder, head, src_embedding, tgt_embedding, sos, eos):
        if encoder.bidirectional or decoder.bidirectional:
            raise ValueError("Seq2Seq hands the encoder's final state to the decoder: "
                             "both must be unidirectional")
        if (type(encoder) is not type(decoder) or encoder.num_layers != decoder.num_layers
                or encoder.hidden_size != decoder.hidden_size
                or encoder.state_shapes(1) != decoder.state_shapes(1)):
            raise ValueError(f"the encoder {encoder!r} and decoder {decoder!r} must have the "
                             "same kind, layers and sizes to share their state")
        self.encoder, self.decoder, self.head = encoder, decoder, head
        self.src = _TokenInput(src_embedding, None, encoder.input_size)
        self.tgt = _TokenInput(tgt_embedding, None, decoder.input_size)
        for name, tok in (("sos", sos), ("eos", eos)):
            if not 0 <= _checks.check_positive_int(tok, name, minimum=0) < self.tgt.vocab_size:
                raise ValueError(f"{name}={tok} is outside the target vocabulary "
                                 f"[0, {self.tgt.vocab_size})")
        self.sos, self.eos = int(sos), int(eos)

    @classmethod
    def from_checkpoint(cls, source, sos, eos, encoder="encoder.", decoder="decoder.",
                        head="fc.", src_embedding="src_embedding.",
                        tgt_embedding="tgt_embedding.", rename=None):
        tensors = _tensors(source, rename)
        return cls(_load_rnn(tensors, prefix=encoder), _load_rnn(tensors, prefix=decoder),
                   _linear(tensors, head), _embedding(tensors, src_embedding),
                   _embedding(tensors, tgt_embedding), sos, eos)

    def greedy(self, src, lengths=None, max_len=50, return_logits=False):
        """src (B, S) padded ids (lengths: each source's length). Returns one list of
        ids per source, up to (not including) eos; with return_logits, also the
        (steps, B, vocab) logits of every decoding step."""
        max_len = _checks.check_positive_int(max_len, "max_len")
        src = _ids(src, self.src.vocab_size, "src")
        if src.ndim != 2 or 0 in src.shape:
            raise ValueError(f"src must be (batch, time) ids with batch >= 1 and time >= 1, "
                             f"got shape {src.shape}")
        batch = src.shape[0]
        _, state = self.encoder(_time_major(self.encoder, self.src(src)), lengths=lengths)
        stream = self.decoder.stream(batch=batch, hx=state)
        tokens = np.full(batch, self.sos)
        done = np.zeros(batch, bool)
        results = [[] for _ in range(batch)]
        y = np.empty((batch, self.decoder.output_size), self.decoder.dtype)
        seen = []
        for _ in range(max_len):
            stream.step(self.tgt(tokens), out=y)
            logits = self.head(y)
            seen.append(logits)
            tokens = logits.argmax(-1)
            for b in np.flatnonzero(~done):
                if tokens[b] == self.eos:
                    done[b] = True
                else:
                    results[b].append(int(tokens[b]))
            if done.all():
                break
        return (results, np.array(seen)) if return_logits else results


def bundled_char_model():
    """The character-level LSTM shipped with fastrnn (see examples/train_charlm.py):
    2 layers, hidden 256, trained on docstrings of Python's standard library."""
    with open(os.path.join(DATA, "charlm.json")) as f:
        meta = json.load(f)
    return LanguageModel.from_checkpoint(os.path.join(DATA, "charlm.pt"), vocab=meta["vocab"],
                                         rnn=meta["rnn"], head=meta["head"],
                                         embedding=meta["embedding"]), meta
