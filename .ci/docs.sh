#!/usr/bin/env bash
# CI: the documentation site. Builds docs/ with warnings as errors, runs every doctest
# block and docstring example (sphinx doctest builder) and the gallery (during the html
# build), then screenshots the front page and fastrnn.LSTM's API page with headless
# Chromium and checks they rendered (docs/screenshot.py). Artefacts: docs/_build/html
# and docs/_build/screenshots/*.png.
#
# Runs against the fastrnn installed in the active environment (.ci/run installs it);
# sphinx-build does not put the checkout on sys.path. Needs root for apt-get when
# chromium is missing. About a minute on 2 cores once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# the installed fastrnn, not this checkout's uncompiled fastrnn/ from the working
# directory (python -c, and the gallery's python -m fastrnn)
export PYTHONSAFEPATH=1

python -c "import fastrnn._kernels._stack" 2>/dev/null || {
    echo "docs.sh: fastrnn is not installed in this environment (pip install .)" >&2; exit 1; }

if ! command -v chromium >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi
# the docs extra's packages, not fastrnn again (already built and installed)
python -m pip install --quiet $(python - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    print(" ".join(r for r in
                   tomllib.load(f)["project"]["optional-dependencies"]["docs"]))
PY
)

rm -rf docs/_build docs/auto_examples docs/api/generated
export FASTRNN_PROFILE=off
sphinx-build -W --keep-going -q -b html docs docs/_build/html
sphinx-build -W --keep-going -q -b doctest docs docs/_build/doctest
tail -n 4 docs/_build/doctest/output.txt
python docs/screenshot.py docs/_build/html docs/_build/screenshots
