"""Sphinx configuration: the fastrnn documentation site.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors) and
``sphinx-build -W -b doctest docs docs/_build/doctest`` (every ``{doctest}`` block runs).
fastrnn must be importable: built in place (PYTHONPATH) or installed.
"""
import os
import sys

import fastrnn

project = "fastrnn"
author = "the fastrnn developers"
copyright = "the fastrnn developers"
release = version = fastrnn.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "README.md", "examples/README.rst", "**/*.ipynb"]
root_doc = "index"

myst_heading_anchors = 3
# pages that point at the repository's source files (../fastrnn/..., bench/...) keep
# those paths as text; cross-references between pages must resolve (-W)
suppress_warnings = ["myst.xref_missing"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True,
                           "special-members": "__call__"}
autodoc_typehints = "none"          # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# every {doctest} block and docstring example runs with these names
doctest_global_setup = """
import pathlib, tempfile
import numpy as np
import fastrnn
fastrnn.set_num_threads(1)
tmp = pathlib.Path(tempfile.mkdtemp())
"""
os.environ.setdefault("FASTRNN_PROFILE", "off")   # the defaults, not a local profile

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "abort_on_example_error": True,
}

html_theme = "pydata_sphinx_theme"
html_title = f"fastrnn {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_static_path = []
sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))

import doctest  # noqa: E402

# error messages in the examples are checked too (Sphinx's default ignores them)
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _literal_blocks(app, what, name, obj, options, lines):
    """Free-form docstrings (not numpydoc: no section underlines) show code as an
    indented block after a blank line; mark each such block literal (``::``) so that
    reST does not read it as a definition list."""
    if any(set(line.strip()) == {"-"} for line in lines):
        return
    indent = lambda s: len(s) - len(s.lstrip())  # noqa: E731
    out, base = [], None
    for i, line in enumerate(lines):
        if line.strip() and base is None:
            base = indent(line)
        starts_block = (line.strip() and base is not None and indent(line) > base
                        and i > 0 and not lines[i - 1].strip()
                        and (len(out) < 2 or indent(out[-2]) <= base))
        if starts_block:
            prev = next((p for p in reversed(out) if p.strip()), "")
            if not prev.rstrip().endswith("::"):
                out[-1:] = ["", "::", ""]
        out.append(line)
    lines[:] = out


def setup(app):
    app.connect("autodoc-process-docstring", _literal_blocks, priority=400)
