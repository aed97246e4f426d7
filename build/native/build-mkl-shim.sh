#!/usr/bin/env bash
# Rebuilds the prebuilt MKL CPU-detection shim that the build copies and the DiffusersSharp package ships
# (runtimes/linux-x64/native/libdiffusers_mklshim.so). Run on linux-x64 with any C compiler, then commit
# build/native/linux-x64/libdiffusers_mklshim.so. Nothing else needs a C compiler.
set -eu
cd "$(dirname "$0")"
"${CC:-cc}" -O2 -shared -fPIC -o linux-x64/libdiffusers_mklshim.so mkl_shim.c
echo "built $(pwd)/linux-x64/libdiffusers_mklshim.so"
