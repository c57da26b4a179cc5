"""Bad input: each raises the stated exception with a message naming the argument."""
import numpy as np
import pytest
from helpers import make_model

import fastrnn


@pytest.fixture
def lstm():
    return make_model("LSTM", 4, 5, num_layers=2)[0]


@pytest.fixture
def gru():
    return make_model("GRU", 4, 5)[0]


X = np.zeros((6, 3, 4), np.float32)


@pytest.mark.parametrize("x,match", [
    (np.zeros((6, 3, 2, 4), np.float32), "x must be 2-D"),
    (np.zeros(4, np.float32), "x must be 2-D"),
    (np.zeros((6, 3, 7), np.float32), "input_size=4"),
    (np.zeros((0, 3, 4), np.float32), "at least one time step"),
])
def test_bad_input_shape(lstm, x, match):
    with pytest.raises(ValueError, match=match):
        lstm(x)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.complex64, np.bool_])
def test_bad_input_dtype(lstm, dtype):
    with pytest.raises(TypeError, match="x must hold real floating-point"):
        lstm(np.zeros((6, 3, 4), dtype))


def test_object_input(lstm):
    with pytest.raises(TypeError, match="x"):
        lstm([[1.0, 2.0], [3.0]])


def test_lstm_hx_wrong_shape(lstm):
    h0 = np.zeros((2, 3, 5), np.float32)
    with pytest.raises(ValueError, match=r"hx\[1\] \(c_0\).*expected \(2, 3, 5\), got \(1, 3, 5\)"):
        lstm(X, (h0, np.zeros((1, 3, 5), np.float32)))
    with pytest.raises(ValueError, match=r"hx\[0\] \(h_0\).*expected \(2, 3, 5\), got \(2, 4, 5\)"):
        lstm(X, (np.zeros((2, 4, 5), np.float32), h0))


def test_lstm_hx_not_a_tuple(lstm):
    with pytest.raises(TypeError, match=r"hx for an LSTM must be a tuple \(h_0, c_0\)"):
        lstm(X, np.zeros((2, 3, 5), np.float32))


def test_gru_hx_wrong_shape_and_type(gru):
    with pytest.raises(ValueError, match=r"hx \(h_0\).*expected \(1, 3, 5\), got \(1, 3\)"):
        gru(X, np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="one array h_0"):
        gru(X, (np.zeros((1, 3, 5)), np.zeros((1, 3, 5))))
    with pytest.raises(TypeError, match=r"hx \(h_0\) must hold real"):
        gru(X, np.zeros((1, 3, 5), np.int32))


@pytest.mark.parametrize("lengths,exc,match", [
    ([6, 6], ValueError, r"lengths has the wrong shape: expected \(3,\)"),
    ([6, 0, 2], ValueError, r"lengths must lie in \[1, 6\]"),
    ([6, 7, 2], ValueError, r"lengths must lie in \[1, 6\]"),
    ([6, -1, 2], ValueError, r"lengths must lie in \[1, 6\]"),
    ([6.5, 1, 2], TypeError, "lengths must hold integers"),
    (["a", "b", "c"], TypeError, "lengths must hold integers"),
])
def test_bad_lengths(gru, lengths, exc, match):
    with pytest.raises(exc, match=match):
        gru(X, lengths=lengths)


def test_lengths_with_unbatched_input(gru):
    with pytest.raises(ValueError, match="lengths needs batched input"):
        gru(X[:, 0], lengths=[3])


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(input_size=0, hidden_size=4), ValueError, "input_size must be an int >= 1"),
    (dict(input_size=3, hidden_size=2.5), TypeError, "hidden_size must be an int"),
    (dict(input_size=3, hidden_size=4, num_layers=0), ValueError, "num_layers"),
    (dict(input_size=3, hidden_size=4, proj_size=4), ValueError, "proj_size must be smaller"),
    (dict(input_size=3, hidden_size=4, proj_size=-1), ValueError, "proj_size"),
    (dict(input_size=3, hidden_size=4, dtype="float16"), TypeError, "dtype must be"),
    (dict(input_size=3, hidden_size=4, dtype=None), TypeError, "dtype must be"),
    (dict(input_size=3, hidden_size=4, dtype="int32"), TypeError, "dtype must be"),
    (dict(input_size=3, hidden_size=4, dropout=2.0), ValueError, "dropout"),
])
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fastrnn.LSTM(**kwargs)


def test_bad_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        fastrnn.RNN(3, 4, nonlinearity="sigmoid")


def test_state_dict_missing_key(lstm):
    sd = lstm.state_dict()
    del sd["bias_hh_l1"]
    with pytest.raises(ValueError, match=r"missing \['bias_hh_l1'\]"):
        lstm.load_state_dict(sd)


def test_state_dict_unexpected_key(lstm):
    sd = lstm.state_dict()
    sd["weight_ih_l2"] = np.zeros((20, 5), np.float32)
    with pytest.raises(ValueError, match=r"unexpected key\(s\) \['weight_ih_l2'\]"):
        lstm.load_state_dict(sd)
    lstm.load_state_dict(sd, strict=False)  # torch's non-strict: ignore extras


def test_state_dict_wrong_shape(lstm):
    sd = lstm.state_dict()
    sd["weight_hh_l1"] = np.zeros((20, 4), np.float32)
    with pytest.raises(ValueError, match=r"weight_hh_l1.*expected \(20, 5\), got \(20, 4\)"):
        lstm.load_state_dict(sd)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_state_dict_non_finite(lstm, bad):
    sd = lstm.state_dict()
    before = lstm.state_dict()
    sd["weight_ih_l1"][3, 2] = bad
    with pytest.raises(ValueError, match=r"weight_ih_l1.*non-finite"):
        lstm.load_state_dict(sd)
    # nothing changed: a failed load leaves the model as it was
    for k, v in lstm.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_state_dict_integer_weights(lstm):
    sd = lstm.state_dict()
    sd["bias_ih_l0"] = np.zeros(20, np.int64)
    with pytest.raises(TypeError, match=r"bias_ih_l0.*real floating-point"):
        lstm.load_state_dict(sd)


def test_state_dict_not_a_mapping(lstm):
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        lstm.load_state_dict([1, 2, 3])


def test_from_torch_wrong_module():
    class Linear:
        pass
    with pytest.raises(TypeError, match="from_torch takes an nn.LSTM.*got Linear"):
        fastrnn.from_torch(Linear())


def test_absurd_sizes_are_refused_before_allocating():
    with pytest.raises(ValueError, match="num_layers must be at most"):
        fastrnn.LSTM(4, 8, num_layers=10**6)
    with pytest.raises(ValueError, match=r"needs .* GiB for its weights, more than"):
        fastrnn.GRU(10**6, 10**6)
