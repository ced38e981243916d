#!/usr/bin/env bash
# Small-scale replication of the paper on one GPU (docs/reproduce.md): tokenize the corpora with our
# tokenizer, sweep the peak LR of AdamW, Muon, SOAP and Mousse on a 30.5M-parameter GPT
# (configs/small/, 400 steps × 16K tokens), then write the result table and the figures to
# docs/replication/. Finished runs are skipped and interrupted ones resumed, so it can simply be
# run again after an interruption. That is 16 runs of 400 steps; for a GPU session of a few
# minutes, scripts/replicate-gpu runs Muon vs Mousse (3 LRs each) within a time budget instead.
#
#   scripts/replicate-small.sh                      # everything
#   OPTIMIZERS="muon mousse" scripts/replicate-small.sh
#   SET="steps=200" scripts/replicate-small.sh      # extra --set for every run (e.g. a quicker pass)
#
# Environment: BUILD (build), SHARED (the folder holding corpora/*.jsonl; ../shared/data),
# VOCAB (the GPT-2 vocabulary; default: what scripts/get-gpt2-vocab.sh finds or fetches),
# DATA (data/small), OUT (sweeps/small), DOCS (docs/replication), OPTIMIZERS, SET,
# PY (/usr/bin/python3), JOBS (runs at once, 1).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared/data}
VOCAB=${VOCAB:-$(bash scripts/get-gpt2-vocab.sh)}
DATA=${DATA:-data/small}
OUT=${OUT:-sweeps/small}
DOCS=${DOCS:-docs/replication}
OPTIMIZERS=${OPTIMIZERS:-adamw muon soap mousse}
PY=${PY:-/usr/bin/python3}
JOBS=${JOBS:-1}
SET=${SET:-}

[ -x "$BUILD/mousse" ] && [ -x "$BUILD/mousse-tokenize" ] \
  || { echo "build first: scripts/build.sh (needs $BUILD/mousse and $BUILD/mousse-tokenize)"; exit 1; }

# 1. Data: the shared web-like corpora (news, web text, speeches; about 1.7M tokens), the first
#    131,072 tokens for validation (skipped when already done).
bash scripts/tokenize-small-corpora.sh "$BUILD/mousse-tokenize" "$SHARED/corpora" "$VOCAB" "$DATA"

# 2. LR sweeps, one per optimizer (grids in configs/small/lr_grids.json; the embedding LR is tied
#    to the matrix LR, Dion's convention).
sets=()
for s in $SET; do sets+=(--set "$s"); done
for opt in $OPTIMIZERS; do
  grid=$("$PY" -c "import json,sys; print(','.join(f'{x:g}' for x in json.load(open('configs/small/lr_grids.json'))[sys.argv[1]]))" "$opt")
  echo "== $opt: peak LR in {$grid}"
  "$PY" scripts/sweep --mousse "$BUILD/mousse" --base "configs/small/small-$opt.json" \
    --set "data.train=$DATA/small_train_*.bin" --set "data.val=$DATA/small_val_*.bin" "${sets[@]}" \
    --grid "optimizer.matrix.lr+optimizer.embedding.lr=$grid" \
    --out "$OUT" --resume --jobs "$JOBS" --quiet
done

# 3. Results: the CSV (steps to the best Muon run's final loss), figures and a table.
"$PY" scripts/sweep --out "$OUT" --collect-only --target-loss best:muon
mkdir -p "$DOCS"
cp "$OUT/results.csv" "$DOCS/results.csv"
"$PY" scripts/plot "$OUT" --out "$DOCS"
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
"$PY" scripts/replication_report.py "$OUT" --docs "$DOCS" --title "Small-scale replication: results" \
  --intro "Written by \`scripts/replicate-small.sh\`: $OPTIMIZERS, each over its peak-LR grid (\`configs/small/lr_grids.json\`)." \
  --command "OPTIMIZERS=\"$OPTIMIZERS\" SET=\"$SET\" scripts/replicate-small.sh" --commit "\`$commit\`"

# 4. A look at the best Mousse model.
best=$("$PY" -c "
import csv; rs=[r for r in csv.DictReader(open('$OUT/results.csv')) if r['optimizer']=='mousse' and r['status']=='completed']
print(min(rs, key=lambda r: float(r['final_val_loss']))['run'] if rs else '')")
if [ -n "$best" ]; then
  "$BUILD/mousse" sample --checkpoint "$OUT/runs/$best/checkpoints" --vocab "$VOCAB" \
    -p "The president said" -n 64 --seed 1 | tee "$DOCS/sample.txt"
fi
echo "done: $DOCS/results.md"
