// DiffusersSharp's fused GroupNorm for x86-64 CPUs with AVX-512 (fp32) and AVX512-BF16 (bf16):
//   y = act(groupnorm(x + add)),  act = SiLU or none,  add = an optional per-(sample, channel) term
// in two passes over x (the statistics, then the normalisation), where libtorch's ops take seven for a ResNet block's
// `h + temb`, `norm2` and `silu` (the add, the norm's two and the activation's, each a read and most a write).
// x and y are (N, C, H, W) contiguous or channels-last ((N, H, W, C) in memory); the statistics are fp32 sums over
// 64 pixels (channels-last) or 1024 values (NCHW) added into double, the mean and variance of each group computed in
// double; y = silu(x * a + b) with per-(sample, channel) a = rstd * gamma, b = beta - mean * a (+ add * a), in fp32,
// rounded once to the output dtype (libtorch rounds after each op in bf16).
//
// Built by build-native.sh into linux-x64/libdiffusers_kernels.so, called by Runtime/FusedGroupNorm.cs; callers ask
// dk_supported() (kernels.c) first.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "kernels.h"

#define PCHUNK 64     // pixels of a channels-last work item
#define RUNF 1024     // values summed in fp32 before they are added into double (NCHW)
#define CB 8          // 16-channel vectors a channels-last statistics pass sums at once

// One GroupNorm: sizes, the layout and the add's batch stride (elements; 0: one row for every sample).
typedef struct
{
    int64_t n, c, hw, groups;
    int64_t channels_last;
    int64_t add_stride;
    float eps;
    int32_t silu;
} dgn_problem;

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")
#include "avx512_math.h"

// silu(v) = v / (1 + e^-v), e^-v = 2^(-v log2 e) (degree 5: 1.1e-7); e^-v = +inf below v = -88 gives -0, as libtorch's.
// (vrcp14ps and a Newton step on e^-|v| in place of the division was 20% slower here.)
static inline __m512 silu16(__m512 v)
{
    __m512 e = exp2_16(_mm512_mul_ps(v, _mm512_set1_ps(-1.44269504088896341f)), 1);
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

typedef struct
{
    const dgn_problem *pr;
    const void *x, *add;
    void *y;
    int bf16;
    int64_t items, chunks;   // work items: N * chunks (channels-last: chunks of PCHUNK pixels) or N * C rows
    double *stats;           // [thread][n][c][2]: sum, sum of squares of x + add
    const float *a, *b;      // [n][c]
} dgn_job;

// The channels-last sums of CB vectors of channels over `rows` pixels from element `first` (rows C apart); full: all CB
// vectors whole, so the loads need no masks (m is then not read).
static inline __attribute__((always_inline)) void stats_rows(const void *restrict x, int64_t first, int64_t rows, int64_t C,
                                                              const __m512 *add, const __mmask16 *m, __m512 *s1, __m512 *s2,
                                                              int full, int bf16)
{
    for (int64_t p = 0; p < rows; p++)
    {
        const int64_t row = first + p * C;
#pragma GCC unroll 8
        for (int v = 0; v < CB; v++)
        {
            __m512 h = _mm512_add_ps(full ? load16_full(x, row + 16 * v, bf16) : load16(x, row + 16 * v, m[v], bf16), add[v]);
            s1[v] = _mm512_add_ps(s1[v], h);
            s2[v] = _mm512_fmadd_ps(h, h, s2[v]);
        }
    }
}

static void stats_share(void *data)
{
    const dgn_job *j = data;
    const dgn_problem *pr = j->pr;
    const int64_t C = pr->c, HW = pr->hw;
    int64_t begin, end;
    const int t = dk_share(j->items, &begin, &end);
    double *st = j->stats + (int64_t)t * pr->n * C * 2;
    for (int64_t item = begin; item < end; item++)
    {
        if (pr->channels_last)
        {
            // pixel by pixel over CB vectors of channels at a time (each pixel's row read in order, the sums in registers)
            const int64_t ni = item / j->chunks, p0 = item % j->chunks * PCHUNK, p1 = p0 + PCHUNK < HW ? p0 + PCHUNK : HW;
            for (int64_t c0 = 0; c0 < C; c0 += 16 * CB)
            {
                __mmask16 m[CB];
                __m512 add[CB], s1[CB], s2[CB];
#pragma GCC unroll 8
                for (int v = 0; v < CB; v++)
                {
                    m[v] = lanes(C - c0 - 16 * v);
                    add[v] = j->add ? load16(j->add, ni * pr->add_stride + c0 + 16 * v, m[v], j->bf16) : _mm512_setzero_ps();
                    s1[v] = s2[v] = _mm512_setzero_ps();
                }
                const int64_t first = (ni * HW + p0) * C + c0;
                if (c0 + 16 * CB <= C)   // all CB vectors whole: unmasked loads (bf16 a constant in each copy)
                {
                    if (j->bf16) stats_rows(j->x, first, p1 - p0, C, add, m, s1, s2, 1, 1);
                    else stats_rows(j->x, first, p1 - p0, C, add, m, s1, s2, 1, 0);
                }
                else stats_rows(j->x, first, p1 - p0, C, add, m, s1, s2, 0, j->bf16);
                float f1[16 * CB], f2[16 * CB];
#pragma GCC unroll 8
                for (int v = 0; v < CB; v++)
                {
                    _mm512_storeu_ps(f1 + 16 * v, s1[v]);
                    _mm512_storeu_ps(f2 + 16 * v, s2[v]);
                }
                for (int k = 0; k < 16 * CB && c0 + k < C; k++)
                {
                    st[(ni * C + c0 + k) * 2] += f1[k];
                    st[(ni * C + c0 + k) * 2 + 1] += f2[k];
                }
            }
        }
        else
        {
            const int64_t ni = item / C, c = item % C;
            const __m512 add = _mm512_set1_ps(j->add ? load1(j->add, ni * pr->add_stride + c, j->bf16) : 0.0f);
            const int64_t row = item * HW;
            double d1 = 0, d2 = 0;
            for (int64_t r0 = 0; r0 < HW; r0 += RUNF)
            {
                const int64_t r1 = r0 + RUNF < HW ? r0 + RUNF : HW;
                __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps();
                for (int64_t i = r0; i < r1; i += 16)
                {
                    const __mmask16 m = lanes(r1 - i);
                    __m512 v = _mm512_maskz_add_ps(m, load16(j->x, row + i, m, j->bf16), add);
                    s1 = _mm512_add_ps(s1, v);
                    s2 = _mm512_fmadd_ps(v, v, s2);
                }
                d1 += _mm512_reduce_add_ps(s1);
                d2 += _mm512_reduce_add_ps(s2);
            }
            st[item * 2] += d1;
            st[item * 2 + 1] += d2;
        }
    }
}

// Channels-last rows [first, first + rows * C) of one sample: y = act(x * a + b) per channel, the pointers held in
// locals (the stores cannot then alias the job's fields, which gcc otherwise read again after each store) and whole
// 16-channel vectors loaded without masks.
static inline __attribute__((always_inline)) void normalize_rows(const void *restrict x, void *restrict y,
                                                                  const float *restrict a, const float *restrict b,
                                                                  int64_t first, int64_t rows, int64_t C, int silu,
                                                                  int bf16)
{
    const int64_t full = C / 16 * 16;
    for (int64_t p = 0; p < rows; p++)
    {
        const int64_t row = first + p * C;
        for (int64_t c = 0; c < full; c += 16)
        {
            __m512 v = _mm512_fmadd_ps(load16_full(x, row + c, bf16), _mm512_loadu_ps(a + c), _mm512_loadu_ps(b + c));
            store16_full(y, row + c, silu ? silu16(v) : v, bf16);
        }
        if (full < C)
        {
            const __mmask16 m = lanes(C - full);
            __m512 v = _mm512_fmadd_ps(load16(x, row + full, m, bf16), _mm512_maskz_loadu_ps(m, a + full), _mm512_maskz_loadu_ps(m, b + full));
            store16(y, row + full, silu ? silu16(v) : v, m, bf16);
        }
    }
}

static void normalize_share(void *data)
{
    const dgn_job *j = data;
    const dgn_problem *pr = j->pr;
    const int64_t C = pr->c, HW = pr->hw;
    int64_t begin, end;
    dk_share(j->items, &begin, &end);
    for (int64_t item = begin; item < end; item++)
    {
        if (pr->channels_last)
        {
            const int64_t ni = item / j->chunks, p0 = item % j->chunks * PCHUNK, p1 = p0 + PCHUNK < HW ? p0 + PCHUNK : HW;
            if (j->bf16) normalize_rows(j->x, j->y, j->a + ni * C, j->b + ni * C, (ni * HW + p0) * C, p1 - p0, C, pr->silu, 1);
            else normalize_rows(j->x, j->y, j->a + ni * C, j->b + ni * C, (ni * HW + p0) * C, p1 - p0, C, pr->silu, 0);
        }
        else
        {
            const __m512 a = _mm512_set1_ps(j->a[item]), b = _mm512_set1_ps(j->b[item]);
            const int64_t row = item * HW;
            for (int64_t i = 0; i < HW; i += 16)
            {
                const __mmask16 m = lanes(HW - i);
                __m512 v = _mm512_fmadd_ps(load16(j->x, row + i, m, j->bf16), a, b);
                store16(j->y, row + i, pr->silu ? silu16(v) : v, m, j->bf16);
            }
        }
    }
}

// y = act(groupnorm(x + add)) for one problem; x, add (null: none; else (N or 1, C) rows add_stride apart), gamma and
// beta (null: 1 and 0; else C values) and y of one dtype: bf16 (raw 16-bit words) when bf16 != 0, else fp32. threads >
// 1 runs on the OpenMP team given to dk_set_openmp (serially without one). 0 on success, -1 for an unsupported problem,
// -2 when out of memory.
int dgn_group_norm(const dgn_problem *pr, const void *x, const void *add, const void *gamma, const void *beta, void *y,
                   int bf16, int threads)
{
    const int64_t N = pr->n, C = pr->c, HW = pr->hw, G = pr->groups;
    if (N <= 0 || C <= 0 || HW <= 0 || G <= 0 || C % G != 0 || !(pr->eps >= 0)) return -1;
    if (threads < 1) threads = 1;
    const int64_t chunks = (HW + PCHUNK - 1) / PCHUNK;
    dgn_job j = {pr, x, add, y, bf16 != 0, pr->channels_last ? N * chunks : N * C, chunks, NULL, NULL, NULL};
    double *stats = calloc((size_t)threads * (size_t)(N * C * 2), sizeof(double));
    float *a = malloc(sizeof(float) * (size_t)(N * C)), *b = malloc(sizeof(float) * (size_t)(N * C));
    if (!stats || !a || !b)
    {
        free(stats); free(a); free(b);
        return -2;
    }
    j.stats = stats;
    dk_run(stats_share, &j, j.items <= 1 ? 1 : threads);
    const int64_t cg = C / G;
    const double count = (double)cg * (double)HW;
    for (int64_t ni = 0; ni < N; ni++)
        for (int64_t g = 0; g < G; g++)
        {
            double s1 = 0, s2 = 0;
            for (int t = 0; t < threads; t++)
                for (int64_t c = g * cg; c < (g + 1) * cg; c++)
                {
                    s1 += stats[((int64_t)t * N * C + ni * C + c) * 2];
                    s2 += stats[((int64_t)t * N * C + ni * C + c) * 2 + 1];
                }
            const double mean = s1 / count;
            double var = s2 / count - mean * mean;
            if (var < 0) var = 0;
            const double rstd = 1.0 / sqrt(var + (double)pr->eps);
            for (int64_t c = g * cg; c < (g + 1) * cg; c++)
            {
                const double ac = rstd * (gamma ? load1(gamma, c, bf16) : 1.0f);
                double bc = (beta ? load1(beta, c, bf16) : 0.0f) - mean * ac;
                if (add) bc += load1(add, ni * pr->add_stride + c, bf16) * ac;
                a[ni * C + c] = (float)ac;
                b[ni * C + c] = (float)bc;
            }
        }
    j.a = a;
    j.b = b;
    dk_run(normalize_share, &j, j.items <= 1 ? 1 : threads);
    free(stats); free(a); free(b);
    return 0;
}

#pragma GCC pop_options
