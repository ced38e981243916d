#include "parquet.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <snappy.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_decompressBound (exported by libzstd >= 1.4)
#include <zstd.h>

#include "input_error.h"
#include "thrift_compact.h"

namespace mousse::tok {

namespace {

enum Codec { kUncompressed = 0, kSnappy = 1, kGzip = 2, kLzo = 3, kBrotli = 4, kLz4 = 5, kZstd = 6, kLz4Raw = 7 };
enum Encoding { kPlain = 0, kPlainDictionary = 2, kRle = 3, kBitPacked = 4, kDeltaBinaryPacked = 5,
                kDeltaLengthByteArray = 6, kDeltaByteArray = 7, kRleDictionary = 8 };
enum PageType { kDataPage = 0, kIndexPage = 1, kDictionaryPage = 2, kDataPageV2 = 3 };

const char* codec_name(int c) {
  static const char* names[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO", "BROTLI", "LZ4", "ZSTD", "LZ4_RAW"};
  return (c >= 0 && c < 8) ? names[c] : "unknown";
}

struct ChunkMeta {
  int codec = 0;
  int64_t num_values = 0;
  int64_t data_page_offset = -1;
  int64_t dictionary_page_offset = -1;
  int64_t total_compressed_size = 0;
  int type = -1;
};

struct RowGroupMeta {
  int64_t num_rows = 0;
  ChunkMeta chunk;  // the selected column
};

struct PageHeader {
  int type = -1;
  int32_t uncompressed_size = 0, compressed_size = 0;
  // v1 / v2 / dictionary
  int32_t num_values = 0;
  int32_t encoding = 0;
  int32_t def_encoding = kRle;
  int32_t num_nulls = 0;
  int32_t def_len = 0, rep_len = 0;
  bool is_compressed = true;
};

// Thrown by the page decoders below; the reader adds the file and the page position.
struct PageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// RLE / bit-packed hybrid decoder (parquet's levels and dictionary indices). Values come one at a
// time, so a page that declares billions of them (a long run is a few bytes) costs no memory.
class RleDecoder {
 public:
  RleDecoder() = default;
  RleDecoder(const uint8_t* p, size_t n, int bit_width) : p_(p), n_(n), bw_(bit_width) {}
  // Returns false when the data runs out.
  bool next(uint32_t* v) {
    while (run_left_ == 0 && packed_left_ == 0)
      if (!start_run()) return false;
    if (run_left_) {
      --run_left_;
      *v = run_value_;
      return true;
    }
    if (bit_pos_ + uint64_t(bw_) > packed_end_bits_) return false;  // a short final group ends here
    --packed_left_;
    uint32_t val = 0;
    for (int i = 0; i < bw_; ++i, ++bit_pos_) val |= uint32_t((p_[bit_pos_ >> 3] >> (bit_pos_ & 7)) & 1) << i;
    *v = val;
    return true;
  }
  // Why next() or count() returned false: "" when the data ran out, else the bad value.
  std::string why() const {
    return bad_value_ < 0 ? "" : "run value " + std::to_string(bad_value_) + " does not fit bit width " + std::to_string(bw_);
  }
  // Consumes n values and adds to *hits how many equal `value`; false when the data ends first.
  // A run is counted whole, so the cost follows the encoded size, not the declared count.
  bool count(uint64_t n, uint32_t value, uint64_t* hits) {
    while (n > 0) {
      while (run_left_ == 0 && packed_left_ == 0)
        if (!start_run()) return false;
      if (run_left_) {
        uint64_t k = std::min(run_left_, n);
        if (run_value_ == value) *hits += k;
        run_left_ -= k;
        n -= k;
        continue;
      }
      uint32_t v;
      if (!next(&v)) return false;
      if (v == value) ++*hits;
      --n;
    }
    return true;
  }

 private:
  // Reads the next run header (each consumes at least one byte, so this always ends).
  bool start_run() {
    if (pos_ >= n_) return false;
    uint64_t h = 0;
    for (int shift = 0;; shift += 7) {
      if (pos_ >= n_ || shift > 35) return false;
      uint8_t b = p_[pos_++];
      h |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) break;
    }
    if (h & 1) {
      uint64_t groups = h >> 1;
      if (bw_ == 0) {  // zero-width values carry no bits: a run of zeros
        run_left_ = groups * 8;
        run_value_ = 0;
        return true;
      }
      packed_left_ = groups * 8;
      bit_pos_ = uint64_t(pos_) * 8;
      uint64_t bytes = groups * uint64_t(bw_);
      if (bytes > n_ - pos_) {
        // tolerate a short final group: only the values actually present can be read
        packed_end_bits_ = uint64_t(n_) * 8;
        pos_ = n_;
      } else {
        pos_ += size_t(bytes);
        packed_end_bits_ = uint64_t(pos_) * 8;
      }
    } else {
      run_left_ = h >> 1;
      int nb = (bw_ + 7) / 8;
      if (size_t(nb) > n_ - pos_) return false;
      run_value_ = 0;
      for (int i = 0; i < nb; ++i) run_value_ |= uint32_t(p_[pos_ + i]) << (8 * i);
      pos_ += size_t(nb);
      if (bw_ < 32 && (run_value_ >> bw_) != 0) {  // more bits than the width: corrupt
        bad_value_ = run_value_;
        run_left_ = 0;
        pos_ = n_;
        return false;
      }
    }
    return true;
  }

  const uint8_t* p_ = nullptr;
  size_t n_ = 0, pos_ = 0;
  int bw_ = 0;
  uint64_t run_left_ = 0, packed_left_ = 0;
  uint32_t run_value_ = 0;
  uint64_t bit_pos_ = 0, packed_end_bits_ = 0;
  int64_t bad_value_ = -1;
};

// DELTA_BINARY_PACKED integers (the lengths of DELTA_LENGTH_BYTE_ARRAY), decoded one at a time for
// the same reason as above: a miniblock of bit width 0 encodes any number of equal deltas in no bytes.
class DeltaDecoder {
 public:
  // Reads the header at p[0, n); throws PageError when it is malformed.
  void init(const uint8_t* p, size_t n) {
    *this = DeltaDecoder();
    p_ = p;
    n_ = n;
    uint64_t block = uvarint();
    miniblocks_ = uvarint();
    total_ = left_ = uvarint();
    last_ = uint64_t(zigzag(uvarint()));
    // The spec's block is a multiple of 128 values in miniblocks of a multiple of 32; the upper
    // bound keeps the byte arithmetic below far from overflow.
    if (miniblocks_ == 0 || block == 0 || block > (1u << 30) || block % miniblocks_ || (block / miniblocks_) % 32)
      throw PageError("bad DELTA_BINARY_PACKED header (block " + std::to_string(block) + ", miniblocks " +
                      std::to_string(miniblocks_) + ")");
    per_mini_ = block / miniblocks_;
    mini_idx_ = miniblocks_;  // no block open yet
    first_ = left_ > 0;
    end_ = pos_;
  }
  uint64_t count() const { return total_; }
  bool next(int64_t* v) {
    if (left_ == 0) return false;
    --left_;
    if (first_) {
      first_ = false;
      *v = int64_t(last_);
      return true;
    }
    if (mini_left_ == 0) open_miniblock();
    uint64_t d = 0;
    for (unsigned b = 0; b < width_; ++b, ++bit_) d |= uint64_t((p_[bit_ >> 3] >> (bit_ & 7)) & 1) << b;
    last_ += min_delta_ + d;  // unsigned: wraps like the spec's two's-complement arithmetic
    --mini_left_;
    *v = int64_t(last_);
    return true;
  }
  // Offset just past the encoded values: walks the remaining miniblocks without decoding them
  // (the cost follows the encoded size, each block holding at least one byte).
  size_t end() const {
    DeltaDecoder d = *this;
    if (d.left_ > 0 && d.first_) {
      d.first_ = false;
      --d.left_;
    }
    while (d.left_ > 0) {
      if (d.mini_left_ == 0) d.open_miniblock();
      uint64_t k = std::min(d.mini_left_, d.left_);
      d.mini_left_ -= k;
      d.left_ -= k;
    }
    return d.end_;
  }

 private:
  uint64_t uvarint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= n_) throw PageError("DELTA_BINARY_PACKED data runs past the page");
      uint8_t b = p_[pos_++];
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    throw PageError("bad varint in DELTA_BINARY_PACKED data");
  }
  static int64_t zigzag(uint64_t z) { return int64_t(z >> 1) ^ -int64_t(z & 1); }
  void open_miniblock() {
    if (mini_idx_ == miniblocks_) {  // next block: min delta, then one bit width per miniblock
      min_delta_ = uint64_t(zigzag(uvarint()));
      if (miniblocks_ > n_ - pos_) throw PageError("DELTA_BINARY_PACKED block runs past the page");
      widths_ = p_ + pos_;
      pos_ += size_t(miniblocks_);
      mini_idx_ = 0;
    }
    width_ = widths_[mini_idx_++];
    if (width_ > 64) throw PageError("bad DELTA_BINARY_PACKED bit width " + std::to_string(width_));
    uint64_t bytes = per_mini_ * width_ / 8;
    if (bytes > n_ - pos_) throw PageError("DELTA_BINARY_PACKED miniblock runs past the page");
    bit_ = uint64_t(pos_) * 8;
    pos_ += size_t(bytes);
    end_ = pos_;
    mini_left_ = per_mini_;
  }

  const uint8_t* p_ = nullptr;
  const uint8_t* widths_ = nullptr;
  size_t n_ = 0, pos_ = 0, end_ = 0;
  uint64_t miniblocks_ = 0, per_mini_ = 0, mini_idx_ = 0, mini_left_ = 0, total_ = 0, left_ = 0;
  uint64_t last_ = 0, min_delta_ = 0, bit_ = 0;
  unsigned width_ = 0;
  bool first_ = false;
};

// Limits that tell a corrupt header from a real page: FineWeb's pages are about 1 MB, and one huge
// document still fits.
constexpr uint64_t kMaxPageBytes = 1ull << 30;
// Deflate's best case is 1032:1, so a GZIP page of n bytes never decompresses to more than this.
uint64_t gzip_bound(uint64_t n) { return n * 1032 + 1024; }

// Closes the file however the reader's constructor ends.
struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

class ParquetReader : public DocReader {
 public:
  ParquetReader(const std::string& path, const ReaderOptions& opt) : path_(path), column_(opt.column) {
    file_.fd = ::open(path.c_str(), O_RDONLY);
    if (file_.fd < 0) throw InputError(path, "", "cannot open: " + errno_message());
    struct stat st;
    if (fstat(file_.fd, &st) != 0) throw InputError(path, "", "cannot stat: " + errno_message());
    if (S_ISDIR(st.st_mode)) throw InputError(path, "", "is a directory");
    if (!S_ISREG(st.st_mode)) throw InputError(path, "", "not a regular file (a parquet file is read at random offsets)");
    size_ = uint64_t(st.st_size);
    read_footer();
  }

  bool read(DocBatch& batch, size_t max_bytes) override {
    batch.kind = DocBatch::Kind::kText;
    batch.file = path_;
    bool any = false;
    try {
      while (batch.bytes < max_bytes && batch.items.size() < kMaxBatchDocs) {
        std::string_view v;
        if (next_value(&v)) {
          batch.items.emplace_back(v);
          batch.bytes += v.size();
          any = true;
          continue;
        }
        if (!load_next_page()) break;
      }
    } catch (const PageError& e) {
      fail(where(), e.what());
    } catch (const std::bad_alloc&) {
      fail(where(), "out of memory reading this page");
    }
    return any;
  }
  uint64_t consumed() const override { return consumed_; }
  uint64_t total() const override { return size_; }
  uint64_t skipped() const override { return nulls_; }

 private:
  std::string where() const {
    return "row group " + std::to_string(rg_) + ", page " + std::to_string(page_no_) + " at byte offset " +
           std::to_string(page_offset_);
  }
  [[noreturn]] void fail(const std::string& where, const std::string& what) const { throw InputError(path_, where, what); }

  void pread_exact(uint8_t* dst, size_t n, uint64_t off, const std::string& what) {
    if (off > size_ || n > size_ - off)
      fail("byte offset " + std::to_string(off), "truncated file: " + what + " needs " + std::to_string(n) +
                                                     " bytes but the file has " + std::to_string(size_));
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(file_.fd, dst + done, n - done, off_t(off + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail("byte offset " + std::to_string(off + done), "read error: " + errno_message());
      if (r == 0) fail("byte offset " + std::to_string(off + done), "unexpected end of file reading " + what);
      done += size_t(r);
    }
  }

  void read_footer() {
    if (size_ < 12) fail("", "not a parquet file (only " + std::to_string(size_) + " bytes)");
    uint8_t head[4], tail[8];
    pread_exact(head, 4, 0, "magic");
    pread_exact(tail, 8, size_ - 8, "footer");
    if (std::memcmp(head, "PAR1", 4) != 0) fail("byte offset 0", "bad magic (not a parquet file)");
    if (std::memcmp(tail + 4, "PAR1", 4) != 0)
      fail("byte offset " + std::to_string(size_ - 4), "bad footer magic (truncated or not a parquet file)");
    uint32_t meta_len;
    std::memcpy(&meta_len, tail, 4);
    if (uint64_t(meta_len) + 12 > size_)
      fail("byte offset " + std::to_string(size_ - 8), "footer length " + std::to_string(meta_len) + " exceeds the file");
    std::vector<uint8_t> meta(meta_len);
    uint64_t meta_off = size_ - 8 - meta_len;
    pread_exact(meta.data(), meta_len, meta_off, "footer metadata");
    try {
      parse_file_metadata(meta.data(), meta.size());
    } catch (const ThriftError& e) {
      fail("footer metadata at byte offset " + std::to_string(meta_off + e.offset), std::string("corrupt metadata: ") + e.what());
    }
  }

  void parse_file_metadata(const uint8_t* p, size_t n) {
    ThriftReader r(p, n);
    r.begin_struct();
    int16_t id;
    uint8_t t;
    struct Schema {
      std::string name;
      int type = -1, repetition = 0, num_children = 0;
    };
    std::vector<Schema> schema;
    bool have_rgs = false;
    std::vector<std::vector<ChunkMeta>> groups;
    std::vector<int64_t> group_rows;
    while (r.next_field(&id, &t)) {
      if (id == 2 && t == kTList) {
        uint8_t et;
        uint32_t cnt;
        r.read_list_header(&et, &cnt);
        for (uint32_t i = 0; i < cnt; ++i) {
          Schema s;
          r.begin_struct();
          int16_t fid;
          uint8_t ft;
          while (r.next_field(&fid, &ft)) {
            if (fid == 1 && ft == kTI32) s.type = r.read_i32();
            else if (fid == 3 && ft == kTI32) s.repetition = r.read_i32();
            else if (fid == 4 && ft == kTBinary) s.name = r.read_binary();
            else if (fid == 5 && ft == kTI32) s.num_children = r.read_i32();
            else r.skip(ft);
          }
          r.end_struct();
          schema.push_back(s);
        }
      } else if (id == 4 && t == kTList) {
        have_rgs = true;
        uint8_t et;
        uint32_t cnt;
        r.read_list_header(&et, &cnt);
        for (uint32_t g = 0; g < cnt; ++g) {
          std::vector<ChunkMeta> cols;
          int64_t rows = 0;
          r.begin_struct();
          int16_t fid;
          uint8_t ft;
          while (r.next_field(&fid, &ft)) {
            if (fid == 1 && ft == kTList) {
              uint8_t cet;
              uint32_t ccnt;
              r.read_list_header(&cet, &ccnt);
              for (uint32_t c = 0; c < ccnt; ++c) cols.push_back(parse_column_chunk(r));
            } else if (fid == 3 && ft == kTI64) {
              rows = r.read_i64();
            } else {
              r.skip(ft);
            }
          }
          r.end_struct();
          groups.push_back(std::move(cols));
          group_rows.push_back(rows);
        }
      } else {
        r.skip(t);
      }
    }
    r.end_struct();
    if (schema.empty()) fail("footer metadata", "no schema");
    if (!have_rgs) fail("footer metadata", "no row groups list");
    // Find the leaf `column_` directly under the root; leaves are numbered in schema order.
    int leaf = 0, found = -1;
    std::vector<int> remaining;  // children left per open group
    for (size_t i = 1; i < schema.size(); ++i) {
      const Schema& s = schema[i];
      int depth = int(remaining.size());
      if (s.num_children > 0) {
        remaining.push_back(s.num_children);
        continue;
      }
      if (depth == 0 && s.name == column_) {
        found = leaf;
        if (s.type != 6) fail("schema", "column '" + column_ + "' is not BYTE_ARRAY (type " + std::to_string(s.type) + ")");
        if (s.repetition == 2) fail("schema", "column '" + column_ + "' is REPEATED; only REQUIRED or OPTIONAL are supported");
        max_def_ = (s.repetition == 1) ? 1 : 0;
      }
      ++leaf;
      while (!remaining.empty() && --remaining.back() == 0) remaining.pop_back();
    }
    if (found < 0) fail("schema", "no top-level column named '" + column_ + "'");
    for (size_t g = 0; g < groups.size(); ++g) {
      if (size_t(found) >= groups[g].size())
        fail("row group " + std::to_string(g), "has " + std::to_string(groups[g].size()) + " column chunks, expected more");
      RowGroupMeta m;
      m.num_rows = group_rows[g];
      m.chunk = groups[g][found];
      row_groups_.push_back(m);
    }
  }

  static ChunkMeta parse_column_chunk(ThriftReader& r) {
    ChunkMeta m;
    r.begin_struct();
    int16_t fid;
    uint8_t ft;
    while (r.next_field(&fid, &ft)) {
      if (fid == 3 && ft == kTStruct) {
        r.begin_struct();
        int16_t id;
        uint8_t t;
        while (r.next_field(&id, &t)) {
          if (id == 1 && t == kTI32) m.type = r.read_i32();
          else if (id == 4 && t == kTI32) m.codec = r.read_i32();
          else if (id == 5 && t == kTI64) m.num_values = r.read_i64();
          else if (id == 7 && t == kTI64) m.total_compressed_size = r.read_i64();
          else if (id == 9 && t == kTI64) m.data_page_offset = r.read_i64();
          else if (id == 11 && t == kTI64) m.dictionary_page_offset = r.read_i64();
          else r.skip(t);
        }
        r.end_struct();
      } else {
        r.skip(ft);
      }
    }
    r.end_struct();
    return m;
  }

  PageHeader parse_page_header(const uint8_t* p, size_t n, size_t* header_len) {
    ThriftReader r(p, n);
    PageHeader h;
    r.begin_struct();
    int16_t id;
    uint8_t t;
    while (r.next_field(&id, &t)) {
      if (id == 1 && t == kTI32) h.type = r.read_i32();
      else if (id == 2 && t == kTI32) h.uncompressed_size = r.read_i32();
      else if (id == 3 && t == kTI32) h.compressed_size = r.read_i32();
      else if ((id == 5 || id == 7 || id == 8) && t == kTStruct) {
        r.begin_struct();
        int16_t fid;
        uint8_t ft;
        while (r.next_field(&fid, &ft)) {
          if (fid == 1 && ft == kTI32) h.num_values = r.read_i32();
          else if (id == 5 && fid == 2 && ft == kTI32) h.encoding = r.read_i32();
          else if (id == 5 && fid == 3 && ft == kTI32) h.def_encoding = r.read_i32();
          else if (id == 7 && fid == 2 && ft == kTI32) h.encoding = r.read_i32();
          else if (id == 8 && fid == 2 && ft == kTI32) h.num_nulls = r.read_i32();
          else if (id == 8 && fid == 4 && ft == kTI32) h.encoding = r.read_i32();
          else if (id == 8 && fid == 5 && ft == kTI32) h.def_len = r.read_i32();
          else if (id == 8 && fid == 6 && ft == kTI32) h.rep_len = r.read_i32();
          else if (id == 8 && fid == 7 && (ft == kTTrue || ft == kTFalse)) h.is_compressed = r.read_bool(ft);
          else r.skip(ft);
        }
        r.end_struct();
      } else {
        r.skip(t);
      }
    }
    r.end_struct();
    *header_len = r.position();
    return h;
  }

  // Positions the reader at the selected column's chunk of row group rg_; returns false for a row
  // group without rows (an empty table is written as one such group, with no page to point at).
  bool start_row_group() {
    const RowGroupMeta& g = row_groups_[rg_];
    const ChunkMeta& c = g.chunk;
    const std::string at = "row group " + std::to_string(rg_);
    if (g.num_rows < 0) fail(at, "negative row count " + std::to_string(g.num_rows));
    // A top-level column holds one value per row (nulls included).
    if (c.num_values != g.num_rows)
      fail(at, "column '" + column_ + "' has " + std::to_string(c.num_values) + " values but the row group has " +
                   std::to_string(g.num_rows) + " rows");
    if (g.num_rows == 0) return false;
    int64_t start = c.data_page_offset;
    if (c.dictionary_page_offset > 0 && c.dictionary_page_offset < start) start = c.dictionary_page_offset;
    if (start < 4 || uint64_t(start) >= size_)
      fail(at, "column chunk offset " + std::to_string(start) + " is outside the file");
    if (c.codec != kUncompressed && c.codec != kSnappy && c.codec != kGzip && c.codec != kZstd)
      fail(at, std::string("unsupported compression codec ") + codec_name(c.codec) +
                   " (supported: UNCOMPRESSED, SNAPPY, GZIP, ZSTD)");
    chunk_pos_ = uint64_t(start);
    chunk_end_ = c.total_compressed_size > 0 ? uint64_t(start) + uint64_t(c.total_compressed_size) : size_ - 8;
    if (chunk_end_ > size_ - 8) fail(at, "column chunk runs past the end of the file (truncated?)");
    values_left_ = c.num_values;
    dict_.clear();
    dict_offsets_.clear();
    have_dict_ = false;
    page_no_ = 0;
    return true;
  }

  // Reads pages until one has values to hand out; returns false at the end of the file.
  bool load_next_page() {
    while (true) {
      if (!in_group_) {
        if (rg_ >= row_groups_.size()) {
          consumed_ = size_;
          return false;
        }
        if (!start_row_group()) {
          ++rg_;
          continue;
        }
        in_group_ = true;
      }
      if (values_left_ <= 0) {
        in_group_ = false;
        ++rg_;
        continue;
      }
      if (chunk_pos_ >= chunk_end_)
        fail("row group " + std::to_string(rg_), "column chunk ended with " + std::to_string(values_left_) + " values missing");
      read_page();
      if (present_left_ > 0) return true;
    }
  }

  // Decompresses a page into dst. The size the header declares is checked against what the
  // compressed bytes can hold before anything is allocated, so a corrupt header cannot ask for
  // gigabytes.
  void decompress(int codec, const uint8_t* src, size_t n, uint64_t declared, std::vector<uint8_t>& dst) {
    auto too_big = [&](uint64_t most) {
      fail(where(), "the page header declares " + std::to_string(declared) + " uncompressed bytes, but its " +
                        std::to_string(n) + " " + codec_name(codec) + " bytes hold " +
                        (codec == kGzip ? "at most " : "") + std::to_string(most));
    };
    switch (codec) {
      case kUncompressed:
        if (n != declared) too_big(n);
        dst.assign(src, src + n);
        return;
      case kSnappy: {
        size_t ulen;
        if (!snappy::GetUncompressedLength(reinterpret_cast<const char*>(src), n, &ulen))
          fail(where(), "corrupt snappy data (bad length)");
        if (ulen != declared) too_big(ulen);
        dst.resize(ulen);
        if (!snappy::RawUncompress(reinterpret_cast<const char*>(src), n, reinterpret_cast<char*>(dst.data())))
          fail(where(), "corrupt snappy data");
        return;
      }
      case kZstd: {
        // Exact when the frames record their size (they normally do), else an upper bound.
        unsigned long long most = ZSTD_decompressBound(src, n);
        if (most == ZSTD_CONTENTSIZE_ERROR) fail(where(), "corrupt zstd data (bad frame header)");
        if (declared > most) too_big(most);
        dst.resize(size_t(declared));
        size_t r = ZSTD_decompress(dst.data(), dst.size(), src, n);
        if (ZSTD_isError(r)) fail(where(), std::string("corrupt zstd data: ") + ZSTD_getErrorName(r));
        if (r != declared) fail(where(), "zstd data decompressed to " + std::to_string(r) + " bytes, the page header declares " + std::to_string(declared));
        return;
      }
      case kGzip: {
        if (declared > gzip_bound(n)) too_big(gzip_bound(n));
        dst.resize(size_t(declared));
        z_stream zs{};
        if (inflateInit2(&zs, 15 + 32) != Z_OK) fail(where(), "zlib init failed");
        zs.next_in = const_cast<uint8_t*>(src);
        zs.avail_in = uInt(n);
        zs.next_out = dst.data();
        zs.avail_out = uInt(dst.size());
        int rc = inflate(&zs, Z_FINISH);
        size_t out = zs.total_out;
        inflateEnd(&zs);
        if (rc != Z_STREAM_END || out != declared) fail(where(), "corrupt gzip data");
        return;
      }
      default:
        fail(where(), std::string("unsupported codec ") + codec_name(codec));
    }
  }

  void read_page() {
    const ChunkMeta& c = row_groups_[rg_].chunk;
    page_offset_ = chunk_pos_;
    ++page_no_;
    present_left_ = 0;
    // Page header: unknown length; read a window and grow it while the header runs past its end.
    size_t window = 256;
    PageHeader h;
    size_t hlen = 0;
    while (true) {
      size_t avail = size_t(std::min<uint64_t>(window, chunk_end_ - chunk_pos_));
      hdr_buf_.resize(avail);
      pread_exact(hdr_buf_.data(), avail, chunk_pos_, "page header");
      try {
        h = parse_page_header(hdr_buf_.data(), avail, &hlen);
        break;
      } catch (const ThriftError& e) {
        if (e.truncated && avail == window && window < (64u << 20)) {
          window *= 8;
          continue;
        }
        fail(where(), std::string("corrupt page header: ") + e.what());
      }
    }
    if (h.compressed_size < 0 || h.uncompressed_size < 0)
      fail(where(), "negative page size in the page header (compressed " + std::to_string(h.compressed_size) +
                        ", uncompressed " + std::to_string(h.uncompressed_size) + ")");
    if (uint64_t(h.compressed_size) > chunk_end_ - chunk_pos_ - hlen)
      fail(where(), "page size " + std::to_string(h.compressed_size) + " runs past the column chunk (truncated or corrupt)");
    if (uint64_t(h.uncompressed_size) > kMaxPageBytes)
      fail(where(), "the page header declares " + std::to_string(h.uncompressed_size) +
                        " uncompressed bytes; pages over 1 GiB are not supported (corrupt header?)");
    uint64_t data_off = chunk_pos_ + hlen;
    chunk_pos_ = data_off + uint64_t(h.compressed_size);
    consumed_ = chunk_pos_;
    raw_.resize(size_t(h.compressed_size));
    pread_exact(raw_.data(), raw_.size(), data_off, "page data");

    if (h.type == kDictionaryPage) {
      read_dictionary(c, h);
      return;
    }
    if (h.type != kDataPage && h.type != kDataPageV2) return;  // index pages etc.: skip
    if (h.num_values < 0) fail(where(), "negative value count " + std::to_string(h.num_values));
    if (h.num_values > values_left_)
      fail(where(), "the page holds " + std::to_string(h.num_values) + " values but only " +
                        std::to_string(values_left_) + " of the column chunk's values are left");

    const uint8_t* levels = nullptr;
    size_t levels_len = 0;
    const uint8_t* values;
    size_t values_len;
    if (h.type == kDataPage) {
      decompress(c.codec, raw_.data(), raw_.size(), uint64_t(h.uncompressed_size), page_);
      const uint8_t* p = page_.data();
      size_t n = page_.size();
      if (max_def_ > 0) {
        if (h.def_encoding != kRle) fail(where(), "unsupported definition level encoding " + std::to_string(h.def_encoding));
        if (n < 4) fail(where(), "page too short for definition levels");
        uint32_t len;
        std::memcpy(&len, p, 4);
        if (len > n - 4) fail(where(), "definition levels run past the page");
        levels = p + 4;
        levels_len = len;
        p += 4 + len;
        n -= 4 + len;
      }
      values = p;
      values_len = n;
    } else {
      if (h.def_len < 0 || h.rep_len < 0 || size_t(h.def_len) + size_t(h.rep_len) > raw_.size() ||
          size_t(h.def_len) + size_t(h.rep_len) > size_t(h.uncompressed_size))
        fail(where(), "bad level lengths in data page v2 header");
      levels = raw_.data() + h.rep_len;
      levels_len = size_t(h.def_len);
      size_t off = size_t(h.def_len) + size_t(h.rep_len);
      if (h.is_compressed && c.codec != kUncompressed) {
        decompress(c.codec, raw_.data() + off, raw_.size() - off, uint64_t(h.uncompressed_size) - off, page_);
        values = page_.data();
        values_len = page_.size();
      } else {
        values = raw_.data() + off;
        values_len = raw_.size() - off;
      }
    }
    // Count the non-null values from the definition levels (1 = present).
    uint64_t n_total = uint64_t(h.num_values), n_present = n_total;
    if (max_def_ > 0) {
      RleDecoder d(levels, levels_len, 1);
      n_present = 0;
      if (!d.count(n_total, 1, &n_present))
        fail(where(), d.why().empty() ? "definition levels end early" : "corrupt definition levels: " + d.why());
    }
    nulls_ += n_total - n_present;
    values_left_ -= int64_t(n_total);
    if (n_present == 0) return;
    values_ = values;
    values_len_ = values_len;
    values_pos_ = 0;
    if (h.encoding == kPlain) {
      // each value is at least its 4-byte length: a count the page cannot hold is corrupt
      if (n_present > values_len / 4)
        fail(where(), "the page declares " + std::to_string(n_present) + " values but its " + std::to_string(values_len) +
                          " bytes hold at most " + std::to_string(values_len / 4));
      encoding_ = kPlain;
    } else if (h.encoding == kPlainDictionary || h.encoding == kRleDictionary) {
      if (!have_dict_) fail(where(), "dictionary-encoded page without a dictionary page");
      if (values_len < 1) fail(where(), "empty dictionary index data");
      int bw = values[0];
      if (bw > 32) fail(where(), "bad dictionary index bit width " + std::to_string(bw));
      indices_ = RleDecoder(values + 1, values_len - 1, bw);
      encoding_ = kRleDictionary;
    } else if (h.encoding == kDeltaLengthByteArray) {
      try {
        lengths_.init(values, values_len);
        if (lengths_.count() != n_present)
          fail(where(), "DELTA_LENGTH_BYTE_ARRAY holds " + std::to_string(lengths_.count()) + " lengths for " +
                            std::to_string(n_present) + " values");
        values_pos_ = lengths_.end();  // the bytes follow the lengths
      } catch (const PageError& e) {
        fail(where(), e.what());
      }
      encoding_ = kDeltaLengthByteArray;
    } else {
      fail(where(), "unsupported value encoding " + std::to_string(h.encoding) +
                        " (supported: PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY, DELTA_LENGTH_BYTE_ARRAY)");
    }
    present_total_ = present_left_ = n_present;
  }

  void read_dictionary(const ChunkMeta& c, const PageHeader& h) {
    if (h.encoding != kPlain && h.encoding != kPlainDictionary)
      fail(where(), "unsupported dictionary encoding " + std::to_string(h.encoding));
    if (h.num_values < 0) fail(where(), "negative dictionary size " + std::to_string(h.num_values));
    decompress(c.codec, raw_.data(), raw_.size(), uint64_t(h.uncompressed_size), dict_);
    // PLAIN values: a 4-byte length, then the bytes; the index keeps where each one starts.
    if (uint64_t(h.num_values) > dict_.size() / 4)
      fail(where(), "the dictionary page declares " + std::to_string(h.num_values) + " values but its " +
                        std::to_string(dict_.size()) + " bytes hold at most " + std::to_string(dict_.size() / 4));
    dict_offsets_.clear();
    dict_offsets_.reserve(size_t(h.num_values));
    size_t pos = 0;
    for (int32_t i = 0; i < h.num_values; ++i) {
      if (dict_.size() - pos < 4) fail(where(), "dictionary value " + std::to_string(i) + " runs past the page");
      uint32_t len;
      std::memcpy(&len, dict_.data() + pos, 4);
      if (len > dict_.size() - pos - 4) fail(where(), "dictionary value " + std::to_string(i) + " runs past the page");
      dict_offsets_.push_back(uint32_t(pos));
      pos += 4 + size_t(len);
    }
    have_dict_ = true;
  }

  // Hands out the current data page's next non-null value (a view into the page or the dictionary).
  bool next_value(std::string_view* out) {
    if (present_left_ == 0) return false;
    const uint64_t index = present_total_ - present_left_;
    auto take = [&](uint64_t len) {
      if (len > values_len_ - values_pos_)
        throw PageError("value " + std::to_string(index) + " (" + std::to_string(len) + " bytes) runs past the page");
      *out = std::string_view(reinterpret_cast<const char*>(values_) + values_pos_, size_t(len));
      values_pos_ += size_t(len);
    };
    if (encoding_ == kPlain) {
      if (values_len_ - values_pos_ < 4) throw PageError("value " + std::to_string(index) + " runs past the page");
      uint32_t len;
      std::memcpy(&len, values_ + values_pos_, 4);
      values_pos_ += 4;
      take(len);
    } else if (encoding_ == kRleDictionary) {
      uint32_t idx;
      if (!indices_.next(&idx))
        throw PageError(indices_.why().empty() ? "dictionary indices end after " + std::to_string(index) + " values"
                                               : "corrupt dictionary indices: " + indices_.why());
      if (idx >= dict_offsets_.size())
        throw PageError("dictionary index " + std::to_string(idx) + " out of range (" +
                        std::to_string(dict_offsets_.size()) + " values)");
      uint32_t len;
      std::memcpy(&len, dict_.data() + dict_offsets_[idx], 4);
      *out = std::string_view(reinterpret_cast<const char*>(dict_.data()) + dict_offsets_[idx] + 4, len);
    } else {
      int64_t len;
      if (!lengths_.next(&len)) throw PageError("DELTA_LENGTH_BYTE_ARRAY lengths end early");
      if (len < 0) throw PageError("value " + std::to_string(index) + " has negative length " + std::to_string(len));
      take(uint64_t(len));
    }
    --present_left_;
    return true;
  }

  std::string path_, column_;
  FileDescriptor file_;
  uint64_t size_ = 0, consumed_ = 0, nulls_ = 0;
  int max_def_ = 0;
  std::vector<RowGroupMeta> row_groups_;
  size_t rg_ = 0;
  bool in_group_ = false;
  uint64_t chunk_pos_ = 0, chunk_end_ = 0, page_offset_ = 0;
  int64_t values_left_ = 0;
  size_t page_no_ = 0;
  std::vector<uint8_t> hdr_buf_, raw_, page_, dict_;
  std::vector<uint32_t> dict_offsets_;  // where each dictionary value (its 4-byte length) starts in dict_
  bool have_dict_ = false;
  // The current data page's values, handed out one at a time: memory is the page itself, whatever
  // number of values its header declares.
  int encoding_ = kPlain;
  uint64_t present_total_ = 0, present_left_ = 0;
  const uint8_t* values_ = nullptr;
  size_t values_len_ = 0, values_pos_ = 0;
  RleDecoder indices_;
  DeltaDecoder lengths_;
};

}  // namespace

std::unique_ptr<DocReader> open_parquet(const std::string& path, const ReaderOptions& opt) {
  return std::make_unique<ParquetReader>(path, opt);
}

}  // namespace mousse::tok
