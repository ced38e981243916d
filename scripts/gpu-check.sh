#!/usr/bin/env bash
# gpu-check.sh: one command for a GPU machine. Configures the CUDA build, builds the needed
# targets, runs the GPU op tests (ctest -L gpu), the op micro-benchmark, the model benchmark
# (when configs/162m-adamw-bench.json exists), then prints a summary table. Sized to fit in ten
# minutes on one H100 with 16 cores.
#
#   scripts/gpu-check.sh                 # build dir ./build, sm_90, -j16
#   BUILD_DIR=build-h100 MOUSSE_CUDA_ARCH=90 JOBS=16 scripts/gpu-check.sh
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
ARCH=${MOUSSE_CUDA_ARCH:-90}
JOBS=${JOBS:-16}
BENCH_CFG=$ROOT/configs/162m-adamw-bench.json
LOGS=$BUILD/gpu-check-logs
mkdir -p "$LOGS"

names=() results=() secs=() notes=()
record() { names+=("$1"); results+=("$2"); secs+=("$3"); notes+=("$4"); }

# run_step NAME TIMEOUT_S CMD...: output to the terminal and to $LOGS/NAME.log
run_step() {
  local name=$1 limit=$2; shift 2
  echo
  echo "=== $name: $*"
  local t0=$(date +%s)
  timeout --foreground "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
  local rc=${PIPESTATUS[0]}
  local dt=$(( $(date +%s) - t0 ))
  local res=PASS note=""
  if [ "$rc" -eq 124 ]; then res=FAIL; note="timed out after ${limit}s";
  elif [ "$rc" -eq 77 ]; then res=SKIP; note="no usable GPU";
  elif [ "$rc" -ne 0 ]; then res=FAIL; note="exit $rc (log: $LOGS/$name.log)"; fi
  record "$name" "$res" "$dt" "$note"
  return "$rc"
}

echo "gpu-check: root $ROOT, build $BUILD, sm_$ARCH, -j$JOBS"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  echo "warning: nvidia-smi not found"
fi

ok=1
run_step configure 120 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMOUSSE_CUDA=ON \
  -DMOUSSE_CUDA_ARCH="$ARCH" || ok=0
if [ $ok -eq 1 ]; then
  targets=(test_cuda_ops bench-ops-cuda)
  [ -f "$BENCH_CFG" ] && targets+=(mousse)
  run_step build 300 cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" || ok=0
fi
if [ $ok -eq 1 ]; then
  run_step gpu-tests 200 bash -c "cd '$BUILD' && ctest -L gpu --output-on-failure"
  # ctest exits 0 for a skipped test (exit code 77): show it as SKIP, not PASS.
  if [ "${results[-1]}" = PASS ] && grep -q -i "skipped" "$LOGS/gpu-tests.log"; then
    results[-1]=SKIP; notes[-1]="GPU tests skipped (no usable GPU)"
  fi
  run_step bench-ops 120 "$BUILD/bench-ops-cuda"
  if [ -f "$BENCH_CFG" ]; then
    if [ -x "$BUILD/mousse" ]; then
      run_step bench-model 150 "$BUILD/mousse" bench -c "$BENCH_CFG"
    else
      record bench-model FAIL 0 "build/mousse missing"
    fi
  else
    record bench-model SKIP 0 "configs/162m-adamw-bench.json not present"
  fi
fi

echo
echo "=== summary (logs in $LOGS)"
printf "%-12s %-6s %8s  %s\n" step result seconds note
fail=0
for i in "${!names[@]}"; do
  printf "%-12s %-6s %8s  %s\n" "${names[$i]}" "${results[$i]}" "${secs[$i]}" "${notes[$i]}"
  [ "${results[$i]}" = FAIL ] && fail=1
done
if [ -f "$LOGS/gpu-tests.log" ]; then
  grep -E "test cases|assertions|SKIPPED|tests passed|tests failed" "$LOGS/gpu-tests.log" | tail -4
fi
if [ -f "$LOGS/bench-ops.log" ]; then
  echo "--- op benchmark"
  awk '/^op +shape/{p=1} p' "$LOGS/bench-ops.log"
fi
exit $fail
