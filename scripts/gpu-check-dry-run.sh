#!/usr/bin/env bash
# gpu-check-dry-run.sh: runs scripts/gpu-check.sh on prebuilt binaries (scripts/pack-gpu-build.sh)
# on a machine WITHOUT a GPU, and checks what it reports, so that the GPU check is known to work
# before GPU time is spent on it: every step is listed, each as SKIP with its reason (a step that
# passes without a GPU has checked nothing), none fails, the run exits 0, and RESULTS_DIR holds a
# summary and at most 8 files.
#
#   scripts/gpu-check-dry-run.sh PREBUILT_DIR [WORK_DIR]
#
# The environment passes through to gpu-check.sh (DIST_DATA, PYTHON, an OpenMPI's PATH...).
# Exit: 0 the dry run is as expected; 1 it is not (the output says why); 77 a GPU is present.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREBUILT=${1:?usage: gpu-check-dry-run.sh PREBUILT_DIR [WORK_DIR]}
WORK=${2:-$(mktemp -d)}
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
  echo "gpu-check-dry-run: a GPU is present: run scripts/gpu-check.sh itself"
  exit 77
fi
[ -d "$PREBUILT/bin" ] || { echo "gpu-check-dry-run: $PREBUILT/bin does not exist (scripts/pack-gpu-build.sh)" >&2; exit 1; }
rm -rf "$WORK/logs" "$WORK/results"
mkdir -p "$WORK"

PREBUILT_DIR=$PREBUILT LOGS_DIR=$WORK/logs RESULTS_DIR=$WORK/results PYTHON=${PYTHON:-python3} \
  bash "$ROOT/scripts/gpu-check.sh" >"$WORK/out.log" 2>&1
rc=$?
sed -n '/^=== summary/,$p' "$WORK/out.log"

problems=()
[ "$rc" -eq 0 ] || problems+=("gpu-check.sh exited $rc")
# The summary's step rows: "step RESULT seconds note".
steps=" gpu-tests bench-model bench-torch bench-train-optim nccl-forced bench-optim bench-ops nccl-1rank nccl-grouped "
rows=$(awk -v steps="$steps" '/^=== summary/{p=1; next} p && index(steps, " " $1 " ") {print $1, $2}' "$WORK/out.log")
for s in $steps; do
  grep -q "^$s " <<<"$rows" || problems+=("step $s is not in the summary")
done
while read -r name result; do
  [ -n "$name" ] || continue
  [ "$result" = SKIP ] || problems+=("step $name is $result without a GPU")
done <<<"$rows"
if ! grep -q "^gpu-tests *SKIP.*no usable GPU" <<<"$(sed -n '/^=== summary/,$p' "$WORK/out.log")"; then
  problems+=("the GPU tests did not report themselves skipped for want of a GPU")
fi
[ -s "$WORK/results/summary.txt" ] || problems+=("no summary.txt in RESULTS_DIR")
n=$(find "$WORK/results" -type f 2>/dev/null | wc -l)
[ "$n" -le 8 ] || problems+=("RESULTS_DIR holds $n files (at most 8 come back from the GPU machine)")

if [ ${#problems[@]} -gt 0 ]; then
  printf 'gpu-check-dry-run: %s\n' "${problems[@]}" >&2
  echo "gpu-check-dry-run: the whole output: $WORK/out.log" >&2
  exit 1
fi
echo "gpu-check-dry-run: as expected: every GPU step skipped with its reason, $n result file(s)"
