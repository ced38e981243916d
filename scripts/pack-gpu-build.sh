#!/usr/bin/env bash
# pack-gpu-build.sh: gather the GPU binaries of a CUDA build and the non-CUDA shared libraries
# they need (OpenBLAS/LAPACKE, gfortran, OpenMP runtime) into one folder, so that a GPU machine
# without our build dependencies can run them: `PREBUILT_DIR=DIR scripts/gpu-check.sh` there.
# The CUDA libraries (cuBLAS, cuSOLVER, NCCL), glibc and the C++ runtime (libstdc++, libgcc_s:
# newer there than here) are taken from the GPU machine.
#
#   scripts/pack-gpu-build.sh BUILD_DIR OUT_DIR [EXECUTABLE...]
#
# Without EXECUTABLEs (paths relative to BUILD_DIR), every GPU binary there is packed (mousse, the
# CUDA benchmarks and tests); with them, only those, each of which must exist.
set -euo pipefail
BUILD=${1:?usage: pack-gpu-build.sh BUILD_DIR OUT_DIR [EXECUTABLE...]}
OUT=${2:?usage: pack-gpu-build.sh BUILD_DIR OUT_DIR [EXECUTABLE...]}
shift 2
for exe in "$@"; do
  [ -f "$BUILD/$exe" ] && [ -x "$BUILD/$exe" ] || { echo "pack-gpu-build: $BUILD/$exe: no such executable" >&2; exit 1; }
done
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib"
[ $# -gt 0 ] || set -- mousse bench-ops-cuda bench-optim-cuda "$BUILD"/tests/gpu/test_cuda_*
for exe in "$@"; do
  exe=${exe#"$BUILD/"}
  if [ -f "$BUILD/$exe" ] && [ -x "$BUILD/$exe" ]; then cp "$BUILD/$exe" "$OUT/bin/"; fi
done
[ -n "$(ls "$OUT/bin")" ] || { echo "pack-gpu-build: no GPU binaries in $BUILD" >&2; exit 1; }
# Every library the binaries load, except glibc's own, the CUDA toolkit's and the driver's.
for exe in "$OUT"/bin/*; do
  ldd "$exe" | awk '$3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libstdc++*|libgcc_s*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libcu*|libnv*|libnccl*) ;;
    *) cp -L "$lib" "$OUT/lib/" ;;
  esac
done
strip --strip-unneeded "$OUT"/bin/* 2>/dev/null || true
du -sh "$OUT"
