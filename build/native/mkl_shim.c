/* Makes libtorch's bundled MKL take its optimised code paths on non-Intel x86-64 CPUs.
   DiffusersSharp dlopens this library with RTLD_NOW | RTLD_GLOBAL before libtorch is loaded, so this
   definition takes precedence over MKL's own CPU-vendor check. Opt out: DIFFUSERS_SHARP_NO_MKL_SHIM=1. */
int mkl_serv_intel_cpu_true(void) { return 1; }
