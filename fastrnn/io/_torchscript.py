"""TorchScript archives (what torch.jit.save writes), read as weights only.

A TorchScript archive is torch.save's zip layout plus the module's code (code/,
constants.pkl). Its data.pkl pickles the module tree: each module is a __torch__.*
class instantiated empty and given its attributes (parameters, buffers, submodules)
as state. Here every __torch__.* class resolves to an inert attribute holder, so the
tree reads as nested dicts of arrays, like a state dict: nothing under code/ is read
(let alone run), no method of the file's classes exists, and any global that is neither
a __torch__ class nor on the checkpoint allowlist is still refused.
"""
from collections import OrderedDict

from fastrnn.io.errors import CheckpointError

MAX_DEPTH = 64


def is_torchscript(names):
    return any(n.endswith("constants.pkl") or "/code/" in n or n.startswith("code/")
               for n in names)


class ScriptObject:
    """An instance of a TorchScript class: a name and the attributes it was given."""

    __slots__ = ("qualname", "attributes")

    def __init__(self, *args):
        self.attributes = None

    def __setstate__(self, state):
        if not isinstance(state, dict):
            # a module with a custom __getstate__: its state is whatever it returned
            state = {"state": state}
        self.attributes = state

    def __reduce__(self):
        raise TypeError("not picklable")


_CLASSES = {}


def _script_class(qualname):
    cls = _CLASSES.get(qualname)
    if cls is None:
        if len(_CLASSES) > 10000:
            raise CheckpointError("the archive names more than 10000 TorchScript classes")
        # a class per name, so that NEWOBJ gets a type; it holds nothing but the name
        cls = _CLASSES[qualname] = type("ScriptObject", (ScriptObject,), {"__slots__": ()})
        cls.qualname = qualname
    return cls


def _restore_type_tag(value, type_str=None):
    return value


def _build_list(items):
    if not isinstance(items, list):
        raise CheckpointError(f"torch.jit._pickle list builder of a {type(items).__name__}")
    return items


def resolve(module, name):
    """Stand-ins for the globals a TorchScript data.pkl names beyond a checkpoint's."""
    if module == "__torch__" or module.startswith("__torch__."):
        return _script_class(f"{module}.{name}")
    if module == "torch.jit._pickle":
        if name == "restore_type_tag":
            return _restore_type_tag
        if name in ("build_tensorlist", "build_intlist", "build_doublelist", "build_boollist"):
            return _build_list
    return None


def attributes(obj, depth=0):
    """The unpickled module tree with every script object replaced by its attributes
    (an OrderedDict): parameters then land under their state-dict names."""
    if depth > MAX_DEPTH:
        raise CheckpointError(f"the TorchScript module tree nests deeper than {MAX_DEPTH} levels")
    if isinstance(obj, ScriptObject):
        obj = getattr(obj, "attributes", None) or OrderedDict()
    if isinstance(obj, dict):
        return OrderedDict((k, attributes(v, depth + 1)) for k, v in obj.items())
    if isinstance(obj, list):
        return [attributes(v, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(attributes(v, depth + 1) for v in obj)
    return obj
