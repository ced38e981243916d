#include "train/host_batch.h"

namespace mousse {

HostBatch::HostBatch(Ops& ops, int64_t tokens) : ops_(ops), n_(tokens), buf_(size_t(2 * tokens)) {
  ops_.register_host_memory(buf_.data(), buf_.size() * sizeof(int32_t));
}

HostBatch::~HostBatch() {
  try {  // waits for the last upload from it before unpinning
    ops_.unregister_host_memory(buf_.data());
  } catch (...) {
  }
}

}  // namespace mousse
