#!/usr/bin/env bash
# mousse's CPU backend against PyTorch eager (scripts/torch_reference.py) on the same model,
# batch, optimizer and thread count: interleaved pairs of runs, then the median tokens/s of each
# program and their ratio, for two configs:
#   tiny  4 layers, d_model 128, 4 heads, B 8, T 128    (configs/tiny.json)
#   d384  6 layers, d_model 384, 6 heads, B 4, T 256
# Both programs train in f32 with synthetic tokens, clip the gradient norm at 1.0 and run AdamW
# on every parameter (the tiny config's Lion on wte / lm_head is switched to AdamW: PyTorch has
# no Lion). PyTorch runs eager (no torch.compile).
#
#   scripts/bench-cpu.sh [--threads N] [--pairs K] [--steps S] [--warmup W] [--configs tiny,d384]
#                        [--baseline OTHER_MOUSSE_BINARY]
#
# Defaults: all the machine's cores, 5 pairs, 10 timed steps after 2 warmup steps per run. The
# order within a pair alternates, so a change of load on a shared machine hits both programs.
# --baseline adds a third run to every pair (another build of mousse, e.g. an older commit's)
# and its median and speed-up.
#
# OpenBLAS's kernel: both programs load the same OpenBLAS, which picks its kernel for the CPU
# unless OPENBLAS_CORETYPE says otherwise; the script runs with the environment it is given and
# prints the kernel in use. To compare both, e.g.:
#   env -u OPENBLAS_CORETYPE scripts/bench-cpu.sh          # OpenBLAS's own choice
#   OPENBLAS_CORETYPE=SkylakeX scripts/bench-cpu.sh        # forced (Haswell on AVX2-only CPUs)
#
# Environment: MOUSSE_BIN (default build/mousse), PYTHON (default /usr/bin/python3, with torch).
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=$(nproc)
PAIRS=5
STEPS=10
WARMUP=2
CONFIGS=tiny,d384
BASELINE=
usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --configs) CONFIGS=$2; shift 2 ;;
    --baseline) BASELINE=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-cpu.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for v in THREADS PAIRS STEPS; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
    echo "bench-cpu.sh: --${v,,} must be a positive integer, got '${!v}'" >&2; exit 2
  fi
done
if ! [[ $WARMUP =~ ^[0-9]+$ ]]; then
  echo "bench-cpu.sh: --warmup must be a non-negative integer, got '$WARMUP'" >&2; exit 2
fi

# config name -> "layers heads d_model batch seq"
dims() {
  case "$1" in
    tiny) echo "4 4 128 8 128" ;;
    d384) echo "6 6 384 4 256" ;;
    *) echo "bench-cpu.sh: unknown config '$1' (tiny, d384)" >&2; exit 2 ;;
  esac
}

IFS=, read -ra names <<<"$CONFIGS"
for name in "${names[@]}"; do dims "$name" >/dev/null || exit 2; done

MOUSSE_BIN=${MOUSSE_BIN:-build/mousse}
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$MOUSSE_BIN" ] || { echo "bench-cpu.sh: $MOUSSE_BIN not found: build first (scripts/build.sh)" >&2; exit 1; }
if [ -n "$BASELINE" ] && ! [ -x "$BASELINE" ]; then
  echo "bench-cpu.sh: --baseline $BASELINE is not an executable" >&2; exit 1
fi
"$PYTHON" -c "import torch" 2>/dev/null ||
  { echo "bench-cpu.sh: $PYTHON cannot import torch (set PYTHON to a python with torch)" >&2; exit 1; }

# Same threads everywhere: OpenMP (mousse, PyTorch's intra-op pool) and OpenBLAS's own pool
# (PyTorch's GEMMs; mousse runs OpenBLAS serially and splits its GEMMs over OpenMP).
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS

run_mousse() {  # [binary] layers heads d_model batch seq -> tokens/s
  local bin=$MOUSSE_BIN
  if [ $# -eq 6 ]; then bin=$1; shift; fi
  "$bin" bench -c configs/tiny.json --synthetic --quiet --steps "$STEPS" --warmup "$WARMUP" \
    --phase-steps 0 --set device=cpu --set precision=f32 \
    --set model.n_layer="$1" --set model.n_head="$2" --set model.d_model="$3" \
    --set batch.micro_batch="$4" --set batch.seq_len="$5" --set batch.global_tokens=$(($4 * $5)) \
    --set model.max_seq_len="$(($5 > 256 ? $5 : 256))" \
    --set optimizer.embedding.type=adamw --set optimizer.embedding.lr=3e-3 \
    --set 'optimizer.embedding.betas=[0.9,0.95]' --set optimizer.embedding.eps=1e-8 \
    --set optimizer.embedding.weight_decay=0.01 |
    sed -n 's/^BENCH mousse tokens_per_s=\([0-9.]*\).*/\1/p'
}

run_torch() {
  "$PYTHON" scripts/torch_reference.py --device cpu --dtype f32 --no-compile \
    --layers "$1" --heads "$2" --d-model "$3" --batch "$4" --seq "$5" \
    --steps "$STEPS" --warmup "$WARMUP" |
    sed -n 's/^BENCH torch tokens_per_s=\([0-9.]*\).*/\1/p'
}

ERRLOG=$(mktemp)
trap 'rm -f "$ERRLOG"' EXIT
# Runs "$@" (run_mousse or run_torch): prints its tokens/s and the CPU seconds (user + system,
# start-up included) the run took. On a busy machine the CPU time varies less than the wall
# time: it counts the work done (and threads spinning), not the waiting for a core.
measure() {
  local tf out TIMEFORMAT='%U %S'
  tf=$(mktemp)
  { time out=$("$@" 2>>"$ERRLOG"); } 2>"$tf"
  echo "${out:-?} $(awk '{print $1 + $2}' "$tf")"
  rm -f "$tf"
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

echo "bench-cpu: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mousse: $("$MOUSSE_BIN" bench -c configs/tiny.json --synthetic --steps 1 --warmup 0 \
  --phase-steps 0 --set device=cpu 2>/dev/null | sed -n 's/^bench: [^|]*| //p')"
echo "torch: $("$PYTHON" -c 'import torch; print(torch.__version__ + ",", torch.get_num_threads(), "intra-op threads")')"
echo "OpenBLAS kernel: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<not set: OpenBLAS chooses>};" \
  "$THREADS threads; $PAIRS interleaved pairs of $STEPS steps after $WARMUP warmup"

summary=()
for name in "${names[@]}"; do
  read -r L H C B T <<<"$(dims "$name")"
  echo "== $name: $L layers, d_model $C, $H heads, B $B, T $T ($(($B * $T)) tokens/step)"
  m_all=() t_all=() b_all=() ratios=() mc_all=() tc_all=()
  for ((p = 1; p <= PAIRS; p++)); do
    b=
    if ((p % 2)); then
      read -r m mc <<<"$(measure run_mousse "$L" "$H" "$C" "$B" "$T")"
      read -r t tc <<<"$(measure run_torch "$L" "$H" "$C" "$B" "$T")"
      [ -z "$BASELINE" ] || read -r b bc <<<"$(measure run_mousse "$BASELINE" "$L" "$H" "$C" "$B" "$T")"
    else
      [ -z "$BASELINE" ] || read -r b bc <<<"$(measure run_mousse "$BASELINE" "$L" "$H" "$C" "$B" "$T")"
      read -r t tc <<<"$(measure run_torch "$L" "$H" "$C" "$B" "$T")"
      read -r m mc <<<"$(measure run_mousse "$L" "$H" "$C" "$B" "$T")"
    fi
    if [ "$m" = "?" ] || [ "$t" = "?" ] || [ "$b" = "?" ]; then
      echo "bench-cpu.sh: a run printed no BENCH line (mousse '$m', torch '$t', baseline '$b'):" >&2
      tail -n 20 "$ERRLOG" >&2
      exit 1
    fi
    r=$(awk -v m="$m" -v t="$t" 'BEGIN {printf "%.2f", m / t}')
    printf '  pair %d: mousse %6.0f tokens/s (%5.1f cpu-s), torch %6.0f tokens/s (%5.1f cpu-s), ratio %s%s (load %s)\n' \
      "$p" "$m" "$mc" "$t" "$tc" "$r" \
      "${b:+, baseline $(printf '%.0f tokens/s (%.1f cpu-s)' "$b" "$bc")}" \
      "$(cut -d' ' -f1 /proc/loadavg)"
    m_all+=("$m") t_all+=("$t") ratios+=("$r") mc_all+=("$mc") tc_all+=("$tc")
    [ -z "$b" ] || b_all+=("$b")
  done
  mm=$(printf '%s\n' "${m_all[@]}" | median)
  tm=$(printf '%s\n' "${t_all[@]}" | median)
  rm=$(printf '%s\n' "${ratios[@]}" | median)
  line=$(awk -v n="$name" -v m="$mm" -v t="$tm" -v r="$rm" -v k="$PAIRS" 'BEGIN {
    printf "%-5s mousse %8.0f tokens/s, torch %8.0f tokens/s (medians of %d): ratio %.2fx (median of the pairs %.2fx)",
      n, m, t, k, m / t, r}')
  if [ -n "$BASELINE" ]; then
    bm=$(printf '%s\n' "${b_all[@]}" | median)
    line+=$(awk -v b="$bm" -v m="$mm" -v t="$tm" 'BEGIN {
      printf "; baseline %.0f tokens/s: mousse %.2fx the baseline, baseline %.2fx torch", b, m / b, b / t}')
  fi
  mcm=$(printf '%s\n' "${mc_all[@]}" | median)
  tcm=$(printf '%s\n' "${tc_all[@]}" | median)
  line+=$(awk -v m="$mcm" -v t="$tcm" 'BEGIN {
    printf "; CPU time per run (start-up included): mousse %.1f s, torch %.1f s, torch/mousse %.2fx", m, t, t / m}')
  echo "  $line"
  summary+=("$line")
done
echo "== summary ($THREADS threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<not set>}, load average now $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\n' "${summary[@]}"
