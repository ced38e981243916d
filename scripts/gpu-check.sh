#!/usr/bin/env bash
# gpu-check.sh: one command for a GPU machine. Configures the CUDA build, builds the needed
# targets (or takes the binaries scripts/gpu-check-prepare.sh packed: PREBUILT_DIR), then, in
# priority order: every GPU test (ctest -L gpu: every op vs its CPU twin, a full f32 training
# step vs the CPU, a bf16 loss curve vs f32, every optimizer vs the CPU); `mousse bench` on the
# 162m config with a per-op profile next to the torch.compile reference of the same model at the
# same B, T (scripts/torch_reference.py); the optimizers inside the training step at the paper's
# micro-batch (scripts/gpu-bench-optimizers.sh); NCCL's data-parallel path forced with one rank
# against the single process; then the op and optimizer micro-benchmarks and two more NCCL runs.
# It prints a summary table with both throughputs last.
#
#   scripts/gpu-check.sh                 # build dir ./build, sm_90, -j16
#   BUILD_DIR=build-h100 MOUSSE_CUDA_ARCH=90 JOBS=16 PYTHON=python3 scripts/gpu-check.sh
#   SKIP_TORCH=1 scripts/gpu-check.sh    # without the PyTorch reference
#   BENCH_B=16 (mousse vs torch.compile), OPTIM_BENCH_B=32 (the optimizer table, the paper's
#   micro-batch), SKIP_OPTIMIZER_STEPS=1, BENCH_OPTIM_PRESET=162m|834m|all
#   GPU_CHECK_ONLY="gpu-tests bench-optim" only those steps (configure build gpu-tests
#   bench-model bench-torch bench-train-optim nccl-forced bench-optim bench-ops nccl-1rank
#   nccl-grouped);
#   FULL_STEP_MS=514 the full 162m step bench-optim judges Mousse's overhead against
#   GPU_CHECK_BUDGET_S=450 the whole run's time budget (default 450 s, so that the call with its
#       unpacking stays under 8 minutes and a failed step can be fixed and rerun within a
#       15-minute lease): each step's time limit is cut to what is left, a step that cannot
#       start with at least 30 s left is listed as CUT, and the summary says which
#       GPU_CHECK_ONLY call runs the rest. GPU_CHECK_BUDGET_S=0: no budget.
#   PREBUILT_DIR=DIR scripts/gpu-check.sh
#       no configure/build: run the binaries that scripts/pack-gpu-build.sh gathered in DIR
#       (for a GPU machine that lacks our build dependencies; LOGS_DIR=... to keep the logs)
#   RESULTS_DIR=DIR: also write the summary (summary.txt) and the logs grouped by step into at
#       most 8 files there (a results folder small enough to bring back).
#   DIST_DATA=DIR: the folder with tiny_shakespeare_train.bin for the NCCL comparisons.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
ARCH=${MOUSSE_CUDA_ARCH:-90}
JOBS=${JOBS:-16}
BENCH_CFG=$ROOT/configs/162m-adamw-bench.json
BENCH_B=${BENCH_B:-16}
BENCH_T=${BENCH_T:-1024}
PYTHON=${PYTHON:-python3}
LOGS=${LOGS_DIR:-$BUILD/gpu-check-logs}
PREBUILT=${PREBUILT_DIR:-}
if [ -n "$PREBUILT" ]; then
  case "$PREBUILT" in /*) ;; *) PREBUILT=$ROOT/$PREBUILT ;; esac
  BIN=$PREBUILT/bin
  export LD_LIBRARY_PATH=$PREBUILT/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
else
  BIN=$BUILD
fi
mkdir -p "$LOGS"

names=() results=() secs=() notes=()
record() { names+=("$1"); results+=("$2"); secs+=("$3"); notes+=("$4"); }
BUDGET=${GPU_CHECK_BUDGET_S:-450}
START=$(date +%s)
SUMMARY_RESERVE=10  # seconds kept for the summary table
cut=()              # steps the budget did not let run (or finish)

# run_step NAME TIMEOUT_S CMD...: output to the terminal and to $LOGS/NAME.log
# GPU_CHECK_ONLY="gpu-tests bench-optim ..." runs only the named steps (to split the check over
# several 10-minute calls); the others are listed as SKIP.
run_step() {
  local name=$1 limit=$2; shift 2
  if [ -n "${GPU_CHECK_ONLY:-}" ] && [[ " $GPU_CHECK_ONLY " != *" $name "* ]]; then
    record "$name" SKIP 0 "not in GPU_CHECK_ONLY"
    return 0
  fi
  case "$name" in
    configure|build|gpu-tests) ;;  # the GPU tests report a missing GPU themselves (exit 77)
    *) if [ "$have_gpu" -eq 0 ]; then record "$name" SKIP 0 "no GPU (nvidia-smi -L lists none)"; return 0; fi ;;
  esac
  local by_budget=0
  if [ "$BUDGET" -gt 0 ]; then
    local left=$(( START + BUDGET - SUMMARY_RESERVE - $(date +%s) ))
    if [ "$left" -lt 30 ]; then
      record "$name" CUT 0 "not started: ${left}s left of the ${BUDGET}s budget"
      cut+=("$name")
      return 1
    fi
    if [ "$left" -lt "$limit" ]; then limit=$left; by_budget=1; fi
  fi
  echo
  echo "=== $name (limit ${limit}s): $*"
  local t0=$(date +%s)
  timeout --foreground "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
  local rc=${PIPESTATUS[0]}
  local dt=$(( $(date +%s) - t0 ))
  local res=PASS note=""
  if [ "$rc" -eq 124 ] && [ "$by_budget" -eq 1 ]; then
    res=CUT; note="stopped at the end of the ${BUDGET}s budget"; cut+=("$name")
  elif [ "$rc" -eq 124 ]; then res=FAIL; note="timed out after ${limit}s";
  elif [ "$rc" -eq 77 ]; then res=SKIP; note="no usable GPU";
  elif [ "$rc" -ne 0 ]; then res=FAIL; note="exit $rc (log: $LOGS/$name.log)"; fi
  record "$name" "$res" "$dt" "$note"
  return "$rc"
}

echo "gpu-check: root $ROOT, build $BUILD, sm_$ARCH, -j$JOBS"
# NCCL (a binary built with MPI links it) and cuDNN (bf16 attention, cuda/attention_cudnn.h): from
# the loader cache, else from the pip wheels PyTorch installs.
extra_libs=$("$ROOT/scripts/gpu-libs.sh" "$PYTHON")
[ -n "$extra_libs" ] && export LD_LIBRARY_PATH=$extra_libs:${LD_LIBRARY_PATH:-}
have_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
  have_gpu=1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  echo "warning: no GPU found (nvidia-smi -L): the benchmarks will be skipped"
fi

ok=1
if [ -n "$PREBUILT" ]; then
  echo "prebuilt binaries in $BIN:"; ls "$BIN"
else
run_step configure 120 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMOUSSE_CUDA=ON \
  -DMOUSSE_CUDA_ARCH="$ARCH" || ok=0
if [ $ok -eq 1 ]; then
  targets=(test_cuda_ops test_cuda_train test_cuda_kernels_edge test_cuda_optim bench-ops-cuda
           bench-optim-cuda)
  [ -f "$BENCH_CFG" ] && targets+=(mousse)
  run_step build 300 cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" || ok=0
fi
fi
if [ $ok -eq 1 ]; then
  if [ -n "$PREBUILT" ]; then
    # Every GPU test binary runs even when an earlier one fails; the step fails if any did.
    # The optimizer test last: its CPU reference (LAPACK eigh at 3072) is the slow part.
    # Then eigh_batched's per-matrix path (the batched one is picked when the library has it).
    gpu_tests="rc=0; for t in \$(ls '$BIN'/test_cuda_* | grep -v optim) '$BIN'/test_cuda_optim; do [ -x \"\$t\" ] || continue; echo \"--- \$t\"; \"\$t\"; r=\$?; [ \$r -eq 0 ] || [ \$r -eq 77 ] || rc=1; done; echo '--- test_cuda_ops eigh_batched, MOUSSE_EIGH_BATCHED=0'; MOUSSE_EIGH_BATCHED=0 '$BIN'/test_cuda_ops 'cuda eigh_batched*'; r=\$?; [ \$r -eq 0 ] || [ \$r -eq 77 ] || rc=1; exit \$rc"
  else
    gpu_tests="cd '$BUILD' && ctest -L gpu --output-on-failure"
  fi
  run_step gpu-tests ${GPU_TESTS_TIMEOUT:-400} bash -c "$gpu_tests"
  # A skipped GPU test exits 77 (ctest reports it as passed-but-skipped): show it as SKIP.
  if [ "${results[-1]}" = PASS ] && grep -q -i "skipped" "$LOGS/gpu-tests.log"; then
    results[-1]=SKIP; notes[-1]="GPU tests skipped (no usable GPU)"
  fi
  if [ -f "$BENCH_CFG" ]; then
    if [ -x "$BIN/mousse" ]; then
      run_step bench-model 150 "$BIN/mousse" bench -c "$BENCH_CFG" --synthetic --set device=cuda \
        --set batch.micro_batch=$BENCH_B --set batch.seq_len=$BENCH_T \
        --set batch.global_tokens=$((BENCH_B * BENCH_T)) --steps 20 --warmup 3 --profile 3 \
        --json "$LOGS/bench-mousse.json"
    else
      record bench-model FAIL 0 "build/mousse missing"
    fi
  else
    record bench-model SKIP 0 "configs/162m-adamw-bench.json not present"
  fi
  # The torch.compile comparison (docs/cuda.md's throughput target) right after mousse's own: the same model, B, T and GPU.
  if [ "${SKIP_TORCH:-0}" = 1 ]; then
    record bench-torch SKIP 0 "SKIP_TORCH=1"
  elif ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() and hasattr(torch, 'compile') else 1)" 2>/dev/null; then
    record bench-torch SKIP 0 "$PYTHON has no CUDA-enabled torch >= 2"
  else
    run_step bench-torch 300 "$PYTHON" "$ROOT/scripts/torch_reference.py" --preset 162m \
      --batch "$BENCH_B" --seq "$BENCH_T" --steps 20 --warmup 5
  fi
  # In the order of what matters most, so that the budget cuts the least important: the GPU tests
  # (above), the 162m step against torch.compile (above), the optimizers in the training step,
  # NCCL's data-parallel path against the single process; then the op and optimizer
  # micro-benchmarks, a plain one-rank NCCL run and the grouped NCCL path.
  # The optimizers inside the training step, at the paper's micro-batch (32 × 1024 per GPU,
  # configs/paper): docs/cuda.md's memory target compares total device memory at that batch.
  if [ "${SKIP_OPTIMIZER_STEPS:-0}" != 1 ] && [ -x "$BIN/mousse" ]; then
    run_step bench-train-optim 360 env LOGS_DIR="$LOGS/optimizers" STEPS=12 \
      "$ROOT/scripts/gpu-bench-optimizers.sh" "$BIN/mousse" 162m "${OPTIM_BENCH_B:-32}"
  fi
  # The NCCL path (needs mousse built with MPI + NCCL: MOUSSE_NCCL_BIN, default $BIN/mousse-mpi,
  # else $BIN/mousse when it links libmpi; and an mpirun on the PATH, scripts/pack-openmpi.sh for a
  # machine without one). First the data-parallel path forced with one rank against the plain
  # single process, f32 (in-place reduce-scatter / all-gather; DIST_DATA: a folder with
  # tiny_shakespeare_train.bin); then a plain one-rank training run and the grouped per-part path.
  NCCL_BIN=${MOUSSE_NCCL_BIN:-$BIN/mousse-mpi}
  if [ ! -x "$NCCL_BIN" ] && ldd "$BIN/mousse" 2>/dev/null | grep -q libmpi; then
    NCCL_BIN=$BIN/mousse
  fi
  DIST_DATA=${DIST_DATA:-$ROOT/data/tinyshakespeare}
  nccl_skip=
  if ! [ -x "$NCCL_BIN" ] || ! ldd "$NCCL_BIN" 2>/dev/null | grep -q libmpi; then
    nccl_skip="no mousse built with MPI + NCCL (MOUSSE_NCCL_BIN)"
  elif ! command -v mpirun >/dev/null 2>&1; then
    nccl_skip="no mpirun on the PATH (scripts/pack-openmpi.sh)"
  fi
  if [ -n "$nccl_skip" ]; then
    record nccl-forced SKIP 0 "$nccl_skip"
  elif ! [ -f "$DIST_DATA/tiny_shakespeare_train.bin" ]; then
    record nccl-forced SKIP 0 "no $DIST_DATA/tiny_shakespeare_train.bin (set DIST_DATA)"
  else
    run_step nccl-forced 240 "$PYTHON" "$ROOT/tests/dist/dist_test.py" forced mousse \
      --device cuda --mousse "$NCCL_BIN" --mpirun mpirun --data "$DIST_DATA" --work "$LOGS/dist"
  fi
  # Matrix optimizers on the GPU (docs/cuda.md's optimizer targets): step and refresh times at the 162m / 834m shapes.
  # Mousse's overhead is judged against a full 162m step at the paper's per-GPU batch: 2M tokens
  # per step over 8 GPUs = 262,144 tokens per GPU, at the tokens/s bench-model just measured.
  if [ -x "$BIN/bench-optim-cuda" ]; then
    tps=$(grep -E "^BENCH " "$LOGS/bench-model.log" 2>/dev/null | tail -1 | tr ' ' '\n' | sed -n 's/^tokens_per_s=//p')
    full_ms=${FULL_STEP_MS:-$(awk -v t="${tps:-0}" 'BEGIN { if (t > 0) printf "%.1f", 262144 / t * 1000 }')}
    echo "full 162m step at the paper's per-GPU batch (262,144 tokens): ${full_ms:-unknown} ms"
    run_step bench-optim 240 "$BIN/bench-optim-cuda" "${BENCH_OPTIM_PRESET:-162m}" $full_ms
  fi
  run_step bench-ops 120 "$BIN/bench-ops-cuda"
  if [ -n "$nccl_skip" ]; then
    record nccl-1rank SKIP 0 "$nccl_skip"
  else
    run_step nccl-1rank 180 env MOUSSE_DISTRIBUTED=1 mpirun --allow-run-as-root -np 1 \
      -x MOUSSE_DISTRIBUTED -x LD_LIBRARY_PATH -x PATH "$NCCL_BIN" train -c "$ROOT/configs/tiny.json" \
      --set device=cuda --set steps=60 --set eval.every=30 \
      --set log.dir="$LOGS/nccl-run" --overwrite ${NCCL_TRAIN_ARGS:-}
    rm -rf "$LOGS/nccl-run/checkpoints"  # keep the logs folder small enough to copy back
    if [ -f "$DIST_DATA/tiny_shakespeare_train.bin" ]; then
      run_step nccl-grouped 240 env MOUSSE_NCCL_GROUPED=1 "$PYTHON" \
        "$ROOT/tests/dist/dist_test.py" forced adamw --device cuda --mousse "$NCCL_BIN" \
        --mpirun mpirun --data "$DIST_DATA" --work "$LOGS/dist"
    else
      record nccl-grouped SKIP 0 "no $DIST_DATA/tiny_shakespeare_train.bin (set DIST_DATA)"
    fi
  fi
  find "$LOGS/dist" -name '*.safetensors' -delete 2>/dev/null || true
fi

summary() {
  echo
  echo "=== summary (logs in $LOGS)"
  printf "%-17s %-6s %8s  %s\n" step result seconds note
  for i in "${!names[@]}"; do
    printf "%-17s %-6s %8s  %s\n" "${names[$i]}" "${results[$i]}" "${secs[$i]}" "${notes[$i]}"
  done
  if [ ${#cut[@]} -gt 0 ]; then
    echo "cut by the ${BUDGET}s time budget: ${cut[*]}; run them in another call with"
    echo "  GPU_CHECK_ONLY=\"${cut[*]}\" (plus PREBUILT_DIR / BUILD_DIR as in this one)"
  fi
  if [ -f "$LOGS/gpu-tests.log" ]; then
    grep -E "test cases|assertions|SKIPPED|tests passed|tests failed" "$LOGS/gpu-tests.log" | tail -4
  fi
  if [ -f "$LOGS/bench-train-optim.log" ]; then
    echo "--- optimizers in the training step (scripts/gpu-bench-optimizers.sh)"
    awk '/^=== 162m/{p=1} p' "$LOGS/bench-train-optim.log"
  fi
  if [ -f "$LOGS/bench-optim.log" ]; then
    echo "--- bench-optim-cuda (last 30 lines)"
    tail -30 "$LOGS/bench-optim.log"
  fi
  if [ -f "$LOGS/bench-ops.log" ]; then
    echo "--- op benchmark"
    awk '/^op +shape/{p=1} p' "$LOGS/bench-ops.log"
  fi
  # Throughput last: mousse bench vs the torch.compile reference (same model, B, T, GPU, run).
  bench_field() {  # bench_field LOG KEY -> value from the "BENCH ..." line
    [ -f "$1" ] || return 0
    grep -E "^BENCH " "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
  }
  m_tps=$(bench_field "$LOGS/bench-model.log" tokens_per_s)
  t_tps=$(bench_field "$LOGS/bench-torch.log" tokens_per_s)
  echo "--- 162m training step, B=$BENCH_B T=$BENCH_T, bf16 (logs: bench-model.log, bench-torch.log)"
  printf "%-8s %12s %8s %9s %10s %10s %10s %9s\n" impl tokens/s MFU step_ms fwd_ms bwd_ms opt_ms mem_GiB
  if [ -n "$m_tps" ]; then
    L=$LOGS/bench-model.log
    printf "%-8s %12s %8s %9s %10s %10s %10s %9s\n" mousse "$m_tps" "$(bench_field $L mfu)" \
      "$(bench_field $L step_ms)" "$(bench_field $L forward_ms)" "$(bench_field $L backward_ms)" \
      "$(bench_field $L optimizer_ms)" "$(bench_field $L mem_gib)"
  else
    echo "mousse   (no result)"
  fi
  if [ -n "$t_tps" ]; then
    L=$LOGS/bench-torch.log
    printf "%-8s %12s %8s %9s %10s %10s %10s %9s\n" torch "$t_tps" "$(bench_field $L mfu)" \
      "$(bench_field $L step_ms)" - - - "$(bench_field $L mem_gib)"
  else
    echo "torch    (no result)"
  fi
  if [ -n "$m_tps" ] && [ -n "$t_tps" ]; then
    awk -v m="$m_tps" -v t="$t_tps" -v f="$(bench_field "$LOGS/bench-model.log" mfu)" 'BEGIN {
      r = m / t
      speed = "NOT met"; if (r >= 1.3) speed = "met"
      printf "mousse / torch.compile: %.2fx (target >= 1.3x: %s)", r, speed
      if (f != "n/a" && f != "") {
        mfu = "NOT met"; if (f + 0 >= 0.5) mfu = "met"
        printf "; mousse MFU %.1f%% (target >= 50%%: %s)", 100 * f, mfu
      }
      printf "\n" }'
  fi
}

# RESULTS_DIR (e.g. the GPU machine tool's $OUT): the summary and the step logs grouped into at
# most 8 files, small enough to bring back; the full logs stay in $LOGS.
collect_results() {
  local R=$1
  mkdir -p "$R"
  group() {  # group FILE LOG... : the logs that exist, each under a header, into $R/FILE
    local out=$R/$1 f; shift
    for f in "$@"; do
      [ -f "$LOGS/$f" ] || continue
      echo "===== $f"; cat "$LOGS/$f"
    done >"$out"
    [ -s "$out" ] || rm -f "$out"
  }
  group build.log configure.log build.log
  group tests.log gpu-tests.log
  group model.log bench-model.log bench-mousse.json bench-torch.log
  group optimizers.log bench-train-optim.log
  group nccl.log nccl-forced.log nccl-1rank.log nccl-grouped.log
  group micro.log bench-optim.log bench-ops.log
}

fail=0
for r in "${results[@]}"; do [ "$r" = FAIL ] && fail=1; done
if [ -n "${RESULTS_DIR:-}" ]; then
  collect_results "$RESULTS_DIR"
  summary | tee "$RESULTS_DIR/summary.txt"
else
  summary
fi
exit $fail
