"""The application models: char-level generation, seq2seq decoding, classifier /
tagger, and the blocks around the recurrence."""
import os

import numpy as np
import pytest

import fastrnn
from fastrnn import apps
from fastrnn.blocks import Embedding, Linear, log_softmax, one_hot, softmax

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
APPS = os.path.join(DATA, "apps")


def _golden(name):
    with np.load(os.path.join(APPS, name)) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def charlm():
    return apps.bundled_char_model()


def test_bundled_model_greedy_matches_torch(charlm):
    """500 greedy characters from the bundled model: torch's text, and every step's
    logits within 1e-4 (golden file written by a torch loop over nn.LSTM)."""
    lm, meta = charlm
    g = _golden("apps_charlm.npz")
    text, logits = lm.generate(str(g["prompt"]), 500, temperature=0, return_logits=True)
    assert text == str(g["text"])
    np.testing.assert_allclose(logits, g["logits"], rtol=0, atol=1e-4)


def test_bundled_model_is_small_and_documented(charlm):
    lm, meta = charlm
    assert os.path.getsize(os.path.join(apps.DATA, "charlm.pt")) <= 5 * 1024 * 1024
    assert lm.rnn.num_layers == 2 and lm.rnn.hidden_size == 256
    assert "PSF" in meta["source"]


def test_sampling_is_reproducible_and_temperature_and_top_k_act(charlm):
    lm, _ = charlm
    a = lm.generate("Return the ", 80, temperature=1.0, seed=3)
    b = lm.generate("Return the ", 80, temperature=1.0, seed=3)
    c = lm.generate("Return the ", 80, temperature=1.0, seed=4)
    assert a == b and a != c
    assert lm.generate("Return the ", 40, temperature=0) == \
        lm.generate("Return the ", 40, temperature=0, seed=9)  # greedy ignores the seed


def test_sampling_distribution(rng):
    """_sample draws from softmax(logits / T) restricted to the top k: checked by counts
    over 20000 draws with a fixed seed (deterministic, not flaky)."""
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    def draws(t, k):
        return np.bincount([apps._sample(logits, t, k, gen) for _ in range(20000)],
                           minlength=4) / 20000
    gen = np.random.default_rng(0)
    np.testing.assert_allclose(draws(1.0, None), [0.5, 0.3, 0.15, 0.05], atol=0.015)
    cold = draws(0.5, None)             # p^2 renormalised: sharper
    np.testing.assert_allclose(cold, np.array([.25, .09, .0225, .0025]) / .365, atol=0.015)
    top2 = draws(1.0, 2)
    assert top2[2] == 0 and top2[3] == 0
    np.testing.assert_allclose(top2[:2], [0.625, 0.375], atol=0.015)
    assert apps._sample(logits, 0, None, gen) == 0


def test_generation_errors(charlm):
    lm, _ = charlm
    with pytest.raises(ValueError, match="prompt is empty"):
        lm.generate("", 5)
    with pytest.raises(ValueError, match=r"outside the vocabulary: \['é'\]"):
        lm.generate("café", 5)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        lm.generate("a", 5, temperature=-1)
    with pytest.raises(ValueError, match="top_k must be an int >= 1"):
        lm.generate("a", 5, top_k=0)
    assert lm.generate("a", 0) == ""


def test_seq2seq_greedy_matches_torch():
    g = _golden("apps_seq2seq.npz")
    s2s = apps.Seq2Seq.from_checkpoint(os.path.join(APPS, "seq2seq_reverse.pt"),
                                       sos=int(g["sos"]), eos=int(g["eos"]))
    out, logits = s2s.greedy(g["src"], g["lengths"], max_len=12, return_logits=True)
    steps = g["steps"]                         # (12, B) torch's argmax at each step
    # a source leaves the work after the step that gave its eos: its logits are 0 after
    for b, seq in enumerate(out):
        ran = len(seq) + 1
        np.testing.assert_allclose(logits[:ran, b], g["logits"][:ran, b], rtol=0, atol=1e-4)
        assert not logits[ran:, b].any()
    for b, seq in enumerate(out):
        want = []
        for tok in steps[:, b]:
            if tok == int(g["eos"]):
                break
            want.append(int(tok))
        assert seq == want
    # and the task is learnt: each output is its source reversed
    for b, seq in enumerate(out):
        assert seq == list(g["src"][b, :g["lengths"][b]][::-1])


def test_classifier_and_tagger_match_torch():
    g = _golden("apps_tagger.npz")
    path = os.path.join(DATA, "checkpoints", "whole_model.pt")
    clf = apps.SequenceClassifier.from_checkpoint(path, rnn="rnn.", head="fc.",
                                                  embedding="embedding.")
    np.testing.assert_allclose(clf(g["tokens"], g["lengths"]), g["last"], rtol=0, atol=1e-5)
    tagger = apps.SequenceClassifier.from_checkpoint(path, pool="all")
    np.testing.assert_allclose(tagger(g["tokens"], g["lengths"]), g["every"], rtol=0, atol=1e-5)


def test_classifier_padded_batch_equals_each_sequence_alone(rng):
    path = os.path.join(DATA, "checkpoints", "whole_model.pt")
    clf = apps.SequenceClassifier.from_checkpoint(path)
    tokens = rng.integers(0, 20, (5, 11))
    lengths = np.array([11, 3, 7, 1, 9])
    batch = clf(tokens, lengths)
    for b in range(5):
        alone = clf(tokens[b:b + 1, :lengths[b]])
        np.testing.assert_allclose(batch[b], alone[0], atol=1e-5)
    assert clf.predict(tokens, lengths).shape == (5,)


def test_one_hot_language_model(rng):
    rnn = fastrnn.GRU(4, 8)
    head = Linear(8, 4)
    lm = apps.LanguageModel(rnn, head, vocab=list("abcd"))
    out = lm.generate("abca", 10, temperature=0)
    assert len(out) == 10 and set(out) <= set("abcd")
    want = head(rnn(one_hot(lm.encode("abca"), 4))[0][-1])
    np.testing.assert_allclose(lm.logits("abca")[-1], want, atol=1e-6)


def test_blocks(rng):
    emb = Embedding(5, 3).load_state_dict({"weight": np.arange(15.).reshape(5, 3)})
    np.testing.assert_array_equal(emb([[4, 0]]), [[[12, 13, 14], [0, 1, 2]]])
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 5\)"):
        emb([5])
    with pytest.raises(TypeError, match="integer token ids"):
        emb([1.5])
    lin = Linear(3, 2).load_state_dict({"weight": np.ones((2, 3)), "bias": np.array([1., 2.])})
    np.testing.assert_array_equal(lin(np.ones((4, 3))), np.tile([4., 5.], (4, 1)))
    with pytest.raises(ValueError, match="missing"):
        Linear(3, 2).load_state_dict({"weight": np.ones((2, 3))})
    with pytest.raises(ValueError, match="in_features=3"):
        lin(np.ones(4))
    x = rng.standard_normal((3, 5))
    np.testing.assert_allclose(softmax(x).sum(-1), 1)
    np.testing.assert_allclose(np.exp(log_softmax(x)), softmax(x))
    assert one_hot([2, 0], 3).tolist() == [[0, 0, 1], [1, 0, 0]]


def test_app_construction_errors():
    path = os.path.join(DATA, "checkpoints", "two_rnns.pt")
    with pytest.raises(ValueError, match="no embedding weights under prefix 'embedding.'"):
        apps.SequenceClassifier.from_checkpoint(path, rnn="encoder")
    with pytest.raises(ValueError, match="must be unidirectional"):
        apps.LanguageModel(fastrnn.LSTM(3, 4, bidirectional=True), Linear(8, 3), vocab="abc")
    with pytest.raises(ValueError, match="sos=99 is outside"):
        apps.Seq2Seq.from_checkpoint(os.path.join(APPS, "seq2seq_reverse.pt"), sos=99, eos=2)
