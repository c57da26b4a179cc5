"""The layers around a recurrence: embedding, linear head, softmax, one-hot. Torch's
names (`weight`, `bias`) and shapes, numpy in and out."""
from collections import OrderedDict

import numpy as np

from fastrnn import _checks

__all__ = ["Embedding", "Linear", "softmax", "log_softmax", "one_hot"]


def _ids(tokens, vocab_size, name="tokens"):
    """Integer ids in [0, vocab_size) as an intp array."""
    arr = _checks.to_numpy(tokens, name)
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):  # [] is float
        raise TypeError(f"{name} must hold integer token ids, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise ValueError(
            f"{name} must lie in [0, {vocab_size}) (the vocabulary), got values from "
            f"{arr.min()} to {arr.max()}")
    return arr.astype(np.intp, copy=False)


class _Block:
    _keys = ()

    def _load(self, state_dict, shapes):
        missing = [k for k in shapes if k not in state_dict]
        if missing:
            raise ValueError(f"state_dict is missing {missing} for {self!r}")
        unexpected = [k for k in state_dict if k not in shapes]
        if unexpected:
            raise ValueError(f"state_dict has unexpected key(s) {unexpected} for {self!r}")
        params = OrderedDict()
        for k, shape in shapes.items():
            arr = _checks.as_float_array(state_dict[k], f"state_dict[{k!r}]", self.dtype)
            _checks.check_shape(arr, shape, f"state_dict[{k!r}]")
            _checks.check_finite(arr, f"state_dict[{k!r}]")
            params[k] = arr.copy()
        return params

    def state_dict(self):
        return OrderedDict((k, getattr(self, k).copy()) for k in self._keys
                           if getattr(self, k) is not None)


class Embedding(_Block):
    """torch.nn.Embedding: ids (any shape) -> vectors (..., embedding_dim)."""

    _keys = ("weight",)

    def __init__(self, num_embeddings, embedding_dim, dtype="float32"):
        self.num_embeddings = _checks.check_positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = _checks.check_positive_int(embedding_dim, "embedding_dim")
        self.dtype = _checks.check_dtype(dtype)
        self.weight = np.random.default_rng().standard_normal(
            (self.num_embeddings, self.embedding_dim)).astype(self.dtype)

    def load_state_dict(self, state_dict):
        self.weight = self._load(state_dict, {"weight": (self.num_embeddings,
                                                         self.embedding_dim)})["weight"]
        return self

    def __call__(self, tokens):
        return self.weight[_ids(tokens, self.num_embeddings)]

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"


class Linear(_Block):
    """torch.nn.Linear: x (..., in_features) -> x @ weight.T + bias."""

    _keys = ("weight", "bias")

    def __init__(self, in_features, out_features, bias=True, dtype="float32"):
        self.in_features = _checks.check_positive_int(in_features, "in_features")
        self.out_features = _checks.check_positive_int(out_features, "out_features")
        self.dtype = _checks.check_dtype(dtype)
        k = 1.0 / np.sqrt(self.in_features)
        rng = np.random.default_rng()
        self.weight = rng.uniform(-k, k, (self.out_features, self.in_features)).astype(self.dtype)
        self.bias = rng.uniform(-k, k, self.out_features).astype(self.dtype) if bias else None

    def load_state_dict(self, state_dict):
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.bias is not None:
            shapes["bias"] = (self.out_features,)
        params = self._load(state_dict, shapes)
        self.weight, self.bias = params["weight"], params.get("bias")
        return self

    def __call__(self, x):
        x = _checks.as_float_array(x, "x", self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must end in in_features={self.in_features}, got shape {x.shape}")
        y = x @ self.weight.T
        return y + self.bias if self.bias is not None else y

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


def softmax(x, axis=-1):
    x = np.asarray(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    x = np.asarray(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def one_hot(tokens, num_classes, dtype="float32"):
    """ids (any shape) -> (..., num_classes) one-hot vectors, for character models fed
    one-hot input instead of an embedding."""
    num_classes = _checks.check_positive_int(num_classes, "num_classes")
    ids = _ids(tokens, num_classes)
    out = np.zeros(ids.shape + (num_classes,), _checks.check_dtype(dtype))
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out
