#!/usr/bin/env bash
# configs/paper: the committed files equal what scripts/make_paper_configs.py writes, and every one
# of them (and configs/small) passes `mousse config` (full validation of keys and optimizers on a
# planned, never-allocated model) with the batch split of its rank count.
#   check_paper_configs.sh MOUSSE_BIN PYTHON WORKDIR
set -euo pipefail
MOUSSE=$1 PY=$2 WORK=$3
REPO=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$WORK" && mkdir -p "$WORK"
"$PY" "$REPO/scripts/make_paper_configs.py" --out "$WORK/paper" --small-out "$WORK/small" >/dev/null
for d in paper small; do
  diff -r "$WORK/$d" "$REPO/configs/$d" \
    || { echo "FAIL: configs/$d differs from scripts/make_paper_configs.py's output; re-run it"; exit 1; }
done
n=0
for f in "$REPO"/configs/paper/*.json "$REPO"/configs/paper/ablations/*.json; do
  case "$f" in */lr_grids.json) continue;; esac
  "$MOUSSE" config -c "$f" --np 8 -q >/dev/null || { echo "FAIL: $f"; exit 1; }
  n=$((n + 1))
done
for f in "$REPO"/configs/small/small-*.json; do
  "$MOUSSE" config -c "$f" -q >/dev/null || { echo "FAIL: $f"; exit 1; }
  n=$((n + 1))
done
echo "PASS: $n configs valid"
