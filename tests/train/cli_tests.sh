#!/usr/bin/env bash
# End-to-end CLI tests of `mousse train` on the CPU: resume bit-exactness, stop by signal,
# divergence and bad-input errors. Usage: cli_tests.sh MOUSSE_BIN SHARED_DATA CASE
set -euo pipefail
MOUSSE="$1"; DATA="$2"; CASE="$3"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"; pid=""
trap 'if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT
TRAIN="$DATA/tinyshakespeare/tiny_shakespeare_train.bin"
VAL="$DATA/tinyshakespeare/tiny_shakespeare_val.bin"
[ -f "$TRAIN" ] || { echo "FAIL: shared data missing: $TRAIN"; exit 1; }

train() {  # train OUT_DIR [args...]
  local out="$1"; shift
  "$MOUSSE" train -c "$HERE/toy.json" --quiet --set "data.train=$TRAIN" --set "data.val=$VAL" \
    --set "log.dir=$out" "$@"
}
losses() { grep '"type":"train"' "$1/metrics.jsonl" | sed -E 's/.*"loss":([^,]*).*"step":([0-9]+).*/\2 \1/' ; }
expect_error() {  # expect_error PATTERN command...
  local pattern="$1"; shift
  local rc=0; "$@" >"$WORK/out.txt" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then echo "FAIL: expected a failure matching '$pattern', got exit 0"; cat "$WORK/out.txt"; exit 1; fi
  if ! grep -q -- "$pattern" "$WORK/out.txt"; then
    echo "FAIL: error did not mention '$pattern':"; cat "$WORK/out.txt"; exit 1
  fi
  echo "ok: exit $rc, error mentions '$pattern'"
}

case "$CASE" in
memory_plan)
  # `mousse config --memory cpu` plans, without allocating, the arena `mousse train` allocates:
  # the same plan report, for an optimizer with state and scratch (Mousse) and one without.
  for opt in mousse adamw; do
    train "$WORK/m-$opt" --set optimizer.matrix.type=$opt --set steps=1 > "$WORK/train.txt"
    "$MOUSSE" config -c "$HERE/toy.json" -q --memory cpu --set "data.train=$TRAIN" \
      --set optimizer.matrix.type=$opt > "$WORK/config.txt"
    a="$(sed -n '/^memory plan/,/^  total/p' "$WORK/train.txt")"
    b="$(sed -n '/^memory plan/,/^  total/p' "$WORK/config.txt")"
    [ -n "$a" ] || { echo "FAIL: train printed no memory plan"; cat "$WORK/train.txt"; exit 1; }
    if [ "$a" != "$b" ]; then echo "FAIL ($opt): planned and allocated differ"; diff <(echo "$a") <(echo "$b"); exit 1; fi
    echo "ok ($opt): config --memory cpu = the arena train allocated ($(echo "$a" | grep total | awk '{print $2, $3}'))"
  done
  # 2 ranks (ZeRO-1 slices, owned matrices): each rank's plan, the largest printed
  "$MOUSSE" config -c "$HERE/toy.json" -q --np 2 --memory cuda --set "data.train=$TRAIN" \
    --set optimizer.matrix.type=mousse > "$WORK/np.txt"
  grep -q "^memory plan (cuda" "$WORK/np.txt" || { echo "FAIL: no cuda plan"; cat "$WORK/np.txt"; exit 1; }
  grep -q "of 2 plans the most memory\|every one of the 2 ranks plans" "$WORK/np.txt" || { echo "FAIL: no per-rank summary"; cat "$WORK/np.txt"; exit 1; }
  echo "ok: --np 2 --memory cuda"
  expect_error "--memory" "$MOUSSE" config -c "$HERE/toy.json" -q --memory tpu ;;
resume)
  # mousse-overlap: refreshes at steps 0 (synchronous), 2, 4, 6 on a worker thread, each taking
  # effect two steps later, so the checkpoint at step 3 holds a pending refresh.
  for opt in adamw lion mousse-overlap; do
    args=(--set optimizer.matrix.type=$opt)
    [ "$opt" = mousse-overlap ] && args=(--set optimizer.matrix.type=mousse
      --set optimizer.matrix.update_interval=2 --set optimizer.matrix.refresh_overlap=2)
    train "$WORK/full-$opt" "${args[@]}" > /dev/null
    train "$WORK/part-$opt" "${args[@]}" --stop-after 3 > /dev/null
    train "$WORK/part-$opt" "${args[@]}" --resume > /dev/null
    a="$(losses "$WORK/full-$opt")"; b="$(losses "$WORK/part-$opt")"
    [ "$(echo "$a" | wc -l)" -eq 8 ] || { echo "FAIL: expected 8 train records"; echo "$a"; exit 1; }
    if [ "$a" != "$b" ]; then echo "FAIL ($opt): resumed losses differ"; diff <(echo "$a") <(echo "$b"); exit 1; fi
    "$MOUSSE" export --checkpoint "$WORK/full-$opt/checkpoints" --out "$WORK/a.safetensors" --overwrite >/dev/null
    "$MOUSSE" export --checkpoint "$WORK/part-$opt/checkpoints" --out "$WORK/b.safetensors" --overwrite >/dev/null
    cmp "$WORK/a.safetensors" "$WORK/b.safetensors" || { echo "FAIL ($opt): final weights differ"; exit 1; }
    echo "ok ($opt): interrupted at step 3 and resumed: 8 losses and final weights bit-identical"
  done ;;
signal)
  # SIGTERM mid-run: the step finishes, a checkpoint is written, --resume completes the run.
  # exec: $! must be mousse itself, not a subshell running it.
  (exec "$MOUSSE" train -c "$HERE/toy.json" --set "data.train=$TRAIN" --set "data.val=$VAL" \
    --set "log.dir=$WORK/sig" --set steps=400 --set checkpoint.every=0 > "$WORK/sig.txt" 2>&1) &
  pid=$!
  for _ in $(seq 100); do grep -q '"type":"train"' "$WORK/sig/metrics.jsonl" 2>/dev/null && break; sleep 0.2; done
  kill -TERM $pid
  rc=0; wait $pid || rc=$?
  ls "$WORK/sig/checkpoints"/ckpt_*.safetensors >/dev/null || { echo "FAIL: no checkpoint after SIGTERM"; cat "$WORK/sig.txt"; exit 1; }
  grep -q "stopped by signal" "$WORK/sig.txt" || { echo "FAIL: no stop message"; cat "$WORK/sig.txt"; exit 1; }
  echo "ok: SIGTERM wrote $(ls "$WORK/sig/checkpoints") (exit $rc)" ;;
init_from)
  # Exported weights load through init_from: with every LR at 0 the run's final validation loss
  # equals the source run's.
  train "$WORK/src" > /dev/null
  "$MOUSSE" export --checkpoint "$WORK/src/checkpoints" --out "$WORK/w.safetensors" > /dev/null
  train "$WORK/dst" --set "init_from=$WORK/w.safetensors" --set steps=1 --set optimizer.matrix.lr=0 \
    --set optimizer.embedding.lr=0 > /dev/null
  a="$(grep '"type":"eval"' "$WORK/src/metrics.jsonl" | tail -1 | sed -E 's/.*"val_loss":([^,}]*).*/\1/')"
  b="$(grep '"type":"eval"' "$WORK/dst/metrics.jsonl" | tail -1 | sed -E 's/.*"val_loss":([^,}]*).*/\1/')"
  [ -n "$a" ] && [ "$a" = "$b" ] || { echo "FAIL: val loss $a (source) vs $b (init_from)"; exit 1; }
  echo "ok: init_from reproduces the source run's val loss $a"
  # A weights file of another model is refused with the tensor and both shapes.
  expect_error "shape" train "$WORK/bad" --set "init_from=$WORK/w.safetensors" --set model.d_model=64 ;;
diverge)
  expect_error "diverged" train "$WORK/nan" --set optimizer.matrix.lr=1e30 --set optimizer.embedding.lr=1e30 --set optimizer.grad_clip=0 ;;
errors)
  expect_error "key 'optimizer.matrix.betass'" train "$WORK/e1" --set 'optimizer.matrix.betass=[0.9,0.95]'
  expect_error "key 'steps': expected an integer" train "$WORK/e2" --set steps=many
  expect_error "key 'batch.global_tokens'" train "$WORK/e3" --set batch.global_tokens=1000
  expect_error "unknown model preset 'huge'" train "$WORK/e4" --set model.preset=huge
  expect_error "no files match" train "$WORK/e5" --set "data.train=$WORK/nothing_*.bin"
  # A shard with a token id beyond the vocabulary.
  /usr/bin/python3 - "$WORK/bad.bin" <<'PY'
import sys, numpy as np
h = np.zeros(256, dtype=np.int32); h[0], h[1], h[2] = 20240520, 1, 4096
t = np.random.default_rng(1).integers(0, 50257, 4096).astype(np.uint16); t[1000] = 60000
open(sys.argv[1], "wb").write(h.tobytes() + t.tobytes())
PY
  expect_error "60000" train "$WORK/e6" --set "data.train=$WORK/bad.bin"
  # A truncated shard.
  head -c 3000 "$TRAIN" > "$WORK/trunc.bin"
  expect_error "trunc.bin" train "$WORK/e7" --set "data.train=$WORK/trunc.bin"
  # Resume with a different optimizer than the checkpoint was written with.
  train "$WORK/r" --stop-after 4 > /dev/null
  expect_error "optimizer" train "$WORK/r" --resume --set optimizer.matrix.type=lion
  # ... or with another batch shape or step count: the saved data position would mean another batch.
  expect_error "batch.micro_batch" train "$WORK/r" --resume --set batch.micro_batch=2
  expect_error "steps" train "$WORK/r" --resume --set steps=20
  # A corrupt checkpoint is refused with its path, not loaded.
  ck="$(ls "$WORK/r/checkpoints"/ckpt_*.safetensors | tail -1)"
  head -c 5000 "$ck" > "$WORK/corrupt.safetensors"; mv "$WORK/corrupt.safetensors" "$ck"
  expect_error "$(basename "$ck")" train "$WORK/r" --resume
  expect_error "cannot open config" "$MOUSSE" train -c "$WORK/none.json" ;;
*) echo "unknown case $CASE"; exit 2 ;;
esac
