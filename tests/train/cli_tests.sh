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
  # A stop signal mid-run (SIGTERM; SIGINT, Ctrl-C; SIGUSR1, what mpirun forwards): the step
  # finishes, a checkpoint is written, the exit status is 75 (not 0: a requeue script can tell),
  # and --resume completes the run.
  for sig in TERM INT USR1; do
    # exec: $! must be mousse itself, not a subshell running it.
    (exec "$MOUSSE" train -c "$HERE/toy.json" --set "data.train=$TRAIN" --set "data.val=$VAL" \
      --set "log.dir=$WORK/sig-$sig" --set steps=400 --set checkpoint.every=0 > "$WORK/sig.txt" 2>&1) &
    pid=$!
    for _ in $(seq 100); do grep -q '"type":"train"' "$WORK/sig-$sig/metrics.jsonl" 2>/dev/null && break; sleep 0.2; done
    kill -$sig $pid
    rc=0; wait $pid || rc=$?; pid=""
    [ $rc -eq 75 ] || { echo "FAIL: exit status $rc after SIG$sig, expected 75"; cat "$WORK/sig.txt"; exit 1; }
    ck="$(ls "$WORK/sig-$sig/checkpoints"/ckpt_*.safetensors 2>/dev/null | tail -1)"
    [ -n "$ck" ] || { echo "FAIL: no checkpoint after SIG$sig"; cat "$WORK/sig.txt"; exit 1; }
    grep -q "stopped by SIG$sig after step" "$WORK/sig.txt" || { echo "FAIL: no stop message"; cat "$WORK/sig.txt"; exit 1; }
    grep -q "SIG$sig received" "$WORK/sig.txt" || { echo "FAIL: the signal was not acknowledged"; cat "$WORK/sig.txt"; exit 1; }
    grep '"type":"end"' "$WORK/sig-$sig/metrics.jsonl" | grep -q "\"stopped_by\":\"SIG$sig\"" || { echo "FAIL: no end record"; exit 1; }
    echo "ok: SIG$sig wrote $(basename "$ck"), exit 75"
  done
  # The last one resumes to the end (a few steps more) with exit 0.
  step="$(basename "$ck" | sed -E 's/ckpt_0*([0-9]+).*/\1/')"
  "$MOUSSE" train -c "$HERE/toy.json" --quiet --set "data.train=$TRAIN" --set "data.val=$VAL" \
    --set "log.dir=$WORK/sig-USR1" --set steps=400 --set checkpoint.every=0 --resume --stop-after $((step + 2)) > "$WORK/res.txt"
  grep -q "resumed from .*ckpt_0*$step.safetensors at step $step" "$WORK/res.txt" || { echo "FAIL: did not resume"; cat "$WORK/res.txt"; exit 1; }
  echo "ok: resumed from step $step, exit 0" ;;
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
  expect_error "diverged" train "$WORK/nan" --set optimizer.matrix.lr=1e30 --set optimizer.embedding.lr=1e30 --set optimizer.grad_clip=0
  # Lion on wte with a huge LR: the loss stays finite (the norms absorb wte) while wte grows by
  # the LR each step until it overflows: the update after the last finite loss makes it Inf. No
  # checkpoint is written with it; the error names the newest checkpoint, which is finite, and
  # the run resumes from it with a lower LR.
  huge=(--set optimizer.embedding.lr=1e38 --set 'optimizer.lm_head={"type":"lion","lr":3e-4}'
        --set optimizer.grad_clip=0 --set checkpoint.every=1 --set checkpoint.keep=100 --set steps=6)
  expect_error "diverged" train "$WORK/inf" "${huge[@]}"
  grep -q "holds NaN or Inf, so its checkpoint was not written" "$WORK/out.txt" || {
    echo "FAIL: the non-finite state was not caught before a save (the trajectory changed?)"; cat "$WORK/out.txt"; exit 1; }
  named="$(sed -nE 's/.*The newest checkpoint is ([^;]*);.*/\1/p' "$WORK/out.txt")"
  [ -f "$named" ] || { echo "FAIL: the error names no checkpoint"; cat "$WORK/out.txt"; exit 1; }
  [ "$named" = "$(ls "$WORK/inf/checkpoints"/ckpt_*.safetensors | tail -1)" ] || { echo "FAIL: $named is not the newest"; exit 1; }
  # Every tensor of every checkpoint written (weights and optimizer state) is finite.
  /usr/bin/python3 - "$WORK/inf/checkpoints"/ckpt_*.safetensors <<'PY'
import json, struct, sys, numpy as np
types = {"F32": np.float32, "F64": np.float64}
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    checked = 0
    for name, e in header.items():
        if name == "__metadata__" or e["dtype"] not in types:
            continue
        a = np.frombuffer(data[e["data_offsets"][0]:e["data_offsets"][1]], dtype=types[e["dtype"]])
        assert np.isfinite(a).all(), f"{path}: {name} is not finite"
        checked += 1
    assert checked > 10, (path, checked)
print(f"all tensors finite in {len(sys.argv) - 1} checkpoints")
PY
  # Resume from it with a lower LR (--set): runs to the end, every loss finite.
  train "$WORK/inf" "${huge[@]}" --resume --set optimizer.embedding.lr=3e-4 > "$WORK/res.txt"
  grep -q "resumed from $named" "$WORK/res.txt" || { echo "FAIL: did not resume from $named"; cat "$WORK/res.txt"; exit 1; }
  last="$(losses "$WORK/inf" | tail -1)"
  [ "$(echo "$last" | cut -d" " -f1)" = 6 ] || { echo "FAIL: the resumed run did not reach step 6"; losses "$WORK/inf"; exit 1; }
  if losses "$WORK/inf" | grep -qiE "nan|inf"; then echo "FAIL: non-finite loss after resuming"; exit 1; fi
  echo "ok: resumed from $(basename "$named") with a lower LR to step 6" ;;
rundir)
  # A fresh start into a directory holding a run is refused and changes nothing there.
  train "$WORK/r" --set steps=4 > /dev/null
  echo "mine" > "$WORK/r/notes.txt"
  before="$(cd "$WORK/r" && find . -type f ! -name mousse.lock | sort | xargs md5sum)"
  expect_error "--resume" train "$WORK/r" --set steps=6
  grep -q -- "--overwrite" "$WORK/out.txt" || { echo "FAIL: no mention of --overwrite"; exit 1; }
  grep -q "already holds a run" "$WORK/out.txt" || { echo "FAIL: unclear message"; exit 1; }
  after="$(cd "$WORK/r" && find . -type f ! -name mousse.lock | sort | xargs md5sum)"
  [ "$before" = "$after" ] || { echo "FAIL: the refused run changed the directory"; diff <(echo "$before") <(echo "$after"); exit 1; }
  echo "ok: the directory is unchanged"
  # Another log.dir sharing the checkpoint directory is refused too.
  expect_error "checkpoint.dir $WORK/r/checkpoints already holds a run" train "$WORK/r2" --set "checkpoint.dir=$WORK/r/checkpoints"
  expect_error "--overwrite" train "$WORK/r" --resume --overwrite
  # --overwrite: the old run's files go first (said on stdout), the user's file stays; the new
  # run's checkpoints are all there is (3 steps, every step, keep 2: 2 and 3; the old one was 4).
  train "$WORK/r" --overwrite --set steps=3 --set checkpoint.every=1 > "$WORK/ow.txt"
  grep -q "removed the earlier run's" "$WORK/ow.txt" || { echo "FAIL: --overwrite did not say what it removed"; cat "$WORK/ow.txt"; exit 1; }
  [ "$(cd "$WORK/r/checkpoints" && ls ckpt_* | tr '\n' ' ')" = "ckpt_00000002.safetensors ckpt_00000003.safetensors " ] || {
    echo "FAIL: checkpoints after --overwrite:"; ls "$WORK/r/checkpoints"; exit 1; }
  [ "$(grep -c '"type":"run"' "$WORK/r/metrics.jsonl")" = 1 ] || { echo "FAIL: old records in metrics.jsonl"; exit 1; }
  [ "$(cat "$WORK/r/notes.txt")" = mine ] || { echo "FAIL: --overwrite removed a user file"; exit 1; }
  echo "ok: --overwrite replaced the run and kept notes.txt"
  # The config the run reads is never overwritten by the resolved config.
  mkdir -p "$WORK/own" && sed -e "s|TRAIN_GLOB|$TRAIN|" -e "s|VAL_GLOB|$VAL|" "$HERE/toy.json" > "$WORK/own/config.json"
  expect_error "holds the config this run reads" "$MOUSSE" train -c "$WORK/own/config.json" --set "log.dir=$WORK/own" ;;
lock)
  # Two processes on one run directory: the second stops with the holder's pid, also with
  # --resume and through a shared checkpoint.dir. A holder killed with SIGKILL leaves no lock.
  (exec "$MOUSSE" train -c "$HERE/toy.json" --quiet --set "data.train=$TRAIN" --set "data.val=$VAL" \
    --set "log.dir=$WORK/l" --set steps=400 --set checkpoint.every=1 > "$WORK/l.txt" 2>&1) &
  pid=$!
  for _ in $(seq 100); do grep -q '"type":"checkpoint"' "$WORK/l/metrics.jsonl" 2>/dev/null && break; sleep 0.2; done
  expect_error "is in use by another mousse train (pid $pid" train "$WORK/l" --resume
  expect_error "checkpoint.dir $WORK/l/checkpoints is in use by another mousse train (pid $pid" \
    train "$WORK/l2" --set "checkpoint.dir=$WORK/l/checkpoints"
  kill -9 $pid; wait $pid 2>/dev/null || true; pid=""
  train "$WORK/l" --set steps=400 --set checkpoint.every=1 --resume --stop-after 3 > "$WORK/res.txt" 2>&1 || {
    echo "FAIL: no resume after the holder was killed"; cat "$WORK/res.txt"; exit 1; }
  echo "ok: resumed after kill -9 of the holder" ;;
logfail)
  # A failed log write ends the run with an error (not exit 0 with a cut log).
  # metrics.jsonl on a full disk (/dev/full): at the first record.
  mkdir -p "$WORK/full" && ln -s /dev/full "$WORK/full/metrics.jsonl"
  expect_error "metrics.jsonl: No space left on device" train "$WORK/full"
  # ... or full in the middle of the run: a file size limit (ulimit -f 4: 4 KiB; EFBIG, with
  # SIGXFSZ ignored) that the log reaches after a few steps (no checkpoint before the end).
  rc=0
  ( trap '' XFSZ; ulimit -f 4; exec "$MOUSSE" train -c "$HERE/toy.json" --quiet --set "data.train=$TRAIN" \
      --set "data.val=$VAL" --set "log.dir=$WORK/fsize" --set steps=200 --set checkpoint.every=0 \
      --set eval.every=0 ) > "$WORK/out.txt" 2>&1 || rc=$?
  [ $rc -ne 0 ] || { echo "FAIL: exit 0 with a log that could not be written"; cat "$WORK/out.txt"; exit 1; }
  grep -q "cannot write $WORK/fsize/metrics.jsonl: File too large" "$WORK/out.txt" || { echo "FAIL: no clear error"; cat "$WORK/out.txt"; exit 1; }
  n="$(grep -c '"type":"train"' "$WORK/fsize/metrics.jsonl")"
  [ "$n" -ge 1 ] && [ "$n" -lt 200 ] || { echo "FAIL: expected a failure mid-run, after $n steps"; exit 1; }
  echo "ok: exit $rc after $n steps: metrics.jsonl: File too large"
  # config.json cannot be written (a directory is in the way).
  mkdir -p "$WORK/cfgdir/config.json"
  expect_error "config.json" train "$WORK/cfgdir" ;;
stale)
  # Temporaries of a killed checkpoint or log write are removed when the run resumes; other
  # files stay. The rewrite of metrics.jsonl on resume replaces the file (a hard link made
  # before keeps the old contents: an in-place rewrite would have changed it).
  train "$WORK/s" --set steps=4 --stop-after 2 > /dev/null
  for f in checkpoints/ckpt_00000003.safetensors.tmp.4242 checkpoints/ckpt_00000003.rank1-of-2.safetensors.tmp.99 \
           metrics.jsonl.tmp.4242 config.json.tmp.17; do echo partial > "$WORK/s/$f"; done
  echo mine > "$WORK/s/checkpoints/keep.safetensors.tmp.1"
  ln "$WORK/s/metrics.jsonl" "$WORK/old.jsonl"; cp "$WORK/s/metrics.jsonl" "$WORK/old-copy.jsonl"
  train "$WORK/s" --set steps=4 --resume > "$WORK/res.txt"
  grep -q "removed 2 temporary file(s) left by a killed write from $WORK/s/checkpoints" "$WORK/res.txt" || { echo "FAIL: no message"; cat "$WORK/res.txt"; exit 1; }
  left="$(cd "$WORK/s" && find . -name '*.tmp.*' | sort | tr '\n' ' ')"
  [ "$left" = "./checkpoints/keep.safetensors.tmp.1 " ] || { echo "FAIL: temporaries left: $left"; exit 1; }
  cmp "$WORK/old.jsonl" "$WORK/old-copy.jsonl" || { echo "FAIL: metrics.jsonl was rewritten in place"; exit 1; }
  [ "$(losses "$WORK/s" | wc -l)" = 4 ] || { echo "FAIL: resumed log"; losses "$WORK/s"; exit 1; }
  echo "ok: stale temporaries removed, metrics.jsonl replaced atomically" ;;
startup)
  # Bad input found before the first step: no train record, no checkpoint.
  no_steps() { ! grep -qs '"type":"train"' "$1/metrics.jsonl" || { echo "FAIL: $1 took steps"; exit 1; }; }
  # An unwritable checkpoint.dir or log.dir (/proc takes no file, not even from root; a path
  # through a regular file cannot be created).
  expect_error "checkpoint.dir /proc: cannot create a file there" train "$WORK/u1" --set checkpoint.dir=/proc
  no_steps "$WORK/u1"
  touch "$WORK/plain"
  expect_error "checkpoint.dir $WORK/plain/ck: cannot create the directory" train "$WORK/u2" --set "checkpoint.dir=$WORK/plain/ck"
  expect_error "log.dir $WORK/plain/log: cannot create the directory" train "$WORK/plain/log"
  if [ "$(id -u)" != 0 ]; then
    mkdir -p "$WORK/ro" && chmod 555 "$WORK/ro"
    expect_error "checkpoint.dir $WORK/ro" train "$WORK/u3" --set "checkpoint.dir=$WORK/ro"
  fi
  # A token id >= vocab at the very end of a 3M-token shard, and one in a val shard: found by
  # the start-up scan, which reports its time in normal runs.
  /usr/bin/python3 - "$WORK" <<'PY'
import sys, numpy as np
rng = np.random.default_rng()
for name, n, bad in (("big.bin", 3_000_000, -1), ("val.bin", 50_000, int(rng.integers(0, 50_000)))):
    h = np.zeros(256, dtype=np.int32); h[0], h[1], h[2] = 20240520, 1, n
    t = rng.integers(0, 50257, n).astype(np.uint16); t[bad] = 50257 + int(rng.integers(0, 15000))
    open(f"{sys.argv[1]}/{name}", "wb").write(h.tobytes() + t.tobytes())
PY
  expect_error "big.bin: token id .* at token position 2999999 " train "$WORK/t1" --set "data.train=$WORK/big.bin" --set steps=2
  grep -q "start-up scan" "$WORK/out.txt" || { echo "FAIL: not found by the start-up scan"; cat "$WORK/out.txt"; exit 1; }
  no_steps "$WORK/t1"
  expect_error "val.bin: token id" train "$WORK/t2" --set "data.val=$WORK/val.bin"
  no_steps "$WORK/t2"
  train "$WORK/t3" --set steps=1 > "$WORK/ok.txt"
  grep -qE "^token ids: all < vocab_size 50257 \(largest 50256\); 338,028 tokens of 2 shards scanned in [0-9.]+s" "$WORK/ok.txt" || {
    echo "FAIL: no start-up scan line"; cat "$WORK/ok.txt"; exit 1; }
  # A FIFO (or any non-regular file) as a shard: an error naming it, never a blocked open().
  mkfifo "$WORK/pipe.bin"
  expect_error "pipe.bin: is a FIFO" timeout 60 "$MOUSSE" train -c "$HERE/toy.json" --quiet --set "data.train=$WORK/pipe.bin" --set "data.val=$VAL" --set "log.dir=$WORK/f1"
  expect_error "pipe.bin: is a FIFO" timeout 60 "$MOUSSE" train -c "$HERE/toy.json" --quiet --set "data.train=$TRAIN" --set "data.val=$WORK/pipe.bin" --set "log.dir=$WORK/f2"
  mkdir -p "$WORK/dir.bin"
  expect_error "dir.bin: is a directory" train "$WORK/f3" --set "data.train=$WORK/*.bin" ;;

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
