#include "backend/cpu/cpu_ops.h"

#include <cblas.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>

#include "backend/cpu/cpu_blas.h"

namespace mousse {

namespace cpu {

int cpu_vector_level() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return 3;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
  if (__builtin_cpu_supports("avx")) return 1;
#endif
  return 0;
}

int blas_core_level(const std::string& core) {
  // OpenBLAS's x86-64 core names (openblas_get_corename(), OPENBLAS_CORETYPE); compared without
  // case, as OpenBLAS does.
  static const struct {
    const char* name;
    int level;
  } cores[] = {{"skylakex", 3},    {"cooperlake", 3},  {"sapphirerapids", 3}, {"haswell", 2},
               {"zen", 2},         {"excavator", 2},   {"sandybridge", 1},    {"bulldozer", 1},
               {"piledriver", 1},  {"steamroller", 1}, {"prescott", 0},       {"core2", 0},
               {"penryn", 0},      {"dunnington", 0},  {"nehalem", 0},        {"atom", 0},
               {"nano", 0},        {"barcelona", 0},   {"opteron", 0},        {"opteron_sse3", 0},
               {"bobcat", 0},      {"athlon", 0},      {"katmai", 0},         {"coppermine", 0},
               {"northwood", 0},   {"banias", 0}};
  std::string lower;
  for (char c : core) lower += char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  for (const auto& c : cores)
    if (lower == c.name) return c.level;
  return -1;
}

std::string blas_core_advice(const std::string& core, int cpu_level) {
  const int level = blas_core_level(core);
  if (level < 0 || level >= 2 || cpu_level < 2 || cpu_level <= level) return "";
  const char* want = cpu_level >= 3 ? "SkylakeX" : "Haswell";
  std::ostringstream os;
  os << "OpenBLAS runs its generic " << core << " kernel on this CPU, which has "
     << (cpu_level >= 3 ? "AVX-512" : "AVX2") << ": its GEMMs may run several times faster with "
     << "OPENBLAS_CORETYPE=" << want << " in the environment (mousse does not set it: a forced "
     << "core type crashes some OpenBLAS builds on CPUs they do not fully support)";
  return os.str();
}

std::string blas_description() {
  // openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ... SkylakeX MAX_THREADS=64"
  std::istringstream config(openblas_get_config());
  std::string library, version;
  config >> library >> version;
  return library + " " + version + ", " + openblas_get_corename() + " kernel";
}

}  // namespace cpu

std::string CpuOps::name() const {
  int n = omp_get_max_threads();
  return "cpu (OpenMP, " + std::to_string(n) + (n == 1 ? " thread" : " threads") + ", serial " +
         cpu::blas_description() + ")";
}

std::unique_ptr<Ops> make_cpu_ops() {
  // One thread pool: OpenMP. OpenBLAS's own pool would spin between calls and fight the
  // OpenMP threads for the cores; parallel_gemm() splits big products across OpenMP instead.
  openblas_set_num_threads(1);
  // Once per process (on the first rank of an MPI job), where OpenBLAS chose a kernel below the
  // CPU by itself (with OPENBLAS_CORETYPE set, the kernel is the user's choice).
  static std::once_flag advised;
  std::call_once(advised, [] {
    if (std::getenv("OPENBLAS_CORETYPE")) return;
    for (const char* rank : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"}) {
      const char* r = std::getenv(rank);
      if (r && std::string(r) != "0") return;
    }
    const std::string advice =
        cpu::blas_core_advice(openblas_get_corename(), cpu::cpu_vector_level());
    if (!advice.empty()) std::fprintf(stderr, "mousse: note: %s\n", advice.c_str());
  });
  return std::make_unique<CpuOps>();
}

std::unique_ptr<Ops> CpuOps::make_worker() const { return make_cpu_ops(); }

}  // namespace mousse
