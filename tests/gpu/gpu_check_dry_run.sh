#!/usr/bin/env bash
# The GPU check's plumbing, on a machine without a GPU: this build's GPU binaries packed as for a
# GPU machine (scripts/pack-gpu-build.sh), then scripts/gpu-check-dry-run.sh on them (gpu-check.sh
# in its prebuilt mode: every step listed and skipped with its reason, none failing, a results
# folder of at most 8 files). Keeps gpu-check.sh working between the rare GPU runs.
#   gpu_check_dry_run.sh BUILD_DIR WORK_DIR PYTHON SHARED_DATA
set -euo pipefail
BUILD=$1 WORK=$2 PY=$3 SHARED=$4
REPO=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$WORK" && mkdir -p "$WORK"
bash "$REPO/scripts/pack-gpu-build.sh" "$BUILD" "$WORK/prebuilt" >/dev/null
PYTHON=$PY DIST_DATA=$SHARED/tinyshakespeare bash "$REPO/scripts/gpu-check-dry-run.sh" "$WORK/prebuilt" "$WORK"
