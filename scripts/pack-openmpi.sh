#!/usr/bin/env bash
# pack-openmpi.sh: Debian's OpenMPI runtime (mpirun, orted, the libraries and plugins) in one
# folder, for a GPU machine that has none: it lets `mpirun -np 1` run the NCCL path there
# (gpu-check.sh's nccl-* steps). Paths are kept under OUT/usr/..., and OpenMPI is relocated with
# OPAL_PREFIX; the script prints the environment to set after copying OUT to the GPU machine.
#
#   scripts/pack-openmpi.sh OUT_DIR [WHERE_IT_WILL_LIVE]   (default /tmp/ompi)
set -euo pipefail
OUT=${1:?usage: pack-openmpi.sh OUT_DIR [WHERE_IT_WILL_LIVE]}
DEST=${2:-/tmp/ompi}
LIB=/usr/lib/x86_64-linux-gnu
command -v orterun >/dev/null || { echo "pack-openmpi: no OpenMPI here (apt-get install openmpi-bin)" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT/usr/bin" "$OUT$LIB" "$OUT/usr/share"
cp /usr/bin/orterun /usr/bin/orted "$OUT/usr/bin/"
ln -s orterun "$OUT/usr/bin/mpirun"
cp -a "$LIB/openmpi" "$LIB/pmix2" "$OUT$LIB/"
cp -a /usr/share/openmpi "$OUT/usr/share/"
# The shared libraries the launcher, the daemon, libmpi and its plugins load (not glibc's).
{
  ldd /usr/bin/orterun /usr/bin/orted "$LIB/libmpi.so.40"
  find "$LIB/openmpi" "$LIB/pmix2" -name '*.so' -exec ldd {} \; 2>/dev/null
} | awk '$3 ~ /^\// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++*|libgcc_s*) ;;
    *) cp -L "$lib" "$OUT$LIB/" ;;
  esac
done
du -sh "$OUT"
cat <<ENV
On the GPU machine, with OUT copied to $DEST:
  export OPAL_PREFIX=$DEST/usr PMIX_INSTALL_PREFIX=$DEST$LIB/pmix2
  export PATH=$DEST/usr/bin:\$PATH LD_LIBRARY_PATH=$DEST$LIB:\$LD_LIBRARY_PATH
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
ENV
