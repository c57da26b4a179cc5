"""The compiled decode loops (fastrnn._kernels._decode) against the Python loops they
replaced (tests/decode_oracle.py) and beam search against its definition
(tests/reference.py), for every family; heads of several blocks; the tagger."""
import decode_oracle
import numpy as np
import pytest
import reference

import fastrnn
from fastrnn import apps
from fastrnn.blocks import Activation, Embedding, Head, Linear

# "GRU_T": the textbook GRU, fastrnn.GRU(..., reset_after=False)
FAMILIES = ["LSTM", "GRU", "GRU_T", "RNN"]
V, E, H = 7, 5, 12


def _rnn_weights(kind, input_size, hidden, layers, rng, scale=0.6):
    gates = {"LSTM": 4, "GRU": 3, "GRU_T": 3, "RNN": 1}[kind] * hidden
    sd = {}
    for l in range(layers):
        i = input_size if l == 0 else hidden
        sd[f"weight_ih_l{l}"] = rng.uniform(-scale, scale, (gates, i))
        sd[f"weight_hh_l{l}"] = rng.uniform(-scale, scale, (gates, hidden))
        sd[f"bias_ih_l{l}"] = rng.uniform(-scale, scale, gates)
        sd[f"bias_hh_l{l}"] = rng.uniform(-scale, scale, gates)
    return sd


def _model(kind, input_size, hidden, layers, rng, dtype):
    if kind == "GRU_T":
        m = fastrnn.GRU(input_size, hidden, num_layers=layers, dtype=dtype, reset_after=False)
    else:
        m = getattr(fastrnn, kind)(input_size, hidden, num_layers=layers, dtype=dtype)
    return m.load_state_dict({k: v.astype(dtype)
                              for k, v in _rnn_weights(kind, input_size, hidden, layers,
                                                       rng).items()})


def _linear(i, o, rng, dtype, scale=1.5):
    return Linear(i, o, dtype=dtype).load_state_dict(
        {"weight": rng.uniform(-scale, scale, (o, i)).astype(dtype),
         "bias": rng.uniform(-scale, scale, o).astype(dtype)})


def _embedding(n, d, rng, dtype):
    return Embedding(n, d, dtype=dtype).load_state_dict(
        {"weight": rng.standard_normal((n, d)).astype(dtype)})


def _s2s(kind, rng, dtype="float32", layers=2, head_blocks=1, eos=2):
    enc = _model(kind, E, H, layers, rng, dtype)
    dec = _model(kind, E, H, layers, rng, dtype)
    if head_blocks == 1:
        head = _linear(H, V, rng, dtype)
    else:
        head = Head([_linear(H, 9, rng, dtype), Activation("relu"), _linear(9, V, rng, dtype)])
    return apps.Seq2Seq(enc, dec, head, _embedding(6, E, rng, dtype),
                        _embedding(V, E, rng, dtype), sos=1, eos=eos)


def _lm(kind, rng, dtype="float32", one_hot=False):
    rnn = _model(kind, V if one_hot else E, H, 2, rng, dtype)
    emb = None if one_hot else _embedding(V, E, rng, dtype)
    return apps.LanguageModel(rnn, _linear(H, V, rng, dtype), emb, vocab=list("abcdefg"))


@pytest.mark.parametrize("kind", FAMILIES)
@pytest.mark.parametrize("head_blocks", [1, 3])
def test_greedy_equals_the_python_loop(kind, head_blocks):
    """Same ids and (while each source runs) the same logits as the Python loop, over a
    padded batch with lengths 1 and T; one source at a time too."""
    lengths = [6, 1, 4, 6, 2]
    for seed in range(30):   # the first model whose sources end at different steps
        rng = np.random.default_rng(seed)
        s2s = _s2s(kind, rng, head_blocks=head_blocks)
        src = rng.integers(0, 6, (5, 6))
        want, want_logits = decode_oracle.greedy(s2s, src, lengths, max_len=9)
        if len({len(w) for w in want}) >= 3:
            break
    got, logits = s2s.greedy(src, lengths, max_len=9, return_logits=True)
    assert got == want
    assert len({len(w) for w in want}) >= 3
    for b, seq in enumerate(want):
        ran = min(len(seq) + 1, 9)
        np.testing.assert_allclose(logits[:ran, b], want_logits[:ran, b], rtol=1e-5, atol=1e-5)
        assert not logits[ran:, b].any()
    for b in range(5):     # one source per call: the batch-1 path (GEMV head)
        assert s2s.greedy(src[b:b + 1], [lengths[b]], max_len=9) == [want[b]]


def test_greedy_batch_above_the_fused_limit():
    """80 sources: the loop's first steps run more rows than one fused call takes."""
    rng = np.random.default_rng(3)
    s2s = _s2s("GRU", rng, layers=1)
    src = rng.integers(0, 6, (80, 4))
    assert s2s.greedy(src, max_len=6) == decode_oracle.greedy(s2s, src, max_len=6)[0]


@pytest.mark.parametrize("kind", FAMILIES)
@pytest.mark.parametrize("one_hot", [False, True])
def test_generate_equals_the_python_loop(kind, one_hot):
    """Greedy and sampled (temperature, top_k, seed): the same tokens as the Python
    loop, the same draws from the same generator, logits within float32 tolerance."""
    lm = _lm(kind, np.random.default_rng(11), one_hot=one_hot)
    for temperature, top_k, seed in [(0, None, None), (1.0, None, 5), (0.7, 3, 9),
                                     (1.3, 1, 2), (2.0, 7, 4)]:
        text, logits = lm.generate("abca", 40, temperature, top_k, seed, return_logits=True)
        ids, want_logits = decode_oracle.generate(lm, "abca", 40, temperature, top_k, seed)
        assert text == lm.decode(ids), (temperature, top_k, seed)
        np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5)
    a = lm.generate("ab", 30, 1.0, seed=1)
    assert a == lm.generate("ab", 30, 1.0, seed=1) != lm.generate("ab", 30, 1.0, seed=2)
    gen = np.random.default_rng(8)       # a Generator advances as numpy's own calls would
    lm.generate("ab", 10, 1.0, seed=gen)
    assert gen.random() == pytest.approx(_advanced(8, 10))


def _advanced(seed, draws):
    g = np.random.default_rng(seed)
    g.random(draws)
    return g.random()


def test_eos_at_the_first_step_and_max_len_zero():
    rng = np.random.default_rng(5)
    s2s = _s2s("LSTM", rng)
    s2s.head.blocks[-1].bias[2] = 1e4            # eos (2) wins every step
    s2s.head.blocks[-1].weight[2] = 0
    src = rng.integers(0, 6, (3, 4))
    assert s2s.greedy(src) == [[], [], []]
    found = s2s.beam_search(src, beam_size=3, n_best=2)
    assert all(len(f) == 2 and f[0][0] == [] for f in found)   # eos first, best
    assert all(f[0][1] == pytest.approx(0.0, abs=1e-6) for f in found)
    assert s2s.greedy(src, max_len=0) == [[], [], []]
    assert s2s.beam_search(src, max_len=0) == [[([], 0.0)]] * 3
    ids, logits = s2s.greedy(src, max_len=0, return_logits=True)
    assert ids == [[], [], []] and logits.shape == (0, 3, V)


def test_decode_arguments_refused():
    rng = np.random.default_rng(5)
    s2s = _s2s("GRU", rng, layers=1)
    lm = _lm("GRU", rng)
    src = np.zeros((2, 3), int)
    with pytest.raises(ValueError, match=r"src must be \(batch, time\) ids with batch >= 1"):
        s2s.greedy(np.zeros((0, 3), int))
    with pytest.raises(ValueError, match=r"src must be \(batch, time\) ids with batch >= 1"):
        s2s.beam_search(np.zeros((0, 3), int))
    for call in (lambda b: s2s.beam_search(src, beam_size=b),
                 lambda b: lm.beam_search("ab", 4, beam_size=b)):
        with pytest.raises(ValueError, match="beam_size must be an int >= 1, got 0"):
            call(0)
        with pytest.raises(TypeError, match="beam_size must be an int"):
            call(2.5)
    with pytest.raises(ValueError, match="n_best must be <= beam_size=2, got 3"):
        s2s.beam_search(src, beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="max_len must be an int >= 0, got -1"):
        s2s.beam_search(src, max_len=-1)
    with pytest.raises(TypeError, match="length_penalty must be a real number"):
        s2s.beam_search(src, length_penalty="1")
    with pytest.raises(ValueError, match=r"eos=9 is outside the vocabulary \[0, 7\)"):
        lm.beam_search("ab", 3, eos=9)
    with pytest.raises(ValueError, match="the prompt is empty"):
        lm.beam_search("", 3)


def _reference_s2s_step(s2s, kind):
    """step(state, token) -> (logits, state) of s2s's decoder and head, in float64 by
    the NumPy reference cells."""
    sd = {k: np.asarray(v, np.float64) for k, v in s2s.decoder.state_dict().items()}
    L = s2s.decoder.num_layers
    cell = {"LSTM": reference.lstm_cell, "GRU": reference.gru_cell,
            "GRU_T": reference.gru_textbook_cell, "RNN": reference.rnn_cell}[kind]
    gates = s2s.decoder.family.gates * H
    params = [reference._params(sd, l, 0, gates) for l in range(L)]
    table = s2s.tgt.embedding.weight.astype(np.float64)

    def step(state, token):
        x, new = table[token], []
        for l in range(L):
            h, c = cell(x, state[l][0], state[l][1], params[l])
            new.append((h, c))
            x = h
        return s2s.head(x.astype(s2s.decoder.dtype)).astype(np.float64), new
    return step


def _initial_states(s2s, src, lengths):
    _, state = s2s.encoder(np.ascontiguousarray(s2s.src(src).transpose(1, 0, 2)),
                           lengths=lengths)
    h, c = state if isinstance(state, tuple) else (state, None)
    return [[(h[l, b], c[l, b] if c is not None else None) for l in range(h.shape[0])]
            for b in range(h.shape[1])]


@pytest.mark.parametrize("kind", FAMILIES)
def test_beam_search_equals_its_definition(kind):
    """n-best ids and scores within 1e-5 of the NumPy reference (float64 models), for
    beams narrower and wider than the live hypotheses, with length penalties."""
    rng = np.random.default_rng(21)
    s2s = _s2s(kind, rng, dtype="float64", eos=3)
    src = rng.integers(0, 6, (3, 5))
    lengths = [5, 1, 3]
    step = _reference_s2s_step(s2s, kind)
    starts = _initial_states(s2s, src, lengths)
    for beam, n_best, lp, max_len in [(3, 2, 1.0, 6), (5, 5, 0.0, 4), (60, 4, 0.7, 3),
                                      (2, 1, 1.0, 1)]:
        got = s2s.beam_search(src, lengths, beam_size=beam, max_len=max_len,
                              length_penalty=lp, n_best=n_best)
        for b in range(3):
            want = reference.beam_search(step, starts[b], 1, 3, beam, max_len, lp, n_best)
            assert [ids for ids, _ in got[b]] == [ids for ids, _ in want], (beam, b)
            np.testing.assert_allclose([s for _, s in got[b]], [s for _, s in want],
                                       rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", FAMILIES)
def test_beam_of_one_is_greedy(kind):
    rng = np.random.default_rng(2)
    s2s = _s2s(kind, rng)
    src = rng.integers(0, 6, (6, 4))
    greedy = s2s.greedy(src, [4, 1, 2, 4, 3, 4], max_len=8)
    beam = s2s.beam_search(src, [4, 1, 2, 4, 3, 4], beam_size=1, max_len=8)
    assert [f[0][0] for f in beam] == greedy
    lm = _lm(kind, rng)
    text = lm.generate("abc", 12, temperature=0)
    [(best, score)] = lm.beam_search("abc", 12, beam_size=1)
    assert best == text and score < 0


def test_language_model_beam_search_equals_its_definition():
    rng = np.random.default_rng(4)
    lm = _lm("LSTM", rng, dtype="float64")
    ids = lm.encode("bad")
    out, (h, c) = lm.rnn(lm.input(ids))
    sd = lm.rnn.state_dict()
    params = [reference._params(sd, l, 0, 4 * H) for l in range(2)]
    table = lm.input.embedding.weight

    def step(state, token):
        x, new = table[token], []
        for l in range(2):
            hl, cl = reference.lstm_cell(x, state[l][0], state[l][1], params[l])
            new.append((hl, cl))
            x = hl
        return lm.head(x), new
    start = (lm.head(out[-1]), [(h[l], c[l]) for l in range(2)])
    for eos in (None, 4):
        got = lm.beam_search("bad", 5, beam_size=4, n_best=3, eos=eos)
        want = reference.beam_search(step, start, None, -1 if eos is None else eos, 4, 5,
                                     1.0, 3)
        assert [g for g, _ in got] == [lm.decode(w) for w, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_heads_of_several_blocks_from_a_checkpoint():
    """head=["fc1.", "relu", "fc2."] reads two Linears with a ReLU between, for a
    classifier, a tagger and a seq2seq; the result is the blocks composed in NumPy."""
    rng = np.random.default_rng(9)
    sd = {f"rnn.{k}": v.astype(np.float32)
          for k, v in _rnn_weights("GRU", E, H, 1, rng).items()}
    sd["embedding.weight"] = rng.standard_normal((6, E)).astype(np.float32)
    sd["fc1.weight"] = rng.standard_normal((8, H)).astype(np.float32)
    sd["fc1.bias"] = rng.standard_normal(8).astype(np.float32)
    sd["fc2.weight"] = rng.standard_normal((3, 8)).astype(np.float32)
    tokens = rng.integers(0, 6, (4, 5))
    lengths = [5, 2, 1, 4]
    clf = apps.SequenceClassifier.from_checkpoint(sd, head=["fc1.", "relu", "fc2."])
    tagger = apps.SequenceTagger.from_checkpoint(sd, head=["fc1.", "tanh", "fc2."])
    out, _ = clf.rnn(np.ascontiguousarray(clf.input(tokens).transpose(1, 0, 2)),
                     lengths=lengths)
    out = out.transpose(1, 0, 2)
    def relu(x):
        return np.maximum(x, 0)

    def ref(y, act):
        return act(y @ sd["fc1.weight"].T + sd["fc1.bias"]) @ sd["fc2.weight"].T
    last = out[np.arange(4), np.array(lengths) - 1]
    np.testing.assert_allclose(clf(tokens, lengths), ref(last, relu), rtol=1e-5, atol=1e-5)
    tags = tagger(tokens, lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(tags[b, :n], ref(out[b, :n], np.tanh), rtol=1e-5, atol=1e-5)
        assert not tags[b, n:].any()
    assert tagger.tag(tokens, lengths) == [list(tags[b, :n].argmax(-1))
                                          for b, n in enumerate(lengths)]
    with pytest.raises(ValueError, match="no linear head weights under prefix 'fc3.'"):
        apps.SequenceTagger.from_checkpoint(sd, head=["fc1.", "relu", "fc3."])
    with pytest.raises(ValueError, match="head blocks do not chain"):
        apps.SequenceTagger.from_checkpoint(sd, head=["fc1.", "relu", "fc1."])
    with pytest.raises(ValueError, match="a head starts with a Linear block"):
        apps.SequenceTagger.from_checkpoint(sd, head=["relu", "fc1."])
    with pytest.raises(TypeError, match="head must be a prefix or a non-empty list"):
        apps.SequenceTagger.from_checkpoint(sd, head=[])


def test_bidirectional_tagger_and_activations():
    rng = np.random.default_rng(12)
    rnn = fastrnn.LSTM(E, H, bidirectional=True)
    head = Head([_linear(2 * H, 6, rng, "float32"), Activation("gelu"),
                 _linear(6, 4, rng, "float32"), Activation("sigmoid")])
    tagger = apps.SequenceTagger(rnn, head, _embedding(6, E, rng, "float32"))
    tokens = rng.integers(0, 6, (3, 7))
    out = tagger(tokens, [7, 3, 1])
    assert out.shape == (3, 7, 4) and ((out[0] > 0) & (out[0] < 1)).all()
    compiled = head.compiled("float32")
    x = rng.standard_normal((5, 2 * H)).astype(np.float32)
    np.testing.assert_allclose(compiled(x), head(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="activation must be one of"):
        Activation("swish")
