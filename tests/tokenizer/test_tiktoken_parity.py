#!/usr/bin/env python3
"""Token-for-token parity of mousse-tokenize with tiktoken's GPT-2 encode_ordinary, and byte-identical
shards with llm.c's fineweb.py procedure.

usage: test_tiktoken_parity.py MODE TOOL SHARED_DATA WORKDIR
  MODE: corpora | adversarial | codepoints | invalid_utf8
"""
import json
import os
import random
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tok_common import (EOT, compare_docs, fail, llmc_fineweb_shards, read_all_shards, run_tool, split_docs,  # noqa
                        tiktoken_gpt2)


def tokenize_jsonl(tool, vocab, path, out, name, shard_tokens, threads):
    if os.path.exists(out):
        shutil.rmtree(out)
    run_tool(tool, [path, "--out", out, "--name", name, "--shard-tokens", str(shard_tokens), "--threads",
                    str(threads), "--vocab", vocab, "-q"])
    return read_all_shards(out, name)


def check_shards_vs_llmc(out, name, expected_docs, shard_size):
    want = llmc_fineweb_shards(expected_docs, shard_size, name)
    got = sorted(f for f in os.listdir(out) if f.endswith(".bin"))
    if got != sorted(want):
        fail("shard files %s, llm.c procedure makes %s" % (got, sorted(want)))
    for f in got:
        with open(os.path.join(out, f), "rb") as fh:
            if fh.read() != want[f]:
                fail("%s differs from llm.c's fineweb.py output" % f)
    leftovers = [f for f in os.listdir(out) if f.endswith(".partial")]
    if leftovers:
        fail("partial files left behind: %s" % leftovers)
    print("SHARDS %s: %d shard files byte-identical to llm.c's fineweb.py procedure" % (name, len(got)), flush=True)


def parity_on_texts(label, enc, tool, vocab, texts, work, threads=(1, 2), shard_tokens=50000):
    path = os.path.join(work, label + ".jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    expected = [np.array(e, dtype=np.int64) for e in enc.encode_ordinary_batch(texts, num_threads=2)]
    bad = 0
    outputs = []
    for th in threads:
        out = os.path.join(work, "%s_t%d" % (label, th))
        _, toks = tokenize_jsonl(tool, vocab, path, out, label, shard_tokens, th)
        ours = split_docs(toks)
        bad += compare_docs("%s (--threads %d)" % (label, th), ours, expected, texts)
        check_shards_vs_llmc(out, label, [np.concatenate([[EOT], e]).astype(np.uint16) for e in expected],
                             shard_tokens)
        outputs.append(toks)
    for o in outputs[1:]:
        if not np.array_equal(o, outputs[0]):
            fail("%s: output depends on the thread count" % label)
    return bad


def adversarial_texts(seed=1234, n=3000):
    rng = random.Random(seed)
    atoms = [
        "'s", "'S", "'ll", "'LL", "'t", "'T", "'re", "'RE", "'ve", "'VE", "'m", "'M", "'d", "'D", "'", "''",
        " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u0085", "\ufeff", "\u2028", "\u3000",
        "\u200b", "\u180e", "\u1680", "\u2009", "\x0b", "\x0c",
        "0", "12", "345", "2024", "½", "²", "٣", "Ⅻ", "𝟙",
        "hello", "World", "naïve", "e\u0301", "a\u0308\u0323", "\u0301", "Ünïcödé", "ǅ",
        "日本語", "中文", "한국어", "ひらがな", "カタカナ", "𠀀", "Ελληνικά", "русский", "עברית", "العربية",
        "हिन्दी", "ไทย",
        "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "\U0001F600\U0001F601",
        "!", "?!", "...", "—", "–", "“", "”", "«", "»", "$", "€", "%", "&&", "<|endoftext|>", "<|endoftext",
        "\\", "/", "@", "#", "_", "__init__", "http://example.com/a?b=c", "\x00", "\x01", "\x7f",
        "\ud7ff", "\ue000", "\U0010fffd", "\U000e0001", "\ufffd", "\u0378",
    ]
    texts = ["", " ", "\n", "'s", "  \n", "\r\n\r\n", "\u00a0\u00a0x"]
    for _ in range(n):
        k = rng.randint(1, 40)
        parts = []
        for _ in range(k):
            r = rng.random()
            if r < 0.7:
                parts.append(rng.choice(atoms))
            elif r < 0.8:
                parts.append(rng.choice(atoms) * rng.randint(2, 60))  # long runs, pieces > 100 bytes
            elif r < 0.9:
                cp = rng.randint(0, 0x10FFFF)
                if 0xD800 <= cp <= 0xDFFF:
                    cp = 0xFFFD
                parts.append(chr(cp))
            else:
                parts.append("".join(chr(rng.randint(0x20, 0x7e)) for _ in range(rng.randint(1, 30))))
        texts.append("".join(parts))
    # very long pieces: letters, digits, spaces, punctuation
    texts += ["a" * 5000, "1" * 3000, " " * 4000 + "x", "\n" * 2000, "!" * 1000, "é" * 700, "😀" * 300,
              "ab" * 2000 + " " + "xyz" * 999, " " * 1000]
    return texts


def codepoint_texts():
    """Every Unicode scalar value in several contexts (letter, digit, space, punctuation around it)."""
    texts = []
    chunk = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        chunk.append("a%sb 1%s !%s %s%s\n%s's" % (c, c, c, c, c, c))
        if len(chunk) == 1024:
            texts.append(" ".join(chunk))
            chunk = []
    if chunk:
        texts.append(" ".join(chunk))
    return texts


def json_edge_cases(enc, tool, vocab, work):
    """Raw JSON lines that exercise the JSONL scanner; expected = Python's json.loads + tiktoken."""
    lines = [
        r'{"text": "plain"}',
        r'{"id": 1, "text": "after other fields", "url": "x"}',
        r'{"text": "esc \" \\ \/ \b \f \n \r \t done"}',
        r'{"text": "\u00e9\u4e2d\ud83d\ude00 pair"}',
        r'{"text": "lone \ud800 high and \udc00 low and \ud83d\u0041"}',
        r'{"text": "first", "text": "last wins"}',
        r'{"meta": {"a": [1, 2.5e-3, -0, true, false, null, {"text": "nested"}], "b": "\"}"}, "text": "top"}',
        r'{"score": NaN, "x": Infinity, "y": -Infinity, "text": "python accepts NaN"}',
        r'  {"text" : "spaces around"}  ',
        r'{"te\u0078t": "escaped key"}',
        r'{"text": ""}',
        r'{"text": "<|endoftext|> inside"}',
        '{"text": "raw utf-8 \u00a0 café 😀"}',
    ]
    path = os.path.join(work, "json_edge.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    texts = [json.loads(line)["text"] for line in lines]
    expected = [np.array(enc.encode_ordinary(t), dtype=np.int64) for t in texts]
    out = os.path.join(work, "json_edge_out")
    shutil.rmtree(out, ignore_errors=True)
    run_tool(tool, [path, "--out", out, "--name", "j", "--vocab", vocab, "-q"])
    return compare_docs("JSON edge cases", split_docs(read_all_shards(out, "j")[1]), expected, texts)


def main():
    mode, tool, shared, work = sys.argv[1:5]
    vocab = os.path.join(shared, "gpt2")
    enc = tiktoken_gpt2(vocab)
    os.makedirs(work, exist_ok=True)
    bad = 0
    if mode == "corpora":
        cdir = os.path.join(shared, "corpora")
        files = sorted(f for f in os.listdir(cdir) if f.endswith(".jsonl")) if os.path.isdir(cdir) else []
        if len(files) < 3:
            fail("expected the corpora jsonl files in %s" % cdir)
        total_docs = total_toks = 0
        for fn in files:
            texts = [json.loads(line)["text"] for line in open(os.path.join(cdir, fn), encoding="utf-8") if line.strip()]
            expected = [np.array(enc.encode_ordinary(t), dtype=np.int64) for t in texts]
            label = fn[:-len(".jsonl")]
            # llm.c's loop cannot spill one document over more than two shards: keep shards longer
            shard = max(100000, max(len(e) for e in expected) + 2)
            for th in (1, 2):
                out = os.path.join(work, "%s_t%d" % (label, th))
                _, toks = tokenize_jsonl(tool, vocab, os.path.join(cdir, fn), out, label, shard, th)
                bad += compare_docs("%s (--threads %d)" % (fn, th), split_docs(toks), expected, texts)
                check_shards_vs_llmc(out, label, [np.concatenate([[EOT], e]).astype(np.uint16) for e in expected], shard)
            total_docs += len(texts)
            total_toks += sum(len(e) for e in expected)
        print("PARITY corpora total: %d documents, %d tokens, %d mismatching documents" % (total_docs, total_toks, bad))
    elif mode == "adversarial":
        bad += parity_on_texts("adversarial", enc, tool, vocab, adversarial_texts(), work)
        bad += json_edge_cases(enc, tool, vocab, work)
    elif mode == "codepoints":
        bad += parity_on_texts("codepoints", enc, tool, vocab, codepoint_texts(), work, threads=(2,),
                               shard_tokens=10**8)
    elif mode == "invalid_utf8":
        rng = random.Random(7)
        blobs = [b"\xff", b"abc\x80def", b"\xe2\x82", b"\xe2\x82x", b"\xf0\x9f\x98", b"\xed\xa0\x80 surrogate",
                 b"\xc0\xaf overlong", b"\xf4\x90\x80\x80 too big", b"ok \xe2\x82\xac", b"\xc3", b"\xe0\x80\x80",
                 b"\xf0\x80\x80\x80", b"\xfe\xfe caf\xe9 "]
        for _ in range(300):
            blobs.append(bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 200))))
            mix = "Hello wörld 😀 'll ".encode() + bytes(rng.randint(0x80, 0xff) for _ in range(5))
            blobs.append(mix * rng.randint(1, 5))
        texts = [b.decode("utf-8", errors="replace") for b in blobs]
        expected = [np.array(enc.encode_ordinary(t), dtype=np.int64) for t in texts]
        got = []
        for i, b in enumerate(blobs):
            p = os.path.join(work, "inv.txt")
            with open(p, "wb") as f:
                f.write(b)
            out = os.path.join(work, "inv_out")
            shutil.rmtree(out, ignore_errors=True)
            # several documents per run would be faster; one file per blob checks whole-file documents
            if i >= 12:
                break
            run_tool(tool, [p, "--out", out, "--name", "inv", "--threads", "1", "--vocab", vocab, "-q"])
            got.append(split_docs(read_all_shards(out, "inv")[1])[0])
        bad += compare_docs("invalid UTF-8 (text files)", got, expected[:len(got)])
        # the rest through one split text file: documents separated by a marker that cannot occur in the blobs
        sep = b"<<<MOUSSE-DOC-SEP>>>"
        assert not any(sep in b for b in blobs)
        p = os.path.join(work, "inv_all.txt")
        with open(p, "wb") as f:
            f.write(sep.join(blobs))
        out = os.path.join(work, "inv_all")
        shutil.rmtree(out, ignore_errors=True)
        run_tool(tool, [p, "--out", out, "--name", "inv", "--split-on", sep.decode(),
                        "--drop-separator", "--threads", "2", "--vocab", vocab, "-q"], expect_ok=True)
        got = split_docs(read_all_shards(out, "inv")[1])
        bad += compare_docs("invalid UTF-8 (split text)", got, expected, texts)
    else:
        fail("unknown mode " + mode)
    if bad:
        fail("%d mismatching documents" % bad)
    print("OK")


if __name__ == "__main__":
    main()
