"""A tiny parquet writer for files no real writer produces: one BYTE_ARRAY column `text`, one row group,
pages given as (header fields, bytes), every thrift field under the caller's control. Used by the
tokenizer's hostile-input tests and by tests/fuzz/make_seeds.py.

Thrift compact protocol: a field is a byte (id delta << 4 | type) then its value; integers are zigzag
varints; a struct ends with a 0 byte; a list is (size << 4 | element type) for sizes below 15.
"""
import struct

I32, I64, BINARY, LIST, STRUCT, TRUE, FALSE = 5, 6, 8, 9, 12, 1, 2
UNCOMPRESSED, SNAPPY, GZIP, ZSTD = 0, 1, 2, 6
PLAIN, PLAIN_DICTIONARY, RLE, DELTA_LENGTH_BYTE_ARRAY, RLE_DICTIONARY = 0, 2, 3, 6, 8
DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(v):
    return varint((v << 1) ^ (v >> 63))


def struct_(fields):
    """fields: list of (id, type, value) in increasing id order; value is int, bytes, bool, a list of
    fields (STRUCT) or (element type, [values]) (LIST)."""
    out, last = bytearray(), 0
    for fid, typ, val in fields:
        if typ in (TRUE, FALSE):
            typ = TRUE if val else FALSE
        delta = fid - last
        out += bytes([(delta << 4) | typ]) if 0 < delta < 16 else bytes([typ]) + zigzag(fid)
        last = fid
        out += value(typ, val)
    return bytes(out + b"\0")


def value(typ, val):
    if typ in (I32, I64):
        return zigzag(val)
    if typ == BINARY:
        return varint(len(val)) + val
    if typ == STRUCT:
        return struct_(val)
    if typ == LIST:
        et, items = val
        head = bytes([(len(items) << 4) | et]) if len(items) < 15 else bytes([0xF0 | et]) + varint(len(items))
        return head + b"".join(value(et, x) for x in items)
    if typ in (TRUE, FALSE):
        return b""
    raise ValueError(typ)


def page_header(ptype, uncompressed, compressed, num_values, encoding=PLAIN, v2=None):
    """v2: dict(num_nulls, num_rows, def_len, rep_len, is_compressed) for DATA_PAGE_V2."""
    fields = [(1, I32, ptype), (2, I32, uncompressed), (3, I32, compressed)]
    if ptype == DATA_PAGE:
        fields.append((5, STRUCT, [(1, I32, num_values), (2, I32, encoding), (3, I32, RLE), (4, I32, RLE)]))
    elif ptype == DICTIONARY_PAGE:
        fields.append((7, STRUCT, [(1, I32, num_values), (2, I32, encoding)]))
    else:
        v2 = v2 or {}
        fields.append((8, STRUCT, [(1, I32, num_values), (2, I32, v2.get("num_nulls", 0)),
                                   (3, I32, v2.get("num_rows", num_values)), (4, I32, encoding),
                                   (5, I32, v2.get("def_len", 0)), (6, I32, v2.get("rep_len", 0)),
                                   (7, TRUE, v2.get("is_compressed", True))]))
    return struct_(fields)


def parquet_file(pages, num_rows, optional=False, codec=UNCOMPRESSED, chunk_values=None, dict_first=False):
    """pages: list of bytes (each a page header followed by its data). Returns the file's bytes."""
    body = b"".join(pages)
    start = 4
    col_meta = [(1, I32, 6), (2, LIST, (I32, [PLAIN, RLE])), (3, LIST, (BINARY, [b"text"])), (4, I32, codec),
                (5, I64, num_rows if chunk_values is None else chunk_values), (6, I64, len(body)),
                (7, I64, len(body)), (9, I64, start)]
    if dict_first:
        col_meta.append((11, I64, start))
    chunk = [(2, I64, start), (3, STRUCT, col_meta)]
    row_group = [(1, LIST, (STRUCT, [chunk])), (2, I64, len(body)), (3, I64, num_rows)]
    schema = [[(4, BINARY, b"schema"), (5, I32, 1)],
              [(1, I32, 6), (3, I32, 1 if optional else 0), (4, BINARY, b"text")]]
    meta = struct_([(1, I32, 1), (2, LIST, (STRUCT, schema)), (3, I64, num_rows), (4, LIST, (STRUCT, [row_group]))])
    return b"PAR1" + body + meta + struct.pack("<I", len(meta)) + b"PAR1"


def plain_values(texts):
    return b"".join(struct.pack("<I", len(t)) + t for t in texts)


def data_page(texts, declared_values=None, uncompressed=None):
    data = plain_values(texts)
    n = len(texts) if declared_values is None else declared_values
    return page_header(DATA_PAGE, len(data) if uncompressed is None else uncompressed, len(data), n) + data


def rle_run(count, value, bit_width):
    return varint(count << 1) + value.to_bytes((bit_width + 7) // 8, "little")


def hostile_files():
    """{name: bytes}: files each reader check must turn into a precise error (or read correctly)."""
    docs = [b"hello", b"world"]
    out = {}
    out["valid_crafted"] = parquet_file([data_page(docs)], 2)
    # declared sizes far beyond the page: refused before anything is allocated
    out["hostile_uncompressed_size_1gib"] = parquet_file([data_page(docs, uncompressed=1 << 30)], 2)
    out["hostile_uncompressed_size_2gib"] = parquet_file([data_page(docs, uncompressed=0x7FFFFFFF)], 2)
    gz_header = page_header(DATA_PAGE, 900_000_000, 20, 2)
    out["hostile_gzip_ratio"] = parquet_file([gz_header + b"\x1f\x8b" + b"\0" * 18], 2, codec=GZIP)
    out["hostile_negative_num_values"] = parquet_file([data_page(docs, declared_values=-5)], 2)
    out["hostile_num_values_beyond_page"] = parquet_file([data_page(docs, declared_values=0x7FFFFFFF)], 0x7FFFFFFF)
    out["hostile_num_values_beyond_chunk"] = parquet_file([data_page(docs, declared_values=3)], 2)
    out["hostile_rows_vs_values"] = parquet_file([data_page(docs)], 2, chunk_values=5)
    dict_data = plain_values([b"a"])
    dict_page = page_header(DICTIONARY_PAGE, len(dict_data), len(dict_data), 0x7FFFFFFF) + dict_data
    idx = bytes([1]) + rle_run(2, 0, 1)
    out["hostile_dictionary_count"] = parquet_file(
        [dict_page, page_header(DATA_PAGE, len(idx), len(idx), 2, RLE_DICTIONARY) + idx], 2, dict_first=True)
    bad_levels = rle_run(2, 2, 1)  # level 2 in a bit width of 1
    bad_levels = struct.pack("<I", len(bad_levels)) + bad_levels + plain_values(docs)
    out["hostile_definition_level_width"] = parquet_file(
        [page_header(DATA_PAGE, len(bad_levels), len(bad_levels), 2) + bad_levels], 2, optional=True)
    # a valid file: two billion nulls in six bytes of definition levels (read fast, none kept)
    levels = rle_run(0x7FFFFFFF, 0, 1)
    nulls = struct.pack("<I", len(levels)) + levels
    out["valid_two_billion_nulls"] = parquet_file(
        [page_header(DATA_PAGE, len(nulls), len(nulls), 0x7FFFFFFF) + nulls], 0x7FFFFFFF, optional=True)
    # DELTA_LENGTH_BYTE_ARRAY: 1000 empty values in one miniblock of width 0, then a bad header
    lengths = varint(1 << 10) + varint(1) + varint(1000) + zigzag(0) + zigzag(0) + bytes([0])
    out["valid_delta_width0"] = parquet_file(
        [page_header(DATA_PAGE, len(lengths), len(lengths), 1000, DELTA_LENGTH_BYTE_ARRAY) + lengths], 1000)
    bad = varint(128) + varint(0) + varint(2) + zigzag(0)
    out["hostile_delta_zero_miniblocks"] = parquet_file(
        [page_header(DATA_PAGE, len(bad), len(bad), 2, DELTA_LENGTH_BYTE_ARRAY) + bad], 2)
    wide = varint(128) + varint(4) + varint(3) + zigzag(1) + zigzag(0) + bytes([65, 0, 0, 0]) + b"\0" * 64
    out["hostile_delta_width_65"] = parquet_file(
        [page_header(DATA_PAGE, len(wide), len(wide), 3, DELTA_LENGTH_BYTE_ARRAY) + wide], 3)
    return out
