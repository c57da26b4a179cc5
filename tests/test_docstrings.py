"""The Examples sections of the public API's docstrings run, as the docs show them.

Each docstring runs with `np`, `fastrnn` and `tmp` (a fresh directory) in scope, as
the docs' doctest setup gives them (docs/conf.py, doctest_global_setup).
"""
import doctest
import importlib

import numpy as np
import pytest
from conftest import _torch

import fastrnn

# module -> the objects whose docstrings hold examples
MODULES = ["fastrnn.layers", "fastrnn.stream", "fastrnn._load", "fastrnn.io",
           "fastrnn.io.errors", "fastrnn._torch", "fastrnn._threads", "fastrnn._info",
           "fastrnn._kernels.plan"]


def _examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    for name in MODULES:
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples:
                yield pytest.param(test, id=test.name)


@pytest.mark.parametrize("test", list(_examples()))
def test_docstring_examples(test, tmp_path):
    if any("import torch" in ex.source for ex in test.examples):
        _torch()   # a skip only where torch is absent and not required
    test.globs.update(np=np, fastrnn=fastrnn, tmp=tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    try:
        runner.run(test, out=out.append)
    finally:
        fastrnn.set_num_threads(1)
    assert runner.failures == 0, "".join(out)


def test_every_public_name_documented():
    """Each public name has a numpydoc docstring with its sections."""
    for name in ["LSTM", "RNN", "Stream", "load", "load_checkpoint", "from_torch", "Plan",
                 "set_num_threads", "num_threads", "show_config", "CheckpointError"]:
        doc = getattr(fastrnn, name).__doc__ or ""
        assert "Examples\n" in doc and "--------" in doc, name
