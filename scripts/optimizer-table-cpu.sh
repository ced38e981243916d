#!/usr/bin/env bash
# The optimizer comparison of docs/results/optimizers-cpu-tiny.md: configs/tiny.json for 300
# steps on CPU with each matrix optimizer (Lion on wte/lm_head), then the optimizer step time of
# each from `mousse bench`. Needs the tinyshakespeare shards of scripts/quickstart.sh.
# Usage: scripts/optimizer-table-cpu.sh [OUT_DIR]   (about 1–2 hours on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/optimizer-table}"
declare -A MATRIX=(
  [adamw]='{"type":"adamw","lr":3e-3}'
  [lion]='{"type":"lion","lr":3e-4,"betas":[0.95,0.98],"weight_decay":0.0}'
  [muon]='{"type":"muon","lr":0.02}'
  [soap]='{"type":"soap","lr":3e-3}'
  [mousse-both]='{"type":"mousse","lr":0.02}'
  [mousse-output]='{"type":"mousse","lr":0.02,"whiten":"output"}'
)
for name in adamw lion muon soap mousse-both mousse-output; do
  OMP_NUM_THREADS=1 build/mousse train -c configs/tiny.json --quiet --set eval.every=100 \
    --set checkpoint.every=0 --set "log.dir=$OUT/$name" --set "optimizer.matrix=${MATRIX[$name]}" --overwrite
  build/mousse bench -c configs/tiny.json --set device=cpu --set "optimizer.matrix=${MATRIX[$name]}" \
    --synthetic --warmup 0 --steps 2 --phase-steps 20 --quiet | sed "s/^/$name /"
done
