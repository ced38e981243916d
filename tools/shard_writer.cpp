#include "shard_writer.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <unistd.h>

namespace mousse::tok {

ShardWriter::ShardWriter(std::string out_dir, std::string name, uint64_t shard_tokens, uint64_t val_tokens)
    : dir_(std::move(out_dir)), name_(std::move(name)), shard_tokens_(shard_tokens), val_tokens_(val_tokens) {
  if (shard_tokens_ == 0) throw std::runtime_error("--shard-tokens must be positive");
  if (shard_tokens_ > 0x7FFFFFFFu || val_tokens_ > 0x7FFFFFFFu)
    throw std::runtime_error("shard size must fit the int32 token count of the llm.c header");
  iobuf_.resize(1 << 22);
}

ShardWriter::~ShardWriter() { abort(); }

std::string ShardWriter::shard_name(const std::string& name, uint64_t index) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "_%s_%06llu.bin", index == 0 ? "val" : "train", (unsigned long long)index);
  return name + buf;
}

void ShardWriter::open_shard() {
  std::string base = shard_name(name_, index_);
  final_path_ = dir_ + "/" + base;
  tmp_path_ = dir_ + "/." + base + ".partial";
  f_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!f_) throw std::runtime_error("cannot create " + tmp_path_ + ": " + std::strerror(errno));
  std::setvbuf(f_, iobuf_.data(), _IOFBF, iobuf_.size());
  int32_t header[256] = {0};
  if (std::fwrite(header, sizeof header, 1, f_) != 1)
    throw std::runtime_error("write error on " + tmp_path_ + ": " + std::strerror(errno));
  in_shard_ = 0;
}

void ShardWriter::close_shard() {
  int32_t header[256] = {0};
  header[0] = 20240520;
  header[1] = 1;
  header[2] = int32_t(in_shard_);
  bool ok = std::fflush(f_) == 0 && std::fseek(f_, 0, SEEK_SET) == 0 &&
            std::fwrite(header, sizeof header, 1, f_) == 1 && std::fflush(f_) == 0;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok) throw std::runtime_error("write error on " + tmp_path_ + ": " + std::strerror(errno));
  if (std::rename(tmp_path_.c_str(), final_path_.c_str()) != 0)
    throw std::runtime_error("cannot rename " + tmp_path_ + " to " + final_path_ + ": " + std::strerror(errno));
  done_.push_back(final_path_);
  tmp_path_.clear();
  ++index_;
}

void ShardWriter::write(const uint16_t* tokens, size_t n) {
  while (n > 0) {
    if (!f_) open_shard();
    uint64_t room = capacity() - in_shard_;
    size_t k = size_t(std::min<uint64_t>(room, n));
    if (std::fwrite(tokens, sizeof(uint16_t), k, f_) != k)
      throw std::runtime_error("write error on " + tmp_path_ + ": " + std::strerror(errno));
    in_shard_ += k;
    total_ += k;
    tokens += k;
    n -= k;
    if (in_shard_ == capacity()) close_shard();
  }
}

const std::vector<std::string>& ShardWriter::finish() {
  if (f_ && in_shard_ > 0) close_shard();
  return done_;
}

void ShardWriter::abort() {
  if (f_) {
    std::fclose(f_);
    f_ = nullptr;
  }
  if (!tmp_path_.empty()) {
    ::unlink(tmp_path_.c_str());
    tmp_path_.clear();
  }
}

}  // namespace mousse::tok
