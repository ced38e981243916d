#include "parquet.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <snappy.h>
#include <zlib.h>
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

// RLE / bit-packed hybrid decoder (parquet's levels and dictionary indices).
class RleDecoder {
 public:
  RleDecoder(const uint8_t* p, size_t n, int bit_width) : p_(p), n_(n), bw_(bit_width) {}
  // Returns false when the data runs out.
  bool next(uint32_t* v) {
    while (run_left_ == 0 && packed_left_ == 0) {
      if (pos_ >= n_) return false;
      uint64_t h = 0;
      for (int shift = 0;; shift += 7) {
        if (pos_ >= n_ || shift > 35) return false;
        uint8_t b = p_[pos_++];
        h |= uint64_t(b & 0x7F) << shift;
        if (!(b & 0x80)) break;
      }
      if (h & 1) {
        packed_left_ = (h >> 1) * 8;
        bit_pos_ = pos_ * 8;
        size_t bytes = (h >> 1) * size_t(bw_);
        if (bytes > n_ - pos_) {
          // tolerate a short final group: only the values actually present can be read
          packed_end_bits_ = n_ * 8;
          pos_ = n_;
        } else {
          pos_ += bytes;
          packed_end_bits_ = pos_ * 8;
        }
      } else {
        run_left_ = h >> 1;
        int nb = (bw_ + 7) / 8;
        if (size_t(nb) > n_ - pos_) return false;
        run_value_ = 0;
        for (int i = 0; i < nb; ++i) run_value_ |= uint32_t(p_[pos_ + i]) << (8 * i);
        pos_ += nb;
      }
    }
    if (run_left_) {
      --run_left_;
      *v = run_value_;
      return true;
    }
    --packed_left_;
    if (bit_pos_ + bw_ > packed_end_bits_) return false;
    uint32_t val = 0;
    for (int i = 0; i < bw_; ++i, ++bit_pos_)
      val |= uint32_t((p_[bit_pos_ >> 3] >> (bit_pos_ & 7)) & 1) << i;
    *v = val;
    return true;
  }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  int bw_;
  uint64_t run_left_ = 0, packed_left_ = 0;
  uint32_t run_value_ = 0;
  size_t bit_pos_ = 0, packed_end_bits_ = 0;
};

class ParquetReader : public DocReader {
 public:
  ParquetReader(const std::string& path, const ReaderOptions& opt) : path_(path), column_(opt.column) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    if (fd_ < 0) throw InputError(path, "", "cannot open: " + errno_message());
    struct stat st;
    if (fstat(fd_, &st) != 0) throw InputError(path, "", "cannot stat: " + errno_message());
    size_ = uint64_t(st.st_size);
    read_footer();
  }
  ~ParquetReader() override {
    if (fd_ >= 0) ::close(fd_);
  }

  bool read(DocBatch& batch, size_t max_bytes) override {
    batch.kind = DocBatch::Kind::kText;
    batch.file = path_;
    bool any = false;
    while (batch.bytes < max_bytes) {
      if (val_idx_ < vals_.size()) {
        auto [off, len] = vals_[val_idx_++];
        batch.items.emplace_back(reinterpret_cast<const char*>(page_values_base_) + off, len);
        batch.bytes += len;
        any = true;
        continue;
      }
      if (!load_next_page()) break;
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
      ssize_t r = ::pread(fd_, dst + done, n - done, off_t(off + done));
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
      } else {
        if (depth == 0 && s.name == column_) {
          found = leaf;
          if (s.type != 6) fail("schema", "column '" + column_ + "' is not BYTE_ARRAY (type " + std::to_string(s.type) + ")");
          if (s.repetition == 2) fail("schema", "column '" + column_ + "' is REPEATED; only REQUIRED or OPTIONAL are supported");
          max_def_ = (s.repetition == 1) ? 1 : 0;
        }
        ++leaf;
        while (!remaining.empty() && --remaining.back() == 0) remaining.pop_back();
      }
      if (s.num_children > 0) continue;
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

  void start_row_group() {
    const RowGroupMeta& g = row_groups_[rg_];
    const ChunkMeta& c = g.chunk;
    int64_t start = c.data_page_offset;
    if (c.dictionary_page_offset > 0 && c.dictionary_page_offset < start) start = c.dictionary_page_offset;
    if (start < 4 || uint64_t(start) >= size_)
      fail("row group " + std::to_string(rg_), "column chunk offset " + std::to_string(start) + " is outside the file");
    if (c.codec != kUncompressed && c.codec != kSnappy && c.codec != kGzip && c.codec != kZstd)
      fail("row group " + std::to_string(rg_), std::string("unsupported compression codec ") + codec_name(c.codec) +
                                                   " (supported: UNCOMPRESSED, SNAPPY, GZIP, ZSTD)");
    chunk_pos_ = uint64_t(start);
    chunk_end_ = c.total_compressed_size > 0 ? uint64_t(start) + uint64_t(c.total_compressed_size) : size_ - 8;
    if (chunk_end_ > size_ - 8) fail("row group " + std::to_string(rg_), "column chunk runs past the end of the file (truncated?)");
    values_left_ = c.num_values;
    dict_.clear();
    dict_vals_.clear();
    have_dict_ = false;
    page_no_ = 0;
  }

  // Reads and decodes pages until one yields values; returns false at the end of the file.
  bool load_next_page() {
    vals_.clear();
    val_idx_ = 0;
    while (true) {
      if (!in_group_) {
        if (rg_ >= row_groups_.size()) {
          consumed_ = size_;
          return false;
        }
        start_row_group();
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
      if (!vals_.empty()) return true;
    }
  }

  void decompress(int codec, const uint8_t* src, size_t n, uint8_t* dst, size_t dst_len) {
    switch (codec) {
      case kUncompressed:
        if (n != dst_len) fail(where(), "uncompressed page size mismatch");
        std::memcpy(dst, src, n);
        return;
      case kSnappy: {
        size_t ulen;
        if (!snappy::GetUncompressedLength(reinterpret_cast<const char*>(src), n, &ulen) || ulen != dst_len)
          fail(where(), "corrupt snappy data (bad length)");
        if (!snappy::RawUncompress(reinterpret_cast<const char*>(src), n, reinterpret_cast<char*>(dst)))
          fail(where(), "corrupt snappy data");
        return;
      }
      case kZstd: {
        size_t r = ZSTD_decompress(dst, dst_len, src, n);
        if (ZSTD_isError(r)) fail(where(), std::string("corrupt zstd data: ") + ZSTD_getErrorName(r));
        if (r != dst_len) fail(where(), "zstd data decompressed to the wrong size");
        return;
      }
      case kGzip: {
        z_stream zs{};
        if (inflateInit2(&zs, 15 + 32) != Z_OK) fail(where(), "zlib init failed");
        zs.next_in = const_cast<uint8_t*>(src);
        zs.avail_in = uInt(n);
        zs.next_out = dst;
        zs.avail_out = uInt(dst_len);
        int rc = inflate(&zs, Z_FINISH);
        size_t out = zs.total_out;
        inflateEnd(&zs);
        if (rc != Z_STREAM_END || out != dst_len) fail(where(), "corrupt gzip data");
        return;
      }
      default:
        fail(where(), std::string("unsupported codec ") + codec_name(codec));
    }
  }

  void read_page() {
    const ChunkMeta& c = row_groups_[rg_].chunk;
    page_offset_ = chunk_pos_;
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
    if (h.compressed_size < 0 || h.uncompressed_size < 0 ||
        uint64_t(h.compressed_size) > chunk_end_ - chunk_pos_ - hlen)
      fail(where(), "page size " + std::to_string(h.compressed_size) + " runs past the column chunk (truncated or corrupt)");
    if (h.uncompressed_size > (1 << 30)) fail(where(), "page too large");
    uint64_t data_off = chunk_pos_ + hlen;
    chunk_pos_ = data_off + uint64_t(h.compressed_size);
    consumed_ = chunk_pos_;
    ++page_no_;
    raw_.resize(size_t(h.compressed_size));
    pread_exact(raw_.data(), raw_.size(), data_off, "page data");

    if (h.type == kDictionaryPage) {
      if (h.encoding != kPlain && h.encoding != kPlainDictionary)
        fail(where(), "unsupported dictionary encoding " + std::to_string(h.encoding));
      dict_.resize(size_t(h.uncompressed_size));
      decompress(c.codec, raw_.data(), raw_.size(), dict_.data(), dict_.size());
      dict_vals_.clear();
      decode_plain(dict_.data(), dict_.size(), size_t(h.num_values), dict_vals_, "dictionary page");
      have_dict_ = true;
      return;
    }
    if (h.type != kDataPage && h.type != kDataPageV2) return;  // index pages etc.: skip

    const uint8_t* levels = nullptr;
    size_t levels_len = 0;
    const uint8_t* values;
    size_t values_len;
    if (h.type == kDataPage) {
      page_.resize(size_t(h.uncompressed_size));
      decompress(c.codec, raw_.data(), raw_.size(), page_.data(), page_.size());
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
      size_t ulen = size_t(h.uncompressed_size) - off;
      if (h.is_compressed && c.codec != kUncompressed) {
        page_.resize(ulen);
        decompress(c.codec, raw_.data() + off, raw_.size() - off, page_.data(), ulen);
        values = page_.data();
        values_len = ulen;
      } else {
        values = raw_.data() + off;
        values_len = raw_.size() - off;
      }
    }
    // Count non-null values from the definition levels.
    size_t n_total = size_t(h.num_values), n_present = n_total;
    if (max_def_ > 0) {
      RleDecoder d(levels, levels_len, 1);
      n_present = 0;
      for (size_t i = 0; i < n_total; ++i) {
        uint32_t v;
        if (!d.next(&v)) fail(where(), "definition levels end early");
        if (v == 1) ++n_present;
      }
    }
    nulls_ += n_total - n_present;
    values_left_ -= int64_t(n_total);
    if (h.encoding == kPlain) {
      decode_plain(values, values_len, n_present, vals_, "data page");
      page_values_base_ = values;
    } else if (h.encoding == kPlainDictionary || h.encoding == kRleDictionary) {
      if (!have_dict_) fail(where(), "dictionary-encoded page without a dictionary page");
      if (n_present > 0) {
        if (values_len < 1) fail(where(), "empty dictionary index data");
        int bw = values[0];
        if (bw > 32) fail(where(), "bad dictionary index bit width " + std::to_string(bw));
        RleDecoder d(values + 1, values_len - 1, bw);
        vals_.reserve(n_present);
        for (size_t i = 0; i < n_present; ++i) {
          uint32_t idx;
          if (!d.next(&idx)) fail(where(), "dictionary indices end early");
          if (idx >= dict_vals_.size())
            fail(where(), "dictionary index " + std::to_string(idx) + " out of range (" + std::to_string(dict_vals_.size()) + ")");
          vals_.push_back(dict_vals_[idx]);
        }
      }
      page_values_base_ = dict_.data();
    } else if (h.encoding == kDeltaLengthByteArray) {
      decode_delta_length(values, values_len, n_present);
      page_values_base_ = values;
    } else {
      fail(where(), "unsupported value encoding " + std::to_string(h.encoding) +
                        " (supported: PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY, DELTA_LENGTH_BYTE_ARRAY)");
    }
  }

  void decode_plain(const uint8_t* p, size_t n, size_t count, std::vector<std::pair<size_t, size_t>>& out, const char* what) {
    size_t pos = 0;
    out.reserve(out.size() + count);
    for (size_t i = 0; i < count; ++i) {
      if (n - pos < 4) fail(where(), std::string(what) + ": value " + std::to_string(i) + " runs past the page");
      uint32_t len;
      std::memcpy(&len, p + pos, 4);
      pos += 4;
      if (len > n - pos) fail(where(), std::string(what) + ": value " + std::to_string(i) + " runs past the page");
      out.emplace_back(pos, len);
      pos += len;
    }
  }

  // DELTA_BINARY_PACKED lengths followed by the concatenated bytes.
  void decode_delta_length(const uint8_t* p, size_t n, size_t count) {
    size_t pos = 0;
    auto uvarint = [&]() -> uint64_t {
      uint64_t v = 0;
      for (int shift = 0; shift < 64; shift += 7) {
        if (pos >= n) fail(where(), "DELTA_BINARY_PACKED header runs past the page");
        uint8_t b = p[pos++];
        v |= uint64_t(b & 0x7F) << shift;
        if (!(b & 0x80)) return v;
      }
      fail(where(), "bad varint");
    };
    auto zz = [&]() -> int64_t { uint64_t z = uvarint(); return int64_t(z >> 1) ^ -int64_t(z & 1); };
    uint64_t block = uvarint(), miniblocks = uvarint(), total = uvarint();
    int64_t first = zz();
    if (miniblocks == 0 || block == 0 || block % miniblocks || (block / miniblocks) % 32) fail(where(), "bad DELTA_BINARY_PACKED header");
    if (total != count) fail(where(), "DELTA_LENGTH_BYTE_ARRAY count mismatch");
    std::vector<int64_t> lens;
    lens.reserve(total);
    if (total > 0) lens.push_back(first);
    int64_t last = first;
    uint64_t per_mini = block / miniblocks;
    while (lens.size() < total) {
      int64_t min_delta = zz();
      if (miniblocks > n - pos) fail(where(), "DELTA_BINARY_PACKED block runs past the page");
      const uint8_t* widths = p + pos;
      pos += miniblocks;
      for (uint64_t m = 0; m < miniblocks && lens.size() < total; ++m) {
        int w = widths[m];
        if (w > 64) fail(where(), "bad bit width");
        size_t bytes = size_t(per_mini) * size_t(w) / 8;
        if (bytes > n - pos) fail(where(), "DELTA_BINARY_PACKED miniblock runs past the page");
        size_t bit = pos * 8;
        for (uint64_t k = 0; k < per_mini && lens.size() < total; ++k) {
          uint64_t v = 0;
          for (int b = 0; b < w; ++b, ++bit) v |= uint64_t((p[bit >> 3] >> (bit & 7)) & 1) << b;
          last = last + min_delta + int64_t(v);
          lens.push_back(last);
        }
        pos += bytes;
      }
    }
    vals_.reserve(count);
    for (int64_t len : lens) {
      if (len < 0 || size_t(len) > n - pos) fail(where(), "DELTA_LENGTH_BYTE_ARRAY value runs past the page");
      vals_.emplace_back(pos, size_t(len));
      pos += size_t(len);
    }
  }

  std::string path_, column_;
  int fd_ = -1;
  uint64_t size_ = 0, consumed_ = 0, nulls_ = 0;
  int max_def_ = 0;
  std::vector<RowGroupMeta> row_groups_;
  size_t rg_ = 0;
  bool in_group_ = false;
  uint64_t chunk_pos_ = 0, chunk_end_ = 0, page_offset_ = 0;
  int64_t values_left_ = 0;
  size_t page_no_ = 0;
  std::vector<uint8_t> hdr_buf_, raw_, page_, dict_;
  std::vector<std::pair<size_t, size_t>> dict_vals_, vals_;
  bool have_dict_ = false;
  const uint8_t* page_values_base_ = nullptr;
  size_t val_idx_ = 0;
};

}  // namespace

std::unique_ptr<DocReader> open_parquet(const std::string& path, const ReaderOptions& opt) {
  return std::make_unique<ParquetReader>(path, opt);
}

}  // namespace mousse::tok
