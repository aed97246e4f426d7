// DiffusersSharp's fused GEGLU for x86-64 CPUs with AVX-512 (fp32) and AVX512-BF16 (bf16): the feed-forward gate of
// the transformer blocks, out = h * gelu(gate) with (h, gate) the two halves of each projected row, in one pass (read
// the row, write the half) where libtorch's gelu and mul take five. GELU is the exact one, 0.5 x (1 + erf(x / sqrt 2)),
// with libtorch's own vectorised erf (Abramowitz and Stegun 7.1.26, |error| <= 1.5e-7) around our exp; in fp32, rounded
// once to the output dtype (libtorch rounds the gelu in bf16 before the product).
//
// Built by build-native.sh into linux-x64/libdiffusers_kernels.so, called by Runtime/FusedGeglu.cs; callers ask
// dk_supported() (kernels.c) first.
#include <stdint.h>
#include "kernels.h"

#define ROWCHUNK 16   // rows of a work item

// rows x 2f values in, row by row in_stride apart (h: the first f, gate: the last f); out rows x f, contiguous.
typedef struct
{
    int64_t rows, f, in_stride;
} dgg_problem;

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")
#include "avx512_math.h"

// erf as libtorch's Vectorized<float>::erf: sign(x) (1 - r(t) t e^(-x^2)), t = 1 / (1 + p |x|)
static inline __m512 erf16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 ax = _mm512_abs_ps(x);
    __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), ax, one));
    __m512 r = _mm512_fmadd_ps(_mm512_set1_ps(1.061405429f), t, _mm512_set1_ps(-1.453152027f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(1.421413741f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-0.284496736f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(0.254829592f));
    __m512 e = exp2_16(_mm512_mul_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(-1.44269504088896341f)), 1);
    __m512 y = _mm512_fnmadd_ps(_mm512_mul_ps(e, t), r, one);
    return _mm512_or_ps(y, _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));   // y >= 0: the sign of x
}

typedef struct
{
    const dgg_problem *pr;
    const void *in;
    void *out;
    int bf16;
} dgg_job;

static void geglu_share(void *data)
{
    const dgg_job *j = data;
    const dgg_problem *pr = j->pr;
    const int64_t F = pr->f;
    int64_t begin, end;
    dk_share((pr->rows + ROWCHUNK - 1) / ROWCHUNK, &begin, &end);
    for (int64_t r = begin * ROWCHUNK; r < end * ROWCHUNK && r < pr->rows; r++)
        for (int64_t i = 0; i < F; i += 16)
        {
            const __mmask16 m = lanes(F - i);
            __m512 h = load16(j->in, r * pr->in_stride + i, m, j->bf16);
            __m512 g = load16(j->in, r * pr->in_stride + F + i, m, j->bf16);
            __m512 gelu = _mm512_mul_ps(_mm512_mul_ps(g, _mm512_set1_ps(0.5f)),
                                        _mm512_add_ps(_mm512_set1_ps(1.0f), erf16(_mm512_mul_ps(g, _mm512_set1_ps(0.70710678118654752f)))));
            __m512 y = _mm512_mul_ps(h, gelu);
            store16(j->out, r * F + i, y, m, j->bf16);
        }
}

// out = h * gelu(gate) for one problem, in and out of one dtype: bf16 (raw 16-bit words) when bf16 != 0, else fp32.
// threads > 1 runs on the OpenMP team given to dk_set_openmp (serially without one). 0 on success, -1 for an
// unsupported problem.
int dgg_geglu(const dgg_problem *pr, const void *in, void *out, int bf16, int threads)
{
    if (pr->rows <= 0 || pr->f <= 0 || pr->in_stride < 2 * pr->f) return -1;
    dgg_job j = {pr, in, out, bf16 != 0};
    dk_run(geglu_share, &j, pr->rows <= ROWCHUNK ? 1 : threads);
    return 0;
}

#pragma GCC pop_options
