#!/usr/bin/env bash
# CI: ruff (configured in pyproject.toml, [tool.ruff]) over the repository and mypy over
# the public surface (pyproject.toml, [tool.mypy] files, the Cython modules through
# their .pyi stubs). Installs the lint extra's tools only. Any finding exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet "ruff>=0.6" "mypy>=1.10"
ruff --version
ruff check .
mypy
