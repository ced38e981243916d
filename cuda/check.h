#pragma once
// Return-code checks for every CUDA runtime / cuBLAS(Lt) / cuSOLVER call: on failure they throw
// mousse::Error naming the call, file:line and the library's error string.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "core/error.h"

namespace mousse {
namespace cuda_detail {

inline const char* cublas_status_string(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

inline const char* cusolver_status_string(cusolverStatus_t s) {
  switch (s) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    default: return "unknown cuSOLVER status";
  }
}

}  // namespace cuda_detail
}  // namespace mousse

#define CUDA_CHECK(call)                                                                   \
  do {                                                                                     \
    cudaError_t mousse_err_ = (call);                                                      \
    if (mousse_err_ != cudaSuccess)                                                        \
      ::mousse::fail("CUDA error in ", #call, " at ", __FILE__, ":", __LINE__, ": ",       \
                     cudaGetErrorName(mousse_err_), " (", cudaGetErrorString(mousse_err_), \
                     ")");                                                                 \
  } while (0)

// After a kernel launch: catches bad launch configurations (asynchronous faults surface at the
// next synchronising call).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                              \
  do {                                                                                  \
    cublasStatus_t mousse_st_ = (call);                                                 \
    if (mousse_st_ != CUBLAS_STATUS_SUCCESS)                                            \
      ::mousse::fail("cuBLAS error in ", #call, " at ", __FILE__, ":", __LINE__, ": ",  \
                     ::mousse::cuda_detail::cublas_status_string(mousse_st_));          \
  } while (0)

#define CUSOLVER_CHECK(call)                                                             \
  do {                                                                                   \
    cusolverStatus_t mousse_st_ = (call);                                                \
    if (mousse_st_ != CUSOLVER_STATUS_SUCCESS)                                           \
      ::mousse::fail("cuSOLVER error in ", #call, " at ", __FILE__, ":", __LINE__, ": ", \
                     ::mousse::cuda_detail::cusolver_status_string(mousse_st_));         \
  } while (0)
