#!/usr/bin/env python3
"""Mousse's safetensors reader and writer (src/core/safetensors.cpp, through safetensors_probe)
against an independent reader written here from the format's text
(https://github.com/huggingface/safetensors, "Format"), and against the `safetensors` package
where it is installed.

  writer: files the probe writes are read back, byte for byte, by the reference reader and by
          safetensors.deserialize.
  reader: a corpus of valid files (from the probe, from safetensors.numpy.save, hand-made with
          unusual but valid layouts) and of thousands of mutations of them (header lengths off,
          bad shapes, offsets, dtypes, duplicate keys, bad metadata, bad JSON, truncation, random
          bytes). The probe must accept exactly the files the reference accepts, read the same
          tensors from them, and reject the others with an error naming the file (never crash).
          The package must agree with the reference except where the format's text is stricter
          than the package (duplicate keys, a header that does not start with '{').

Usage: safetensors_crosscheck.py PROBE
"""
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile

PROBE = sys.argv[1]
try:
    import safetensors  # noqa: F401
    HAVE_LIB = hasattr(safetensors, "deserialize")
except ImportError:
    HAVE_LIB = False
try:
    import numpy as np
    import safetensors.numpy as st_numpy
except ImportError:
    st_numpy = None

# The format's dtypes with whole-byte sizes (F4/F6 pack several values per byte: not generated).
SPEC_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2,
              "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8,
              "U64": 8}
MOUSSE_DTYPES = {"F32", "F64", "BF16", "I32"}
MAX_HEADER = 100_000_000


class Reject(Exception):
    """The reference reader rejects the file. `lenient`: the package is known to accept it."""

    def __init__(self, why, lenient=False, mousse_only=False):
        super().__init__(why)
        self.lenient = lenient
        self.mousse_only = mousse_only


class IntLit(str):
    pass


class FloatLit(str):
    pass


def _pairs(kv):
    d = {}
    for k, v in kv:
        if k in d:
            raise Reject("duplicate key %r" % k, lenient=True)
        d[k] = v
    return d


def _float(s):
    if math.isinf(float(s)):
        raise Reject("number beyond a double: " + s)
    return FloatLit(s)


def _const(c):
    raise Reject("not JSON: " + c)


def _check_strings_and_depth(v, level):
    if level > 127:  # serde_json's recursion limit, which the format's text leaves to the parser
        raise Reject("nested too deep")
    if isinstance(v, str):
        if not isinstance(v, (IntLit, FloatLit)):
            v.encode("utf-8")  # a lone surrogate from a \\ud800 escape raises
    elif isinstance(v, dict):
        for k, x in v.items():
            k.encode("utf-8")
            _check_strings_and_depth(x, level + 1)
    elif isinstance(v, list):
        for x in v:
            _check_strings_and_depth(x, level + 1)


def _size(v):
    """A non-negative integer literal of at most 64 bits (the package's usize)."""
    if not isinstance(v, IntLit) or v.startswith("-"):
        raise Reject("not a non-negative integer: %r" % (v,))
    n = int(v)
    if n >= 2 ** 64:
        raise Reject("integer beyond 64 bits")
    return n


def reference_read(blob):
    """(tensors, metadata) of a valid file by the format's text, else Reject. Each tensor:
    dict(name, dtype, shape, begin, end, data). Reject.mousse_only marks files that are valid
    but beyond what mousse reads (other dtypes, more than 4 dims, dims beyond int64)."""
    if len(blob) < 8:
        raise Reject("shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8 or n > MAX_HEADER:
        raise Reject("header length")
    raw = blob[8:8 + n]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("header is not UTF-8")
    if not text.startswith("{"):
        lenient = text.lstrip(" \t\n\r").startswith("{")
        raise Reject("header does not start with '{'", lenient=lenient)
    try:
        header = json.loads(text, object_pairs_hook=_pairs, parse_int=IntLit, parse_float=_float,
                            parse_constant=_const)
    except (ValueError, RecursionError) as e:
        if isinstance(e, Reject):
            raise
        raise Reject("not JSON: %s" % e)
    try:
        _check_strings_and_depth(header, 1)
    except UnicodeEncodeError:
        raise Reject("lone surrogate")
    if not isinstance(header, dict):
        raise Reject("not an object")
    buffer = blob[8 + n:]
    meta = header.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict) or not all(type(v) is str for v in meta.values()):
            raise Reject("__metadata__ is not a map of strings")
    tensors, mousse_only = [], []
    for name, info in header.items():
        if not isinstance(info, dict) or not all(k in info for k in ("dtype", "shape", "data_offsets")):
            raise Reject("bad tensor entry")
        dt = info["dtype"]
        if type(dt) is not str or dt not in SPEC_SIZES:
            raise Reject("unknown dtype")
        if not isinstance(info["shape"], list):
            raise Reject("shape not a list")
        shape = [_size(d) for d in info["shape"]]
        off = info["data_offsets"]
        if not isinstance(off, list) or len(off) != 2:
            raise Reject("offsets")
        begin, end = _size(off[0]), _size(off[1])
        numel = 1
        for d in shape:  # in 64 bits, left to right, as the package does
            numel *= d
            if numel >= 2 ** 64:
                raise Reject("size overflows")
        if numel * SPEC_SIZES[dt] >= 2 ** 64:
            raise Reject("size overflows")
        if end < begin or end - begin != numel * SPEC_SIZES[dt]:
            raise Reject("offsets do not match the size")
        if dt not in MOUSSE_DTYPES or len(shape) > 4 or any(d >= 2 ** 63 for d in shape):
            mousse_only.append(name)
        tensors.append(dict(name=name, dtype=dt, shape=shape, begin=begin, end=end))
    at = 0
    for t in sorted(tensors, key=lambda t: (t["begin"], t["end"])):
        if t["begin"] != at:
            raise Reject("hole or overlap")
        at = t["end"]
    if at != len(buffer):
        raise Reject("data not covered exactly")
    if mousse_only:
        raise Reject("valid, but beyond mousse: " + ", ".join(mousse_only), mousse_only=True)
    for t in tensors:
        t["data"] = buffer[t["begin"]:t["end"]]
    return tensors, (meta or {})


def lib_accepts(blob):
    try:
        safetensors.deserialize(blob)
        return True
    except Exception:
        return False


def probe(args):
    r = subprocess.run([PROBE] + args, capture_output=True, text=True, errors="replace",
                       timeout=60)
    return r.returncode, r.stdout, r.stderr


def make_file(tensors, metadata=None, pad=b"", order=None, extra=None, raw_header=None,
              hlen=None):
    """A file of `tensors` [(name, dtype, shape, data bytes)], data laid out in `order`."""
    order = order or list(range(len(tensors)))
    header, at, data = {}, 0, b""
    offsets = {}
    for i in order:
        name, dt, shape, blob = tensors[i]
        offsets[name] = (at, at + len(blob))
        at += len(blob)
        data += blob
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape, blob in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": list(offsets[name])}
        if extra:
            header[name].update(extra)
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode() + pad
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def random_tensors(rng, count, dtypes=("F32", "F64", "BF16", "I32")):
    out = []
    for i in range(count):
        dt = rng.choice(dtypes)
        shape = [rng.randrange(0, 5) for _ in range(rng.randrange(0, 5))]
        numel = 1
        for d in shape:
            numel *= d
        out.append(("w%d" % i, dt, shape, bytes(rng.randrange(256) for _ in range(numel * SPEC_SIZES[dt]))))
    return out


def valid_corpus(rng, work):
    files = []
    for seed in range(30):  # the probe's writer
        path = os.path.join(work, "w%d.safetensors" % seed)
        rc, out, err = probe(["write", path, str(seed)])
        assert rc == 0, err
        files.append(("probe-writer", open(path, "rb").read()))
    if st_numpy is not None:  # the package's writer
        for i in range(10):
            arrays = {}
            for k in range(rng.randrange(1, 5)):
                dt = rng.choice([np.float32, np.float64, np.int32])
                shape = tuple(rng.randrange(0, 4) for _ in range(rng.randrange(0, 4)))
                values = np.random.default_rng(i * 10 + k).standard_normal(shape) * 100
                arrays["p%d" % k] = np.ascontiguousarray(np.asarray(values).astype(dt))
            files.append(("package-writer", st_numpy.save(arrays, metadata={"format": "pt", "i": str(i)})))
    for i in range(20):  # hand-made, unusual but valid
        ts = random_tensors(rng, rng.randrange(0, 5))
        order = list(range(len(ts)))
        rng.shuffle(order)
        files.append(("hand", make_file(ts, metadata={"k": "v \u00e9"} if i % 2 else None,
                                        pad=rng.choice([b"", b" " * 7, b" \n\t\r "]), order=order,
                                        extra={"note": [1, {"x": None}]} if i % 5 == 0 else None)))
    # Valid by the format, beyond mousse: other dtypes, 5 dims, huge dims of empty tensors.
    files.append(("beyond", make_file([("h", "F16", [2], b"\0" * 4)])))
    files.append(("beyond", make_file([("d", "F32", [1, 1, 1, 1, 2], b"\0" * 8)])))
    files.append(("beyond", make_file([("z", "F32", [0, 2 ** 63], b"")])))
    return files


def mutations(rng, blob):
    """Mutations of a valid file: each is (kind, bytes)."""
    (n,) = struct.unpack("<Q", blob[:8])
    header_text, data = blob[8:8 + n], blob[8 + n:]
    header = json.loads(header_text)
    names = [k for k in header if k != "__metadata__"]
    out = []
    for d in (-9, -3, -1, 1, 2, 5, 8, 17):
        if n + d >= 0:
            out.append(("hlen%+d" % d, struct.pack("<Q", n + d) + blob[8:]))

    def with_header(kind, h, extra=b"", cut=0):
        text = h if isinstance(h, bytes) else json.dumps(h, separators=(",", ":")).encode()
        d = data[:len(data) - cut] if cut else data
        out.append((kind, struct.pack("<Q", len(text)) + text + d + extra))

    def raw_value(v):
        return "@@RAW:%s@@" % v

    def render(h):
        text = json.dumps(h, separators=(",", ":"))
        import re
        return re.sub(r'"@@RAW:(.*?)@@"', lambda m: m.group(1), text).encode()

    if names:
        for _ in range(6):
            name = rng.choice(names)
            h = json.loads(header_text)
            bad = rng.choice([1.0, -1, "2", None, True, 2 ** 64, 2 ** 63, [2], raw_value("-0"),
                              raw_value("1e400"), raw_value("2e0"), 3])
            shape = h[name]["shape"]
            if shape:
                shape[rng.randrange(len(shape))] = bad
            else:
                h[name]["shape"] = [bad]
            with_header("shape", render(h))
        for _ in range(6):
            name = rng.choice(names)
            h = json.loads(header_text)
            off = h[name]["data_offsets"]
            choice = rng.randrange(6)
            if choice == 0:
                off[rng.randrange(2)] += rng.choice([-4, -1, 1, 2, 4, 8])
            elif choice == 1:
                h[name]["data_offsets"] = [off[1], off[0]]
            elif choice == 2:
                h[name]["data_offsets"] = off + [off[1]]
            elif choice == 3:
                h[name]["data_offsets"] = [raw_value("%d.0" % off[0]), off[1]]
            elif choice == 4 and len(names) > 1:  # move onto another tensor's bytes
                other = h[rng.choice([m for m in names if m != name])]["data_offsets"]
                h[name]["data_offsets"] = [other[0], other[0] + off[1] - off[0]]
            else:
                h[name]["data_offsets"] = [off[0] + 4, off[1] + 4]
            with_header("offsets", render(h))
        for dt in ("f32", "F31", "", "F16", "I64", "BOOL", "U8"):
            h = json.loads(header_text)
            h[rng.choice(names)]["dtype"] = dt
            with_header("dtype", render(h))
        name = rng.choice(names)
        entry = json.dumps(header[name], separators=(",", ":"))
        text = header_text.rstrip(b" ")
        with_header("dup-tensor", text[:-1] + b"," + json.dumps(name).encode() + b":" + entry.encode() + b"}")
        with_header("dup-field", text.replace(b'"dtype":', b'"dtype":"F32","dtype":', 1))
        with_header("extra-field", render({**header, name: {**header[name], "x": {"y": [1, 2]}}}))
        with_header("missing-field", render({**header, name: {"dtype": header[name]["dtype"],
                                                               "shape": header[name]["shape"]}}))
    for m in ({"k": 1}, {"k": None}, ["k"], "kv", {"k": {"x": "y"}}, None, {"k": "v", "é": ""}):
        with_header("metadata", render({**header, "__metadata__": m}))
    text = header_text.rstrip(b" ")
    with_header("dup-metadata", text[:-1] + b',"__metadata__":{"a":"1"},"__metadata__":{"a":"2"}}')
    for prefix, suffix in ((b" ", b""), (b"\xef\xbb\xbf", b""), (b"", b"\0"), (b"", b"x"),
                           (b"", b"{}"), (b"", b"\n\t \r"), (b"[", b"]")):
        with_header("text", prefix + text + suffix)
    with_header("trailing-data", header_text, extra=b"\0")
    if data:
        with_header("truncated", header_text, cut=1)
    for _ in range(12):  # random bytes anywhere
        b = bytearray(blob)
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(b))
            b[i] = rng.choice([b[i] ^ (1 << rng.randrange(8)), ord(rng.choice('0123456789,-.[]{}" e'))])
        out.append(("bytes", bytes(b)))
    return out


def main():
    rng = random.Random(20240611)
    failures = []
    with tempfile.TemporaryDirectory() as work:
        # Writer: what the probe writes, the reference and the package read back exactly.
        for seed in range(40):
            path = os.path.join(work, "out.safetensors")
            rc, out, err = probe(["write", path, str(1000 + seed)])
            assert rc == 0, err
            wrote = json.loads(out)
            blob = open(path, "rb").read()
            try:
                tensors, meta = reference_read(blob)
            except Reject as e:
                failures.append("writer seed %d: the reference reader rejects the file: %s" % (seed, e))
                continue
            (n,) = struct.unpack("<Q", blob[:8])
            if (8 + n) % 8:
                failures.append("writer seed %d: data not 8-byte aligned" % seed)
            got = {t["name"]: (t["dtype"], t["shape"], t["data"].hex()) for t in tensors}
            want = {t["name"]: (t["dtype"], t["shape"], t["hex"]) for t in wrote["tensors"]}
            if got != want or meta != wrote["metadata"]:
                failures.append("writer seed %d: the reference reads other tensors or metadata" % seed)
            if HAVE_LIB:
                try:
                    lib = {name: (t["dtype"], list(t["shape"]), bytes(t["data"]).hex())
                           for name, t in safetensors.deserialize(blob)}
                    if lib != want:
                        failures.append("writer seed %d: safetensors.deserialize reads other tensors" % seed)
                except Exception as e:
                    failures.append("writer seed %d: safetensors.deserialize rejects it: %s" % (seed, e))
        print("writer: 40 files read back by the reference%s" % (" and the package" if HAVE_LIB else ""))

        # Reader: a corpus of valid files and their mutations.
        corpus = []
        for source, blob in valid_corpus(rng, work):
            corpus.append((source, blob))
            if source != "beyond":
                corpus += [(source + "/" + kind, m) for kind, m in mutations(rng, blob)]
        accepted = rejected = lib_checked = lib_lenient = 0
        path = os.path.join(work, "case.safetensors")
        for i, (kind, blob) in enumerate(corpus):
            with open(path, "wb") as f:
                f.write(blob)
            try:
                ref, ref_err = reference_read(blob), None
            except Reject as e:
                ref, ref_err = None, e
            rc, out, err = probe(["read", path])
            label = "case %d (%s)" % (i, kind)
            if rc not in (0, 1):
                failures.append("%s: the probe exited %d: %s" % (label, rc, err.strip()[:300]))
                continue
            if (rc == 0) != (ref is not None):
                failures.append("%s: the probe %s, the reference %s" % (
                    label, "accepts" if rc == 0 else "rejects (%s)" % err.strip()[:200],
                    "accepts" if ref else "rejects (%s)" % ref_err))
                continue
            if rc == 0:
                accepted += 1
                got = json.loads(out)
                tensors, meta = ref
                want = sorted((t["name"], t["dtype"], t["shape"], t["begin"], t["end"], t["data"].hex()) for t in tensors)
                have = sorted((t["name"], t["dtype"], t["shape"], t["begin"], t["end"], t["hex"]) for t in got["tensors"])
                if want != have or meta != got["metadata"]:
                    failures.append("%s: the probe reads other tensors or metadata than the reference" % label)
            else:
                rejected += 1
                if "case.safetensors" not in err:
                    failures.append("%s: the error does not name the file: %s" % (label, err.strip()))
            if HAVE_LIB:
                spec_ok = ref is not None or ref_err.mousse_only
                lib_ok = lib_accepts(blob)
                if ref_err is not None and ref_err.lenient:
                    lib_lenient += 1
                elif lib_ok != spec_ok:
                    failures.append("%s: safetensors.deserialize %s, the reference %s" % (
                        label, "accepts" if lib_ok else "rejects",
                        "accepts" if spec_ok else "rejects (%s)" % ref_err))
                else:
                    lib_checked += 1
        print("reader: %d files, %d accepted and %d rejected by both the probe and the reference"
              % (len(corpus), accepted, rejected))
        if HAVE_LIB:
            print("package: agrees with the reference on %d files; %d where the format's text is "
                  "stricter than the package (duplicate keys, leading whitespace) not compared"
                  % (lib_checked, lib_lenient))
        else:
            print("SKIPPED the comparison with the safetensors package: it is not installed "
                  "(scripts/setup-deps.sh installs it)")
    for f in failures[:30]:
        print("FAIL:", f)
    if failures:
        print("%d failures" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
