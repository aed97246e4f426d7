// What the kernels of libdiffusers_kernels.so share (kernels.c): the CPU check and libtorch's OpenMP team.
#ifndef DIFFUSERS_KERNELS_H
#define DIFFUSERS_KERNELS_H
#include <stdint.h>

// libtorch's bundled libgomp (GOMP_parallel, omp_get_thread_num, omp_get_num_threads), handed over by dk_set_openmp;
// NULL until then (the kernels then run serially).
extern void (*dk_omp_parallel)(void (*)(void *), void *, unsigned, unsigned);
extern int (*dk_omp_thread_num)(void);
extern int (*dk_omp_num_threads)(void);

// Runs fn(data) on `threads` threads of that team (each asks dk_share for its part), or once on the calling thread when
// threads <= 1 or no team was handed over.
void dk_run(void (*fn)(void *), void *data, int threads);

// The part [begin, end) of `items` work items that the calling thread of a dk_run does; returns the thread's index in
// the team (0 when serial), below the `threads` given to dk_run.
int dk_share(int64_t items, int64_t *begin, int64_t *end);

#endif
