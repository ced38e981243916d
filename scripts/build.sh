#!/usr/bin/env bash
# Configures and builds Mousse into build/ (CUDA targets too where nvcc exists).
# Extra arguments go to CMake's configure step, e.g. -DMOUSSE_CUDA=OFF.
# MOUSSE_TARGETS limits what is built (default: everything, tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${MOUSSE_BUILD_DIR:-build}"
JOBS="${MOUSSE_JOBS:-$(nproc)}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${MOUSSE_SHARED_DATA:+-DMOUSSE_SHARED_DATA="$MOUSSE_SHARED_DATA"} "$@" >/dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD_DIR" -j "$JOBS" ${MOUSSE_TARGETS:+--target $MOUSSE_TARGETS}
