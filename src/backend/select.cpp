#include "backend/select.h"

namespace mousse {

std::unique_ptr<Ops> make_ops(const std::string& device) {
  if (device == "cpu") return make_cpu_ops();
  if (device == "cuda") return make_cuda_ops();
  if (device == "auto") return cuda_available() ? make_cuda_ops() : make_cpu_ops();
  fail("unknown device '", device, "': expected cpu, cuda or auto");
}

}  // namespace mousse
