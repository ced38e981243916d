#!/usr/bin/env python3
"""mousse-tokenize never aborts and never runs away: bad options are errors before any work (exit 2,
nothing created), bad inputs are errors naming the file, the position and the reason (exit 1, no
shard or temporary file left), hostile sizes in file headers are refused before anything is
allocated, and the output directory is never clobbered or shared by two runs.

usage: test_hostile_inputs.py MODE TOOL SHARED_DATA WORKDIR      MODE: options | parquet | jsonl | output
"""
import fcntl
import gzip
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parquet_craft as pc  # noqa: E402
from tok_common import EOT, fail, read_all_shards, read_shard, split_docs, tiktoken_gpt2  # noqa: E402

HW = os.cpu_count() or 1  # what std::thread::hardware_concurrency reports on Linux


def run(tool, args, timeout=120):
    t0 = time.time()
    r = subprocess.run([tool] + args, capture_output=True, text=True, errors="replace", timeout=timeout)
    r.seconds = time.time() - t0
    if r.returncode < 0:
        fail("mousse-tokenize %s was killed by signal %d:\n%s" % (" ".join(args), -r.returncode, r.stderr))
    return r


def leftovers(out):
    return sorted(os.listdir(out)) if os.path.isdir(out) else []


def expect_error(tool, args, out, rc, *fragments, label=None):
    """Runs the tool expecting exit status rc, every fragment in stderr and nothing left in `out`."""
    shutil.rmtree(out, ignore_errors=True)
    r = run(tool, args + ["--out", out])
    label = label or " ".join(args)
    if r.returncode != rc:
        fail("%s: exit status %d, expected %d:\n%s" % (label, r.returncode, rc, r.stderr))
    for f in fragments:
        if f not in r.stderr:
            fail("%s: the message does not say %r:\n%s" % (label, f, r.stderr))
    if leftovers(out):
        fail("%s: files left in the output directory: %s" % (label, leftovers(out)))
    print("error OK  %-50s %s" % (label[:50], r.stderr.strip().splitlines()[-1 if rc == 2 else 0][:150]))
    return r


def tokenize_ok(tool, args, out):
    shutil.rmtree(out, ignore_errors=True)
    r = run(tool, args + ["--out", out, "--name", "t", "-q"])
    if r.returncode != 0:
        fail("%s: exit status %d:\n%s" % (" ".join(args), r.returncode, r.stderr))
    return r, read_all_shards(out, "t")[1]


def peak_child_rss_mb():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------- options

def mode_options(tool, shared, work, enc, vocab):
    src = os.path.join(work, "a.jsonl")
    with open(src, "w") as f:
        f.write('{"text": "Hello world"}\n' * 3)
    base = [src, "--vocab", vocab, "-q"]
    out = os.path.join(work, "out")
    bad = {
        "--shard-tokens": ["0", "-5", "-0", "2147483648", "3000000000", "99999999999999999999999", "1e8", "abc", "",
                           "12abc", " 5", "0x10", "4294967296"],
        "--val-tokens": ["-1", "2147483648", "3000000000", "1.5", "x"],
        "--threads": ["-1", "100000", str(4 * HW + 1), "2147483648", "1e3", "two"],
    }
    for opt, values in bad.items():
        for v in values:
            expect_error(tool, base + [opt, v], out, 2, "%s %s: expected a whole number from" % (opt, v))
            if os.path.exists(out):
                fail("%s %s: the output directory was created before the error" % (opt, v))
    expect_error(tool, base + ["--threads", "100000"], out, 2, "hardware threads")
    for name in ["", "a/b", ".hidden"]:
        expect_error(tool, base + ["--name", name], out, 2, "--name")
    expect_error(tool, base + ["--drop-separator"], out, 2, "--drop-separator only applies with --split-on")
    expect_error(tool, base + ["--column", ""], out, 2, "--column")
    # random values: every answer is a clean exit 0 (in range) or 2, never a signal
    rng = random.Random(5)
    alphabet = "0123456789-+e.x "
    for i in range(40):
        v = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 22)))
        opt = rng.choice(list(bad))
        shutil.rmtree(out, ignore_errors=True)
        r = run(tool, base + [opt, v, "--out", out])
        if r.returncode not in (0, 2):
            fail("%s %r: exit status %d:\n%s" % (opt, v, r.returncode, r.stderr))
    # the bounds themselves are accepted
    r, toks = tokenize_ok(tool, base + ["--shard-tokens", "2147483647", "--val-tokens", "2147483647"], out)
    if len(split_docs(toks)) != 3:
        fail("--shard-tokens 2147483647: wrong output")
    for threads in ["0", str(4 * HW), "1"]:
        shutil.rmtree(out, ignore_errors=True)
        r = run(tool, [src, "--vocab", vocab, "--out", out, "--threads", threads])
        want = HW if threads == "0" else int(threads)
        if r.returncode != 0 or ("%d thread(s)" % want) not in r.stderr:
            fail("--threads %s: expected a run with %d thread(s):\n%s" % (threads, want, r.stderr))
    print("options OK (hardware threads: %d)" % HW)


# ---------------------------------------------------------------------------------------------- parquet

def mode_parquet(tool, shared, work, enc, vocab):
    import pyarrow as pa
    import pyarrow.parquet as pq
    out = os.path.join(work, "out")
    base = ["--vocab", vocab, "-q", "--name", "t"]
    # a valid file with zero rows is zero documents, alone or among other files
    empty = os.path.join(work, "empty.parquet")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), empty)
    r, toks = tokenize_ok(tool, [empty, "--vocab", vocab], out)
    if len(toks) or "0 documents" not in r.stderr or "no documents" not in r.stderr:
        fail("empty parquet: %d tokens, message:\n%s" % (len(toks), r.stderr))
    if leftovers(out):
        fail("empty parquet: files left: %s" % leftovers(out))
    texts = ["first document", "second one, naïve café"]
    two = os.path.join(work, "two.parquet")
    pq.write_table(pa.table({"text": texts}), two)
    empty_rg = os.path.join(work, "empty_row_groups.parquet")
    with pq.ParquetWriter(empty_rg, pa.schema([("text", pa.string())])) as w:
        w.write_table(pa.table({"text": pa.array([], pa.string())}))
        w.write_table(pa.table({"text": texts}))
        w.write_table(pa.table({"text": pa.array([], pa.string())}))
    for inputs in ([empty, two, empty], [empty_rg]):
        r, toks = tokenize_ok(tool, [p for p in inputs] + ["--vocab", vocab], out)
        got = [list(map(int, d)) for d in split_docs(toks)]
        if got != [enc.encode_ordinary(t) for t in texts]:
            fail("%s: wrong documents %s" % ([os.path.basename(p) for p in inputs], got))
    print("empty parquet files and row groups OK")

    # hostile headers: refused before allocating, naming the file, the page and what is wrong
    expected = {
        "hostile_uncompressed_size_1gib": "declares 1073741824 uncompressed bytes",
        "hostile_uncompressed_size_2gib": "pages over 1 GiB are not supported",
        "hostile_gzip_ratio": "declares 900000000 uncompressed bytes, but its 20 GZIP bytes hold at most",
        "hostile_negative_num_values": "negative value count -5",
        "hostile_num_values_beyond_page": "the page declares 2147483647 values but its",
        "hostile_num_values_beyond_chunk": "the page holds 3 values but only 2",
        "hostile_rows_vs_values": "has 5 values but the row group has 2 rows",
        "hostile_dictionary_count": "the dictionary page declares 2147483647 values",
        "hostile_delta_zero_miniblocks": "bad DELTA_BINARY_PACKED header",
        "hostile_delta_width_65": "bad DELTA_BINARY_PACKED bit width 65",
        "hostile_definition_level_width": "corrupt definition levels: run value 2 does not fit bit width 1",
    }
    files = pc.hostile_files()
    for name, fragment in expected.items():
        p = os.path.join(work, name + ".parquet")
        with open(p, "wb") as f:
            f.write(files[name])
        expect_error(tool, [p] + base, out, 1, p + ": row group 0", fragment, label=name)
    if peak_child_rss_mb() > 700:
        fail("a hostile parquet header made the tool use %.0f MB" % peak_child_rss_mb())
    # valid but extreme: two billion nulls in a few bytes (counted, not stored); 1000 empty values
    p = os.path.join(work, "nulls.parquet")
    with open(p, "wb") as f:
        f.write(files["valid_two_billion_nulls"])
    r, toks = tokenize_ok(tool, [p, "--vocab", vocab], out)
    if len(toks) or "2147483647 null documents skipped" not in r.stderr or r.seconds > 30:
        fail("two billion nulls: %d tokens in %.1f s:\n%s" % (len(toks), r.seconds, r.stderr))
    p = os.path.join(work, "delta0.parquet")
    with open(p, "wb") as f:
        f.write(files["valid_delta_width0"])
    r, toks = tokenize_ok(tool, [p, "--vocab", vocab], out)
    if len(toks) != 1000 or any(int(t) != EOT for t in toks):
        fail("1000 empty DELTA_LENGTH_BYTE_ARRAY values: %d tokens" % len(toks))
    p = os.path.join(work, "crafted.parquet")
    with open(p, "wb") as f:
        f.write(files["valid_crafted"])
    r, toks = tokenize_ok(tool, [p, "--vocab", vocab], out)
    if [list(map(int, d)) for d in split_docs(toks)] != [enc.encode_ordinary("hello"), enc.encode_ordinary("world")]:
        fail("crafted parquet file read wrongly")
    print("extreme but valid parquet files OK (peak RSS %.0f MB)" % peak_child_rss_mb())

    # the class: random corruption of files of every codec and encoding ends in exit 0 or 1, with a
    # message naming the file, and no file left behind
    rng = random.Random(13)
    seeds = []
    for codec in ["NONE", "SNAPPY", "GZIP", "ZSTD"]:
        for version in ["1.0", "2.0"]:
            for dict_ in [True, False]:
                p = os.path.join(work, "seed_%s_%s_%d.parquet" % (codec, version, dict_))
                vals = [None if i % 5 == 2 else "doc %d %s" % (i, "x" * (i % 40)) for i in range(60)]
                pq.write_table(pa.table({"text": vals}), p, compression=codec, data_page_version=version,
                               use_dictionary=dict_, row_group_size=25, data_page_size=256)
                seeds.append(open(p, "rb").read())
    outcomes = {0: 0, 1: 0}
    for i in range(60):
        b = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            k = rng.randrange(4)
            pos = rng.randrange(len(b))
            if k == 0:
                b[pos] ^= 1 << rng.randrange(8)
            elif k == 1:
                b[pos:pos + 4] = struct.pack("<i", rng.choice([-1, 0, 0x7FFFFFFF, -0x80000000, 1 << 30, 255]))
            elif k == 2:
                b[pos] = rng.randrange(256)
            else:
                b[pos:pos + 1] = bytes([0x15, rng.randrange(256)])
        p = os.path.join(work, "mutant_%d.parquet" % i)
        with open(p, "wb") as f:
            f.write(bytes(b))
        shutil.rmtree(out, ignore_errors=True)
        r = run(tool, [p] + base + ["--out", out], timeout=60)
        if r.returncode not in (0, 1):
            fail("%s: exit status %d:\n%s" % (p, r.returncode, r.stderr))
        if r.returncode == 1 and p not in r.stderr:
            fail("%s: the error does not name the file:\n%s" % (p, r.stderr))
        if r.returncode == 1 and leftovers(out):
            fail("%s: files left after the error: %s" % (p, leftovers(out)))
        outcomes[r.returncode] += 1
    if peak_child_rss_mb() > 700:
        fail("corrupt parquet files made the tool use %.0f MB" % peak_child_rss_mb())
    print("60 corrupted parquet files: %d read, %d clean errors; peak RSS %.0f MB" %
          (outcomes[0], outcomes[1], peak_child_rss_mb()))


# ---------------------------------------------------------------------------------------------- jsonl

def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def mode_jsonl(tool, shared, work, enc, vocab):
    out = os.path.join(work, "out")
    base = ["--vocab", vocab, "-q", "--name", "t"]
    lines = [json.dumps({"text": t}) for t in ["Hello world", "naïve café 😀", "", "last one"]]
    body = ("\n".join(lines) + "\n").encode()
    plain = write(os.path.join(work, "plain.jsonl"), body)
    _, want = tokenize_ok(tool, [plain, "--vocab", vocab], out)

    # a UTF-8 byte order mark at the start of the file is skipped (Python's utf-8-sig), also in .gz
    bom = write(os.path.join(work, "bom.jsonl"), b"\xef\xbb\xbf" + body)
    bom_gz = write(os.path.join(work, "bom.jsonl.gz"), gzip.compress(b"\xef\xbb\xbf" + body))
    for p in (bom, bom_gz):
        _, got = tokenize_ok(tool, [p, "--vocab", vocab], out)
        if list(got) != list(want):
            fail("%s: a leading byte order mark changed the output" % p)
    print("leading UTF-8 byte order mark skipped OK")
    # zero bytes padding a .gz are skipped (gzip(1), Python's gzip); other trailing bytes are an error
    padded = write(os.path.join(work, "padded.jsonl.gz"), gzip.compress(body) + b"\0" * 300)
    _, got = tokenize_ok(tool, [padded, "--vocab", vocab], out)
    if list(got) != list(want):
        fail("zero padding after a gzip member changed the output")
    junk = write(os.path.join(work, "junk.jsonl.gz"), gzip.compress(body) + b"\0\0junk")
    expect_error(tool, [junk] + base, out, 1, junk + ": compressed byte offset", "corrupt gzip data")

    deep_ok = '{"text": "a", "x": ' + "[" * 499 + "]" * 499 + "}"
    deep_bad = '{"text": "a", "x": ' + "[" * 500 + "]" * 500 + "}"
    cases = [
        # (file bytes, line, column, reason)
        (body + b"\xef\xbb\xbf" + lines[0].encode() + b"\n", 5, 1, "UTF-8 byte order mark (U+FEFF) inside the file; remove it"),
        (body + b"\0", 5, 1, "NUL byte"),
        (body + b"\0\0\0\n", 5, 1, "NUL byte"),
        (b'{"text": "a"}\0\n', 1, 14, "NUL byte (expected the end of the line after the JSON object)"),
        (b'{"text": "a\0b"}\n', 1, 12, "NUL byte inside a string"),
        (b'{"text": "a\x01b"}\n', 1, 12, "control character U+0001 inside a string"),
        ((deep_bad + "\n").encode(), 1, 519, "nesting deeper than 500 levels"),
        (b'{"text": "abc\n', 1, 10, "unterminated string"),
        (b'{"text": "a\\qb"}\n', 1, 12, "invalid escape \\'q'"),
        (b'{"text": "\\u12G4"}\n', 1, 11, "invalid \\u escape"),
        (b'{"text": "a",}\n', 1, 14, "expected a string key, found '}'"),
        (b'{"text" "a"}\n', 1, 9, "expected ':' after the key, found '\"'"),
        (b'{"text": "a" "b"}\n', 1, 14, "expected ',' or '}' after a value"),
        (b'{"text": "a"} x\n', 1, 15, "expected the end of the line after the JSON object, found 'x'"),
        (b'{"text": tru}\n', 1, 10, "invalid literal (expected true)"),
        (b'{"text": "a", "n": 1.}\n', 1, 20, "invalid number"),
        (b'{"text": "a", "n": [1 2]}\n', 1, 23, "expected ',' or ']' after a value"),
        (b'["text"]\n', 1, 1, "expected a JSON object ('{'), found '['"),
        (b'\xff{"text": "a"}\n', 1, 1, "expected a JSON object ('{'), found byte 0xFF"),
    ]
    for i, (data, line, col, reason) in enumerate(cases):
        p = write(os.path.join(work, "bad_%d.jsonl" % i), data)
        expect_error(tool, [p] + base, out, 1, "%s: line %d, column %d: %s" % (p, line, col, reason),
                     label="bad line %d (%s)" % (i, reason[:30]))
    p = write(os.path.join(work, "deep_ok.jsonl"), (deep_ok + "\n").encode())
    tokenize_ok(tool, [p, "--vocab", vocab], out)
    p = write(os.path.join(work, "utf16.jsonl"), "\ufeff".encode("utf-16-le") + "\n".join(lines).encode("utf-16-le"))
    expect_error(tool, [p] + base, out, 1, p + ": byte offset 0: UTF-16 or UTF-32 byte order mark")
    p = write(os.path.join(work, "nofield.jsonl"), b'{"text": "a"}\n{"body": "b"}\n')
    expect_error(tool, [p] + base, out, 1, p + ': line 2: no "text" field')
    p = write(os.path.join(work, "notstring.jsonl"), b'{"text": ["a"]}\n')
    expect_error(tool, [p] + base, out, 1, p + ": line 1: \"text\" is not a string (its value starts with '[')")

    # invalid UTF-8 inside the text is replaced as Python's errors="replace" and counted
    raw = [b"ok \xff", b"\xe2\x82 cut", b"\xed\xa0\x80 surrogate", b"fine", b"\xc0\xaf overlong \x80"]
    p = write(os.path.join(work, "utf8.jsonl"), b"".join(b'{"text": "' + t + b'", "k": "\xff"}\n' for t in raw))
    r, toks = tokenize_ok(tool, [p, "--vocab", vocab], out)
    want_docs = [enc.encode_ordinary(t.decode("utf-8", "replace")) for t in raw]
    if [list(map(int, d)) for d in split_docs(toks)] != want_docs:
        fail("invalid UTF-8 in JSON strings: tokens differ from Python's decode(errors='replace')")
    n_replaced = sum(t.decode("utf-8", "replace").count("\ufffd") for t in raw)
    r = run(tool, [p, "--vocab", vocab, "--out", out, "--overwrite"])
    if "%d invalid UTF-8 sequences replaced" % n_replaced not in r.stderr:
        fail("invalid UTF-8 in JSON strings: summary should count %d replacements:\n%s" % (n_replaced, r.stderr))
    print("invalid UTF-8 in JSON strings replaced and counted (%d) OK" % n_replaced)

    # devices are refused at once; a pipe is read
    expect_error(tool, ["/dev/zero", "--format", "jsonl"] + base, out, 1, "/dev/zero: not a regular file or a pipe")
    fifo = os.path.join(work, "pipe.jsonl")
    if os.path.exists(fifo):
        os.remove(fifo)
    os.mkfifo(fifo)
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen([tool, fifo, "--out", out, "--name", "t", "-q", "--vocab", vocab],
                            stderr=subprocess.PIPE, text=True)
    with open(fifo, "wb") as f:
        f.write(body)
    proc.wait(timeout=60)
    if proc.returncode != 0 or list(read_all_shards(out, "t")[1]) != list(want):
        fail("reading JSON Lines from a pipe: exit %d:\n%s" % (proc.returncode, proc.stderr.read()))
    print("devices refused, pipes read OK")


# ---------------------------------------------------------------------------------------------- output

def mode_output(tool, shared, work, enc, vocab):
    out = os.path.join(work, "out")
    src = os.path.join(shared, "corpora", "state_union.jsonl")
    base = [src, "--vocab", vocab, "-q", "--name", "t", "--shard-tokens", "100000"]
    shutil.rmtree(out, ignore_errors=True)
    r = run(tool, base + ["--out", out])
    first = {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)}
    if r.returncode != 0 or len(first) < 3:
        fail("first run: %s %s" % (r.stderr, sorted(first)))
    # a second run into the same directory and name is refused; nothing is touched
    r = run(tool, base + ["--out", out])
    if r.returncode != 1 or "--overwrite" not in r.stderr or "already holds %d shard(s)" % len(first) not in r.stderr:
        fail("rerun without --overwrite: exit %d:\n%s" % (r.returncode, r.stderr))
    if {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)} != first:
        fail("rerun without --overwrite changed the output directory")
    # another name in the same directory is fine
    r = run(tool, [src, "--vocab", vocab, "-q", "--name", "t_other", "--out", out])
    if r.returncode != 0:
        fail("a second name in the same directory: %s" % r.stderr)
    # --overwrite with fewer shards: the extra old ones go, the other name's stay
    stale_partial = os.path.join(out, ".t_train_000042.bin.partial")
    write(stale_partial, b"left by a killed run")
    r = run(tool, [os.path.join(shared, "corpora", "webtext.jsonl"), "--vocab", vocab, "-q", "--name", "t",
                   "--shard-tokens", "1000000", "--out", out, "--overwrite"])
    names = sorted(os.listdir(out))
    if r.returncode != 0 or names != ["t_other_val_000000.bin", "t_val_000000.bin"] or "removed" not in r.stderr:
        fail("--overwrite: exit %d, files %s:\n%s" % (r.returncode, names, r.stderr))
    print("existing shards refused, --overwrite replaces them and removes the stale ones OK")

    # a second run while the first holds the directory's lock
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    with open(os.path.join(out, ".t.lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = run(tool, base + ["--out", out])
        if r.returncode != 1 or "another mousse-tokenize run is writing t_*.bin" not in r.stderr:
            fail("locked output: exit %d:\n%s" % (r.returncode, r.stderr))
    os.remove(os.path.join(out, ".t.lock"))
    if leftovers(out):
        fail("locked output: files left %s" % leftovers(out))
    print("a run holding the directory keeps a second one out OK")

    # SIGINT and SIGTERM: exit 128 + N, the shard in progress removed, the complete ones intact
    big = [os.path.join(shared, "corpora", "abc_news.jsonl")] * 12
    for sig in (signal.SIGINT, signal.SIGTERM):
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.Popen([tool] + big + ["--out", out, "--name", "t", "-q", "--vocab", vocab,
                                                "--shard-tokens", "200000", "--threads", "1"],
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and not any(f.endswith(".bin") for f in leftovers(out)):
            time.sleep(0.05)
        proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1]
        if proc.returncode != 128 + sig:
            fail("%s: exit status %d, expected %d:\n%s" % (sig.name, proc.returncode, 128 + sig, err))
        files = leftovers(out)
        if not files or any(not (f.startswith("t_") and f.endswith(".bin")) for f in files):
            fail("%s: the output directory holds %s" % (sig.name, files))
        for f in files:
            read_shard(os.path.join(out, f))  # header count matches the size
        print("%s: exit %d, %d complete shard(s) kept, nothing else left OK" % (sig.name, proc.returncode, len(files)))

    # out of memory (an address-space limit): an error naming the file and where, never a crash
    big = os.path.join(work, "big.txt")
    rng = random.Random(3)
    words = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "naïve", "42", "!"]
    with open(big, "w") as f:
        f.write(" ".join(rng.choice(words) for _ in range(8_000_000)))
    oom = 0
    for mb in range(80, 401, 15):
        shutil.rmtree(out, ignore_errors=True)
        limit = lambda mb=mb: resource.setrlimit(resource.RLIMIT_AS, (mb << 20, mb << 20))  # noqa: E731
        r = subprocess.run([tool, big, "--out", out, "--threads", "1", "-q", "--vocab", vocab], capture_output=True,
                           text=True, preexec_fn=limit, timeout=120)
        if r.returncode < 0 or r.returncode not in (0, 1):
            fail("address space %d MB: exit status %d:\n%s" % (mb, r.returncode, r.stderr))
        if r.returncode == 1:
            if "out of memory" not in r.stderr or (big not in r.stderr and "vocabulary" not in r.stderr):
                fail("address space %d MB: the error does not say out of memory with the file:\n%s" % (mb, r.stderr))
            if leftovers(out):
                fail("address space %d MB: files left %s" % (mb, leftovers(out)))
            oom += big in r.stderr
    if not oom:
        fail("no address-space limit from 80 to 400 MB ran out of memory reading or encoding %s" % big)
    print("out of memory: %d limit(s) ended in an error naming the file, none crashed OK" % oom)

    # --decode: a header that claims more tokens than the file holds is refused before allocating
    p = os.path.join(work, "liar.bin")
    write(p, struct.pack("<256i", 20240520, 1, 0x7FFFFFFF, *([0] * 253)) + b"\0\0" * 10)
    r = run(tool, ["--decode", p, "--vocab", vocab])
    if r.returncode != 1 or "the header says 2147483647 tokens" not in r.stderr:
        fail("--decode of a lying header: exit %d:\n%s" % (r.returncode, r.stderr))
    if peak_child_rss_mb() > 700:
        fail("--decode of a lying header used %.0f MB" % peak_child_rss_mb())
    print("--decode checks the header against the file size OK")


def main():
    mode, tool, shared, work = sys.argv[1:5]
    vocab = os.path.join(shared, "gpt2")
    enc = tiktoken_gpt2(vocab)
    os.makedirs(work, exist_ok=True)
    {"options": mode_options, "parquet": mode_parquet, "jsonl": mode_jsonl, "output": mode_output}[mode](
        tool, shared, work, enc, vocab)
    print("OK")


if __name__ == "__main__":
    main()
