#include "backend/cpu/cpu_ops.h"

#include <cblas.h>
#include <omp.h>

namespace mousse {

std::string CpuOps::name() const {
  int n = omp_get_max_threads();
  return "cpu (OpenMP, " + std::to_string(n) + (n == 1 ? " thread" : " threads") +
         ", serial OpenBLAS)";
}

std::unique_ptr<Ops> make_cpu_ops() {
  // One thread pool: OpenMP. OpenBLAS's own pool would spin between calls and fight the
  // OpenMP threads for the cores; parallel_gemm() splits big products across OpenMP instead.
  openblas_set_num_threads(1);
  return std::make_unique<CpuOps>();
}

std::unique_ptr<Ops> CpuOps::make_worker() const { return make_cpu_ops(); }

}  // namespace mousse
