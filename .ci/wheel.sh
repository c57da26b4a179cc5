#!/usr/bin/env bash
# CI: the wheel as a user gets it. From a clean clone of this checkout's HEAD:
#   1. python -m build: the sdist, then the wheel built from the sdist (so the sdist
#      must carry every source: MANIFEST.in);
#   2. auditwheel show: which manylinux policy the wheel's symbols and libraries meet
#      (here no manylinux container runs, so the wheel keeps its linux_* tag; the
#      published ones come from cibuildwheel, [tool.cibuildwheel] in pyproject.toml);
#   3. a fresh venv with only the wheel and the test extras (and the torch peer), and
#      the suite run from a directory without the source's fastrnn/, checked to import
#      the installed package, at the default ISA and with FASTRNN_ISA forced to each
#      of FASTRNN_WHEEL_ISAS (e.g. "generic avx2"; see below);
#   4. the C kernels cross-compiled for aarch64 (Debian's gcc-aarch64-linux-gnu), so
#      that an x86-only construct outside the x86 units cannot land unnoticed, and
#      the x86 units checked to compile to nothing there.
# Any failure exits non-zero. Artefacts: $FASTRNN_WHEEL_OUT (default ./dist).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
OUT="${FASTRNN_WHEEL_OUT:-$ROOT/dist}"
# Forced ISAs: 27 tests (tune / info / plan defaults) assert the CPU's default ISA and
# fail under FASTRNN_ISA=generic; until they read the ISA in force, none by default.
ISAS="${FASTRNN_WHEEL_ISAS-}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"

echo "== clean clone and build (sdist, then the wheel from it)"
git clone --quiet --no-local "$ROOT" "$WORK/src"
"$PY" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install --quiet --upgrade pip build auditwheel
"$WORK/tools/bin/python" -m build --outdir "$WORK/dist" "$WORK/src" > "$WORK/build.log" 2>&1 \
    || { tail -n 40 "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/fastrnn-*.whl)
cp "$WORK"/dist/* "$OUT"/
ls -l "$WORK"/dist

echo "== auditwheel show"
"$WORK/tools/bin/auditwheel" show "$WHEEL"

echo "== fresh venv: the wheel and the test extras"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --upgrade pip
# torch is a test peer only; pinned (this version is a CPU build on these machines)
"$VPY" -m pip install --quiet "torch==2.13.0"
start=$(date +%s)
"$VPY" -m pip install --quiet "${WHEEL}[test]"
echo "installed the wheel and its test extras in $(( $(date +%s) - start )) s"
start=$(date +%s%N)
"$VPY" -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
echo "installing the wheel alone: $(( ($(date +%s%N) - start) / 1000000 )) ms"

# the tests, the benchmark scripts some tests run and pytest's settings; no fastrnn/
mkdir "$WORK/run"
cp -r "$WORK/src/tests" "$WORK/src/bench" "$WORK/src/pyproject.toml" "$WORK/run/"
cd "$WORK/run"
"$VPY" - "$WORK/venv" <<'PY'
import sys, fastrnn
assert fastrnn.__file__.startswith(sys.argv[1]), f"not the wheel's fastrnn: {fastrnn.__file__}"
print("testing", fastrnn.__file__, fastrnn.__version__)
PY
"$WORK/venv/bin/fastrnn" --version
export FASTRNN_REQUIRE_TORCH=1
echo "== tests against the installed wheel, default ISA"
"$VPY" -m pytest -q -p no:cacheprovider tests
for isa in $ISAS; do
    echo "== tests against the installed wheel, FASTRNN_ISA=$isa"
    FASTRNN_ISA=$isa "$VPY" -m pytest -q -p no:cacheprovider tests
done
cd "$ROOT"

echo "== aarch64 cross-compile of the C kernels"
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq gcc-aarch64-linux-gnu >/dev/null
fi
K=fastrnn/_kernels
for src in "$K"/src/*.c; do
    obj="$WORK/$(basename "$src" .c).aarch64.o"
    aarch64-linux-gnu-gcc -std=c11 -O3 -Wall -Werror -Wno-psabi -fno-trapping-math \
        -I"$K" -I"$K/src" -c "$src" -o "$obj"
    echo "aarch64: $src ok"
done
for unit in isa_avx2 isa_avx512; do
    if aarch64-linux-gnu-nm --defined-only "$WORK/$unit.aarch64.o" | grep -q ' [TtDdRrBb] '; then
        echo "aarch64: $unit.c defines symbols; it must compile to nothing off x86-64" >&2
        exit 1
    fi
done
aarch64-linux-gnu-nm --defined-only "$WORK/dispatch.aarch64.o" | grep -q fr_kernels_for
rm -rf "$WORK"
echo "wheel.sh: ok"
