#!/usr/bin/env python3
"""scripts/replication_report.py: results.md of a small-scale replication (scripts/replicate-small.sh,
scripts/replicate-gpu) from a sweep folder and the figures folder scripts/plot wrote.

  scripts/replication_report.py SWEEP_DIR --docs DOCS [--title T] [--command C] [--commit C]

Reads SWEEP_DIR/results.csv (scripts/sweep --collect-only --target-loss best:muon), the resolved
config of each run and, when scripts/plot wrote it, DOCS/steps_to_target.csv (steps to the target,
interpolated between evaluations). Writes DOCS/results.md: the setup read from the runs' configs, a
sentence stating what was measured (whichever optimizer won), the best run per optimizer, every run,
and the command and commit that made them. Nothing in it is written in advance: every number and
every comparison comes from the files.
"""
import argparse
import csv
import json
import math
import os
import sys

OPT_ORDER = ["adamw", "muon", "soap", "mousse"]
NAMES = {"adamw": "AdamW", "muon": "Muon", "soap": "SOAP", "mousse": "Mousse"}
FIGURES = [("curves_cosine.png", "val loss vs step of each optimizer's best run (Fig. 1)"),
           ("lr_sweep_cosine.png", "final val loss vs peak LR (Fig. 3)"),
           ("steps_to_target.png", "steps to the best Muon run's final val loss (Fig. 4)"),
           ("update_rms.png", "Mousse update RMS (Fig. 6)")]


def fnum(x):
    try:
        v = float(x)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def name(opt):
    return NAMES.get(opt, opt)


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def lr_column(rows):
    """The grid column holding the matrix LR (scripts/sweep names it after the grid's keys)."""
    for r in rows:
        for c in r:
            if c.startswith("optimizer.matrix.lr"):
                return c
    return None


def run_config(sweep_dir, run):
    for p in (os.path.join(sweep_dir, "runs", run, "config.json"),
              os.path.join(sweep_dir, "configs", run + ".json")):
        if os.path.exists(p):
            with open(p) as f:
                return json.load(f)
    return {}


def fmt_int(x):
    v = fnum(x)
    return "" if v is None else f"{v:,.0f}"


def setup_lines(sweep_dir, rows):
    """One paragraph on what every run shared, read from the first run's resolved config."""
    done = [r for r in rows if r["status"] == "completed"] or rows
    if not done:
        return []
    cfg = run_config(sweep_dir, done[0]["run"])
    m, b, s, ev = (cfg.get(k, {}) for k in ("model", "batch", "schedule", "eval"))
    steps = cfg.get("steps")
    params = fnum(done[0].get("parameters"))
    parts = []
    if m:
        parts.append(f"a {params / 1e6:.1f}M-parameter GPT" if params else "a GPT")
        parts[-1] += (f" ({m.get('n_layer')} layers, d_model {m.get('d_model')}, "
                      f"{m.get('n_head')} heads, T = {b.get('seq_len', m.get('max_seq_len'))})")
    if steps and b.get("global_tokens"):
        parts.append(f"{steps:,} steps × {b['global_tokens']:,} tokens "
                     f"({steps * b['global_tokens']:,} tokens per run)")
    if s:
        sched = s.get("type", "cosine")
        if sched == "cosine":
            parts.append(f"cosine schedule with {100 * s.get('warmup', 0):g}% linear warmup")
        else:
            parts.append(f"{sched} schedule")
    if ev.get("every"):
        parts.append(f"{ev.get('tokens', 0):,} validation tokens every {ev['every']} steps")
    seed = cfg.get("seed")
    if seed is not None:
        parts.append(f"seed {seed} for every run (one run per point: no estimate of run-to-run noise)")
    return ["Every run: " + "; ".join(parts) + "."] if parts else []


def best_per_optimizer(rows):
    best = {}
    for r in rows:
        f = fnum(r.get("final_val_loss"))
        if r["status"] != "completed" or f is None:
            continue
        if r["optimizer"] not in best or f < fnum(best[r["optimizer"]]["final_val_loss"]):
            best[r["optimizer"]] = r
    return best


def ordered(opts):
    return [o for o in OPT_ORDER if o in opts] + sorted(set(opts) - set(OPT_ORDER))


def measured_sentences(rows, best, steps, lr_col, reference="muon", candidate="mousse"):
    """What the runs show about `candidate` against `reference`, as measured; [] when either
    optimizer has no completed run."""
    out = []
    ref, cand = best.get(reference), best.get(candidate)
    if ref is None or cand is None:
        missing = [name(o) for o in (reference, candidate) if o not in best]
        out.append(f"No comparison: no completed {' or '.join(missing)} run.")
        return out
    target = fnum(ref["final_val_loss"])
    lc = fnum(cand["final_val_loss"])
    ref_steps = fnum(ref["steps"])
    s = steps.get(candidate, {})
    n = fnum(s.get("steps_to_target"))
    frac = fnum(s.get("fraction_of_reference"))
    how = "interpolated between evaluations"
    if n is None and not s:  # no steps_to_target.csv (no matplotlib): first evaluation at or below
        n = fnum(cand.get("steps_to_target"))
        frac = n / ref_steps if (n is not None and ref_steps) else None
        how = "first evaluation at or below it"
    lead = (f"Best {name(reference)} run: peak LR {ref[lr_col]}, final val loss {target:.4f}. "
            f"Best {name(candidate)} run: peak LR {cand[lr_col]}, final val loss {lc:.4f} "
            f"({lc - target:+.4f}).")
    out.append(lead)
    if n is not None and frac is not None:
        verdict = "fewer" if frac < 1 else ("as many" if frac == 1 else "more")
        out.append(f"{name(candidate)} reached the best {name(reference)} run's final val loss after "
                   f"{n:g} steps ({how}), {100 * frac:.0f}% of {name(reference)}'s {ref_steps:.0f} "
                   f"steps: {abs(100 - 100 * frac):.0f}% {verdict} steps in this measurement"
                   + (f" (the paper reports about 12% fewer)." if verdict != "as many" else "."))
    else:
        out.append(f"{name(candidate)} did not reach the best {name(reference)} run's final val loss "
                   f"within the {ref_steps:.0f} steps of the runs.")
    for opt in (reference, candidate):
        lrs = sorted({fnum(r[lr_col]) for r in rows if r["optimizer"] == opt
                      and r["status"] == "completed" and fnum(r[lr_col]) is not None})
        b = fnum(best[opt][lr_col])
        if len(lrs) > 1 and b in (lrs[0], lrs[-1]):
            edge = "smallest" if b == lrs[0] else "largest"
            out.append(f"{name(opt)}'s best peak LR is the {edge} it was run at: its optimum may lie "
                       "outside the swept range.")
    return out


def report_markdown(sweep_dir, docs_dir, title, intro=(), command=None, commit=None,
                    sections=(), expected_runs=None):
    rows = read_csv(os.path.join(sweep_dir, "results.csv"))
    lr_col = lr_column(rows)
    steps = {r["optimizer"]: r for r in read_csv(os.path.join(docs_dir, "steps_to_target.csv"))}
    best = best_per_optimizer(rows)
    completed = sum(r["status"] == "completed" for r in rows)
    total = expected_runs if expected_runs is not None else len(rows)
    lines = [f"# {title}", ""]
    lines += list(intro)
    lines += setup_lines(sweep_dir, rows) + [""]
    lines += ["## What the runs show", ""]
    if completed < total:
        lines += [f"**Incomplete: {completed} of {total} runs completed.** The statements below "
                  "cover only the completed runs.", ""]
    if not rows or lr_col is None:
        lines += ["No run finished: nothing to compare.", ""]
    else:
        lines += [" ".join(measured_sentences(rows, best, steps, lr_col)), ""]
        lines += ["Best run per optimizer (target: the best Muon run's final val loss; steps "
                  "interpolated between evaluations, as in `steps_to_target.csv`):", "",
                  "| optimizer | best peak LR | final val loss | steps to target | tokens/s |",
                  "|---|---|---|---|---|"]
        for opt in ordered(best):
            b, s = best[opt], steps.get(opt)
            if s is None:  # no steps_to_target.csv: the first evaluation at or below the target
                st = b.get("steps_to_target") or "not reached"
            else:
                st = s.get("steps_to_target") or "not reached"
                if s.get("fraction_of_reference"):
                    st += f" ({100 * float(s['fraction_of_reference']):.0f}% of Muon's)"
            lines.append(f"| {name(opt)} | {b[lr_col]} | {float(b['final_val_loss']):.4f} | {st} | "
                         f"{fmt_int(b.get('tokens_per_s'))} |")
        target = next((fnum(r.get("target_loss")) for r in rows if fnum(r.get("target_loss"))), None)
        lines += ["", "Every run (steps to target: the first evaluation at or below "
                  + (f"{target:.4f}" if target is not None else "the target") + "):", "",
                  "| optimizer | peak LR | status | steps | final val loss | steps to target | tokens/s |",
                  "|---|---|---|---|---|---|---|"]
        rank = {o: i for i, o in enumerate(ordered({r["optimizer"] for r in rows}))}
        for r in sorted(rows, key=lambda r: (rank[r["optimizer"]], fnum(r[lr_col]) or 0)):
            f = fnum(r.get("final_val_loss"))
            lines.append(f"| {name(r['optimizer'])} | {r[lr_col]} | {r['status']} | {r.get('steps', '')} | "
                         f"{'' if f is None else f'{f:.4f}'} | {r.get('steps_to_target') or 'not reached'} | "
                         f"{fmt_int(r.get('tokens_per_s'))} |")
        lines.append("")
    for sec in sections:
        lines += list(sec) + [""]
    figs = [f"`{f}` ({what})" for f, what in FIGURES if os.path.exists(os.path.join(docs_dir, f))]
    figs += [f"`{f}` (Mousse's preconditioner statistics, Fig. 10)" for f in sorted(os.listdir(docs_dir))
             if f.startswith("precond_") and f.endswith(".png")]
    files = []
    if os.path.exists(os.path.join(docs_dir, "results.csv")):
        files.append("`results.csv` (every run, from `scripts/sweep --collect-only --target-loss best:muon`)")
    if steps:
        files.append("`steps_to_target.csv`")
    files.append("figures: " + ", ".join(figs) if figs else "no figures")
    lines += ["## Files", "", "; ".join(files) + ".", ""]
    if command or commit:
        lines += ["## How these were made", ""]
        if command:
            lines += ["```bash", command, "```", ""]
        if commit:
            lines += [f"Code: {commit}.", ""]
    return "\n".join(lines)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", help="sweep folder (results.csv, runs/)")
    ap.add_argument("--docs", required=True, help="folder of the figures; results.md is written there")
    ap.add_argument("--title", default="Small-scale replication: results")
    ap.add_argument("--intro", action="append", default=[], help="a paragraph after the title")
    ap.add_argument("--command", help="the command that made the runs")
    ap.add_argument("--commit", help="the code the runs used")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.sweep, "results.csv")):
        sys.exit(f"replication_report: {args.sweep}/results.csv not found (scripts/sweep --collect-only writes it)")
    os.makedirs(args.docs, exist_ok=True)
    intro = [p for para in args.intro for p in (para, "")]
    text = report_markdown(args.sweep, args.docs, args.title, intro, args.command, args.commit)
    write_atomic(os.path.join(args.docs, "results.md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
