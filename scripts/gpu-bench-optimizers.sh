#!/usr/bin/env bash
# gpu-bench-optimizers.sh: `mousse bench` of one training step with each optimizer family on the
# paper's configs (random tokens), so that optimizer time, refresh cost and memory can be compared
# in one run on one GPU. Prints one table last.
#
#   scripts/gpu-bench-optimizers.sh [MOUSSE_BIN] [SIZE] [MICRO_BATCH]
#   e.g. scripts/gpu-bench-optimizers.sh build/mousse 162m 16
# STEPS (default 20, two Mousse/SOAP refreshes at T = 10) and WARMUP (default 3) from the env.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$ROOT/build/mousse}
SIZE=${2:-162m}
B=${3:-16}
T=1024
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}
LOGS=${LOGS_DIR:-$ROOT/runs/gpu-bench-optimizers}
mkdir -p "$LOGS"
rows=()
for opt in adamw muon soap mousse mousse-output mousse-smaller \
           mousse-fast mousse-output-fast mousse-smaller-fast mousse-overlap mousse-output-overlap; do
  cfg=$ROOT/configs/paper/$SIZE-${opt%%-*}.json
  extra=()
  case "$opt" in  # single-sided Mousse: the output side, or the smaller side of each matrix
    mousse-output*) extra=(--set optimizer.matrix.whiten=output) ;;
    mousse-smaller*) extra=(--set optimizer.matrix.whiten=smaller) ;;
  esac
  case "$opt" in  # "fast": the power_qr refresh and bf16 statistics GEMMs
    *-fast) extra+=(--set optimizer.matrix.refresh=power_qr --set optimizer.matrix.stats_dtype=bf16) ;;
    # "overlap": the exact eigh refresh on a worker thread (its own CUDA stream), taking effect
    # 5 steps after its statistics, overlapping those steps
    *-overlap) extra+=(--set optimizer.matrix.refresh_overlap=5) ;;
  esac
  log=$LOGS/bench-$SIZE-$opt.log
  echo "=== $opt ($cfg ${extra[*]})"
  timeout --foreground 120 "$BIN" bench -c "$cfg" --synthetic --steps "$STEPS" --warmup "$WARMUP" \
    --set batch.micro_batch="$B" --set batch.seq_len=$T --set batch.global_tokens=$((B * T)) \
    "${extra[@]}" 2>&1 | tee "$log"
  line=$(grep -E "^BENCH " "$log" | tail -1)
  if [ -n "$line" ]; then rows+=("$opt $line"); else rows+=("$opt FAILED (log $log)"); fi
done
echo
echo "=== $SIZE, B=$B T=$T, $STEPS timed steps"
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
printf "%-20s %10s %8s %9s %9s %9s %9s %9s\n" optimizer tokens/s MFU step_ms fwd_ms bwd_ms opt_ms mem_GiB
for r in "${rows[@]}"; do
  name=${r%% *}
  case "$r" in *FAILED*) echo "$r"; continue ;; esac
  printf "%-20s %10s %8s %9s %9s %9s %9s %9s\n" "$name" "$(field "$r" tokens_per_s)" \
    "$(field "$r" mfu)" "$(field "$r" step_ms)" "$(field "$r" forward_ms)" \
    "$(field "$r" backward_ms)" "$(field "$r" optimizer_ms)" "$(field "$r" mem_gib)"
done
