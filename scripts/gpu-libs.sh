#!/usr/bin/env bash
# gpu-libs.sh: the folders a mousse binary needs in front of LD_LIBRARY_PATH on a GPU machine whose
# loader does not find NCCL (linked when mousse is built with MPI) or cuDNN (bf16 attention opens
# libcudnn.so.9 at run time when it loads): those of the pip wheels PyTorch installs
# (nvidia-nccl, nvidia-cudnn). Prints them joined by ':' (nothing when none is needed); what it
# found goes to stderr. Used by scripts/gpu-check.sh and scripts/replicate-gpu.
#
#   extra=$(scripts/gpu-libs.sh [PYTHON]) && export LD_LIBRARY_PATH=$extra${extra:+:}${LD_LIBRARY_PATH:-}
set -u
PYTHON=${1:-python3}
dirs=()
if ! ldconfig -p 2>/dev/null | grep -q "libnccl.so.2 "; then
  nccl_dir=$("$PYTHON" -c 'import nvidia.nccl as c, os; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null)
  if [ -n "$nccl_dir" ] && [ -f "$nccl_dir/libnccl.so.2" ]; then
    dirs+=("$nccl_dir")
    echo "NCCL: $nccl_dir" >&2
  fi
fi
if ! ldconfig -p 2>/dev/null | grep -q "libcudnn.so.9 "; then
  cudnn_dir=$("$PYTHON" -c 'import nvidia.cudnn as c, os; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null)
  if [ -n "$cudnn_dir" ] && [ -f "$cudnn_dir/libcudnn.so.9" ]; then
    dirs+=("$cudnn_dir")
    echo "cuDNN: $cudnn_dir" >&2
  else
    echo "cuDNN: libcudnn.so.9 not found; bf16 attention runs on Mousse's own kernels" >&2
  fi
fi
(IFS=:; echo "${dirs[*]}")
