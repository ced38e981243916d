#!/usr/bin/env bash
# Installs dependencies, builds everything (CUDA code is compiled where nvcc exists, so it never
# rots), and runs every test. GPU tests skip with a visible message where no GPU is usable.
# MOUSSE_SHARED_DATA points the data-driven tests at the shared data folder (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${MOUSSE_BUILD_DIR:-build}"

# Room for the build and the files the tests write (measured: ~0.35 GB built, ~0.7 GB more at the
# tests' peak, their folders removed as each passes). The Hugging Face test checks the room for its
# cached environment itself (tests/export/hf_venv.py), before it downloads anything.
need_kb=$((1500 * 1024))
where=$BUILD_DIR
[ -d "$where" ] || where=.
have_kb=$(df -Pk "$where" | awk 'NR == 2 { print $4 }')
if [ "$have_kb" -lt "$need_kb" ]; then
  echo "error: $(cd "$where" && pwd) has $((have_kb / 1024)) MB free; building and testing need about" \
       "$((need_kb / 1024)) MB. Free some space, or set MOUSSE_BUILD_DIR to a folder on a larger disk." >&2
  exit 1
fi

bash scripts/setup-deps.sh
bash scripts/build.sh
ctest --test-dir "$BUILD_DIR" -j "${MOUSSE_TEST_JOBS:-2}" --output-on-failure "$@"
