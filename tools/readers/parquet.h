// Streaming reader for one BYTE_ARRAY column (FineWeb's `text`) of a Parquet file.
// Supports codecs UNCOMPRESSED, SNAPPY, GZIP, ZSTD; encodings PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY
// and DELTA_LENGTH_BYTE_ARRAY; data pages v1 and v2; REQUIRED or OPTIONAL top-level columns (nulls
// are skipped and counted). Memory: one page plus the column chunk's dictionary.
#pragma once
#include "reader.h"
