#!/usr/bin/env bash
# The CPU dry run of scripts/replicate-gpu (the budgeted small replication meant for one GPU), on a
# toy model: prepare (tokenize the shared corpora), then run (probe, sizing, 2 optimizers × 3 LRs,
# results) within a time budget; then a budget too small for the sweep, which must stop cleanly with
# partial results, and a run stopped at its time limit; then bad input. Asserts on results.md, results.csv, sizing.json and the wall time.
#   run_gpu_replication_toy.sh BUILD_DIR SHARED_DATA PYTHON WORKDIR
set -euo pipefail
BUILD=$1 SHARED=$2 PY=$3 WORK=$4
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUDGET=${TOY_BUDGET_S:-80}
SMALL_BUDGET=${TOY_SMALL_BUDGET_S:-25}
ls "$SHARED"/corpora/*.jsonl >/dev/null 2>&1 || { echo "SKIP: no corpora in $SHARED/corpora"; exit 77; }
[ -f "$SHARED/gpt2/encoder.json" ] || { echo "SKIP: no GPT-2 vocabulary in $SHARED/gpt2"; exit 77; }
for exe in mousse mousse-tokenize; do
  [ -x "$BUILD/$exe" ] || { echo "FAIL: $BUILD/$exe is not built" >&2; exit 1; }
done
rm -rf "$WORK" && mkdir -p "$WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMP_NUM_THREADS=1
RG=("$PY" "$REPO/scripts/replicate-gpu")
# toy_run NAME ARGS...: `run --toy` into $WORK/NAME (its output also in NAME.log); sets rc (its exit
# status) and wall (milliseconds, python's start-up and exit included).
toy_run() {
  local name=$1 t0
  shift
  t0=$(date +%s%N)
  rc=0
  "${RG[@]}" run --toy --build "$BUILD" --data "$WORK/data" --work "$WORK/$name" "$@" \
    | tee "$WORK/$name.log" || rc=$?
  wall=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "run: exit $rc after $wall ms"
}

echo "== 1. prepare --toy: tokenize the corpora"
t0=$(date +%s%N)
"${RG[@]}" prepare --toy --build "$BUILD" --shared "$SHARED" --vocab "$SHARED/gpt2" --data "$WORK/data" | tee "$WORK/prepare.log"
echo "prepare: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
ls "$WORK"/data/small_train_*.bin "$WORK"/data/small_val_*.bin "$WORK/data/inputs.txt" >/dev/null || fail "no shards"
out=$("${RG[@]}" prepare --toy --build "$BUILD" --shared "$SHARED" --vocab "$SHARED/gpt2" --data "$WORK/data")
echo "$out" | grep -q "nothing to do" || fail "a second prepare tokenized again: $out"

echo "== 2. run --toy within ${BUDGET}s"
# A shared CPU's speed swings within a minute, with 2 OpenMP threads up to tenfold (seen here: 15 to
# 290 ms per toy step; 40 to 80 ms with one thread). So: one thread, runs sized for 6 times the
# probe's time (--margin 5), and --min-steps 1 to accept the few steps that leaves on a busy
# machine: what is tested is the pipeline and the sizing, not the losses.
toy_run a --budget-s "$BUDGET" --margin 5 --min-steps 1
[ $rc = 0 ] || fail "run --toy exited $rc"
"$PY" - "$WORK/a" "$BUDGET" "$wall" <<'PYEOF'
import csv, json, math, os, sys
work, budget, wall = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]) / 1000
st = json.load(open(os.path.join(work, "sizing.json")))
p, s, d = st["probe"], st["sizing"], st["data"]
# The budget: the script's own clock and the wall clock around it (python start-up and exit: 2 s).
assert st["elapsed_s"] <= budget, st["elapsed_s"]
assert wall <= budget + 2, (wall, budget)
# Steps from the probe: ≤ one pass, and the most that fit, recomputed here from the probe's timings.
def predict(n):
    every = max(1, math.ceil(n / 8))
    return p["fixed_s"] + n * p["step_s"] + (n // every + (1 if n % every else 0)) * p["eval_s"]
def fits(n):
    return 6 * predict(n) * (1 + st["margin"]) <= s["avail_s"]
steps = s["steps"]
assert 1 <= steps <= d["steps_per_pass"], (steps, d)
assert d["steps_per_pass"] == d["micro_batches_per_pass"] // d["grad_accum"]
assert fits(steps), s
if s["bound"] == "one pass over the training tokens":
    assert steps == d["steps_per_pass"]
else:
    assert s["bound"] == "the time budget" and not fits(steps + 1), s
assert s["eval_every"] == max(1, math.ceil(steps / 8)), s
assert p["step_s"] > 0 and p["eval_s"] >= 0 and p["fixed_s"] >= 0, p
# The probe's step time is its metrics' mean step_s (+ logging): check against the log itself.
probe_dir = os.path.join(work, "probe", "runs")
recs = [json.loads(l) for l in open(os.path.join(probe_dir, os.listdir(probe_dir)[0], "metrics.jsonl"))]
ss = [r["step_s"] for r in recs if r.get("type") == "train" and r["step"] > p["skipped_steps"]]
assert abs(p["step_s"] - sum(ss) / len(ss)) <= 0.2 * p["step_s"] + 1e-3, (p["step_s"], sum(ss) / len(ss))
end = [r for r in recs if r.get("type") == "end"][-1]
assert p["wall_s"] >= end["elapsed_s"], (p, end)
# 2 optimizers × 3 LRs, every run completed with the sized steps, evaluated as sized.
rows = list(csv.DictReader(open(os.path.join(work, "docs", "results.csv"))))
lrc = next(c for c in rows[0] if c.startswith("optimizer.matrix.lr"))
got = sorted((r["optimizer"], float(r[lrc])) for r in rows)
assert got == sorted([(o, x) for o in ("muon", "mousse") for x in (0.01, 0.02, 0.04)]), got
for r in rows:
    assert r["status"] == "completed" and int(r["steps"]) == steps, r
    assert math.isfinite(float(r["final_val_loss"])) and float(r["tokens_per_s"]) > 0, r
    ev = [json.loads(l) for l in open(os.path.join(work, "sweep", "runs", r["run"], "metrics.jsonl"))]
    ev = [e["step"] for e in ev if e.get("type") == "eval"]
    assert ev == sorted(set(list(range(s["eval_every"], steps + 1, s["eval_every"])) + [steps])), (r["run"], ev)
    cfg = json.load(open(os.path.join(work, "sweep", "runs", r["run"], "config.json")))
    assert cfg["model"]["n_layer"] == 2 and cfg["model"]["d_model"] == 32 and cfg["device"] == "cpu", cfg["model"]
muon = min(float(r["final_val_loss"]) for r in rows if r["optimizer"] == "muon")
assert all(abs(float(r["target_loss"]) - muon) < 1e-12 for r in rows), "target is not the best Muon loss"
# results.md: both optimizers × 3 LRs in the every-run table, the sizing, the command, no GPU claim.
md = open(os.path.join(work, "docs", "results.md")).read()
table = [l for l in md.splitlines() if l.startswith("| Muon |") or l.startswith("| Mousse |")]
every = [l for l in table if "| completed |" in l]
assert len(every) == 6, every
for o in ("Muon", "Mousse"):
    for x in ("0.01", "0.02", "0.04"):
        assert any(l.startswith(f"| {o} | {x} | completed |") for l in every), (o, x)
assert f"Steps: {steps} per run" in md and "scripts/replicate-gpu run --toy" in md, md
assert "not a result" in md and "GPU" not in md.replace("replicate-gpu", ""), md
assert "Stopped" not in md and "Incomplete" not in md
assert os.path.getsize(os.path.join(work, "logs.tar.gz")) > 0
print(f"ok: {steps} steps ({s['bound']}), one pass = {d['steps_per_pass']}, "
      f"{st['elapsed_s']:.1f}s of {budget:g}s; runs: "
      + ", ".join(f"{r['run']} {r['wall_s']:.1f}s (predicted {r['predicted_s']:.1f})" for r in st["runs"]))
PYEOF
if "$PY" -c "import matplotlib" 2>/dev/null; then
  for f in lr_sweep_cosine.png curves_cosine.png steps_to_target.png steps_to_target.csv; do
    [ -s "$WORK/a/docs/$f" ] || fail "missing $f"
  done
else
  echo "note: no matplotlib for $PY: figures not checked"
fi

echo "== 3. runs that cannot fit the budget: stop cleanly with partial results"
# --steps far beyond what the budget allows: the first run is predicted not to fit and not started.
toy_run b --budget-s "$SMALL_BUDGET" --steps 1000000
[ $rc = 2 ] || fail "expected exit 2 (stopped by the budget), got $rc"
"$PY" - "$WORK/b" "$SMALL_BUDGET" "$wall" <<'PYEOF'
import json, os, sys
work, budget, wall = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]) / 1000
st = json.load(open(os.path.join(work, "sizing.json")))
assert st["stopped"] and st["runs"] == [], st
assert st["elapsed_s"] <= budget and wall <= budget + 2, (st["elapsed_s"], wall)
if st["sizing"]:  # else the probe itself did not fit (a very busy machine)
    assert "not started" in st["stopped"], st["stopped"]
    assert st["sizing"]["steps"] == 1000000 and st["sizing"]["bound"] == "--steps", st
md = open(os.path.join(work, "docs", "results.md")).read()
assert "**Stopped by the budget:**" in md and "Incomplete: 0 of 6 runs completed" in md, md
assert os.path.getsize(os.path.join(work, "logs.tar.gz")) > 0
print(f"ok: {st['stopped']}")
PYEOF
# A run that overruns: stopped by SIGTERM at its time limit, with a checkpoint, and left resumable.
"$PY" - "$REPO" "$BUILD/mousse" "$WORK/data" "$WORK/kill" <<'PYEOF'
import importlib.util, os, sys, time
from importlib.machinery import SourceFileLoader
repo, mousse, data, work = sys.argv[1:]
loader = SourceFileLoader("rg", os.path.join(repo, "scripts", "replicate-gpu"))
rg = importlib.util.module_from_spec(importlib.util.spec_from_loader("rg", loader))
loader.exec_module(rg)
sets = [f"data.train={data}/small_train_*.bin", f"data.val={data}/small_val_*.bin", "device=cpu",
        "steps=100000", "eval.every=1000"] + rg.TOY_SETS
t0 = time.monotonic()
rc, wall, stopped = rg.run_group(rg.sweep_cmd(mousse, "muon", 0.02, work, sets), None, 4.0)
run = os.path.join(work, "runs", rg.run_name("muon", 0.02))
assert stopped and wall < 4.0 + 10, (stopped, wall)
assert rg.sweep_lib.run_status(run) == "interrupted", rg.sweep_lib.run_status(run)
assert any(f.startswith("ckpt_") for f in os.listdir(os.path.join(run, "checkpoints"))), "no checkpoint"
log = open(os.path.join(run, "train.log")).read()
assert "SIGTERM received" in log, log[-2000:]
print(f"ok: stopped by the time limit after {wall:.1f}s, checkpoint written")
# The sizing on random timings: the most steps that fit (checked by brute force), or one pass.
import math, random
rnd = random.Random()
for _ in range(200):
    probe = {"fixed_s": rnd.uniform(0, 20), "step_s": 10 ** rnd.uniform(-3, 0), "eval_s": rnd.uniform(0, 2)}
    per_pass, evals, runs = rnd.randint(1, 3000), rnd.randint(1, 40), rnd.randint(1, 8)
    avail, margin = rnd.uniform(0, 3000), rnd.uniform(0, 3)
    steps, every = rg.size_steps(probe, avail, runs, per_pass, evals, margin)
    cost = lambda n: runs * rg.predict(probe, n, max(1, math.ceil(n / evals))) * (1 + margin)
    best = max([n for n in range(1, per_pass + 1) if cost(n) <= avail], default=0)
    assert steps == best, (probe, per_pass, evals, runs, avail, margin, steps, best)
    assert every == max(1, math.ceil(max(steps, 1) / evals))
print("ok: sizing")
PYEOF

echo "== 4. bad input: an error naming it, before any work"
out=$("${RG[@]}" run --toy --build "$BUILD" --data "$WORK/data" --work "$WORK/c" --lrs-muon 0.01,x,0.04 2>&1) && fail "bad --lrs-muon accepted"
echo "$out" | grep -q -- "--lrs-muon '0.01,x,0.04'" || fail "unclear error: $out"
[ ! -e "$WORK/c" ] || fail "work started despite bad input"
out=$("${RG[@]}" run --toy --build "$BUILD" --data "$WORK/data" --work "$WORK/a" 2>&1) && fail "an earlier run was overwritten"
echo "$out" | grep -q "holds an earlier run" || fail "unclear error: $out"
out=$("${RG[@]}" run --toy --build "$BUILD" --data "$WORK/nodata" --work "$WORK/c" 2>&1) && fail "missing data accepted"
echo "$out" | grep -q "nodata: no small_train" || fail "unclear error: $out"
echo PASS
