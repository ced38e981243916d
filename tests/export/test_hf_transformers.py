#!/usr/bin/env python3
"""A model trained and exported by mousse, loaded by the real Hugging Face `transformers`.

  test_hf_transformers.py MOUSSE DUMP_LOGITS MOUSSE_TOKENIZE SHARED_DATA WORK

Trains a small model on tinyshakespeare, exports it with `mousse export --format hf` (f32 and
bf16), loads each with AutoModelForCausalLM and AutoTokenizer, and checks
  (a) the logits on fixed prompts equal mousse's CPU forward pass (f32, relative difference),
  (b) greedy generation of 32 tokens equals `mousse sample -t 0`,
  (c) the tokenizer's ids equal mousse-tokenize's on the shared corpora (AutoTokenizer and the
      tokenizer.json file through the `tokenizers` library), and decoding gives the text back.
It runs itself again inside the cached virtual environment of hf_venv.py (created on first use:
PyTorch from PyPI). MOUSSE_SKIP_HF_TEST=1 skips it (exit 77) on machines without PyPI.
"""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REL_TOL = 1e-5  # max |a - b| / max |b| over a prompt's logits (measured: under 1e-6)
N_GEN = 32
PROMPTS = [
    "ROMEO:",
    "First Citizen:\nBefore we proceed any further, hear me speak.",
    "The quick brown fox jumps over the lazy dog, and 12345 numbers follow it: 3.14159!",
    "  Leading spaces, tabs\tand\nnew lines; émigré café naïve — ünïcödé 日本語 🙂",
    "KING HENRY VI:\nWhat, shall we suffer this? let's pluck him down;",
]


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        fail("%s exited %d:\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r.stdout


def into_venv():
    if os.environ.get("MOUSSE_SKIP_HF_TEST") == "1":
        print("SKIPPED: MOUSSE_SKIP_HF_TEST=1")
        sys.exit(77)
    sys.path.insert(0, HERE)
    import hf_venv
    t0 = time.time()
    py = hf_venv.ensure(sys.executable)
    print("hf venv ready in %.1f s: %s" % (time.time() - t0, py), flush=True)
    os.environ["MOUSSE_IN_HF_VENV"] = "1"
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


def main():
    if len(sys.argv) != 6:
        fail("usage: test_hf_transformers.py MOUSSE DUMP_LOGITS MOUSSE_TOKENIZE SHARED_DATA WORK")
    if os.environ.get("MOUSSE_IN_HF_VENV") != "1":
        into_venv()
    mousse, dump_logits, tokenize, shared, work = sys.argv[1:]
    import numpy as np
    import tokenizers
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    print("torch %s, transformers %s, tokenizers %s" % (torch.__version__, transformers.__version__,
                                                       tokenizers.__version__), flush=True)
    torch.manual_seed(0)
    vocab = os.path.join(shared, "gpt2")
    env = dict(os.environ, MOUSSE_GPT2_DIR=vocab)
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)

    # The model: a short training run, exported in both dtypes.
    ts = os.path.join(shared, "tinyshakespeare")
    t0 = time.time()
    run([mousse, "train", "-c", os.path.join(HERE, "hf_model.json"), "--quiet",
         "--set", "data.train=" + os.path.join(ts, "tiny_shakespeare_train.bin"),
         "--set", "data.val=" + os.path.join(ts, "tiny_shakespeare_val.bin"),
         "--set", "log.dir=" + os.path.join(work, "run")], env=env)
    print("trained in %.1f s" % (time.time() - t0), flush=True)
    ckpt = os.path.join(work, "run", "checkpoints")
    dirs = {}
    for dt in ("f32", "bf16"):
        dirs[dt] = os.path.join(work, "hf-" + dt)
        run([mousse, "export", "--checkpoint", ckpt, "--format", "hf", "--dtype", dt, "-o", dirs[dt]], env=env)
    card = open(os.path.join(dirs["f32"], "README.md")).read()
    if "final validation loss | unknown" in card or "Qwen3ForCausalLM" not in card:
        fail("model card lacks the architecture or the final validation loss:\n" + card)

    # Our token ids for the prompts, from mousse-tokenize (checked against HF's in (c) too).
    prompt_jsonl = os.path.join(work, "prompts.jsonl")
    with open(prompt_jsonl, "w", encoding="utf-8") as f:
        for p in PROMPTS:
            f.write(json.dumps({"text": p}) + "\n")
    ours = mousse_tokenize(tokenize, vocab, prompt_jsonl, os.path.join(work, "prompt_tok"))

    # (a) logits
    worst = 0.0
    t0 = time.time()
    for dt, d in dirs.items():
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
        model.eval()
        if type(model).__name__ != "Qwen3ForCausalLM":
            fail("loaded as %s" % type(model).__name__)
        ids_file = os.path.join(work, "ids.txt")
        with open(ids_file, "w") as f:
            for ids in ours:
                f.write(" ".join(map(str, ids)) + "\n")
        # mousse's forward: on the exported directory (through the import) and on the checkpoint.
        ref = {}
        for name, src in (("import", d), ("checkpoint", ckpt))[:2 if dt == "f32" else 1]:
            out = os.path.join(work, "logits-%s-%s.f32" % (dt, name))
            with open(ids_file) as stdin:
                run([dump_logits, src, out], stdin=stdin)
            ref[name] = np.fromfile(out, dtype=np.float32)
        if dt == "f32" and not np.array_equal(ref["import"], ref["checkpoint"]):
            fail("f32 export: mousse's logits through the import differ from the checkpoint's")
        off = 0
        for p, ids in zip(PROMPTS, ours):
            hf_ids = tok(p, split_special_tokens=True).input_ids
            if hf_ids != list(ids):
                fail("prompt %r: AutoTokenizer gives %s, mousse %s" % (p, hf_ids, list(ids)))
            with torch.no_grad():
                logits = model(torch.tensor(np.array([ids]))).logits[0].float().numpy()
            n = logits.size
            a = ref["import"][off:off + n].reshape(logits.shape)
            off += n
            rel = float(np.abs(logits - a).max() / np.abs(a).max())
            worst = max(worst, rel)
            print("(a) %s, %2d tokens: max |hf - mousse| / max |mousse| = %.2e  (argmax equal at %d/%d positions)"
                  % (dt, len(ids), rel, int((logits.argmax(-1) == a.argmax(-1)).sum()), len(ids)), flush=True)
            if rel > REL_TOL:
                fail("%s export, prompt %r: logits differ by %.2e (relative), more than %.0e" % (dt, p, rel, REL_TOL))
        if off != ref["import"].size:
            fail("dump_logits wrote %d values, expected %d" % (ref["import"].size, off))

        # (b) greedy generation: transformers (KV cache) against `mousse sample -t 0`, once
        # through <|endoftext|> (--no-stop; EOS off in transformers) and once stopping there
        # (transformers takes EOS from the exported generation_config.json).
        for stop in (False, True):
            for p, ids in zip(PROMPTS, ours):
                model.generation_config = transformers.GenerationConfig.from_pretrained(d)
                if not stop:
                    model.generation_config.eos_token_id = None
                with torch.no_grad():
                    g = model.generate(torch.tensor(np.array([ids])), max_new_tokens=N_GEN, do_sample=False,
                                       pad_token_id=50256,
                                       attention_mask=torch.ones(1, len(ids), dtype=torch.long))
                hf_new = g[0, len(ids):].tolist()
                cmd = [mousse, "sample", "-w", d, "-p", p, "-t", "0", "-n", str(N_GEN), "--ids",
                       "--device", "cpu", "--vocab", vocab] + ([] if stop else ["--no-stop"])
                ms_new = [int(x) for x in run(cmd, env=env).split()]
                if hf_new != ms_new or (not stop and len(ms_new) != N_GEN):
                    i = next((k for k in range(min(len(hf_new), len(ms_new))) if hf_new[k] != ms_new[k]), None)
                    fail("%s, prompt %r%s: greedy tokens differ (first at %s)\n  transformers %s\n  mousse       %s"
                         % (dt, p, "" if stop else " (--no-stop)", i, hf_new, ms_new))
        print("(b) %s: greedy generation equal on %d prompts, through and up to <|endoftext|>"
              % (dt, len(PROMPTS)), flush=True)
    print("(a) worst relative logits difference: %.2e; (a) and (b) took %.1f s" % (worst, time.time() - t0))
    t0 = time.time()

    # (c) tokenizer parity on the shared corpora.
    tok = AutoTokenizer.from_pretrained(dirs["f32"])
    fast = tokenizers.Tokenizer.from_file(os.path.join(dirs["f32"], "tokenizer.json"))
    cdir = os.path.join(shared, "corpora")
    files = sorted(f for f in os.listdir(cdir) if f.endswith(".jsonl"))
    if len(files) < 3:
        fail("expected the corpora jsonl files in %s" % cdir)
    docs = toks = 0
    for fn in files:
        texts = [json.loads(line)["text"] for line in open(os.path.join(cdir, fn), encoding="utf-8") if line.strip()]
        ours = mousse_tokenize(tokenize, vocab, os.path.join(cdir, fn), os.path.join(work, "tok_" + fn))
        if len(ours) != len(texts):
            fail("%s: mousse-tokenize wrote %d documents, the file has %d" % (fn, len(ours), len(texts)))
        auto = tok(texts, split_special_tokens=True).input_ids
        from_file = [e.ids for e in fast.encode_batch(texts, add_special_tokens=False)]
        for k, (t, m) in enumerate(zip(texts, ours)):
            m = list(m)
            for name, ids in (("AutoTokenizer", auto[k]), ("tokenizer.json", from_file[k])):
                if "<|endoftext|>" in t and name == "tokenizer.json":
                    continue  # the tokenizers library always treats the special token as one
                if ids != m:
                    i = next((j for j in range(min(len(ids), len(m))) if ids[j] != m[j]), min(len(ids), len(m)))
                    fail("%s document %d: %s ids differ from mousse's at token %d: %s vs %s"
                         % (fn, k, name, i, ids[i:i + 8], m[i:i + 8]))
            if tok.decode(m) != t:
                fail("%s document %d: AutoTokenizer's decode does not give the text back" % (fn, k))
        docs += len(texts)
        toks += sum(len(m) for m in ours)
    print("(c) tokenizer: %d documents, %d tokens: AutoTokenizer, tokenizer.json and mousse agree (%.1f s)"
          % (docs, toks, time.time() - t0))
    print("PASS")


def mousse_tokenize(tool, vocab, jsonl, out):
    """mousse-tokenize's ids of each document of a jsonl file (documents are EOT-prefixed)."""
    import numpy as np
    if os.path.exists(out):
        shutil.rmtree(out)
    run([tool, jsonl, "--out", out, "--name", "t", "--vocab", vocab, "-q"])
    # t_val_000000.bin, then t_train_000001.bin, ...: in the order of their numbers
    shards = sorted((f for f in os.listdir(out) if f.endswith(".bin")), key=lambda f: int(f[-10:-4]))
    stream = np.concatenate([np.fromfile(os.path.join(out, f), dtype=np.uint16, offset=1024) for f in shards])
    starts = list(np.flatnonzero(stream == 50256)) + [len(stream)]
    if not len(stream) or starts[0] != 0:
        fail("%s: token stream does not start with <|endoftext|>" % jsonl)
    return [stream[starts[i] + 1:starts[i + 1]].astype(np.int64) for i in range(len(starts) - 1)]


if __name__ == "__main__":
    main()
