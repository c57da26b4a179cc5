"""The layers around a recurrence: embedding, linear head, softmax, one-hot. Torch's
names (`weight`, `bias`) and shapes, numpy in and out."""
from collections import OrderedDict

import numpy as np

from fastrnn import _checks

__all__ = ["Embedding", "Linear", "Activation", "Head", "softmax", "log_softmax",
           "one_hot"]


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


def _gelu(x):
    from scipy.special import erf
    return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(x.dtype)


# torch's elementwise activation modules, by their names in lower case
_ACTIVATIONS = {
    "identity": lambda x: x,
    "relu": lambda x: np.where(x < 0, 0, x).astype(x.dtype),
    "tanh": np.tanh,
    "sigmoid": lambda x: (1.0 / (1.0 + np.exp(-x))).astype(x.dtype),
    "gelu": _gelu,
}


class Activation:
    """An elementwise activation block of a head: torch.nn.ReLU, Tanh, Sigmoid, GELU
    (the erf form, torch's default) or Identity, by name in lower case."""

    names = tuple(_ACTIVATIONS)

    def __init__(self, name):
        if name not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(_ACTIVATIONS)}, got {name!r}")
        self.name = name

    def __call__(self, x):
        return _ACTIVATIONS[self.name](np.asarray(x))

    def __repr__(self):
        return f"Activation({self.name!r})"


class Head:
    """A head over a recurrence's outputs: Linear blocks, each optionally followed by
    one elementwise Activation (`Linear -> ReLU -> Linear`), as torch's nn.Sequential
    of them. x (..., in_features) -> (..., out_features).

    A single Linear is a Head of one block; the apps accept either.
    """

    def __init__(self, blocks):
        blocks = list(blocks)
        if not blocks or not isinstance(blocks[0], Linear):
            raise ValueError(f"a head starts with a Linear block, got {blocks[:1]}")
        for i, block in enumerate(blocks):
            if not isinstance(block, (Linear, Activation)):
                raise TypeError(f"head blocks must be Linear or Activation, got "
                                f"{type(block).__name__} at position {i}")
            if isinstance(block, Activation) and isinstance(blocks[i - 1], Activation):
                raise ValueError(f"head blocks {i - 1} and {i} are both activations: "
                                 "each Linear takes at most one after it")
        linears = [b for b in blocks if isinstance(b, Linear)]
        for a, b in zip(linears, linears[1:]):
            if a.out_features != b.in_features:
                raise ValueError(f"head blocks do not chain: {a!r} gives {a.out_features} "
                                 f"features, {b!r} takes {b.in_features}")
        self.blocks = blocks
        self.in_features = linears[0].in_features
        self.out_features = linears[-1].out_features
        self._compiled = {}

    @classmethod
    def of(cls, head):
        """A Head from a Head, a Linear, or a list of Linear and Activation blocks
        (activation names allowed)."""
        if isinstance(head, Head):
            return head
        if isinstance(head, Linear):
            return cls([head])
        if isinstance(head, (list, tuple)):
            return cls([Activation(b) if isinstance(b, str) else b for b in head])
        raise TypeError(f"head must be a Linear, a Head or a list of Linear and activation "
                        f"blocks, got {type(head).__name__}")

    def layers(self):
        """[(weight, bias or None, activation name)] per Linear."""
        out = []
        for block in self.blocks:
            if isinstance(block, Linear):
                out.append([block.weight, block.bias, "identity"])
            else:
                out[-1][2] = block.name
        return [tuple(layer) for layer in out]

    def compiled(self, dtype):
        """The head as the compiled decode loops run it (fastrnn._kernels._decode.Head)
        in `dtype`; remade when a block's weights were replaced (load_state_dict)."""
        from fastrnn._kernels import _decode
        layers = self.layers()
        key = (np.dtype(dtype).name,)
        ids = tuple(id(a) for w, b, _ in layers for a in (w, b))
        cached = self._compiled.get(key)
        if cached is None or cached[0] != ids:
            cached = self._compiled[key] = (ids, _decode.Head(
                [(w, b, _decode.ACTIVATIONS[act]) for w, b, act in layers], dtype), layers)
        return cached[1]

    def __call__(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def __repr__(self):
        return f"Head({self.blocks!r})"


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
