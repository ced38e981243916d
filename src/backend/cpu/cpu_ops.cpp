#include "backend/cpu/cpu_ops.h"

#include <omp.h>

namespace mousse {

std::string CpuOps::name() const {
  int n = omp_get_max_threads();
  return "cpu (OpenBLAS, " + std::to_string(n) + (n == 1 ? " thread)" : " threads)");
}

std::unique_ptr<Ops> make_cpu_ops() { return std::make_unique<CpuOps>(); }

}  // namespace mousse
