"""Helpers shared by the tokenizer's Python tests: a tiktoken GPT-2 Encoding built from local files,
running mousse-tokenize, reading llm.c shards, and llm.c's fineweb.py sharding procedure."""
import os
import subprocess
import sys

import numpy as np

EOT = 50256
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def tiktoken_gpt2(vocab_dir):
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    enc_json = os.path.join(vocab_dir, "encoder.json")
    vocab_bpe = os.path.join(vocab_dir, "vocab.bpe")
    for p in (enc_json, vocab_bpe):
        if not os.path.exists(p):
            fail("missing GPT-2 vocabulary file %s (shared data missing?)" % p)
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=vocab_bpe, encoder_json_file=enc_json)
    return tiktoken.Encoding(name="gpt2-local", pat_str=GPT2_PAT, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": EOT}, explicit_n_vocab=50257)


def run_tool(tool, args, expect_ok=True):
    r = subprocess.run([tool] + args, capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        fail("mousse-tokenize %s exited %d:\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def read_shard(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype=np.int32)
        if header[0] != 20240520 or header[1] != 1:
            fail("%s: bad llm.c header %s" % (path, header[:3]))
        toks = np.frombuffer(f.read(), dtype=np.uint16)
    if len(toks) != header[2]:
        fail("%s: header says %d tokens, file holds %d" % (path, header[2], len(toks)))
    return toks


def read_all_shards(out_dir, name):
    files = sorted((f for f in os.listdir(out_dir) if f.startswith(name + "_") and f.endswith(".bin")),
                   key=lambda f: int(f[-10:-4]))
    return files, (np.concatenate([read_shard(os.path.join(out_dir, f)) for f in files]) if files else
                   np.zeros(0, np.uint16))


def split_docs(tokens):
    """Splits an EOT-prefixed token stream into documents (encode_ordinary never emits EOT)."""
    idx = np.flatnonzero(tokens == EOT)
    if len(tokens) and (len(idx) == 0 or idx[0] != 0):
        fail("token stream does not start with EOT")
    bounds = list(idx) + [len(tokens)]
    return [tokens[bounds[i] + 1:bounds[i + 1]] for i in range(len(idx))]


def llmc_fineweb_shards(token_docs, shard_size, name):
    """llm.c fineweb.py's loop, verbatim in logic: returns {filename: bytes}."""
    out = {}

    def write_datafile(filename, toks):
        header = np.zeros(256, dtype=np.int32)
        header[0], header[1], header[2] = 20240520, 1, len(toks)
        out[filename] = header.tobytes() + np.asarray(toks, dtype=np.uint16).tobytes()

    shard_index = 0
    all_tokens_np = np.empty((shard_size,), dtype=np.uint16)
    token_count = 0
    for tokens in token_docs:
        if token_count + len(tokens) < shard_size:
            all_tokens_np[token_count:token_count + len(tokens)] = tokens
            token_count += len(tokens)
        else:
            split = "val" if shard_index == 0 else "train"
            filename = f"{name}_{split}_{shard_index:06d}.bin"
            remainder = shard_size - token_count
            all_tokens_np[token_count:token_count + remainder] = tokens[:remainder]
            write_datafile(filename, all_tokens_np.tolist())
            shard_index += 1
            token_count = len(tokens) - remainder
            all_tokens_np[0:len(tokens) - remainder] = tokens[remainder:]
    if token_count != 0:
        split = "val" if shard_index == 0 else "train"
        filename = f"{name}_{split}_{shard_index:06d}.bin"
        write_datafile(filename, all_tokens_np[:token_count].tolist())
    return out


def compare_docs(label, ours, theirs, texts=None):
    """Compares lists of token arrays; prints the parity line; returns mismatch count."""
    if len(ours) != len(theirs):
        fail("%s: %d documents from mousse-tokenize, %d expected" % (label, len(ours), len(theirs)))
    bad = 0
    ntok = 0
    for i, (a, b) in enumerate(zip(ours, theirs)):
        ntok += len(b)
        if len(a) != len(b) or not np.array_equal(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)):
            bad += 1
            if bad <= 5:
                a, b = list(map(int, a)), list(map(int, b))
                k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
                snippet = repr(texts[i][:200]) if texts else ""
                print("  mismatch in document %d at token %d: ours %s tiktoken %s %s" %
                      (i, k, a[k:k + 8], b[k:k + 8], snippet))
    print("PARITY %s: %d documents, %d tokens compared, %d mismatching documents" % (label, len(theirs), ntok, bad),
          flush=True)
    return bad
