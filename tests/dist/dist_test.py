#!/usr/bin/env python3
"""Multi-rank tests of `mousse train` on the CPU backend (MPI, host buffers).

  equal  OPT   R ranks × A micro-batches == 1 rank × R·A micro-batches (same global batch):
               losses and final weights to fp32 round-off, for matrix optimizer OPT
               (--ranks R, default 2; --accum A, default 1: gradient accumulation on every rank;
               --precision f64: the model and optimizers in double, tolerances to match)
  resume       2 ranks: stop after k steps (checkpoint), resume, == the uninterrupted run
  reshard OPT  the checkpoint of a W-rank run at step 3 resumed on W' ranks (2 -> 3, 3 -> 2,
               2 -> 1, 1 -> 2) == the uninterrupted W'-rank run, in f64 to the tolerance of the
               3-rank `equal` runs; the start-up line names both rank counts; with adamw also a
               checkpoint as written before resharding existed (no layout, no data_batches),
               and a missing rank shard or another optimizer configuration is a clear error
  kill  MODE   rank 1 dies at step 2 (MODE exit | kill | throw): the job exits non-zero in bounded time
  stop         SIGTERM reaches rank 1 only, at step 2: every rank stops after the same step with a
               complete checkpoint (main file + every shard), exit 75, and --resume finishes the run
  usr1         SIGUSR1 to mpirun itself (which forwards it to every rank; its SIGINT/SIGTERM would
               kill the ranks a second later) during a run whose step + save take seconds: a
               complete checkpoint, exit 75 from mpirun, and --resume finishes the run
  badtoken     a token id >= vocab in the part of a shard that rank 1 scans at start-up: the job
               fails before its first step with the shard and position
  mismatch     started with PMI_SIZE=2 but no launcher (as under another MPI's mpirun, where
               each process initialises alone): a clear error, not 2 independent runs
  forced OPT   MOUSSE_DISTRIBUTED=1 mpirun -np 1 (the data-parallel path with one rank: reduce-scatter,
               ownership, all-gather, per-rank checkpoint shards) == the plain single process

CI runs all of these on the cpu device (MPI). With --device cuda (not in CI) the same runs go
through NCCL: `forced` on one GPU (also with MOUSSE_NCCL_GROUPED=1, the grouped per-part path),
`equal` on a machine with R GPUs.
"""
import argparse, json, os, shutil, signal, struct, subprocess, sys, time
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("what", choices=["equal", "resume", "reshard", "kill", "forced", "mismatch",
                                 "stop", "usr1", "badtoken"])
ap.add_argument("arg", nargs="?")
ap.add_argument("--mousse", required=True)
ap.add_argument("--mpirun", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--ranks", type=int, default=2)
ap.add_argument("--accum", type=int, default=1)
ap.add_argument("--precision", choices=["f32", "f64", "auto", "bf16"], default="f32")
ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                help="cuda: the NCCL path, on a machine with GPUs (forced: 1 GPU; equal: W GPUs)")
a = ap.parse_args()

ENV = dict(os.environ, OMP_NUM_THREADS="1", OMPI_MCA_mpi_yield_when_idle="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none", OMPI_MCA_rmaps_base_oversubscribe="1")
work = os.path.join(a.work, a.what + ("_" + a.arg if a.arg else "")
                    + (f"_r{a.ranks}a{a.accum}_{a.precision}" if a.what == "equal" else ""))
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def config(opt, steps=4, global_tokens=128, precision="f32", matrix_extra=None, checkpoint_every=0,
           micro_batch=2, model=None):
    emb = "adamw" if opt == "adamw" else "lion"
    # "mousse-overlap": Mousse with the refresh of step 2 on a worker thread (effective at step 3)
    overlap = opt == "mousse-overlap"
    opt = "mousse" if overlap else opt
    matrix = {"type": opt, "lr": {"adamw": 3e-3, "lion": 3e-4}.get(opt, 0.02)}
    if opt in ("soap", "mousse"):
        matrix["update_interval"] = 2  # exercise the preconditioner refresh within the run
    if overlap:
        matrix["refresh_overlap"] = 1
    matrix.update(matrix_extra or {})
    cfg = {
        "run_name": "dist", "device": a.device, "seed": 7, "steps": steps, "precision": precision,
        "model": model or {"preset": "custom", "n_layer": 2, "n_head": 2, "d_model": 32,
                           "vocab_size": 50257, "max_seq_len": 64},
        "data": {"train": os.path.join(a.data, "tiny_shakespeare_train.bin")},
        "batch": {"global_tokens": global_tokens, "micro_batch": micro_batch, "seq_len": 32},
        "optimizer": {"grad_clip": 1.0, "matrix": matrix,
                      "embedding": {"type": emb, "lr": 3e-4}},
        "schedule": {"type": "cosine", "warmup": 0.25, "min_ratio": 0.1},
        "eval": {"every": 0, "tokens": 0},
        "checkpoint": {"every": checkpoint_every, "keep": 3, "dir": "ckpt"},
        "log": {"dir": "log", "every": 1, "diagnostics_every": 2},
    }
    path = os.path.join(work, f"{opt}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def train(cfg, ranks, tag, extra=(), check=True, timeout=120, env=ENV, mpirun=False):
    cmd = [a.mousse, "train", "-c", cfg, "--quiet", "--set", f"log.dir={work}/{tag}/log",
           "--set", f"checkpoint.dir={work}/{tag}/ckpt", *extra]
    if ranks > 1 or mpirun:
        cmd = [a.mpirun, "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), *cmd]
    t0 = time.time()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        print(p.stdout)
        sys.exit(f"FAIL: {' '.join(cmd)} exited {p.returncode}")
    return p, time.time() - t0


def refused(cfg, ranks, tag, extra, what, *needles):
    """--resume of the checkpoint copied into `tag` must fail, naming every one of `needles`."""
    p, _ = train(cfg, ranks, tag, ["--resume", *extra], check=False)
    print(f"{what}:", p.returncode, p.stdout.strip().splitlines()[-1][:300])
    assert p.returncode != 0 and all(n in p.stdout for n in needles), p.stdout


def losses(tag):
    out = {}
    with open(f"{work}/{tag}/log/metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r.get("type") == "train":
                out[r["step"]] = r["loss"]
    return out


def run_record(tag, last=False):
    with open(f"{work}/{tag}/log/metrics.jsonl") as f:
        runs = [r for r in map(json.loads, f) if r.get("type") == "run"]
    return runs[-1] if last else runs[0]


def diagnostics(tag):
    with open(f"{work}/{tag}/log/metrics.jsonl") as f:
        return {r["step"]: r["groups"] for r in map(json.loads, f) if r.get("type") == "diagnostics"}


def compare_diagnostics(tag1, tag2, tol):
    """Rank 0 logs the optimizer diagnostics of every rank's matrices, merged: the same record as
    one rank's (per-matrix entries of every matrix, the group's update RMS)."""
    d1, d2 = diagnostics(tag1), diagnostics(tag2)
    assert sorted(d1) == sorted(d2) and d1, (sorted(d1), sorted(d2))
    for step in d1:
        for group, g1 in d1[step].items():
            g2 = d2[step][group]
            assert sorted(g1) == sorted(g2), (step, group, sorted(g1), sorted(g2))
            if "precond" in g1:
                assert sorted(g1["precond"]) == sorted(g2["precond"]), (step, group)
            for key in ("update_rms", "update_count", "eigh_failures"):
                if key in g1:
                    rel = abs(g1[key] - g2[key]) / max(abs(g1[key]), 1e-30)
                    assert rel <= tol, (step, group, key, g1[key], g2[key])
    print(f"{tag1} vs {tag2}: diagnostics of {len(d1)} steps agree")


def weights(tag, step):
    ck = f"{work}/{tag}/ckpt/ckpt_{step:08d}.safetensors"
    out = f"{work}/{tag}/export.safetensors"
    subprocess.run([a.mousse, "export", "--checkpoint", ck, "-o", out, "--overwrite"], check=True,
                   env=ENV, stdout=subprocess.DEVNULL)
    with open(out, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    w = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        w[name] = np.frombuffer(data[b:end], dtype=np.float32).reshape(e["shape"])
    return w


def compare(tag1, tag2, step, loss_tol=2e-5, w_tol=2e-5):
    l1, l2 = losses(tag1), losses(tag2)
    assert sorted(l1) == sorted(l2) and len(l1) > 0, (l1, l2)
    dl = max(abs(l1[s] - l2[s]) / abs(l1[s]) for s in l1)
    w1, w2 = weights(tag1, step), weights(tag2, step)
    assert sorted(w1) == sorted(w2)
    worst, worst_name, n_big = 0.0, "", 0
    for k in w1:
        d = np.abs(w1[k].astype(np.float64) - w2[k]) / (np.sqrt(np.mean(w1[k].astype(np.float64) ** 2)) + 1e-30)
        n_big += int(np.sum(d > w_tol))
        if d.max() > worst:
            worst, worst_name = float(d.max()), k
    print(f"{tag1} vs {tag2}: losses max rel diff {dl:.3e}; weights max |diff|/rms {worst:.3e} "
          f"({worst_name}), elements over {w_tol:g}: {n_big}")
    ok = dl <= loss_tol and worst <= w_tol
    if not ok:
        sys.exit(f"FAIL: {tag1} and {tag2} differ by more than fp32 round-off")


def read_safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), f.read()


def write_safetensors(path, header, data):
    h = json.dumps(header).encode()
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def copy_checkpoint(src, dst, step):
    """Only the files of step `step` (main and shards) and the metrics log, as a user moving a
    run to another allocation would."""
    os.makedirs(f"{work}/{dst}/ckpt")
    stem = f"ckpt_{step:08d}"
    for f in os.listdir(f"{work}/{src}/ckpt"):
        if f.startswith(stem):
            shutil.copy(f"{work}/{src}/ckpt/{f}", f"{work}/{dst}/ckpt/{f}")
    shutil.copytree(f"{work}/{src}/log", f"{work}/{dst}/log")


def make_legacy(tag, step):
    """Rewrites a checkpoint as the code before resharding wrote it: shards without "layout",
    a main file without "data_batches"."""
    d = f"{work}/{tag}/ckpt"
    for f in os.listdir(d):
        header, data = read_safetensors_header(f"{d}/{f}")
        meta = header["__metadata__"]
        for key in ("mousse_shard", "mousse"):
            if key in meta:
                m = json.loads(meta[key])
                m.pop("layout", None)
                m.pop("data_batches", None)
                meta[key] = json.dumps(m)
        write_safetensors(f"{d}/{f}", header, data)


if a.what == "equal":
    # micro-batch 2 × 32 tokens: R ranks × A micro-steps on the R-rank run, R·A micro-steps on 1
    # 2 ranks sum the gradients exactly as 1 rank accumulates them (a + b = b + a in fp32); with
    # 3 the order differs ((a + b) + c is not a + (b + c)), a round-off that some optimizers
    # amplify far beyond fp32 round-off of the weights: Lion's sign() makes ±lr steps of
    # lm_head's near-zero gradient entries (thousands, 3e-3 of the weights' rms), and Mousse's
    # eigendecompositions of rank-deficient factors move s = λ^(−α) by percents (docs/optimizers.md,
    # "Numerics").
    # So the 3-rank runs of those are compared in f64 (--precision f64), where they match to
    # ~1e-15; AdamW also runs in f32 (its eps keeps the update continuous in g).
    # SOAP even in f64 only on full-rank factors: its first eigenbasis inside a null space is
    # chosen by round-off (docs/optimizers.md), and Adam in that basis then differs at O(1). A 32×128
    # gradient makes a rank-32 128×128 factor, so with 3 ranks only sides <= 32 are
    # preconditioned (max_precond_dim 32: every factor is 32×32 of full rank).
    extra = {"max_precond_dim": 32} if a.arg == "soap" and a.ranks > 2 else None
    cfg = config(a.arg, global_tokens=64 * a.ranks * a.accum, precision=a.precision,
                 matrix_extra=extra)
    _, t1 = train(cfg, 1, "r1")
    _, t2 = train(cfg, a.ranks, "rN")
    for tag, world, accum in (("r1", 1, a.ranks * a.accum), ("rN", a.ranks, a.accum)):
        run = run_record(tag)
        assert (run["world_size"], run["grad_accum"]) == (world, accum), (tag, run)
    print(f"1 rank {t1:.1f}s, {a.ranks} ranks {t2:.1f}s")
    if a.precision == "f64":  # weights compared after export to f32: at most an ulp apart
        compare("r1", "rN", 4, loss_tol=1e-12, w_tol=1e-6)
        compare_diagnostics("r1", "rN", 1e-9)
    else:
        compare("r1", "rN", 4)
        compare_diagnostics("r1", "rN", 1e-4)
elif a.what == "resume":
    cfg = config("mousse", steps=4)
    train(cfg, 2, "full")
    train(cfg, 2, "split", ["--stop-after", "2"])
    shards = sorted(f for f in os.listdir(f"{work}/split/ckpt"))
    print("checkpoint files:", shards)
    assert "ckpt_00000002.rank1-of-2.safetensors" in shards, shards
    train(cfg, 2, "split", ["--resume"])
    compare("full", "split", 4, loss_tol=0.0, w_tol=0.0)  # same ranks: bit-exact
elif a.what == "reshard":
    # Every run: 5 steps of 192 tokens (6, 3, 2 micro-batches of 1×32 per rank on 1, 2, 3 ranks),
    # f64 (3 ranks sum in another order: see "equal"), a checkpoint at step 3. For SOAP, sides
    # of at most 32 (full-rank factors, as in "equal"). Mousse refreshes at steps 0, 2, 4 (0-based);
    # with refresh_overlap 1 (mousse-overlap) the one of step 2 is in flight at the checkpoint.
    extra = {"max_precond_dim": 32} if a.arg == "soap" else None
    steps, k = 5, 3
    cfg = config(a.arg, steps=steps, global_tokens=192, precision="f64", matrix_extra=extra,
                 checkpoint_every=k, micro_batch=1)
    for w in (1, 2, 3):
        train(cfg, w, f"ref{w}")
    if a.arg == "mousse-overlap":
        header, _ = read_safetensors_header(f"{work}/ref2/ckpt/ckpt_{k:08d}.rank0-of-2.safetensors")
        assert "pending_refresh" in header["__metadata__"]["mousse_shard"], "no refresh in flight"
    cases = [(2, 3), (3, 2), (2, 1), (1, 2)]
    if a.arg == "adamw":
        cases.append((3, 2, "legacy"))
    for case in cases:
        w, w2 = case[:2]
        tag = f"from{w}to{w2}" + ("_legacy" if len(case) > 2 else "")
        copy_checkpoint(f"ref{w}", tag, k)
        if len(case) > 2:
            make_legacy(tag, k)
        p, _ = train(cfg, w2, tag, ["--resume"])
        line = next((l for l in p.stdout.splitlines() if "resharded the optimizer state" in l), "")
        print(f"{w} -> {w2} ranks: {line}")
        assert f"from {w} to {w2} rank" in line, p.stdout
        assert run_record(tag, last=True)["resumed_from_world_size"] == w
        assert sorted(losses(tag)) == list(range(1, steps + 1)), losses(tag)
        compare(f"ref{w2}", tag, steps, loss_tol=1e-12, w_tol=1e-6)
        compare_diagnostics(f"ref{w2}", tag, 1e-9)
        if not os.environ.get("MOUSSE_KEEP_TEST_WORK"):  # ~160 MB a case: not all at once
            shutil.rmtree(f"{work}/{tag}")
    if a.arg == "adamw":
        # A missing rank shard: an error naming the file, on every rank count.
        copy_checkpoint("ref3", "missing", k)
        gone = f"ckpt_{k:08d}.rank1-of-3.safetensors"
        os.remove(f"{work}/missing/ckpt/{gone}")
        refused(cfg, 2, "missing", [], "missing shard", gone, "3 ranks")
        # Another optimizer configuration (AdamW's state where this run has Lion's): refused.
        copy_checkpoint("ref2", "otheropt", k)
        refused(cfg, 3, "otheropt", ["--set", "optimizer.embedding.type=lion"], "other optimizer",
                "lion")
    if a.arg == "mousse-overlap":
        # Whitening one side only: the checkpoint's input-side state is left over, refused.
        copy_checkpoint("ref2", "oneside", k)
        refused(cfg, 3, "oneside", ["--set", "optimizer.matrix.whiten=output"],
                "another whitening side", "different optimizer configuration")
elif a.what == "forced":
    cfg = config(a.arg, precision=a.precision)
    train(cfg, 1, "plain")
    train(cfg, 1, "forced", env=dict(ENV, MOUSSE_DISTRIBUTED="1"), mpirun=True)
    shards = sorted(os.listdir(f"{work}/forced/ckpt"))
    print("checkpoint files:", shards)
    assert "ckpt_00000004.rank0-of-1.safetensors" in shards, "the data-parallel path did not run"
    compare("plain", "forced", 4)
elif a.what == "mismatch":
    cfg = config("adamw")
    p, _ = train(cfg, 1, "mismatch", check=False, env=dict(ENV, PMI_SIZE="2"))
    print(p.stdout.strip()[-1000:])
    assert p.returncode != 0, "a launcher/MPI mismatch must fail"
    assert "launched as one of 2 ranks, but MPI_Init made a world of 1" in p.stdout, "no message"
    assert not os.path.exists(f"{work}/mismatch/log/metrics.jsonl"), "it trained anyway"
elif a.what == "stop":
    cfg = config("muon", steps=6)
    bound = 60
    try:
        p, dt = train(cfg, 2, "stop", check=False, env=dict(ENV, MOUSSE_TEST_FAIL="1:2:term"),
                      timeout=bound)
    except subprocess.TimeoutExpired:
        sys.exit(f"FAIL: a stop signal on one rank left the job hanging for {bound}s")
    print(p.stdout.strip()[-1000:])
    assert p.returncode == 75, f"exit status {p.returncode}, expected 75 (stopped by a signal)"
    files = sorted(os.listdir(f"{work}/stop/ckpt"))
    print("checkpoint files:", files)
    mains = [f for f in files if f.startswith("ckpt_") and ".rank" not in f]
    assert len(mains) == 1, files
    stem = mains[0][: -len(".safetensors")]
    for r in range(2):
        assert f"{stem}.rank{r}-of-2.safetensors" in files, files
    train(cfg, 2, "stop", ["--resume"])
    assert max(losses("stop")) == 6, losses("stop")
elif a.what == "usr1":
    # 13.7M parameters (the 50257-token embeddings at d_model 128): a step and a save of the
    # weights and AdamW state take seconds on a CPU, far beyond the second mpirun grants
    # between its SIGTERM and SIGKILL.
    model = {"preset": "custom", "n_layer": 2, "n_head": 2, "d_model": 128, "vocab_size": 50257,
             "max_seq_len": 64}
    cfg = config("adamw", steps=5, global_tokens=512, model=model)
    tag = "usr1"
    cmd = [a.mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "2", a.mousse, "train", "-c",
           cfg, "--quiet", "--set", f"log.dir={work}/{tag}/log", "--set", f"checkpoint.dir={work}/{tag}/ckpt"]
    out = open(f"{work}/usr1.txt", "w")
    p = subprocess.Popen(cmd, env=ENV, stdout=out, stderr=subprocess.STDOUT)
    metrics = f"{work}/{tag}/log/metrics.jsonl"
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None:
        if os.path.exists(metrics) and '"type":"train"' in open(metrics).read():
            break
        time.sleep(0.1)
    assert p.poll() is None, "the run ended before the signal"
    t_sig = time.time()
    p.send_signal(signal.SIGUSR1)  # to mpirun, as `kill -USR1 <mpirun pid>` or SLURM would
    try:
        rc = p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        sys.exit("FAIL: the job did not stop within 120 s of SIGUSR1")
    out.close()
    text = open(f"{work}/usr1.txt").read()
    print(text.strip()[-1500:])
    print(f"stopped {time.time() - t_sig:.1f} s after SIGUSR1; exit status {rc}")
    assert rc == 75, f"mpirun exited {rc}, expected 75 (stopped by a signal)"
    assert "stopped by SIGUSR1 after step" in text, "no stop message"
    files = sorted(os.listdir(f"{work}/{tag}/ckpt"))
    print("checkpoint files:", files)
    mains = [f for f in files if f.startswith("ckpt_") and f.endswith(".safetensors") and ".rank" not in f]
    assert len(mains) == 1, files
    stem = mains[0][: -len(".safetensors")]
    for r in range(2):
        assert f"{stem}.rank{r}-of-2.safetensors" in files, files
    step = int(stem[len("ckpt_"):])
    assert 1 <= step < 5, step
    recs = [json.loads(l) for l in open(metrics)]
    assert recs[-1]["type"] == "end" and recs[-1].get("stopped_by") == "SIGUSR1", recs[-1]
    p2, _ = train(cfg, 2, tag, ["--resume"], timeout=300)
    assert f"resumed from {work}/{tag}/ckpt/{mains[0]} at step {step}" in p2.stdout, p2.stdout
    assert max(losses(tag)) == 5, losses(tag)
elif a.what == "badtoken":
    # Ranks split the start-up scan of each shard in halves: the bad token lies in rank 1's.
    n = 40000
    rng = np.random.default_rng()
    t = rng.integers(0, 50257, n).astype(np.uint16)
    pos = int(rng.integers(n // 2 + 1, n))
    t[pos] = 50300
    h = np.zeros(256, dtype=np.int32)
    h[0], h[1], h[2] = 20240520, 1, n
    shard = os.path.join(work, "bad_train.bin")
    with open(shard, "wb") as f:
        f.write(h.tobytes() + t.tobytes())
    cfg = config("adamw", steps=4)
    p, _ = train(cfg, 2, "bad", ["--set", f"data.train={shard}"], check=False, timeout=60)
    print(p.stdout.strip()[-1500:])
    assert p.returncode != 0, "a bad token id must fail the job"
    assert f"token id 50300 at token position {pos} " in p.stdout, "the shard and position are not named"
    assert "error (rank 1 of 2)" in p.stdout, "rank 1 scans the second half"
    metrics = f"{work}/bad/log/metrics.jsonl"
    assert not os.path.exists(metrics) or '"type":"train"' not in open(metrics).read(), "it took steps"
else:
    cfg = config("muon", steps=6)
    env = dict(ENV, MOUSSE_TEST_FAIL=f"1:2:{a.arg}")
    bound = 60
    try:
        p, dt = train(cfg, 2, "kill", check=False, env=env, timeout=bound)
    except subprocess.TimeoutExpired:
        sys.exit(f"FAIL: the job with a failing rank did not end within {bound}s")
    print(p.stdout.strip()[-1500:])
    print(f"exit status {p.returncode} after {dt:.1f}s")
    assert p.returncode != 0, "a failing rank must make the job exit non-zero"
    assert "MOUSSE_TEST_FAIL: rank 1 fails at step 2" in p.stdout, "the failure was not injected"
    if a.arg == "throw":  # our own abort path: a message naming the rank, then MPI_Abort
        assert "error (rank 1 of 2): injected failure" in p.stdout, "no clear message"
        assert "aborting all 2 ranks" in p.stdout, "no clear message"
print("PASS")
