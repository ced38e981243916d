#!/usr/bin/env bash
# `mousse export` from the command line: a Hugging Face export loads back through init_from and
# `sample -w` as the same model, and bad inputs are refused with the file and tensor or key named.
# Usage: cli_export.sh MOUSSE_BIN SHARED_DATA
set -euo pipefail
MOUSSE="$1"; DATA="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export MOUSSE_GPT2_DIR="$DATA/gpt2"
TRAIN="$DATA/tinyshakespeare/tiny_shakespeare_train.bin"
VAL="$DATA/tinyshakespeare/tiny_shakespeare_val.bin"
[ -f "$TRAIN" ] || { echo "FAIL: shared data missing: $TRAIN"; exit 1; }
PY=/usr/bin/python3

train() {  # train OUT_DIR [args...]
  local out="$1"; shift
  "$MOUSSE" train -c "$HERE/hf_model.json" --quiet --set "data.train=$TRAIN" --set "data.val=$VAL" \
    --set steps=4 --set eval.every=0 --set eval.tokens=2048 --set "log.dir=$out" "$@"
}
val_loss() { grep '"type":"eval"' "$1/metrics.jsonl" | tail -1 | sed -E 's/.*"val_loss":([^,}]*).*/\1/'; }
expect_error() {  # expect_error "PATTERN..." command...: every |-separated pattern in the message
  local patterns="$1"; shift
  local rc=0; "$@" >"$WORK/out.txt" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then echo "FAIL: expected a failure matching '$patterns', got exit 0"; cat "$WORK/out.txt"; exit 1; fi
  local IFS='|'
  for p in $patterns; do
    if ! grep -qF -- "$p" "$WORK/out.txt"; then
      echo "FAIL: error did not mention '$p':"; cat "$WORK/out.txt"; exit 1
    fi
  done
  echo "ok: exit $rc, error mentions '$patterns'"
}
# rename_tensor IN OUT OLD NEW: a copy of a safetensors file with one tensor renamed.
rename_tensor() {
  "$PY" - "$@" <<'PY'
import json, struct, sys
src, dst, old, new = sys.argv[1:]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h[new] = h.pop(old)
hb = json.dumps(h).encode()
hb += b" " * (-(len(hb) + 8) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
}

train "$WORK/src" > /dev/null
"$MOUSSE" export --checkpoint "$WORK/src/checkpoints" --format hf --dtype f32 -o "$WORK/hf" > /dev/null

# init_from a Hugging Face directory: with every LR at 0, the source run's validation loss.
train "$WORK/dst" --set "init_from=$WORK/hf" --set steps=1 --set optimizer.matrix.lr=0 \
  --set optimizer.embedding.lr=0 > /dev/null
a="$(val_loss "$WORK/src")"; b="$(val_loss "$WORK/dst")"
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "FAIL: val loss $a (source) vs $b (init_from the HF export)"; exit 1; }
echo "ok: init_from the HF export reproduces the source run's val loss $a"

# sample -w: the export, the checkpoint and a bare export of the export sample the same text.
s1="$("$MOUSSE" sample -w "$WORK/src/checkpoints" -p "ROMEO:" -n 16 --seed 5 --device cpu)"
s2="$("$MOUSSE" sample -w "$WORK/hf" -p "ROMEO:" -n 16 --seed 5 --device cpu)"
"$MOUSSE" export -w "$WORK/hf" -o "$WORK/back.safetensors" > /dev/null
s3="$("$MOUSSE" sample -w "$WORK/back.safetensors" -p "ROMEO:" -n 16 --seed 5 --device cpu)"
[ "$s1" = "$s2" ] && [ "$s1" = "$s3" ] || { echo "FAIL: samples differ:"; printf '%s\n---\n' "$s1" "$s2" "$s3"; exit 1; }
echo "ok: checkpoint, HF export and its bare re-export sample the same text"
ids="$("$MOUSSE" sample -w "$WORK/hf" -p "ROMEO:" -n 8 -t 0 --no-stop --ids --device cpu)"
[ "$(echo "$ids" | wc -w)" -eq 8 ] || { echo "FAIL: --ids printed '$ids'"; exit 1; }

# The model card says what the run was.
grep -q "final validation loss | ${a:0:6}" "$WORK/hf/README.md" || { echo "FAIL: model card lacks val loss $a"; cat "$WORK/hf/README.md"; exit 1; }
grep -q "optimizer steps | 4 of 4" "$WORK/hf/README.md" || { echo "FAIL: model card lacks the steps"; exit 1; }
echo "ok: model card states steps and final val loss"

# Refusals, before any work and without leaving anything behind.
expect_error "--overwrite" "$MOUSSE" export -w "$WORK/src/checkpoints" --format hf -o "$WORK/hf"
expect_error "--overwrite" "$MOUSSE" export -w "$WORK/src/checkpoints" -o "$WORK/back.safetensors"
expect_error "$WORK/novocab" "$MOUSSE" export -w "$WORK/src/checkpoints" --format hf -o "$WORK/hf2" --vocab "$WORK/novocab"
[ ! -e "$WORK/hf2" ] || { echo "FAIL: a failed export left $WORK/hf2"; exit 1; }
ls -a "$WORK" | grep -q '\.tmp\.' && { echo "FAIL: temporary files left in $WORK"; ls -a "$WORK"; exit 1; }
cp -r "$WORK/hf" "$WORK/silu"
sed -i 's/"hidden_act": "relu"/"hidden_act": "silu"/' "$WORK/silu/config.json"
expect_error "hidden_act|$WORK/silu/config.json" "$MOUSSE" sample -w "$WORK/silu" -n 2 --device cpu
expect_error "hidden_act" train "$WORK/d2" --set "init_from=$WORK/silu"
cp -r "$WORK/hf" "$WORK/renamed"
rename_tensor "$WORK/hf/model.safetensors" "$WORK/renamed/model.safetensors" \
  model.layers.1.self_attn.o_proj.weight model.layers.1.self_attn.out_proj.weight
expect_error "model.layers.1.self_attn.o_proj.weight|model.layers.1.self_attn.out_proj.weight|$WORK/renamed/model.safetensors" \
  "$MOUSSE" sample -w "$WORK/renamed" -n 2 --device cpu
rename_tensor "$WORK/back.safetensors" "$WORK/misnamed.safetensors" blocks.0.mlp.proj blocks.0.mlp.c_proj
expect_error "'blocks.0.mlp.proj'|'blocks.0.mlp.c_proj'|misnamed.safetensors" train "$WORK/d3" --set "init_from=$WORK/misnamed.safetensors"
expect_error "'blocks.0.mlp.c_proj'|misnamed.safetensors" "$MOUSSE" export -w "$WORK/misnamed.safetensors" -o "$WORK/x.safetensors"
expect_error "'blocks.0.mlp.c_proj'" "$MOUSSE" sample -w "$WORK/misnamed.safetensors" -n 2 --device cpu
# Another model size: the HF dims are named.
expect_error "hidden_size 64" train "$WORK/d4" --set "init_from=$WORK/hf" --set model.d_model=32 --set model.n_head=2
echo "PASS"
