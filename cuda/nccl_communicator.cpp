// NCCL communicator on device buffers (one GPU per rank), bootstrapped over MPI: rank 0 makes an
// ncclUniqueId and MPI_Bcast sends it to every rank; cudaSetDevice(local_rank) first, so the
// CUDA backend created afterwards (make_cuda_ops uses the current device) runs on that GPU.
//
// Collectives run on the communicator's own stream, asynchronously with respect to the host and
// to the backend's stream: before issuing them the caller calls after_compute(ops), which makes
// this stream wait for an event recorded on the backend's stream (no host synchronisation, so
// the backward pass of the next layer is queued while this layer's gradients are reduced), and
// it calls wait() before using the results. wait() polls
// cudaStreamQuery and ncclCommGetAsyncError; an NCCL error, or no completion within
// MOUSSE_NCCL_TIMEOUT_S seconds (default 600), aborts the NCCL communicator and then the whole
// job (MPI_Abort) with a message naming the rank, instead of hanging.
// Scalar reductions and the barrier go through MPI (host values).
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "cuda_ops.h"
#include "dist/mpi_communicator.h"

namespace mousse {

namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

ncclDataType_t nccl_type(DType dt) {
  switch (dt) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
  }
  fail("NCCL: unsupported dtype");
}

class NcclCommunicator : public Communicator {
 public:
  explicit NcclCommunicator(std::shared_ptr<MpiWorld> w) : w_(std::move(w)) {
    const char* t = std::getenv("MOUSSE_NCCL_TIMEOUT_S");
    if (t && *t) timeout_s_ = std::atof(t);
    // Testing: MOUSSE_NCCL_GROUPED=1 sends even equal parts through the grouped per-part path,
    // so that a one-GPU run (MOUSSE_DISTRIBUTED=1, every part equal) exercises it too.
    const char* g = std::getenv("MOUSSE_NCCL_GROUPED");
    grouped_only_ = g && std::string(g) == "1";
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0)
      w_->abort("rank " + std::to_string(w_->rank) + ": no usable CUDA device for the NCCL "
                "communicator (device 'cuda'); use device 'cpu' for MPI on the host");
    // One GPU per rank: GPU local_rank when this process sees at least one GPU per rank of its
    // node (mpirun; srun --gpus-per-node). When it sees fewer, the launcher has bound GPUs to
    // ranks (srun --gpus-per-task=1 or --gpu-bind, CUDA_VISIBLE_DEVICES per rank): take the
    // first visible one. Should two ranks still end up on one GPU, ncclCommInitRank refuses
    // it ("duplicate GPU") and the job ends with that message.
    device_ = n >= w_->local_size ? w_->local_rank : 0;
    cuda(cudaSetDevice(device_), "cudaSetDevice");
    ncclUniqueId id;
    if (w_->rank == 0) nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    w_->check(MPI_Bcast(&id, int(sizeof id), MPI_BYTE, 0, w_->comm), "MPI_Bcast(ncclUniqueId)");
    ncclComm_t comm = nullptr;
    const ncclResult_t init = ncclCommInitRank(&comm, w_->size, id, w_->rank);
    if (init != ncclSuccess)
      w_->abort(std::string("ncclCommInitRank failed on rank ") + std::to_string(w_->rank) +
                ": " + ncclGetErrorString(init) + " (" + std::to_string(w_->local_size) +
                " ranks on this node see " + std::to_string(n) + " GPU(s); one rank per GPU; " +
                "NCCL_DEBUG=INFO for details)");
    comm_ = comm;
    cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cuda(cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~NcclCommunicator() override {
    if (stream_) cudaStreamSynchronize(stream_);
    if (compute_done_) cudaEventDestroy(compute_done_);
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  int rank() const override { return w_->rank; }
  int world_size() const override { return w_->size; }
  int local_rank() const override { return w_->local_rank; }
  std::string describe() const override {
    int v = 0;
    ncclGetVersion(&v);
    return "nccl " + std::to_string(v) + " (device buffers, GPU " + std::to_string(device_) +
           " of rank " + std::to_string(w_->rank) + "): " + std::to_string(w_->size) +
           " ranks on " + std::to_string(w_->nodes) + (w_->nodes == 1 ? " node" : " nodes");
  }

  double all_reduce_sum(double v) override { return w_->all_reduce(v, MPI_SUM); }
  double all_reduce_max(double v) override { return w_->all_reduce(v, MPI_MAX); }
  // Equal parts (ZeRO-1 slices when W divides the tensor): ncclReduceScatter in place. Otherwise
  // (uneven slices; [0..n..0] for an owned matrix) a reduce of each non-empty part onto its
  // rank, all in one group (one launch), since ncclReduceScatter needs equal parts.
  void reduce_scatter_sum(const Tensor& x, const std::vector<int64_t>& counts) override {
    device_only(x);
    if (const size_t n = equal_parts(x, counts)) {  // ZeRO-1 slices when W divides the tensor
      char* base = static_cast<char*>(x.data);
      nccl(ncclReduceScatter(base, base + size_t(w_->rank) * n * dtype_size(x.dtype), n,
                             nccl_type(x.dtype), ncclSum, comm_, stream_),
           "ncclReduceScatter");  // in place: recvbuff = sendbuff + rank · recvcount
      return;
    }
    for_each_part(x, counts, "ncclReduce", [&](void* part, size_t n, int r) {
      return ncclReduce(part, part, n, nccl_type(x.dtype), ncclSum, r, comm_, stream_);
    });
  }
  // Equal parts: ncclAllGather in place; otherwise each non-empty part broadcast from its rank,
  // grouped (an all-gather with varying parts).
  void all_gather(const Tensor& x, const std::vector<int64_t>& counts) override {
    device_only(x);
    if (const size_t n = equal_parts(x, counts)) {
      char* base = static_cast<char*>(x.data);
      nccl(ncclAllGather(base + size_t(w_->rank) * n * dtype_size(x.dtype), base, n,
                         nccl_type(x.dtype), comm_, stream_),
           "ncclAllGather");  // in place: sendbuff = recvbuff + rank · sendcount
      return;
    }
    for_each_part(x, counts, "ncclBroadcast", [&](void* part, size_t n, int r) {
      return ncclBroadcast(part, part, n, nccl_type(x.dtype), r, comm_, stream_);
    });
  }
  void broadcast(const Tensor& x, int root) override {
    device_only(x);
    cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    nccl(ncclBroadcast(x.data, x.data, size_t(x.numel()), nccl_type(x.dtype), root, comm_,
                       stream_),
         "ncclBroadcast");
    wait();
  }
  void after_compute(Ops& ops) override {
    auto* cuda_ops = dynamic_cast<CudaOps*>(&ops);
    if (!cuda_ops) {  // not the CUDA backend: fall back to a host synchronisation
      ops.synchronize();
      return;
    }
    cuda(cudaEventRecord(compute_done_, cuda_ops->stream()), "cudaEventRecord");
    cuda(cudaStreamWaitEvent(stream_, compute_done_, 0), "cudaStreamWaitEvent");
  }
  // Waits for every collective issued so far, watching for NCCL errors and the timeout.
  void wait() override {
    const double t0 = now_s();
    for (;;) {
      cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) cuda(q, "NCCL stream");
      ncclResult_t async = ncclSuccess;
      const ncclResult_t got = ncclCommGetAsyncError(comm_, &async);
      if (got != ncclSuccess) async = got;
      if (async != ncclSuccess)
        abort(std::string("NCCL asynchronous error: ") + ncclGetErrorString(async) +
              " (a peer rank may have died)");
      if (now_s() - t0 > timeout_s_)
        abort("an NCCL collective did not complete within " + std::to_string(timeout_s_) +
              " s (MOUSSE_NCCL_TIMEOUT_S): a rank is dead or stuck");
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  void barrier() override { w_->barrier(); }
  std::vector<std::string> gather_to_root(const std::string& s) override {
    return w_->gather_to_root(s);
  }
  [[noreturn]] void abort(const std::string& message) override {
    if (comm_) ncclCommAbort(comm_);  // unblocks our pending kernels
    comm_ = nullptr;
    w_->abort(message);
  }

 private:
  // The common part length when every rank has the same non-zero count, else 0. Then NCCL's
  // own reduce-scatter / all-gather apply (they need equal parts); otherwise one grouped
  // reduce / broadcast per part.
  size_t equal_parts(const Tensor& x, const std::vector<int64_t>& counts) const {
    check_counts(x, counts);
    if (grouped_only_) return 0;
    for (int64_t c : counts)
      if (c != counts[0]) return 0;
    return size_t(counts[0]);
  }
  void check_counts(const Tensor& x, const std::vector<int64_t>& counts) const {
    if (int(counts.size()) != w_->size)
      fail("NCCL communicator: ", counts.size(), " counts for ", w_->size, " ranks");
    int64_t total = 0;
    for (int64_t c : counts) total += c;
    if (total != x.numel())
      fail("NCCL communicator: counts sum to ", total, ", tensor has ", x.numel());
  }
  // One grouped NCCL call per non-empty part of x (rank r's part: counts[r] elements in place).
  template <class F>
  void for_each_part(const Tensor& x, const std::vector<int64_t>& counts, const char* what,
                     F&& call) {
    device_only(x);
    check_counts(x, counts);
    const size_t es = dtype_size(x.dtype);
    char* base = static_cast<char*>(x.data);
    int64_t off = 0;
    nccl(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < w_->size; r++) {
      const int64_t n = counts[size_t(r)];
      if (n > 0) nccl(call(base + size_t(off) * es, size_t(n), r), what);
      off += n;
    }
    nccl(ncclGroupEnd(), "ncclGroupEnd");
  }
  static void device_only(const Tensor& x) {
    if (x.device != Device::cuda) fail("the NCCL communicator works on cuda tensors");
  }
  void nccl(ncclResult_t r, const char* what) {
    if (r == ncclSuccess) return;
    abort(std::string(what) + " failed on rank " + std::to_string(w_->rank) + ": " +
          ncclGetErrorString(r) + (r == ncclSystemError || r == ncclRemoteError
                                       ? " (set NCCL_DEBUG=INFO for details)" : ""));
  }
  void cuda(cudaError_t e, const char* what) {
    if (e == cudaSuccess) return;
    abort(std::string(what) + " failed on rank " + std::to_string(w_->rank) + ": " +
          cudaGetErrorString(e));
  }

  std::shared_ptr<MpiWorld> w_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t compute_done_ = nullptr;  // after_compute: the backend's stream reached this point
  int device_ = 0;
  double timeout_s_ = 600.0;
  bool grouped_only_ = false;  // MOUSSE_NCCL_GROUPED=1
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::shared_ptr<MpiWorld> world) {
  return std::make_unique<NcclCommunicator>(std::move(world));
}

}  // namespace mousse
