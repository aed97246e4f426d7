/* The Scalar guard: keeps a TorchSharp Scalar's native object alive until the thread that made it is past the
   native call that reads it.

   Why. TorchSharp 0.107 turns a .NET number into a Scalar for many ops (the alpha = 1 of every a + b, the factor of
   a * 0.5) and passes only its handle to libtorch, so the managed Scalar is garbage as soon as the handle is read.
   Scalar has a finalizer. When another thread's allocation triggers a garbage collection while the op runs, the
   finalizer thread can call THSTorch_dispose_scalar on it, and libtorch then reads freed memory (seen as
   "Expected false to be true ... toFloat" from at::add).

   How. DiffusersSharp's import resolver hands TorchSharp this library for "LibTorchSharp" (Runtime/ScalarGuard.cs).
   It needs libLibTorchSharp.so, so every other entry point resolves to TorchSharp's own library; only these are
   ours:
   - the THSTorch_*_to_scalar functions call the real ones and record which thread made the Scalar;
   - THSTorch_dispose_scalar frees at once when the thread that made the Scalar calls it (a using / Dispose on that
     thread) or when that thread is gone or unknown; a call from any other thread (the finalizer) puts the Scalar on
     its maker's list instead, and the maker frees its list at its next Scalar, i.e. between two of its native calls
     (TorchSharp reads a Scalar's handle only right before the call that uses it), or when it exits.
   Opt out: DIFFUSERS_SHARP_NO_SCALAR_GUARD=1 (Runtime/ScalarGuard.cs then does not load this library). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct pending_node
{
    void *scalar;
    struct pending_node *next;
} pending_node;

/* One per thread that made a Scalar; never freed (a thread's maker record may still be in the table after it ends). */
typedef struct maker
{
    _Atomic(pending_node *) pending; /* pushed by compare and swap, taken whole by atomic exchange */
    bool alive;                      /* under the lock */
} maker;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static __thread maker *me;

/* Open addressing, linear probing, deletion by backward shift: Scalar pointer -> maker. Under the lock. */
typedef struct slot
{
    void *scalar;
    maker *owner;
} slot;
static slot *table;
static size_t capacity, used;

static atomic_long deferred_now, deferred_total;

static void (*real_dispose)(void *);
static void *(*real_uint8)(unsigned char);
static void *(*real_int8)(signed char);
static void *(*real_int16)(short);
static void *(*real_int32)(int);
static void *(*real_int64)(long);
static void *(*real_float32)(float);
static void *(*real_float64)(double);
static void *(*real_complex32)(float, float);
static void *(*real_complex64)(double, double);
static void *(*real_bool)(bool);
static void *(*real_float16)(float);
static void *(*real_bfloat16)(float);
static int ready;

static size_t hash_of(void *p, size_t mask)
{
    uint64_t x = (uint64_t)(uintptr_t)p >> 4;
    return (size_t)(x * 0x9E3779B97F4A7C15ull >> 17) & mask;
}

static void insert_locked(void *scalar, maker *owner);

static int grow_locked(void)
{
    size_t old_capacity = capacity;
    slot *old = table;
    size_t new_capacity = old_capacity ? old_capacity * 2 : 1024;
    slot *fresh = calloc(new_capacity, sizeof(slot));
    if (!fresh) return 0;
    table = fresh;
    capacity = new_capacity;
    used = 0;
    for (size_t i = 0; i < old_capacity; i++)
        if (old[i].scalar) insert_locked(old[i].scalar, old[i].owner);
    free(old);
    return 1;
}

static void insert_locked(void *scalar, maker *owner)
{
    if ((used + 1) * 4 > capacity * 3 && !grow_locked()) return; /* out of memory: left untracked (freed at once later) */
    size_t mask = capacity - 1, i = hash_of(scalar, mask);
    while (table[i].scalar && table[i].scalar != scalar) i = (i + 1) & mask;
    if (!table[i].scalar) used++;
    table[i].scalar = scalar;
    table[i].owner = owner;
}

static maker *remove_locked(void *scalar)
{
    if (!capacity) return NULL;
    size_t mask = capacity - 1, i = hash_of(scalar, mask);
    while (table[i].scalar && table[i].scalar != scalar) i = (i + 1) & mask;
    if (!table[i].scalar) return NULL;
    maker *owner = table[i].owner;
    /* backward-shift deletion keeps every probe chain unbroken */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; table[j].scalar; j = (j + 1) & mask)
    {
        size_t home = hash_of(table[j].scalar, mask);
        bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable)
        {
            table[hole] = table[j];
            hole = j;
        }
    }
    table[hole].scalar = NULL;
    table[hole].owner = NULL;
    used--;
    return owner;
}

static void free_list(pending_node *node)
{
    while (node)
    {
        pending_node *next = node->next;
        real_dispose(node->scalar);
        free(node);
        atomic_fetch_sub(&deferred_now, 1);
        node = next;
    }
}

static void on_thread_exit(void *arg)
{
    maker *m = arg;
    pthread_mutex_lock(&lock);
    m->alive = false;
    pending_node *list = atomic_exchange(&m->pending, NULL);
    pthread_mutex_unlock(&lock);
    free_list(list);
}

/* Records a new Scalar as this thread's, after freeing what the finalizer left for this thread. */
static void *track(void *scalar)
{
    if (!scalar) return scalar;
    maker *m = me;
    if (!m)
    {
        m = calloc(1, sizeof(maker));
        if (!m) return scalar; /* untracked: freed at once whoever disposes it, as without the guard */
        m->alive = true;
        me = m;
        pthread_setspecific(exit_key, m);
    }
    else if (atomic_load_explicit(&m->pending, memory_order_relaxed))
    {
        free_list(atomic_exchange(&m->pending, NULL));
    }
    pthread_mutex_lock(&lock);
    insert_locked(scalar, m);
    pthread_mutex_unlock(&lock);
    return scalar;
}

void THSTorch_dispose_scalar(void *scalar)
{
    if (!scalar) return;
    pthread_mutex_lock(&lock);
    maker *owner = remove_locked(scalar);
    if (owner && owner != me && owner->alive)
    {
        pending_node *node = malloc(sizeof(pending_node));
        if (node)
        {
            node->scalar = scalar;
            /* a push the maker may race with its take-all (atomic_exchange, outside the lock): compare and swap */
            pending_node *head = atomic_load(&owner->pending);
            do node->next = head;
            while (!atomic_compare_exchange_weak(&owner->pending, &head, node));
            atomic_fetch_add(&deferred_now, 1);
            atomic_fetch_add(&deferred_total, 1);
            pthread_mutex_unlock(&lock);
            return;
        }
    }
    pthread_mutex_unlock(&lock);
    real_dispose(scalar);
}

void *THSTorch_uint8_to_scalar(unsigned char v) { return track(real_uint8(v)); }
void *THSTorch_int8_to_scalar(signed char v) { return track(real_int8(v)); }
void *THSTorch_int16_to_scalar(short v) { return track(real_int16(v)); }
void *THSTorch_int32_to_scalar(int v) { return track(real_int32(v)); }
void *THSTorch_int64_to_scalar(long v) { return track(real_int64(v)); }
void *THSTorch_float32_to_scalar(float v) { return track(real_float32(v)); }
void *THSTorch_float64_to_scalar(double v) { return track(real_float64(v)); }
void *THSTorch_complex32_to_scalar(float re, float im) { return track(real_complex32(re, im)); }
void *THSTorch_complex64_to_scalar(double re, double im) { return track(real_complex64(re, im)); }
void *THSTorch_bool_to_scalar(bool v) { return track(real_bool(v)); }
void *THSTorch_float16_to_scalar(float v) { return track(real_float16(v)); }
void *THSTorch_bfloat16_to_scalar(float v) { return track(real_bfloat16(v)); }

/* 1 when every real entry point was found in the libLibTorchSharp.so already in the process; the loader checks it
   before handing this library to TorchSharp. */
int dsg_ready(void) { return ready; }

/* For the tests: Scalars waiting on their maker now, ever deferred, and tracked (made and not yet disposed). */
void dsg_stats(long *waiting, long *ever_deferred, long *tracked)
{
    pthread_mutex_lock(&lock);
    *tracked = (long)used;
    pthread_mutex_unlock(&lock);
    *waiting = atomic_load(&deferred_now);
    *ever_deferred = atomic_load(&deferred_total);
}

#define RESOLVE(var, name)                                  \
    do                                                      \
    {                                                       \
        *(void **)(&var) = dlsym(lib, name);                \
        if (!var) return;                                   \
    } while (0)

__attribute__((constructor)) static void init(void)
{
    /* only the copy TorchSharp already loaded: never load one */
    void *lib = dlopen("libLibTorchSharp.so", RTLD_NOW | RTLD_NOLOAD);
    if (!lib) return;
    RESOLVE(real_dispose, "THSTorch_dispose_scalar");
    RESOLVE(real_uint8, "THSTorch_uint8_to_scalar");
    RESOLVE(real_int8, "THSTorch_int8_to_scalar");
    RESOLVE(real_int16, "THSTorch_int16_to_scalar");
    RESOLVE(real_int32, "THSTorch_int32_to_scalar");
    RESOLVE(real_int64, "THSTorch_int64_to_scalar");
    RESOLVE(real_float32, "THSTorch_float32_to_scalar");
    RESOLVE(real_float64, "THSTorch_float64_to_scalar");
    RESOLVE(real_complex32, "THSTorch_complex32_to_scalar");
    RESOLVE(real_complex64, "THSTorch_complex64_to_scalar");
    RESOLVE(real_bool, "THSTorch_bool_to_scalar");
    RESOLVE(real_float16, "THSTorch_float16_to_scalar");
    RESOLVE(real_bfloat16, "THSTorch_bfloat16_to_scalar");
    if (pthread_key_create(&exit_key, on_thread_exit) != 0) return;
    ready = 1;
}
