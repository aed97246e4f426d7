#!/usr/bin/env bash
# Rebuilds the prebuilt native helpers that the build copies and the DiffusersSharp package ships (as linux-x64 native
# runtime assets, runtimes/linux-x64/native/):
#   linux-x64/libdiffusers_mklshim.so    the MKL CPU-detection shim (Runtime/NativeSetup.cs)
#   linux-x64/libdiffusers_kernels.so    our CPU kernels (Runtime/NativeKernels.cs): fused attention
#                                        (flash_attention.c, Runtime/FusedAttention.cs), fused GroupNorm + SiLU
#                                        (group_norm.c, Runtime/FusedGroupNorm.cs), GEGLU (geglu.c,
#                                        Runtime/FusedGeglu.cs) and the Winograd 3×3 convolutions (winograd.c, winograd4.c,
#                                        Runtime/WinogradConvolution.cs), on libtorch's OpenMP team (kernels.c)
#   linux-x64/libdiffusers_scalarguard.so the Scalar guard (scalar_guard.c, Runtime/ScalarGuard.cs); it needs
#                                        libLibTorchSharp.so by name (linked against an empty stand-in of that soname)
# Run on linux-x64 with gcc, then commit both. Nothing else needs a C compiler; .ci/run rebuilds them into a temporary
# folder and fails when the committed files differ (gcc without -g gives the same bytes for the same source).
# Usage: build/native/build-native.sh [OUTPUT_DIR]   (default: build/native/linux-x64)
set -eu
cd "$(dirname "$0")"
out="${1:-linux-x64}"
mkdir -p "$out"
"${CC:-gcc}" -O2 -shared -fPIC -o "$out/libdiffusers_mklshim.so" mkl_shim.c
# -O3 for the vectorised loops; the AVX-512 code is behind target pragmas, so the library loads on any x86-64 CPU
# and dk_supported() says what it can run.
"${CC:-gcc}" -O3 -shared -fPIC -o "$out/libdiffusers_kernels.so" kernels.c flash_attention.c group_norm.c geglu.c winograd.c winograd4.c -lm
stub=$(mktemp -d)
echo > "$stub/empty.c"
"${CC:-gcc}" -O2 -shared -fPIC -Wl,-soname,libLibTorchSharp.so -o "$stub/libLibTorchSharp.so" "$stub/empty.c"
"${CC:-gcc}" -O2 -shared -fPIC -o "$out/libdiffusers_scalarguard.so" scalar_guard.c \
  -Wl,--no-as-needed -L"$stub" -lLibTorchSharp -ldl -lpthread
rm -rf "$stub"
echo "built $(cd "$out" && pwd)/libdiffusers_mklshim.so, libdiffusers_kernels.so, libdiffusers_scalarguard.so"
