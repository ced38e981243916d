#!/usr/bin/env python3
"""Writes configs/paper/*.json: the paper's runs (Section 4, Appendix C) for every model size and
optimizer, cosine and WSD, plus the Section 5 ablations of Mousse (on 494m, as Fig. 6/7).

    python3 scripts/make_paper_configs.py [--out configs/paper] [--small-out configs/small]

The generated files are committed; edit this script, not the JSON, and re-run it.

Settings (Appendix C; docs/reproduce.md):
  - 10,000 steps, global batch 2,097,152 tokens (2M) of T = 1024, i.e. 20.97B tokens.
    8 ranks × micro_batch × 1024 × grad_accum = 2,097,152 (micro_batch per size below, for one
    H200 (141 GB) in bf16; halve it and the accumulation doubles if memory is short).
  - schedule: 10% linear warmup then cosine to 0; "-wsd" files: 10% warmup, stable, 10% linear decay.
  - AdamW β=(0.9, 0.95) eps 1e-8 wd 0.01 on every parameter.
  - Muon β=0.95 wd 0.01 NS5, Nesterov ON (as Dion's training script, which the paper used).
  - SOAP β=(0.95, 0.95) eps 1e-8 wd 0.01 T=10 β_pc=0.95.
  - Mousse β=0.95 wd 0.01 NS5 T=10 β_pc=0.95 ε=1e-5 α=0.125, grafting on, trace normalisation on,
    both sides whitened, Nesterov OFF (Algorithm 1 has none).
  - Muon/SOAP/Mousse: Lion β=(0.95, 0.98) wd 0 on wte and lm_head.
  - Learning rates follow Dion's convention: one peak LR for the matrices and the embedding, the
    lm_head at LR/sqrt(d_model) (optimizer.lm_head_lr_scale). The peak LR is a default to be swept:
    sweep matrix and embedding together with
      --grid optimizer.matrix.lr+optimizer.embedding.lr=...
"""
import argparse
import json
import math
import os

SIZES = {
    # preset: (d_model, micro_batch per rank on an H200 in bf16)
    "162m": (768, 32),
    "247m": (768, 32),
    "494m": (1536, 16),
    "834m": (1536, 16),
}
RANKS = 8
SEQ = 1024
GLOBAL_TOKENS = 2 * 1024 * 1024  # 2,097,152
STEPS = 10_000

# Default peak LRs (the middle of the paper's grids; scripts/sweep varies them).
DEFAULT_LR = {"adamw": 3e-3, "muon": 0.02, "soap": 3e-3, "mousse": 0.02}
# Suggested LR grids for the sweeps (Fig. 3; the Muon/Mousse axis is Fig. 9's).
LR_GRID = {
    "adamw": [1e-3, 2e-3, 3e-3, 4e-3, 6e-3],
    "muon": [0.009, 0.01, 0.015, 0.02, 0.025, 0.03],
    "soap": [1e-3, 2e-3, 3e-3, 4e-3, 6e-3],
    "mousse": [0.009, 0.01, 0.015, 0.02, 0.025, 0.03],
}


def matrix_optimizer(name, lr):
    if name == "adamw":
        return {"type": "adamw", "lr": lr, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.01}
    if name == "muon":
        return {"type": "muon", "lr": lr, "momentum": 0.95, "nesterov": True,
                "orthogonalizer": "ns5", "ns_steps": 5, "update_scale": "sqrt_out_in",
                "weight_decay": 0.01}
    if name == "soap":
        return {"type": "soap", "lr": lr, "betas": [0.95, 0.95], "eps": 1e-8, "weight_decay": 0.01,
                "update_interval": 10, "beta_pc": 0.95}
    if name == "mousse":
        return {"type": "mousse", "lr": lr, "momentum": 0.95, "nesterov": False, "beta_pc": 0.95,
                "eps": 1e-5, "alpha": 0.125, "update_interval": 10, "whiten": "both",
                "trace_normalize": True, "grafting": True, "orthogonalizer": "ns5", "ns_steps": 5,
                "update_scale": "sqrt_out_in", "weight_decay": 0.01}
    raise ValueError(name)


def embedding_optimizer(name, lr):
    if name == "adamw":
        return {"type": "adamw", "lr": lr, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.01}
    return {"type": "lion", "lr": lr, "betas": [0.95, 0.98], "weight_decay": 0.0}


def schedule(kind):
    if kind == "cosine":
        return {"type": "cosine", "warmup": 0.1, "min_ratio": 0.0}
    return {"type": "wsd", "warmup": 0.1, "decay": 0.1, "decay_shape": "linear", "min_ratio": 0.0}


def make(size, opt, sched="cosine", name=None, matrix_overrides=None):
    d_model, micro = SIZES[size]
    accum = GLOBAL_TOKENS // (RANKS * micro * SEQ)
    assert RANKS * micro * SEQ * accum == GLOBAL_TOKENS
    lr = DEFAULT_LR[opt]
    name = name or f"{size}-{opt}" + ("-wsd" if sched == "wsd" else "")
    matrix = matrix_optimizer(opt, lr)
    matrix.update(matrix_overrides or {})
    return {
        "run_name": name,
        "model": {"preset": size},
        "data": {
            "train": "data/fineweb10B/fineweb_train_*.bin",
            "val": "data/fineweb10B/fineweb_val_*.bin",
        },
        "batch": {"global_tokens": GLOBAL_TOKENS, "micro_batch": micro, "seq_len": SEQ},
        "optimizer": {
            "grad_clip": 1.0,
            "matrix": matrix,
            "embedding": embedding_optimizer(opt, lr),
            "lm_head_lr_scale": round(1.0 / math.sqrt(d_model), 8),
        },
        "schedule": schedule(sched),
        "steps": STEPS,
        # 10M validation tokens (5 steps' worth) every 250 steps; WSD also evaluates at the end
        # of the stable phase (step 9,000) by itself.
        "eval": {"every": 250, "tokens": 10 * 1024 * 1024},
        "checkpoint": {"every": 500, "keep": 2},
        "log": {"dir": f"runs/paper/{name}", "every": 10, "diagnostics_every": 50},
        "seed": 1337,
        "device": "cuda",
        "precision": "bf16",
    }


ABLATIONS = {
    # name suffix: Mousse overrides (Section 5; the paper ran them on the 480M model)
    "nograft": {"grafting": False},                 # Fig. 6
    "notrace": {"trace_normalize": False},          # Fig. 7a
    "alpha0.25": {"alpha": 0.25},                   # Fig. 7a (Shampoo's exponent)
    "output": {"whiten": "output"},                 # Fig. 7b: L only (m×m, output side)
    "input": {"whiten": "input"},                   # Fig. 7b: R only (n×n, input side)
}


# The small-scale replication (scripts/replicate-small.sh): a 30.5M-parameter GPT (6 layers,
# d_model 256, 4 heads; 25.8M of it wte + lm_head) on ~2M tokens of ../shared/data text, one GPU.
SMALL_LR_GRID = {
    "adamw": [1e-3, 2e-3, 4e-3, 8e-3],
    "muon": [0.005, 0.01, 0.02, 0.04],
    "soap": [1e-3, 2e-3, 4e-3, 8e-3],
    "mousse": [0.005, 0.01, 0.02, 0.04],
}


def make_small(opt):
    d_model = 256
    lr = {"adamw": 4e-3, "muon": 0.02, "soap": 4e-3, "mousse": 0.02}[opt]
    name = f"small-{opt}"
    return {
        "run_name": name,
        "model": {"preset": "custom", "n_layer": 6, "n_head": 4, "d_model": d_model,
                  "vocab_size": 50257, "max_seq_len": 512},
        "data": {"train": "data/small/small_train_*.bin", "val": "data/small/small_val_*.bin",
                 "shuffle": True},
        # 16,384 tokens per step × 400 steps = 6.6M tokens (about 3 passes over the data).
        "batch": {"global_tokens": 16384, "micro_batch": 32, "seq_len": 512},
        "optimizer": {
            "grad_clip": 1.0,
            "matrix": matrix_optimizer(opt, lr),
            "embedding": embedding_optimizer(opt, lr),
            "lm_head_lr_scale": round(1.0 / math.sqrt(d_model), 8),
        },
        "schedule": schedule("cosine"),
        "steps": 400,
        "eval": {"every": 20, "tokens": 131072},
        "checkpoint": {"every": 0, "keep": 1},
        "log": {"dir": f"runs/small/{name}", "every": 20, "diagnostics_every": 10},
        "seed": 1337,
        "device": "auto",
    }


def write(path, cfg):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "configs", "paper"))
    ap.add_argument("--small-out", default=os.path.join(os.path.dirname(__file__), "..", "configs", "small"),
                    help="where the small-replication configs go ('' = skip them)")
    ap.add_argument("--print-grids", action="store_true", help="print the LR grids and exit")
    args = ap.parse_args()
    if args.print_grids:
        print(json.dumps(LR_GRID))
        return
    n = 0
    for size in SIZES:
        for opt in DEFAULT_LR:
            for sched in ("cosine", "wsd"):
                cfg = make(size, opt, sched)
                write(os.path.join(args.out, cfg["run_name"] + ".json"), cfg)
                n += 1
    for suffix, over in ABLATIONS.items():
        cfg = make("494m", "mousse", name=f"494m-mousse-{suffix}", matrix_overrides=over)
        write(os.path.join(args.out, "ablations", cfg["run_name"] + ".json"), cfg)
        n += 1
    write(os.path.join(args.out, "lr_grids.json"), LR_GRID)
    print(f"wrote {n} configs and lr_grids.json under {os.path.normpath(args.out)}")
    if args.small_out:
        for opt in SMALL_LR_GRID:
            cfg = make_small(opt)
            write(os.path.join(args.small_out, cfg["run_name"] + ".json"), cfg)
        write(os.path.join(args.small_out, "lr_grids.json"), SMALL_LR_GRID)
        print(f"wrote {len(SMALL_LR_GRID)} configs and lr_grids.json under {os.path.normpath(args.small_out)}")


if __name__ == "__main__":
    main()
