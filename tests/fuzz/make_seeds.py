#!/usr/bin/env python3
"""Writes the fuzz seed corpora (tests/fuzz/corpus/<target>/): small valid inputs of every kind each
reader supports, and the inputs that once broke a reader or that a reader must reject precisely.
The files are committed; rerun this (with /usr/bin/python3, which has pyarrow) only to change them:

    /usr/bin/python3 tests/fuzz/make_seeds.py

The parquet files that no writer would produce (hostile page headers) are built with the small
thrift/parquet writer in tests/tokenizer/parquet_craft.py, which the tokenizer tests use too.
"""
import gzip
import io
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "tokenizer"))
import parquet_craft as pc  # noqa: E402

DOCS = ["Hello world", "", "naïve café 日本語 😀 'll", "line one\nline two\r\n", "x" * 300, "same", "same"]


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def zstd(data):
    import pyarrow as pa
    return pa.compress(data, codec="zstd", asbytes=True)


def parquet_seeds():
    import pyarrow as pa
    import pyarrow.parquet as pq
    nullable = [None if i % 3 == 1 else t for i, t in enumerate(DOCS)]
    for codec in ["NONE", "SNAPPY", "GZIP", "ZSTD"]:
        for version in ["1.0", "2.0"]:
            for enc in ["PLAIN", "DICT", "DELTA"]:
                optional = (codec in ("NONE", "ZSTD")) == (enc != "DICT")
                vals = nullable if optional else DOCS
                schema = pa.schema([pa.field("id", pa.int32(), nullable=False),
                                    pa.field("text", pa.string(), nullable=optional)])
                t = pa.table({"id": pa.array(range(len(vals)), pa.int32()), "text": pa.array(vals, pa.string())},
                             schema=schema)
                kw = dict(compression=codec, data_page_version=version, row_group_size=4, data_page_size=64,
                          write_statistics=False, store_schema=False)
                if enc == "DICT":
                    kw["use_dictionary"] = True
                    if version == "1.0" and codec == "GZIP":
                        kw["version"] = "1.0"  # PLAIN_DICTIONARY
                elif enc == "PLAIN":
                    kw["use_dictionary"] = False
                else:
                    kw["use_dictionary"] = False
                    kw["column_encoding"] = {"text": "DELTA_LENGTH_BYTE_ARRAY"}
                buf = io.BytesIO()
                pq.write_table(t, buf, **kw)
                put("parquet", "valid_%s_v%s_%s_%s.parquet" % (codec.lower(), version[0], enc.lower(),
                                                               "opt" if optional else "req"), buf.getvalue())
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), buf, store_schema=False)
    put("parquet", "regression_empty_table.parquet", buf.getvalue())  # was "column chunk offset 0 is outside the file"
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": pa.array([None] * 5, pa.string())}), buf, store_schema=False)
    put("parquet", "valid_all_null.parquet", buf.getvalue())
    for name, data in pc.hostile_files().items():
        put("parquet", name + ".parquet", data)


def jsonl_seeds():
    lines = [json.dumps({"text": t, "id": i}) for i, t in enumerate(DOCS)]
    lines += ['{"id": 1, "text": "dup", "text": "last wins", "meta": {"a": [1, 2.5e-3, -0, null, true, false]}}',
              '{"text": "surrogates \\ud83d\\ude00 lone \\ud800 and \\udc00 \\u00e9\\/\\b\\f\\n\\r\\t\\"\\\\", "x": NaN}',
              '{"text": "inf", "x": [Infinity, -Infinity]}', "   ", "",
              '{"text": "crlf"}\r']
    plain = ("\n".join(lines) + "\n").encode()
    put("jsonl", "valid_lines.jsonl", b"\0" + plain)
    put("jsonl", "valid_lines.jsonl.gz", b"\1" + gzip.compress(plain, mtime=0))
    put("jsonl", "valid_lines.jsonl.zst", b"\2" + zstd(plain))
    put("jsonl", "valid_invalid_utf8.jsonl", b"\0" + b'{"text": "bad \xff\xfe bytes \xe2\x82 cut \xed\xa0\x80"}\n')
    put("jsonl", "regression_bom_first_line.jsonl", b"\0\xef\xbb\xbf" + plain)
    put("jsonl", "regression_bom_later_line.jsonl", b"\0" + plain + b"\xef\xbb\xbf" + lines[0].encode() + b"\n")
    put("jsonl", "regression_trailing_nul.jsonl", b"\0" + plain + b"\0")
    put("jsonl", "regression_nul_in_string.jsonl", b'\0{"text": "a\0b"}\n')
    put("jsonl", "regression_deep_nesting.jsonl", b"\0" + ('{"text": "a", "x": ' + "[" * 600 + "]" * 600 + "}\n").encode())
    put("jsonl", "regression_utf16_bom.jsonl", b"\0" + "\ufeff".encode("utf-16-le") + lines[0].encode("utf-16-le"))
    put("jsonl", "regression_no_newline_gz.jsonl.gz", b"\1" + gzip.compress(b'{"text": "' + b"a" * 5000, mtime=0))
    text = "First Citizen:\nBefore we proceed.\n\nAll:\nSpeak, speak.\n\n\n\nLast".encode()
    put("jsonl", "valid_text.txt", b"\3" + text)
    put("jsonl", "valid_text_split.txt", b"\4" + text)
    put("jsonl", "valid_text_lines.txt.gz", b"\5" + gzip.compress(text, mtime=0))


def safetensors_file(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    f32 = struct.pack("<6f", 1.5, -2.0, 0.0, 3.25, 1e-3, -7.0)
    put("safetensors", "valid_f32_meta.safetensors",
        safetensors_file({"wte": ("F32", [2, 3], f32), "lm_head": ("F32", [3, 2], f32)},
                         {"mousse": json.dumps({"step": 3}), "format": "pt"}))
    put("safetensors", "valid_bf16_f64_i32.safetensors",
        safetensors_file({"a": ("BF16", [4], struct.pack("<4H", 0x3f80, 0xbf80, 0x0000, 0x7f80)),
                          "b": ("F64", [2, 1], struct.pack("<2d", 0.5, -1.25)),
                          "c": ("I32", [], struct.pack("<i", 42)),
                          "d": ("F32", [0, 5], b"")}))
    put("safetensors", "valid_empty.safetensors", safetensors_file({}))


def shard_seeds():
    def shard(tokens, declared=None):
        h = [0] * 256
        h[0], h[1], h[2] = 20240520, 1, len(tokens) if declared is None else declared
        return struct.pack("<256i", *h) + struct.pack("<%dH" % len(tokens), *tokens)
    put("shard", "valid_10_tokens.bin", shard([50256, 15496, 995, 50256, 40, 716, 257, 3797, 13, 198]))
    put("shard", "valid_0_tokens.bin", shard([]))
    put("shard", "invalid_count_mismatch.bin", shard([1, 2, 3], declared=4))


def config_seeds():
    tiny = open(os.path.join(ROOT, "configs", "tiny.json"), "rb").read()
    put("config", "valid_tiny.json", tiny)
    put("config", "valid_tiny_overrides.json", tiny + b"\0steps=10\noptimizer.matrix.lr=0.02\nmodel.n_layer=3\nschedule.type=wsd")
    # a number beyond a double, in the file and in --set, and a --set value that is not UTF-8: the
    # config loader must answer each with its own error, not a JSON library exception
    put("config", "regression_number_overflow_in_file.json", tiny.replace(b'"steps": 300', b'"steps": 1e400'))
    put("config", "regression_number_overflow_in_set.json", tiny + b"\0steps=1e400")
    put("config", "regression_invalid_utf8_in_set.json", tiny + b"\0run_name=caf\xe9")
    small = os.path.join(ROOT, "configs", "small")
    for f in sorted(os.listdir(small))[:3]:
        put("config", "valid_small_" + f, open(os.path.join(small, f), "rb").read())


if __name__ == "__main__":
    parquet_seeds()
    jsonl_seeds()
    safetensors_seeds()
    shard_seeds()
    config_seeds()
    print("seeds written under", os.path.join(HERE, "corpus"))
