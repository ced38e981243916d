#!/usr/bin/env bash
# Small-scale replication of the paper on one GPU (docs/reproduce.md): tokenize the corpora with our
# tokenizer, sweep the peak LR of AdamW, Muon, SOAP and Mousse on a 30.5M-parameter GPT
# (configs/small/, 400 steps × 16K tokens), then write the result table and the figures to
# docs/replication/. Finished runs are skipped and interrupted ones resumed, so it can simply be
# run again after an interruption.
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

# 1. Data: the shared web-like corpora (news, web text, speeches; about 2M tokens), the first
#    131,072 tokens for validation.
if ! ls "$DATA"/small_train_*.bin >/dev/null 2>&1; then
  echo "== tokenizing $SHARED/corpora/*.jsonl into $DATA"
  "$BUILD/mousse-tokenize" "$SHARED"/corpora/*.jsonl --out "$DATA" --name small \
    --val-tokens 131072 --vocab "$VOCAB"
fi

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
"$PY" - "$OUT/results.csv" "$DOCS" <<'PYEOF'
import csv, os, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["status"] == "completed" and r["final_val_loss"]]
steps = {}
p = os.path.join(sys.argv[2], "steps_to_target.csv")
if os.path.exists(p):
    steps = {r["optimizer"]: r for r in csv.DictReader(open(p))}
lr_col = next(c for c in rows[0] if c.startswith("optimizer.matrix.lr")) if rows else None
lines = ["# Small-scale replication: results", "",
         "Written by `scripts/replicate-small.sh` (30.5M-parameter GPT, 400 steps × 16,384 tokens, "
         "cosine schedule with 10% warmup). Every run: `results.csv`.", "",
         "| optimizer | best peak LR | final val loss | steps to Muon's best final loss | tokens/s |",
         "|---|---|---|---|---|"]
for opt in ["adamw", "muon", "soap", "mousse"]:
    rs = [r for r in rows if r["optimizer"] == opt]
    if not rs:
        continue
    b = min(rs, key=lambda r: float(r["final_val_loss"]))
    s = steps.get(opt, {})
    st = s.get("steps_to_target") or "not reached"
    if s.get("fraction_of_reference"):
        st += f" ({100 * float(s['fraction_of_reference']):.0f}% of Muon's)"
    lines.append(f"| {opt} | {b[lr_col]} | {float(b['final_val_loss']):.4f} | {st} | "
                 f"{float(b['tokens_per_s']):,.0f} |")
lines += ["", "Per LR (final val loss):", "", "| optimizer | peak LR | final val loss |", "|---|---|---|"]
for r in sorted(rows, key=lambda r: (r["optimizer"], float(r[lr_col]))):
    lines.append(f"| {r['optimizer']} | {r[lr_col]} | {float(r['final_val_loss']):.4f} |")
lines += ["", "Figures: `lr_sweep_cosine.png` (Fig. 3), `curves_cosine.png` (Fig. 1), "
          "`steps_to_target.png` (Fig. 4), `update_rms.png` (Fig. 6, grafting on only), "
          "`precond_*.png` (Fig. 10).", ""]
open(os.path.join(sys.argv[2], "results.md"), "w").write("\n".join(lines))
print("\n".join(lines))
PYEOF

# 4. A look at the best Mousse model.
best=$("$PY" -c "
import csv; rs=[r for r in csv.DictReader(open('$OUT/results.csv')) if r['optimizer']=='mousse' and r['status']=='completed']
print(min(rs, key=lambda r: float(r['final_val_loss']))['run'] if rs else '')")
if [ -n "$best" ]; then
  "$BUILD/mousse" sample --checkpoint "$OUT/runs/$best/checkpoints" --vocab "$VOCAB" \
    -p "The president said" -n 64 --seed 1 | tee "$DOCS/sample.txt"
fi
echo "done: $DOCS/results.md"
