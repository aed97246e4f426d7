// A diagnostic LD_PRELOAD shim (not part of any build): logs native allocations of at least MTR_MIN bytes (default
// 1 MB) and their frees, with the thread id and the main heap's top (sbrk(0)) after the call, to MTR_FILE. Lines:
// "A size ptr tid top" and "F ptr tid". A top that grows shows which allocation made the heap grow (docs/BENCHMARKS.md,
// 2026-12-05 (near midnight)).
//   gcc -O2 -shared -fPIC -o /tmp/malloc_trace.so bench/tools/malloc_trace.c -ldl -lpthread
//   LD_PRELOAD=/tmp/malloc_trace.so MTR_FILE=/tmp/trace.txt dotnet <bench dll> e2e-run ...
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/syscall.h>
static void *(*real_malloc)(size_t);
static void (*real_free)(void *);
static int (*real_pm)(void **, size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static FILE *out;
static size_t minsz = 1 << 20;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int inside;
#define NPTR (1 << 18)
static void *ptrs[NPTR];
#define TOMB ((void *)1)
static size_t slot(void *p) { return ((size_t)p >> 6) * 0x9E3779B97F4A7C15ull >> 46; }
static void init(void) {
    if (real_malloc) return;
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_pm = dlsym(RTLD_NEXT, "posix_memalign");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
}
static void openf(void) {
    if (out) return;
    const char *f = getenv("MTR_FILE");
    if (!f) return;
    const char *m = getenv("MTR_MIN");
    if (m) minsz = strtoull(m, 0, 10);
    inside = 1; out = fopen(f, "w"); inside = 0;
}
static void track(void *p, size_t n) {
    if (!p || n < minsz || inside) return;
    openf(); if (!out) return;
    inside = 1;
    pthread_mutex_lock(&mu);
    for (size_t i = slot(p);; i = (i + 1) & (NPTR - 1)) if (!ptrs[i] || ptrs[i] == TOMB) { ptrs[i] = p; break; }
    fprintf(out, "A %zu %p %ld %p\n", n, p, (long)syscall(SYS_gettid), sbrk(0));
    pthread_mutex_unlock(&mu);
    inside = 0;
}
static void untrack(void *p) {
    if (!p || !out || inside) return;
    inside = 1;
    pthread_mutex_lock(&mu);
    for (size_t i = slot(p); ptrs[i]; i = (i + 1) & (NPTR - 1)) if (ptrs[i] == p) { ptrs[i] = TOMB; fprintf(out, "F %p %ld\n", p, (long)syscall(SYS_gettid)); break; }
    pthread_mutex_unlock(&mu);
    inside = 0;
}
void *malloc(size_t n) { init(); void *p = real_malloc(n); track(p, n); return p; }
void free(void *p) { init(); untrack(p); real_free(p); }
int posix_memalign(void **r, size_t a, size_t n) { init(); int rc = real_pm(r, a, n); if (!rc) track(*r, n); return rc; }
void *realloc(void *p, size_t n) { init(); untrack(p); void *q = real_realloc(p, n); track(q, n); return q; }
