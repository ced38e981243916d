#!/usr/bin/env python3
"""Throughput of mousse-tokenize vs tiktoken (GPT-2 encode_ordinary) on the same text.

usage: scripts/bench-tokenize.py [--tool build/mousse-tokenize] [--data ../shared/data]
                                 [--input FILE.jsonl] [--repeat N] [--threads 1,2]

The text is the `text` field of a JSON Lines file (default: the shared corpora, repeated --repeat times).
tiktoken is timed on the already-decoded Python strings (encode_ordinary in a loop for 1 thread,
encode_ordinary_batch(num_threads=N) for N threads); mousse-tokenize is timed end to end (process
start, vocabulary load, reading and parsing the JSONL, encoding, writing the shards), so the comparison
is conservative for mousse-tokenize. Runs with /usr/bin/python3 (tiktoken installed there).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tokenizer"))
from tok_common import tiktoken_gpt2  # noqa: E402


def main():
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", default=os.path.join(root, "build", "mousse-tokenize"))
    ap.add_argument("--data", default=os.path.join(root, "..", "shared", "data"))
    ap.add_argument("--input", help="a .jsonl file (default: the shared corpora)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=3, help="best of N runs per measurement")
    args = ap.parse_args()

    enc = tiktoken_gpt2(os.path.join(args.data, "gpt2"))
    if args.input:
        files = [args.input]
    else:
        cdir = os.path.join(args.data, "corpora")
        files = [os.path.join(cdir, f) for f in sorted(os.listdir(cdir)) if f.endswith(".jsonl")]
    texts = []
    for fn in files:
        with open(fn, encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    texts = texts * args.repeat
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    work = tempfile.mkdtemp(prefix="mousse-bench-")
    try:
        path = os.path.join(work, "bench.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        print("text: %d documents, %.1f MB (UTF-8), %d tokens" %
              (len(texts), nbytes / 1e6, sum(len(x) for x in enc.encode_ordinary_batch(texts, num_threads=2))))
        print("machine: %d CPUs, load average %.2f at start (other work on the machine skews both tools)" %
              (os.cpu_count(), os.getloadavg()[0]))
        print("%-44s %10s" % ("", "MB/s"))
        for th in [int(x) for x in args.threads.split(",")]:
            best = 1e9
            for _ in range(args.runs):
                t0 = time.perf_counter()
                if th == 1:
                    for t in texts:
                        enc.encode_ordinary(t)
                else:
                    enc.encode_ordinary_batch(texts, num_threads=th)
                best = min(best, time.perf_counter() - t0)
            name = "encode_ordinary" if th == 1 else "encode_ordinary_batch(num_threads=%d)" % th
            print("%-44s %10.2f" % ("tiktoken %s" % name, nbytes / 1e6 / best), flush=True)
            best = 1e9
            for _ in range(args.runs):
                out = os.path.join(work, "out")
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                r = subprocess.run([args.tool, path, "--out", out, "--threads", str(th), "-q",
                                    "--vocab", os.path.join(args.data, "gpt2")], capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit("mousse-tokenize failed:\n" + r.stderr)
                best = min(best, time.perf_counter() - t0)
            print("%-44s %10.2f" % ("mousse-tokenize --threads %d (end to end)" % th, nbytes / 1e6 / best), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
