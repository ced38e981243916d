#!/usr/bin/env bash
# Installs everything Mousse needs to build and test on Debian 12 (bookworm):
# compilers and CMake, CLI11, nlohmann/json, Catch2, OpenBLAS + LAPACKE, OpenMP, MPI,
# zstd/snappy/zlib (tokenizer inputs), clang with libFuzzer (the fuzz tests; without it they run a
# deterministic mutation driver instead), and the Python packages the reference tests use
# (Debian's python3-torch and numpy; tiktoken and pyarrow from PyPI).
# Safe to re-run: it skips what is already there. Set MOUSSE_SKIP_DEPS=1 to skip entirely.
set -euo pipefail
[ "${MOUSSE_SKIP_DEPS:-0}" = 1 ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

DEB_PACKAGES=(build-essential cmake pkg-config git libcli11-dev nlohmann-json3-dev catch2
  libopenblas-dev liblapacke-dev libomp-dev libopenmpi-dev openmpi-bin
  libzstd-dev libsnappy-dev zlib1g-dev clang libclang-rt-dev
  python3 python3-numpy python3-torch python3-pip)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # The downloaded .deb files (~1.5 GB with python3-torch) are deleted once installed.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o APT::Keep-Downloaded-Packages=false \
    "${missing[@]}" >/dev/null
fi

# Python reference tests run with Debian's interpreter (which has python3-torch).
PY=/usr/bin/python3
need_pip=()
# pyarrow 17 is the last release that works with Debian 12's numpy 1.24.
$PY -c "import tiktoken" 2>/dev/null || need_pip+=("tiktoken")
$PY -c "import pyarrow" 2>/dev/null || need_pip+=("pyarrow==17.0.0")
# matplotlib < 3.9 for Debian 12's numpy 1.24 (scripts/plot).
$PY -c "import matplotlib.pyplot" 2>/dev/null || need_pip+=("matplotlib<3.9")
# The reference reader the safetensors tests compare against (tests/core/safetensors_crosscheck.py).
$PY -c "import safetensors" 2>/dev/null || need_pip+=("safetensors")
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "[setup] installing Python packages for $PY: ${need_pip[*]}"
  # Keep Debian's numpy: python3-torch 1.13 is built against numpy 1.x, and a dependency
  # (matplotlib's contourpy) would otherwise pull numpy 2 into /usr/local.
  constraints="$(mktemp)"
  echo "numpy==$($PY -c 'import numpy; print(numpy.__version__)')" > "$constraints"
  $PY -m pip install -q --break-system-packages -c "$constraints" "${need_pip[@]}" 2>/dev/null \
    || $PY -m pip install -q -c "$constraints" "${need_pip[@]}"
  rm -f "$constraints"
fi
echo "[setup] dependencies ready"
