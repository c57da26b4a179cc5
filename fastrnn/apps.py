"""Whole models around a recurrence, from torch checkpoints of the usual layout:
a sequence classifier, a tagger, a token (character) language model with sampling and
beam search, and an encoder-decoder with greedy decoding and beam search.

Each is built from a checkpoint by naming the prefixes of its parts (`embedding.`,
`rnn.`, `fc.` ...; a head may be a list of Linear prefixes and activation names). The
prompt or the source runs through the sequence kernel; decoding then runs every step
of a call in compiled code (fastrnn._kernels._decode): the embedding row, the stack's
step, the head, the choice of token and the end-of-sequence bookkeeping, without the
GIL and without Python per step.
"""
import json
import os
import threading
from collections import OrderedDict

import numpy as np

from fastrnn import _checks
from fastrnn import io as fio
from fastrnn._load import load as _load_rnn
from fastrnn._load import rename_tensors
from fastrnn.blocks import Activation, Embedding, Head, Linear, _ids, log_softmax, one_hot

__all__ = ["SequenceClassifier", "SequenceTagger", "LanguageModel", "Seq2Seq",
           "bundled_char_model"]

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


def _head(tensors, spec):
    """A head from a checkpoint: one Linear's prefix ("fc."), or a list of Linear
    prefixes and activation names (["fc1.", "relu", "fc2."])."""
    if isinstance(spec, str):
        return Head([_linear(tensors, spec)])
    if not isinstance(spec, (list, tuple)) or not spec:
        raise TypeError(f"head must be a prefix or a non-empty list of prefixes and "
                        f"activation names, got {spec!r}")
    blocks = []
    for item in spec:
        if not isinstance(item, str):
            raise TypeError(f"head items must be strings (prefixes or activation names "
                            f"{list(Activation.names)}), got {item!r}")
        blocks.append(Activation(item) if item in Activation.names else _linear(tensors, item))
    return Head(blocks)


def _check_head(head, width, what="recurrence"):
    head = Head.of(head)
    if head.in_features != width:
        raise ValueError(f"the head takes {head.in_features} features, the {what} "
                         f"gives {width}")
    return head


class _Decoders:
    """The compiled decoders of one model (fastrnn._kernels._decode.Decoder), one per
    batch size, made on first use and kept for the next calls: a call takes one and
    gives it back, so concurrent calls never share buffers. Decoders made from weights
    since replaced (a new kernel, head or embedding) are dropped."""

    SHAPES = 8   # batch sizes kept; the least recently used goes

    def __init__(self):
        self._free = OrderedDict()
        self._lock = threading.Lock()

    def take(self, rnn, head, embedding, batch):
        from fastrnn._kernels import _decode
        kernel = rnn.kernel
        table = embedding.weight if embedding is not None else None
        compiled = head.compiled(rnn.dtype)
        with self._lock:
            free = self._free.get(batch)
            while free:
                dec = free.pop()
                if dec.kernel is kernel and dec.head is compiled and dec.source is table:
                    return dec
        dec = _decode.Decoder(kernel, rnn.family.has_cell, table, compiled, batch)
        dec.source = table
        return dec

    def give(self, dec):
        with self._lock:
            free = self._free.get(dec.batch)
            if free is None:
                free = self._free[dec.batch] = []
                if len(self._free) > self.SHAPES:
                    self._free.popitem(last=False)
            else:
                self._free.move_to_end(dec.batch)
            free.append(dec)


def _set_state(dec, state):
    """A model's state ((L, B, P) h, or (h, c)) into the decoder's first B slots."""
    if isinstance(state, tuple):
        dec.set_state(*state)
    else:
        dec.set_state(state)


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
    """tokens -> embedding (or one-hot) -> recurrence -> head, over each sequence's
    last valid step (pool="last": classify) or every valid step (pool="all": tag; see
    SequenceTagger, the same with its own name).

        clf = SequenceClassifier.from_checkpoint("clf.pt", embedding="embedding.",
                                                 rnn="rnn.", head="fc.")
        logits = clf(tokens, lengths)          # tokens (B, T) ints, padded

    head: a Linear, a Head, or a list of Linear and activation blocks; from_checkpoint
    takes a prefix or a list of prefixes and activation names (["fc1.", "relu", "fc2."]).
    """

    def __init__(self, rnn, head, embedding=None, vocab_size=None, pool="last"):
        if pool not in ("last", "all"):
            raise ValueError(f"pool must be 'last' or 'all', got {pool!r}")
        self.rnn, self.pool = rnn, pool
        self.head = _check_head(head, rnn.output_size)
        self.input = _TokenInput(embedding, vocab_size, rnn.input_size)

    @classmethod
    def from_checkpoint(cls, source, rnn="rnn.", head="fc.", embedding="embedding.",
                        vocab_size=None, pool="last", rename=None, **rnn_overrides):
        tensors = _tensors(source, rename)
        emb = _embedding(tensors, embedding) if embedding else None
        model = _load_rnn(tensors, prefix=rnn, **rnn_overrides)
        return cls(model, _head(tensors, head), emb, vocab_size, pool)

    def _outputs(self, tokens, lengths):
        """(B, T, F) outputs of the recurrence and the lengths (B,) as an array."""
        tokens = _ids(tokens, self.input.vocab_size, "tokens")
        if tokens.ndim != 2 or 0 in tokens.shape:
            raise ValueError(f"tokens must be (batch, time) ids with batch >= 1 and time >= 1, "
                             f"got shape {tokens.shape}")
        if lengths is not None:
            lengths = _checks.check_lengths(lengths, tokens.shape[0], tokens.shape[1])
        x = self.input(tokens)
        out, _ = self.rnn(_time_major(self.rnn, x), lengths=lengths)
        out = _batch_major(self.rnn, out)                      # (B, T, F)
        if lengths is None:
            lengths = np.full(out.shape[0], out.shape[1])
        return out, lengths

    def __call__(self, tokens, lengths=None):
        """logits (B, classes) for pool="last", (B, T, classes) for pool="all" (zero
        past each sequence's length: the head runs over the valid steps only)."""
        out, lengths = self._outputs(tokens, lengths)
        B, T = out.shape[:2]
        if self.pool == "all":
            valid = np.arange(T)[None, :] < lengths[:, None]    # (B, T)
            logits = np.zeros((B, T, self.head.out_features),
                              np.result_type(out.dtype, self.head.blocks[0].weight))
            logits[valid] = self.head(out[valid])
            return logits
        return self.head(out[np.arange(B), lengths - 1])

    def predict(self, tokens, lengths=None):
        return self(tokens, lengths).argmax(-1)


class SequenceTagger(SequenceClassifier):
    """A tagger: tokens -> embedding (or one-hot) -> (bi)recurrence -> head at every
    valid step (SequenceClassifier with pool="all").

        tagger = SequenceTagger.from_checkpoint("tagger.pt", embedding="embedding.",
                                                rnn="lstm.", head=["fc1.", "relu", "fc2."])
        logits = tagger(tokens, lengths)       # (B, T, tags), zero past each length
        tags = tagger.tag(tokens, lengths)     # one list of tag ids per sequence
    """

    def __init__(self, rnn, head, embedding=None, vocab_size=None):
        super().__init__(rnn, head, embedding, vocab_size, pool="all")

    @classmethod
    def from_checkpoint(cls, source, rnn="rnn.", head="fc.", embedding="embedding.",
                        vocab_size=None, rename=None, **rnn_overrides):
        tensors = _tensors(source, rename)
        emb = _embedding(tensors, embedding) if embedding else None
        model = _load_rnn(tensors, prefix=rnn, **rnn_overrides)
        return cls(model, _head(tensors, head), emb, vocab_size)

    def tag(self, tokens, lengths=None):
        """The best tag of every valid step: one list per sequence, of its length."""
        out, lengths = self._outputs(tokens, lengths)
        valid = np.arange(out.shape[1])[None, :] < lengths[:, None]
        best = self.head(out[valid]).argmax(-1)
        return [row.tolist() for row in np.split(best, np.cumsum(lengths)[:-1])]


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
        self.rnn = rnn
        self.head = _check_head(head, rnn.output_size)
        self._decoders = _Decoders()
        self.vocab = list(vocab) if vocab is not None else None
        size = vocab_size or (len(self.vocab) if self.vocab is not None else None)
        self.input = _TokenInput(embedding, size, rnn.input_size)
        if self.vocab is not None:
            if len(set(self.vocab)) != len(self.vocab):
                raise ValueError("vocab has repeated tokens")
            if (len(self.vocab) != self.input.vocab_size
                    or self.head.out_features != len(self.vocab)):
                raise ValueError(
                    f"vocab has {len(self.vocab)} tokens; the model has "
                    f"{self.input.vocab_size} inputs and {self.head.out_features} outputs")
            self._index = {tok: i for i, tok in enumerate(self.vocab)}
        elif self.head.out_features != self.input.vocab_size:
            raise ValueError(f"the head gives {self.head.out_features} logits, the input "
                             f"takes {self.input.vocab_size} tokens")

    @classmethod
    def from_checkpoint(cls, source, vocab=None, rnn="rnn.", head="fc.",
                        embedding="embedding.", rename=None, **rnn_overrides):
        tensors = _tensors(source, rename)
        emb = _embedding(tensors, embedding) if embedding else None
        return cls(_load_rnn(tensors, prefix=rnn, **rnn_overrides), _head(tensors, head),
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
        ids = (self.encode(tokens) if isinstance(tokens, str)
               else _ids(tokens, self.input.vocab_size))
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
        dec, _ = self._start(prompt)
        try:
            ids, lengths, seen = dec.decode(1, n, None, -1, False, temperature, top_k or 0,
                                            rng, return_logits)
        finally:
            self._decoders.give(dec)
        text = self.decode(ids[0, :lengths[0]])
        return (text, seen.reshape(n, -1)) if return_logits else text

    def _start(self, prompt, width=1):
        """A decoder for `width` rows holding, in its first, the state after the prompt
        and its last output (the first logits come from the head over it); and the
        prompt's ids."""
        ids = self.encode(prompt)
        if len(ids) == 0:
            raise ValueError("the prompt is empty: generation starts from at least one token")
        out, state = self.rnn(self.input(ids))
        dec = self._decoders.take(self.rnn, self.head, self.input.embedding, width)
        _set_state(dec, _batched_state(state))
        dec.set_output(out[-1:])
        return dec, ids

    def beam_search(self, prompt, n, beam_size=4, length_penalty=1.0, n_best=1, eos=None):
        """The n_best most likely continuations of `prompt` by up to `n` tokens, by beam
        search (see Seq2Seq.beam_search for the scores, ends and ties): a list of
        (continuation, score) pairs, best first; a continuation is a string with a
        vocabulary, else a list of ids. Without `eos` every hypothesis runs n tokens.
        """
        n = _checks.check_positive_int(n, "n", minimum=0)
        beam_size, length_penalty, n_best = _check_beam(beam_size, length_penalty, n_best)
        if eos is not None:
            eos = _check_token(eos, "eos", self.head.out_features)
        dec, _ = self._start(prompt, _beam_width(1, beam_size, self.head.out_features, n))
        try:
            found = _beam_search(dec, 1, None, eos, beam_size, n, length_penalty,
                                 n_best)[0]
        finally:
            self._decoders.give(dec)
        return [(self.decode(ids), score) for ids, score in found]


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
        self.encoder, self.decoder = encoder, decoder
        self.head = _check_head(head, decoder.output_size, "decoder")
        self.src = _TokenInput(src_embedding, None, encoder.input_size)
        self.tgt = _TokenInput(tgt_embedding, None, decoder.input_size)
        if self.head.out_features != self.tgt.vocab_size:
            raise ValueError(f"the head gives {self.head.out_features} logits, the target "
                             f"embedding has {self.tgt.vocab_size} tokens")
        self._decoders = _Decoders()
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
                   _head(tensors, head), _embedding(tensors, src_embedding),
                   _embedding(tensors, tgt_embedding), sos, eos)

    def greedy(self, src, lengths=None, max_len=50, return_logits=False):
        """src (B, S) padded ids (lengths: each source's length). Returns one list of
        ids per source, up to (not including) eos; with return_logits, also the
        (steps, B, vocab) logits of every decoding step (zero for a source after the
        step that ended it). All steps run in one compiled call; a source that ends
        leaves the work."""
        max_len = _checks.check_positive_int(max_len, "max_len", minimum=0)
        dec, batch = self._start(src, lengths, batch_of=1)
        try:
            ids, lengths_out, seen = dec.decode(batch, max_len,
                                                np.full(batch, self.sos, np.intc), self.eos,
                                                True, return_logits=return_logits)
        finally:
            self._decoders.give(dec)
        results = [ids[b, :lengths_out[b]].tolist() for b in range(batch)]
        return (results, seen) if return_logits else results

    def _start(self, src, lengths, batch_of):
        """Encode src; a decoder of batch_of rows per source holding, in its first B
        rows, the encoder's final states. Returns (decoder, B)."""
        src = _ids(src, self.src.vocab_size, "src")
        if src.ndim != 2 or 0 in src.shape:
            raise ValueError(f"src must be (batch, time) ids with batch >= 1 and time >= 1, "
                             f"got shape {src.shape}")
        batch = src.shape[0]
        _, state = self.encoder(_time_major(self.encoder, self.src(src)), lengths=lengths)
        dec = self._decoders.take(self.decoder, self.head, self.tgt.embedding,
                                  batch * batch_of)
        _set_state(dec, state)
        return dec, batch

    def beam_search(self, src, lengths=None, beam_size=4, max_len=50, length_penalty=1.0,
                    n_best=1):
        """Beam search, a batch of sources at once. For each source, a list of n_best
        (ids, score) pairs, best first: ids up to (not including) eos; score the sum of
        the log-softmax probabilities of the chosen tokens (eos included when produced)
        divided by len ** length_penalty, len counting those tokens (length_penalty=0:
        the raw sum).

        Each step extends every live hypothesis by every token and keeps the beam_size
        best extensions by their sum (ties: lower token id first, then the better
        parent); those ending in eos, or reaching max_len tokens, leave the beam
        finished. The search ends when none is live; the n_best finished ones by score
        are returned (ties: the earlier finished first). beam_size=1 is greedy; a beam
        wider than the live hypotheses keeps them all (exhaustive when wide enough).
        """
        max_len = _checks.check_positive_int(max_len, "max_len", minimum=0)
        beam_size, length_penalty, n_best = _check_beam(beam_size, length_penalty, n_best)
        width = _beam_width(1, beam_size, self.head.out_features, max_len)
        dec, batch = self._start(src, lengths, width)
        try:
            return _beam_search(dec, batch, self.sos, self.eos, beam_size, max_len,
                                length_penalty, n_best)
        finally:
            self._decoders.give(dec)


def _check_beam(beam_size, length_penalty, n_best):
    beam_size = _checks.check_positive_int(beam_size, "beam_size")
    length_penalty = _checks.check_real(length_penalty, "length_penalty")
    n_best = _checks.check_positive_int(n_best, "n_best")
    if n_best > beam_size:
        raise ValueError(f"n_best must be <= beam_size={beam_size}, got {n_best}")
    return beam_size, length_penalty, n_best


def _check_token(token, name, vocab_size):
    token = _checks.check_positive_int(token, name, minimum=0)
    if token >= vocab_size:
        raise ValueError(f"{name}={token} is outside the vocabulary [0, {vocab_size})")
    return token


def _beam_width(sources, beam_size, vocab, max_len):
    """Rows a beam search can hold at once per source: beam_size, or fewer when the
    vocabulary cannot fill it within max_len - 1 steps (a wide beam's exhaustive search
    holds every live hypothesis, V ** t of them at step t)."""
    live, t = 1, 0
    while live < beam_size and t < max_len - 1:
        live, t = live * vocab, t + 1
    return sources * max(1, min(beam_size, live))


def _beam_search(dec, batch, sos, eos, beam_size, max_len, length_penalty, n_best):
    """The search of Seq2Seq.beam_search over a decoder whose first `batch` rows hold
    the sources' states. sos None: the first logits are the head over the outputs set
    in the decoder (a language model's prompt). eos None: no end token."""
    eos = -1 if eos is None else eos
    finished = [[] for _ in range(batch)]     # (ids, normalised score)
    live = [[((), 0.0)] for _ in range(batch)]
    m = batch
    tokens = np.full(batch, sos if sos is not None else 0, np.intc)

    def finish(s, ids, total, count):
        norm = total / count ** length_penalty if length_penalty and count else total
        finished[s].append((list(ids), float(norm)))

    if max_len == 0:
        return [[([], 0.0)] for _ in range(batch)]
    for t in range(max_len):
        logits = dec.head_logits(m) if (t == 0 and sos is None) else dec.step(m, tokens)
        logp = log_softmax(logits.astype(np.float64))         # (m, V)
        V = logp.shape[1]
        parents, new_tokens, row = [], [], 0
        for s in range(batch):
            hyps = live[s]
            n = len(hyps)
            if not n:
                continue
            sums = np.array([h[1] for h in hyps])
            cand = (sums[:, None] + logp[row:row + n]).ravel()
            k = min(beam_size, cand.size)
            if k < cand.size:   # the candidates at or above the k-th best, ties kept
                idx = np.flatnonzero(cand >= np.partition(cand, -k)[-k])
            else:
                idx = np.arange(cand.size)
            # best sum first, then the lower token, then the better parent
            order = idx[np.lexsort((idx // V, idx % V, -cand[idx]))[:k]]
            keep = []
            for j in order.tolist():
                parent, tok = divmod(j, V)
                ids, total = hyps[parent][0], float(cand[j])
                if tok == eos:
                    finish(s, ids, total, len(ids) + 1)
                elif t + 1 == max_len:
                    finish(s, ids + (tok,), total, len(ids) + 1)
                else:
                    keep.append((ids + (tok,), total))
                    parents.append(row + parent)
                    new_tokens.append(tok)
            live[s] = keep
            row += n
        if not parents:
            break
        dec.gather(m, np.array(parents, np.intp))
        m = len(parents)
        tokens = np.array(new_tokens, np.intc)
    results = []
    for s in range(batch):
        ranked = sorted(range(len(finished[s])), key=lambda i: -finished[s][i][1])
        results.append([finished[s][i] for i in ranked[:n_best]])
    return results


def bundled_char_model():
    """The character-level LSTM shipped with fastrnn (see examples/train_charlm.py):
    2 layers, hidden 256, trained on docstrings of Python's standard library."""
    with open(os.path.join(DATA, "charlm.json")) as f:
        meta = json.load(f)
    return LanguageModel.from_checkpoint(os.path.join(DATA, "charlm.pt"), vocab=meta["vocab"],
                                         rnn=meta["rnn"], head=meta["head"],
                                         embedding=meta["embedding"]), meta
