// libdiffusers_kernels.so's shared part: the CPU check and the OpenMP team its kernels run on (Runtime/NativeKernels.cs
// loads the library, asks dk_supported() and hands over libtorch's runtime with dk_set_openmp()). This file is compiled
// for plain x86-64, so the library loads on any CPU; the kernels' AVX-512 code is behind target pragmas.
#include "kernels.h"
#include <stddef.h>

void (*dk_omp_parallel)(void (*)(void *), void *, unsigned, unsigned);
int (*dk_omp_thread_num)(void);
int (*dk_omp_num_threads)(void);

// Returns 1 when this CPU has what the fp32 kernels need (AVX-512 F, BW, DQ, VL) and 2 when it also has AVX512-BF16;
// else 0.
int dk_supported(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512dq")
        || !__builtin_cpu_supports("avx512vl"))
        return 0;
    return __builtin_cpu_supports("avx512bf16") ? 2 : 1;
}

// Hands over an OpenMP runtime's GOMP_parallel, omp_get_thread_num and omp_get_num_threads (libtorch's, found by the
// caller), so the kernels' threads are libtorch's own team: with threads of their own, libtorch's workers, still
// spinning after the previous op, took the cores from them. NULLs make the calls serial.
void dk_set_openmp(void *parallel, void *thread_num, void *num_threads)
{
    dk_omp_thread_num = (int (*)(void))thread_num;
    dk_omp_num_threads = (int (*)(void))num_threads;
    dk_omp_parallel = parallel && thread_num && num_threads
                          ? (void (*)(void (*)(void *), void *, unsigned, unsigned))parallel
                          : NULL;
}

void dk_run(void (*fn)(void *), void *data, int threads)
{
    if (threads <= 1 || dk_omp_parallel == NULL) fn(data);
    else dk_omp_parallel(fn, data, (unsigned)threads, 0);
}

int dk_share(int64_t items, int64_t *begin, int64_t *end)
{
    int64_t t = 0, n = 1;
    if (dk_omp_parallel != NULL && dk_omp_num_threads() > 1)
    {
        t = dk_omp_thread_num();
        n = dk_omp_num_threads();
    }
    *begin = items * t / n;
    *end = items * (t + 1) / n;
    return (int)t;
}
