// Built only when this binary has no CUDA backend.
#include "backend/ops.h"

namespace mousse {

std::unique_ptr<Ops> make_cuda_ops() {
  fail("device 'cuda' requested, but this mousse was built without the CUDA backend: "
       "rebuild on a machine with the CUDA toolkit (nvcc), or set device to 'cpu'");
}

bool cuda_available() { return false; }

}  // namespace mousse
