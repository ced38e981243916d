#!/usr/bin/env python3
"""mousse-tokenize's readers: parquet files written by pyarrow (every supported codec, encoding, data
page version, required/optional column), DuckDB-written FineWeb-like files, JSONL .gz/.zst; plus
corrupt/truncated inputs, which must fail with a clear message naming the file, a non-zero exit and no
shard left under a final name.

usage: test_parquet_inputs.py MODE TOOL SHARED_DATA WORKDIR      MODE: pyarrow | duckdb | errors
"""
import gzip
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tok_common import EOT, compare_docs, fail, read_all_shards, run_tool, split_docs, tiktoken_gpt2  # noqa


def write_zstd(src, dst):
    """A standard zstd frame via pyarrow's codec (no zstd command-line tool needed)."""
    import pyarrow as pa
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(pa.compress(data, codec="zstd", asbytes=True))


def tokenize(tool, vocab, inputs, out, threads=2, extra=()):
    shutil.rmtree(out, ignore_errors=True)
    run_tool(tool, list(inputs) + ["--out", out, "--name", "t", "--threads", str(threads), "--vocab", vocab, "-q"]
             + list(extra))
    return split_docs(read_all_shards(out, "t")[1])


def sample_texts(shared, n=1500):
    texts = [json.loads(l)["text"] for l in open(os.path.join(shared, "corpora", "abc_news.jsonl"), encoding="utf-8")]
    rng = random.Random(3)
    out = texts[:n]
    # a few unusual documents: empty, long, non-ASCII, repeated (dictionary-friendly)
    out += ["", "x" * 70000, "naïve café 日本語 😀 'll", "same"] + ["repeat me"] * 50
    rng.shuffle(out)
    return out


def mode_pyarrow(tool, shared, work, enc, vocab):
    import pyarrow as pa
    import pyarrow.parquet as pq
    texts = sample_texts(shared)
    nullable = [None if i % 17 == 5 else t for i, t in enumerate(texts)]
    cases = 0
    bad = 0
    exp_all = [np.array(enc.encode_ordinary(t)) for t in texts]
    exp_nonnull = [e for e, t in zip(exp_all, nullable) if t is not None]
    paths, all_expected = [], []
    encodings_seen = set()
    for codec in ["NONE", "SNAPPY", "GZIP", "ZSTD"]:
        for page_version in ["1.0", "2.0"]:
            for encoding in ["PLAIN", "DICT", "DELTA_LENGTH_BYTE_ARRAY"]:
                for optional in [False, True]:
                    vals = nullable if optional else texts
                    field = pa.field("text", pa.string(), nullable=optional)
                    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), field,
                                        pa.field("url", pa.string())])
                    table = pa.table({"id": pa.array(range(len(vals)), pa.int64()),
                                      "text": pa.array(vals, pa.string()),
                                      "url": pa.array(["u%d" % i for i in range(len(vals))])}, schema=schema)
                    kw = dict(compression=codec, data_page_version=page_version, row_group_size=400,
                              data_page_size=16 * 1024)
                    if encoding == "DICT":
                        kw["use_dictionary"] = True
                        if page_version == "1.0" and codec in ("NONE", "GZIP"):
                            kw["version"] = "1.0"  # parquet format 1.0: PLAIN_DICTIONARY instead of RLE_DICTIONARY
                    elif encoding == "PLAIN":
                        kw["use_dictionary"] = False
                    else:
                        kw["use_dictionary"] = False
                        kw["column_encoding"] = {"text": encoding}
                    name = "pa_%s_v%s_%s_%s.parquet" % (codec, page_version, encoding, "opt" if optional else "req")
                    path = os.path.join(work, name)
                    pq.write_table(table, path, **kw)
                    seen = pq.ParquetFile(path).metadata.row_group(0).column(1).encodings
                    want = {"PLAIN": ("PLAIN",), "DICT": ("RLE_DICTIONARY", "PLAIN_DICTIONARY"),
                            "DELTA_LENGTH_BYTE_ARRAY": ("DELTA_LENGTH_BYTE_ARRAY",)}[encoding]
                    if not any(w in seen for w in want):
                        fail("%s: pyarrow wrote encodings %s, wanted %s" % (name, seen, want))
                    encodings_seen.update(seen)
                    expected = exp_nonnull if optional else exp_all
                    paths.append(path)
                    all_expected += expected
                    if cases % 7 == 0:  # a few files on their own, single-threaded
                        ours = tokenize(tool, vocab, [path], os.path.join(work, "out"), threads=1)
                        bad += compare_docs(name, ours, expected)
                    cases += 1
    # all files in one run (one process start), documents in file order
    ours = tokenize(tool, vocab, paths, os.path.join(work, "out"), threads=2)
    bad += compare_docs("%d pyarrow files in one run" % len(paths), ours, all_expected)
    # a whole directory of them at once: sorted order, one stream
    print("parquet: %d pyarrow-written files checked; encodings covered: %s" % (cases, sorted(encodings_seen)))
    if "PLAIN_DICTIONARY" not in encodings_seen or "RLE_DICTIONARY" not in encodings_seen:
        fail("both dictionary encodings must be covered")
    if bad:
        fail("%d mismatching documents" % bad)


def mode_duckdb(tool, shared, work, enc, vocab):
    texts = [json.loads(l)["text"] for l in open(os.path.join(shared, "corpora", "abc_news.jsonl"), encoding="utf-8")]
    expected = [np.array(enc.encode_ordinary(t)) for t in texts]
    bad = 0
    for fn in ["fw_like_snappy.parquet", "fw_like_zstd.parquet"]:
        p = os.path.join(shared, "parquet", fn)
        if not os.path.exists(p):
            fail("missing shared file " + p)
        for th in (1, 2):
            bad += compare_docs("%s (--threads %d)" % (fn, th), tokenize(tool, vocab, [p], os.path.join(work, "o"), th),
                                expected)
    # JSONL plain / .gz / .zst give the same stream
    src = os.path.join(shared, "corpora", "abc_news.jsonl")
    gz = os.path.join(work, "abc.jsonl.gz")
    with open(src, "rb") as f, gzip.open(gz, "wb") as g:
        g.write(f.read())
    zs = os.path.join(work, "abc.jsonl.zst")
    write_zstd(src, zs)
    for p in (src, gz, zs):
        bad += compare_docs(os.path.basename(p), tokenize(tool, vocab, [p], os.path.join(work, "o")), expected)
    # directory input: the two parquet files, sorted
    both = tokenize(tool, vocab, [os.path.join(shared, "parquet")], os.path.join(work, "o"))
    bad += compare_docs("parquet directory", both, expected + expected)
    if bad:
        fail("%d mismatching documents" % bad)


def expect_error(tool, vocab, inputs, out, must_name, label, extra=()):
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([tool] + inputs + ["--out", out, "--name", "t", "--vocab", vocab, "-q",
                                          "--shard-tokens", "100000000"] + list(extra),
                       capture_output=True, text=True)
    if r.returncode == 0:
        fail("%s: exit status 0 on bad input" % label)
    msg = r.stderr.strip().splitlines()
    if not any(must_name in line for line in msg):
        fail("%s: error message does not name %s:\n%s" % (label, must_name, r.stderr))
    left = os.listdir(out) if os.path.isdir(out) else []
    if left:
        fail("%s: files left in the output directory: %s" % (label, left))
    print("error OK  %-40s %s" % (label, next((l for l in msg if "error" in l), msg[0] if msg else "")))


def mode_errors(tool, shared, work, enc, vocab):
    import pyarrow as pa
    import pyarrow.parquet as pq
    out = os.path.join(work, "err_out")
    good = os.path.join(work, "good.parquet")
    texts = sample_texts(shared, 600)
    pq.write_table(pa.table({"text": texts}), good, compression="SNAPPY", row_group_size=200, data_page_size=8192)
    data = open(good, "rb").read()
    # truncated at several points
    for cut in [len(data) - 3, len(data) // 2, 100, 10]:
        p = os.path.join(work, "trunc_%d.parquet" % cut)
        open(p, "wb").write(data[:cut])
        expect_error(tool, vocab, [p], out, p, "truncated parquet at %d bytes" % cut)
    # corrupt bytes inside the page data / headers (footer intact)
    rng = random.Random(11)
    for k in range(6):
        b = bytearray(data)
        pos = rng.randint(4, len(data) // 2)
        for i in range(pos, pos + 64):
            b[i] = rng.randint(0, 255)
        p = os.path.join(work, "corrupt_%d.parquet" % k)
        open(p, "wb").write(bytes(b))
        r = subprocess.run([tool, p, "--out", out, "--vocab", vocab, "-q"], capture_output=True, text=True)
        if r.returncode == 0:
            # corruption inside text bytes can decode fine (the text just changes): that is not an error
            print("corrupt_%d: garbage landed inside text values; decoded without error (acceptable)" % k)
            shutil.rmtree(out, ignore_errors=True)
            continue
        if p not in r.stderr:
            fail("corrupt parquet: message does not name the file:\n" + r.stderr)
        print("error OK  %-40s %s" % ("corrupt parquet %d" % k, r.stderr.strip().splitlines()[0]))
    # corrupt footer
    b = bytearray(data)
    meta_len = int.from_bytes(b[-8:-4], "little")
    for i in range(len(b) - 8 - meta_len, len(b) - 8 - meta_len + 40):
        b[i] ^= 0x5A
    p = os.path.join(work, "badfooter.parquet")
    open(p, "wb").write(bytes(b))
    expect_error(tool, vocab, [p], out, p, "corrupt parquet footer")
    p = os.path.join(work, "notparquet.parquet")
    open(p, "wb").write(b"hello, this is not a parquet file at all")
    expect_error(tool, vocab, [p], out, p, "not a parquet file")
    # missing column
    p = os.path.join(work, "nocol.parquet")
    pq.write_table(pa.table({"body": ["a", "b"]}), p)
    expect_error(tool, vocab, [p], out, p, "parquet without a text column")
    # broken JSONL line: message names file and line 3
    p = os.path.join(work, "broken.jsonl")
    open(p, "w").write('{"text": "a"}\n{"text": "b"}\n{"text": "c\n{"text": "d"}\n')
    expect_error(tool, vocab, [p], out, p + ": line 3", "broken JSON line")
    p = os.path.join(work, "nofield.jsonl")
    open(p, "w").write('{"text": "a"}\n{"body": "b"}\n')
    expect_error(tool, vocab, [p], out, p + ": line 2", "JSON line without text")
    p = os.path.join(work, "notstring.jsonl")
    open(p, "w").write('{"text": 5}\n')
    expect_error(tool, vocab, [p], out, p + ": line 1", "JSON text not a string")
    # an error after earlier good input (several files): still no final-named partial shard
    expect_error(tool, vocab, [os.path.join(shared, "corpora", "abc_news.jsonl"), p], out, p, "error in 2nd file")
    # truncated .gz / .zst
    src = os.path.join(shared, "corpora", "state_union.jsonl")
    gzdata = gzip.compress(open(src, "rb").read())
    p = os.path.join(work, "trunc.jsonl.gz")
    open(p, "wb").write(gzdata[:len(gzdata) // 2])
    expect_error(tool, vocab, [p], out, p, "truncated .jsonl.gz")
    zs = os.path.join(work, "full.jsonl.zst")
    write_zstd(src, zs)
    zdata = open(zs, "rb").read()
    p = os.path.join(work, "trunc.jsonl.zst")
    open(p, "wb").write(zdata[:len(zdata) // 2])
    expect_error(tool, vocab, [p], out, p, "truncated .jsonl.zst")
    # unreadable / missing files
    p = os.path.join(work, "does_not_exist.jsonl")
    expect_error(tool, vocab, [p], out, p, "missing file")
    p = os.path.join(work, "empty_dir")
    os.makedirs(p, exist_ok=True)
    expect_error(tool, vocab, [p], out, p, "directory without inputs")
    # --decode on a broken shard
    p = os.path.join(work, "bad.bin")
    open(p, "wb").write(b"\0" * 100)
    r = subprocess.run([tool, "--decode", p, "--vocab", vocab], capture_output=True, text=True)
    if r.returncode == 0 or p not in r.stderr:
        fail("--decode on a broken shard: " + r.stderr)
    print("error OK  --decode broken shard")


def main():
    mode, tool, shared, work = sys.argv[1:5]
    vocab = os.path.join(shared, "gpt2")
    enc = tiktoken_gpt2(vocab)
    os.makedirs(work, exist_ok=True)
    {"pyarrow": mode_pyarrow, "duckdb": mode_duckdb, "errors": mode_errors}[mode](tool, shared, work, enc, vocab)
    print("OK")


if __name__ == "__main__":
    main()
