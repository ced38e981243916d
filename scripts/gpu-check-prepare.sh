#!/usr/bin/env bash
# gpu-check-prepare.sh: makes, on a machine without a GPU, everything the one-call GPU check
# needs, so that a GPU machine without our build dependencies spends its minutes measuring:
#   1. builds the CUDA + MPI binaries (sm_90: H100/H200) and the GPU tests;
#   2. packs them with the libraries they load (scripts/pack-gpu-build.sh), a relocatable
#      OpenMPI (scripts/pack-openmpi.sh) for the NCCL steps, the tinyshakespeare shards those
#      steps train on, and an env.sh that sets the paths, into one archive, gpu-pack/pack.tar.xz
#      (git-ignored; to carry to the GPU machine);
#   3. runs scripts/gpu-check.sh here on the unpacked archive as a dry run: every GPU step must
#      report itself skipped with its reason (no GPU here) and nothing may fail;
#   4. prints the command to run on the GPU machine.
#
#   scripts/gpu-check-prepare.sh [BUILD_DIR]      (default build; a CUDA + MPI configure of it)
#
# Environment: MOUSSE_CUDA_ARCH (90), MOUSSE_SHARED_DATA (../shared/data: tinyshakespeare/),
# PACK_DIR (gpu-pack), PACK_LIMIT_MIB (56: what may travel with the working tree, 64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-build}
ARCH=${MOUSSE_CUDA_ARCH:-90}
SHARED=${MOUSSE_SHARED_DATA:-$ROOT/../shared/data}
PACK=${PACK_DIR:-gpu-pack}
LIMIT_MIB=${PACK_LIMIT_MIB:-56}
# Where the archive is unpacked on the GPU machine (also the dry run's place here): OpenMPI is
# relocated to this path.
DEST=/tmp/mousse-gpu

command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
  { echo "gpu-check-prepare: no nvcc (the CUDA toolkit) here: the GPU binaries cannot be built" >&2; exit 1; }
[ -f "$SHARED/tinyshakespeare/tiny_shakespeare_train.bin" ] ||
  { echo "gpu-check-prepare: no $SHARED/tinyshakespeare/tiny_shakespeare_train.bin (set MOUSSE_SHARED_DATA)" >&2; exit 1; }

echo "== 1. build ($BUILD, CUDA sm_$ARCH + MPI)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMOUSSE_CUDA=ON -DMOUSSE_MPI=ON \
  -DMOUSSE_CUDA_ARCH="$ARCH" >/dev/null
cmake --build "$BUILD" -j "${MOUSSE_JOBS:-$(nproc)}" --target mousse test_cuda_ops test_cuda_train \
  test_cuda_optim test_cuda_kernels_edge bench-ops-cuda bench-optim-cuda
ldd "$BUILD/mousse" | grep -q libmpi ||
  { echo "gpu-check-prepare: $BUILD/mousse does not link MPI (the NCCL steps need it)" >&2; exit 1; }

echo "== 2. pack into $PACK/pack.tar.xz"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
bash scripts/pack-gpu-build.sh "$BUILD" "$STAGE/prebuilt" >/dev/null
bash scripts/pack-openmpi.sh "$STAGE/ompi" "$DEST/ompi" >/dev/null
mkdir -p "$STAGE/data/tinyshakespeare"
cp "$SHARED"/tinyshakespeare/tiny_shakespeare_{train,val}.bin "$STAGE/data/tinyshakespeare/"
LIB=/usr/lib/x86_64-linux-gnu
cat >"$STAGE/env.sh" <<ENV
# Sourced on the GPU machine after unpacking into $DEST: the packed OpenMPI and data.
export OPAL_PREFIX=$DEST/ompi/usr PMIX_INSTALL_PREFIX=$DEST/ompi$LIB/pmix2
export PATH=$DEST/ompi/usr/bin:\$PATH LD_LIBRARY_PATH=$DEST/ompi$LIB:\${LD_LIBRARY_PATH:-}
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export PREBUILT_DIR=$DEST/prebuilt DIST_DATA=$DEST/data/tinyshakespeare
ENV
git rev-parse HEAD >"$STAGE/commit" 2>/dev/null || echo unknown >"$STAGE/commit"
mkdir -p "$PACK"
tar cJf "$PACK/pack.tar.xz.tmp" -C "$STAGE" .
mv "$PACK/pack.tar.xz.tmp" "$PACK/pack.tar.xz"
size_mib=$(( ($(stat -c %s "$PACK/pack.tar.xz") + 1048575) / 1048576 ))
echo "$PACK/pack.tar.xz: $size_mib MiB (commit $(cat "$STAGE/commit"))"
if [ "$size_mib" -gt "$LIMIT_MIB" ]; then
  echo "gpu-check-prepare: the archive is over $LIMIT_MIB MiB: it would not travel with the working tree" >&2
  exit 1
fi

echo "== 3. dry run here (no GPU: every GPU step must be skipped, none may fail)"
rm -rf "$DEST" && mkdir -p "$DEST" && tar xJf "$PACK/pack.tar.xz" -C "$DEST"
DRY=$(mktemp -d)
if ! ( . "$DEST/env.sh" && bash scripts/gpu-check-dry-run.sh "$DEST/prebuilt" "$DRY" ); then
  echo "gpu-check-prepare: the dry run failed (its files: $DRY)" >&2
  exit 1
fi
rm -rf "$DEST" "$DRY"

cat <<EOF
== 4. ready. On the GPU machine (the device tool: carry ["$PACK"], timeout_s 480), from the
   repository root:
mkdir -p $DEST && tar xJf $PACK/pack.tar.xz -C $DEST && . $DEST/env.sh && LOGS_DIR=/tmp/gpu-logs RESULTS_DIR=\$OUT PYTHON=python3 bash scripts/gpu-check.sh
EOF
