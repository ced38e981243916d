#!/usr/bin/env python3
"""Multi-rank tests of `mousse train` on the CPU backend (MPI, host buffers): issue 7.

  equal  OPT   2 ranks × 1 micro-batch == 1 rank × 2 micro-batches (same global batch): losses
               and final weights to fp32 round-off, for matrix optimizer OPT
  resume       2 ranks: stop after k steps (checkpoint), resume, == the uninterrupted run;
               resuming with 1 rank fails with a message naming both rank counts
  kill  MODE   rank 1 dies at step 2 (MODE exit | kill | throw): the job exits non-zero in bounded time
  forced OPT   MOUSSE_DISTRIBUTED=1 mpirun -np 1 (the data-parallel path with one rank: reduce-scatter,
               ownership, all-gather, per-rank checkpoint shards) == the plain single process
"""
import argparse, json, os, shutil, struct, subprocess, sys, time
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("what", choices=["equal", "resume", "kill", "forced"])
ap.add_argument("arg", nargs="?")
ap.add_argument("--mousse", required=True)
ap.add_argument("--mpirun", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--work", required=True)
a = ap.parse_args()

ENV = dict(os.environ, OMP_NUM_THREADS="1", OMPI_MCA_mpi_yield_when_idle="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none", OMPI_MCA_rmaps_base_oversubscribe="1")
work = os.path.join(a.work, a.what + ("_" + a.arg if a.arg else ""))
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def config(opt, steps=4):
    emb = "adamw" if opt == "adamw" else "lion"
    matrix = {"type": opt, "lr": {"adamw": 3e-3, "lion": 3e-4}.get(opt, 0.02)}
    if opt in ("soap", "mousse"):
        matrix["update_interval"] = 2  # exercise the preconditioner refresh within the run
    cfg = {
        "run_name": "dist", "device": "cpu", "seed": 7, "steps": steps,
        "model": {"preset": "custom", "n_layer": 2, "n_head": 2, "d_model": 32,
                  "vocab_size": 50257, "max_seq_len": 64},
        "data": {"train": os.path.join(a.data, "tiny_shakespeare_train.bin")},
        "batch": {"global_tokens": 128, "micro_batch": 2, "seq_len": 32},
        "optimizer": {"grad_clip": 1.0, "matrix": matrix,
                      "embedding": {"type": emb, "lr": 3e-4}},
        "schedule": {"type": "cosine", "warmup": 0.25, "min_ratio": 0.1},
        "eval": {"every": 0, "tokens": 0},
        "checkpoint": {"every": 0, "keep": 3, "dir": "ckpt"},
        "log": {"dir": "log", "every": 1},
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


def losses(tag):
    out = {}
    with open(f"{work}/{tag}/log/metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r.get("type") == "train":
                out[r["step"]] = r["loss"]
    return out


def weights(tag, step):
    ck = f"{work}/{tag}/ckpt/ckpt_{step:08d}.safetensors"
    out = f"{work}/{tag}/export.safetensors"
    subprocess.run([a.mousse, "export", "--checkpoint", ck, "-o", out], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)
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


if a.what == "equal":
    cfg = config(a.arg)
    _, t1 = train(cfg, 1, "r1")
    _, t2 = train(cfg, 2, "r2")
    print(f"1 rank {t1:.1f}s, 2 ranks {t2:.1f}s")
    compare("r1", "r2", 4)
elif a.what == "resume":
    cfg = config("mousse", steps=4)
    train(cfg, 2, "full")
    train(cfg, 2, "split", ["--stop-after", "2"])
    shards = sorted(f for f in os.listdir(f"{work}/split/ckpt"))
    print("checkpoint files:", shards)
    assert "ckpt_00000002.rank1-of-2.safetensors" in shards, shards
    # Resuming with another number of ranks: a clear error naming both.
    shutil.copytree(f"{work}/split", f"{work}/wrong")
    p, _ = train(cfg, 1, "wrong", ["--resume"], check=False)
    print("1-rank resume of a 2-rank checkpoint:", p.returncode, p.stdout.strip().splitlines()[-1])
    assert p.returncode != 0 and "2 ranks" in p.stdout and "this run has 1" in p.stdout, p.stdout
    train(cfg, 2, "split", ["--resume"])
    compare("full", "split", 4, loss_tol=0.0, w_tol=0.0)  # same ranks: bit-exact
elif a.what == "forced":
    cfg = config(a.arg)
    train(cfg, 1, "plain")
    train(cfg, 1, "forced", env=dict(ENV, MOUSSE_DISTRIBUTED="1"), mpirun=True)
    shards = sorted(os.listdir(f"{work}/forced/ckpt"))
    print("checkpoint files:", shards)
    assert "ckpt_00000004.rank0-of-1.safetensors" in shards, "the data-parallel path did not run"
    compare("plain", "forced", 4)
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
print("PASS")
