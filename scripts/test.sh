#!/usr/bin/env bash
# Installs dependencies, builds everything (CUDA code is compiled where nvcc exists, so it never
# rots), and runs every test. GPU tests skip with a visible message where no GPU is usable.
# MOUSSE_SHARED_DATA points the data-driven tests at the shared data folder (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh
ctest --test-dir "${MOUSSE_BUILD_DIR:-build}" -j "${MOUSSE_TEST_JOBS:-2}" --output-on-failure "$@"
