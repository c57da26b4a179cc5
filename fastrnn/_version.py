"""The version, in this one place: pyproject.toml reads it (setuptools' dynamic
version, parsed without importing fastrnn) and fastrnn.__version__ is this."""
__version__ = "0.1.0"
