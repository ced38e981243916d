#!/usr/bin/env bash
# End-to-end checks of bad values and corrupt files through the commands users run, on the CPU:
#   config:   `mousse config` and `mousse train` reject out-of-range config values (from the file
#             or --set) with the key and its range, before any work, with a non-zero exit.
#   metadata: a checkpoint whose 'mousse' metadata or safetensors header is corrupt is refused
#             by --resume, export and sample with an error naming the file.
# Usage: format_cli_tests.sh MOUSSE_BIN SHARED_DATA CASE
set -euo pipefail
MOUSSE="$1"; DATA="$2"; CASE="$3"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
TRAIN="$DATA/tinyshakespeare/tiny_shakespeare_train.bin"
VAL="$DATA/tinyshakespeare/tiny_shakespeare_val.bin"
[ -f "$TRAIN" ] || { echo "FAIL: shared data missing: $TRAIN"; exit 1; }

expect_error() {  # expect_error PATTERN command...
  local pattern="$1"; shift
  local rc=0; "$@" >"$WORK/out.txt" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then echo "FAIL: expected a failure matching '$pattern', got exit 0"; cat "$WORK/out.txt"; exit 1; fi
  if ! grep -qF -- "$pattern" "$WORK/out.txt"; then
    echo "FAIL: error did not mention '$pattern':"; cat "$WORK/out.txt"; exit 1
  fi
  if grep -q "json.exception" "$WORK/out.txt"; then
    echo "FAIL: a raw JSON exception reached the user:"; cat "$WORK/out.txt"; exit 1
  fi
  echo "ok: exit $rc: $(tail -1 "$WORK/out.txt" | cut -c1-150)"
}
config() { "$MOUSSE" config -c "$HERE/toy.json" -q --set "data.train=$TRAIN" "$@"; }
train() {  # train OUT_DIR [args...]
  local out="$1"; shift
  "$MOUSSE" train -c "$HERE/toy.json" --quiet --set "data.train=$TRAIN" --set "data.val=$VAL" \
    --set "log.dir=$out" "$@"
}

case "$CASE" in
config)
  config > /dev/null
  expect_error "key 'steps': expected an integer in [1, 2^62], got 1.5" config --set steps=1.5
  expect_error "--set 'steps=1e400': key 'steps'" config --set steps=1e400
  expect_error "--set 'optimizer.matrix.lr=-1e999'" config --set optimizer.matrix.lr=-1e999
  expect_error "key 'batch.global_tokens': expected an integer in [1, 2^62], got -256" \
    config --set batch.global_tokens=-256
  expect_error "key 'batch.global_tokens': expected an integer in [1, 2^62], got 0" \
    config --set batch.global_tokens=0
  expect_error "key 'model.n_layer': expected an integer in [1, 2^16], got 4294967298" \
    config --set model.n_layer=4294967298
  expect_error "key 'model.d_model': expected an integer in [2, 2^20], got 18446744073709551615" \
    config --set model.d_model=18446744073709551615
  expect_error "key 'checkpoint.keep': expected an integer in [1, 2^31 - 1], got 4294967297" \
    config --set checkpoint.keep=4294967297
  expect_error "key 'optimizer.matrix.eps': expected a number in (0, inf), got 0" \
    config --set optimizer.matrix.eps=0
  expect_error "key 'optimizer.embedding.betas': expected an array of numbers in [0, 1)" \
    config --set 'optimizer.embedding.betas=[0.9,1]'
  expect_error "key 'schedule.warmup': expected a number in [0, 1], got -0.1" \
    config --set schedule.warmup=-0.1
  expect_error "key 'seed': expected an integer in [0, 2^63 - 1], got -1" config --set seed=-1
  expect_error "is not a multiple of micro_batch × seq_len × ranks = 256 × 3" config --np 3
  # A config file with a number beyond a double, and one with text after a NUL byte.
  sed 's/"steps": 8/"steps": 1e400/' "$HERE/toy.json" > "$WORK/big.json"
  expect_error "big.json: not valid JSON" "$MOUSSE" config -c "$WORK/big.json" -q
  { cat "$HERE/toy.json"; printf '\0{"steps": 2}'; } > "$WORK/nul.json"
  expect_error "nul.json: not valid JSON: a NUL byte" "$MOUSSE" config -c "$WORK/nul.json" -q
  # train refuses the same values before it writes anything.
  expect_error "key 'batch.global_tokens'" train "$WORK/t" --set batch.global_tokens=-256
  [ ! -e "$WORK/t" ] || { echo "FAIL: train created its run directory for a bad config"; exit 1; }
  ;;
metadata)
  train "$WORK/r" --set optimizer.matrix.type=mousse --stop-after 4 > /dev/null
  ck="$(ls "$WORK/r/checkpoints"/ckpt_*.safetensors | tail -1)"
  cp "$ck" "$WORK/good.safetensors"
  # rewrite FILE EXPR: replaces the 'mousse' metadata m (a dict) by EXPR's value; keeps the data.
  rewrite() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, struct, sys
path, expr = sys.argv[1], sys.argv[2]
blob = open(path, "rb").read()
(n,) = struct.unpack("<Q", blob[:8])
header = json.loads(blob[8:8 + n])
m = json.loads(header["__metadata__"]["mousse"])
value = eval(expr, {"m": m})
header["__metadata__"]["mousse"] = value if isinstance(value, str) else json.dumps(value)
text = json.dumps(header).encode()
text += b" " * (-(len(text) + 8) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text + blob[8 + n:])
PY
  }
  name="$(basename "$ck")"
  for expr in '"{not json"' '[1, 2]' '{**m, "step": "four"}' '{**m, "step": -4}' \
              '{**m, "world_size": 4294967297}' '{**m, "optimizers": 3}' \
              '{**m, "optimizers": {**m["optimizers"], "matrix": {**m["optimizers"]["matrix"], "extra": {**m["optimizers"]["matrix"]["extra"], "t": "x"}}}}' \
              '{**m, "optimizers": {**m["optimizers"], "matrix": {**m["optimizers"]["matrix"], "extra": {**m["optimizers"]["matrix"]["extra"], "cond": {k: [] for k in m["optimizers"]["matrix"]["extra"]["cond"]}}}}}'; do
    cp "$WORK/good.safetensors" "$ck"
    rewrite "$ck" "$expr"
    expect_error "$name" train "$WORK/r" --set optimizer.matrix.type=mousse --resume
    case "$expr" in *'"extra"'*) continue ;; esac  # (host state only --resume reads)
    expect_error "$name" "$MOUSSE" export --checkpoint "$ck" -o "$WORK/out.safetensors"
    [ ! -e "$WORK/out.safetensors" ] || { echo "FAIL: export wrote a file"; exit 1; }
    expect_error "$name" "$MOUSSE" sample --checkpoint "$ck" -n 2 --vocab "$DATA/gpt2"
  done
  # A header length off by a few bytes: the tensors would be read shifted, as garbage.
  for delta in -3 -1 1 5; do
    /usr/bin/python3 - "$WORK/good.safetensors" "$ck" "$delta" <<'PY'
import struct, sys
blob = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", blob[:8])
open(sys.argv[2], "wb").write(struct.pack("<Q", n + int(sys.argv[3])) + blob[8:])
PY
    expect_error "$name" "$MOUSSE" export --checkpoint "$ck" -o "$WORK/out.safetensors"
    expect_error "$name" "$MOUSSE" sample --checkpoint "$ck" -n 2 --vocab "$DATA/gpt2"
    expect_error "$name" train "$WORK/r" --set optimizer.matrix.type=mousse --resume
  done
  # The good file still resumes, exports and samples.
  cp "$WORK/good.safetensors" "$ck"
  train "$WORK/r" --set optimizer.matrix.type=mousse --resume > /dev/null
  "$MOUSSE" export --checkpoint "$ck" -o "$WORK/out.safetensors" > /dev/null
  echo "ok: the uncorrupted checkpoint resumes and exports" ;;
*) echo "unknown case $CASE"; exit 2 ;;
esac
