// DiffusersSharp's Winograd convolution F(4x4, 3x3), fp32, for x86-64 CPUs with AVX-512: the work functions behind
// winograd.c's entry points (dwg_weights, dwg_input, dwg_output) for problems with tile = 4. The same three transforms
// as F(2x2, 3x3), on 6x6 input tiles 4 apart that give 4x4 outputs, and 36 matrix products of 4x fewer multiply-adds
// than the direct convolution (F(2x2, 3x3): 2.25x):
//   weights  U = G g G^T     per (output, input) channel pair: 3x3 -> 6x6
//   inputs   V = B^T d B     per 6x6 input tile (the padding read as 0)
//   outputs  Y = A^T M A     per tile: its 4x4 outputs, plus the bias
// Interpolation points 0, -1, 1, 1/2, -2 and infinity, where the usual 0, +-1, +-2 give more rounding: in a simulation
// over 640 channels, fp32, rms error 3.2e-6 (max 2.0e-5) of unit-variance outputs against 4.8e-6 (5.3e-5) with +-2 and
// 1.4e-6 (9.9e-6) for the direct convolution summed in order (F(2x2, 3x3): 7.7e-7, 3.4e-6), after Barabasz et al.,
// "Error Analysis and Improving the Accuracy of Winograd Convolution for Deep Neural Networks" (2020). The fractions
// sit in G (the kernel transform); B^T and A^T hold halves, quarters and eighths only, exact in fp32. fp32 only: with
// bf16 operands the error would be ~3% of a convolution's output (a simulation; F(2x2, 3x3): 0.5%).
//
// The layouts are F(2x2, 3x3)'s (winograd.c) with 36 planes: planes (NCHW) V [36][Cin][T], U [36][Cout][Cin],
// M [36][Cout][T], vectorised over 16 tiles of a tile row; rows (NHWC) V [36][T][Cin], M [36][T][Cout], vectorised over
// 16 channels. h and w are multiples of 4.
#include "kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")
#include "avx512_math.h"
#include "winograd.h"

// The transforms (rows of B^T, G and A^T). Constant tables: the compiler folds the zero and +-1 coefficients of
// apply() away.
static const float BT[6][6] = {
    {1.0f, -1.5f, -2.0f, 1.5f, 1.0f, 0.0f},
    {0.0f, 1.0f, -2.5f, 0.5f, 1.0f, 0.0f},
    {0.0f, -1.0f, 0.5f, 2.5f, 1.0f, 0.0f},
    {0.0f, -2.0f, -1.0f, 2.0f, 1.0f, 0.0f},
    {0.0f, 0.5f, -1.0f, -0.5f, 1.0f, 0.0f},
    {0.0f, 1.0f, -1.5f, -2.0f, 1.5f, 1.0f},
};
static const float G[6][3] = {
    {1.0f, 0.0f, 0.0f},
    {-1.0f / 3, 1.0f / 3, -1.0f / 3},
    {1.0f / 3, 1.0f / 3, 1.0f / 3},
    {-16.0f / 15, -8.0f / 15, -4.0f / 15},
    {1.0f / 15, -2.0f / 15, 4.0f / 15},
    {0.0f, 0.0f, 1.0f},
};
static const float AT[4][6] = {
    {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f},
    {0.0f, -1.0f, 1.0f, 0.5f, -2.0f, 0.0f},
    {0.0f, 1.0f, 1.0f, 0.25f, 4.0f, 0.0f},
    {0.0f, -1.0f, 1.0f, 0.125f, -8.0f, 1.0f},
};

// sum_k row[k] x[k * stride] over k < n, a row of one of the tables above: zero coefficients skipped, +-1 as an add
// or a subtraction, others as a multiply-add.
static inline __attribute__((always_inline)) __m512 apply(const float *row, int n, const __m512 *x, int stride)
{
    __m512 s = _mm512_setzero_ps();
    int any = 0;
#pragma GCC unroll 6
    for (int k = 0; k < n; k++)
    {
        const float c = row[k];
        const __m512 v = x[k * stride];
        if (c == 0.0f) continue;
        if (!any) s = c == 1.0f ? v : _mm512_mul_ps(_mm512_set1_ps(c), v);
        else if (c == 1.0f) s = _mm512_add_ps(s, v);
        else if (c == -1.0f) s = _mm512_sub_ps(s, v);
        else s = _mm512_fmadd_ps(_mm512_set1_ps(c), v, s);
        any = 1;
    }
    return s;
}

// B^T d B of 16 tiles (or channels): d[6 r + q] the tile's values, the result in v[6 i + j].
static inline __attribute__((always_inline)) void input_tile4(const __m512 d[36], __m512 v[36])
{
    __m512 t[36];   // t[6 r + j] = (d B)[r][j]: each row
#pragma GCC unroll 6
    for (int r = 0; r < 6; r++)
#pragma GCC unroll 6
        for (int j = 0; j < 6; j++) t[6 * r + j] = apply(BT[j], 6, d + 6 * r, 1);
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++)   // B^T (d B): each column
#pragma GCC unroll 6
        for (int j = 0; j < 6; j++) v[6 * i + j] = apply(BT[i], 6, t + j, 6);
}

// A^T M A: m[6 r + q] the tile's products, y[4 a + b] its outputs.
static inline __attribute__((always_inline)) void output_tile4(const __m512 m[36], __m512 y[16])
{
    __m512 s[24];   // s[4 r + b] = (M A)[r][b]
#pragma GCC unroll 6
    for (int r = 0; r < 6; r++)
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) s[4 * r + b] = apply(AT[b], 6, m + 6 * r, 1);
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++)
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) y[4 * a + b] = apply(AT[a], 6, s + b, 4);
}

// ---- weights: U[k][o][i] = (G g G^T)[k]

void wg4_weights_share(void *data)
{
    const dwg_job *j = data;
    const dwg_problem *pr = j->pr;
    const int64_t O = pr->cout, I = pr->cin, plane = O * I;
    int64_t begin, end;
    dk_share(O, &begin, &end);
    const int stream = stream_u(pr, j->dst, 36);
    for (int64_t o = begin; o < end; o++)
        for (int64_t i0 = 0; i0 < I; i0 += 16)
        {
            const __mmask16 m = lanes(I - i0);
            __m512 g[3][3], a[18], u[36];
            kernels16(pr, j->src, o, i0, m, g);
#pragma GCC unroll 6
            for (int i = 0; i < 6; i++)   // G g: each column
#pragma GCC unroll 3
                for (int c = 0; c < 3; c++) a[3 * i + c] = apply(G[i], 3, &g[0][c], 3);
#pragma GCC unroll 6
            for (int i = 0; i < 6; i++)   // (G g) G^T: each row
#pragma GCC unroll 6
                for (int k = 0; k < 6; k++) u[6 * i + k] = apply(G[k], 3, a + 3 * i, 1);
            store_u(j->dst, 36, plane, o * I + i0, u, m, 0, stream);
        }
    if (stream) _mm_sfence();   // the streamed lines in memory before the products read them
}

// ---- inputs

// planes: work items (input channel, tile row); 16 tiles of the row per vector
static void input_planes4(const dwg_job *j)
{
    const dwg_problem *pr = j->pr;
    const int64_t tw = pr->w / 4, th = pr->h / 4, rows = j->g1 - j->g0, T = rows * tw, I = pr->cin;
    // column q of tile t (t < 8) at element 4 t + q of a pair of vectors; tiles 8-15 from the next pair
    const __m512i by4 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
    const __m512i even = even_index(), odd = odd_index();
    int64_t begin, end;
    dk_share(I * rows, &begin, &end);
    for (int64_t item = begin; item < end; item++)
    {
        const int64_t c = item / rows, g = j->g0 + item % rows, n = g / th, ty = g % th;
        for (int64_t tx0 = 0; tx0 < tw; tx0 += 16)
        {
            __m512 d[36], v[36];
            for (int r = 0; r < 6; r++)
            {
                __m512 *row = d + 6 * r;
                const int64_t y = 4 * ty - 1 + r;
                if (y < 0 || y >= pr->h)
                {
                    for (int q = 0; q < 6; q++) row[q] = _mm512_setzero_ps();
                    continue;
                }
                if (pr->upsample)
                {
                    // input columns 4t-1 .. 4t+4 of tile t are the small input's 2t-1, 2t, 2t, 2t+1, 2t+1, 2t+2
                    const int64_t base = n * pr->xs_n + c * pr->xs_c + (y >> 1) * pr->xs_h, sw = pr->w / 2, s = 2 * tx0 - 1;
                    const __m512 a = load16(j->src, base + s, cols(s, sw), 0);
                    const __m512 b = load16(j->src, base + s + 16, cols(s + 16, sw), 0);
                    const __m512 e = load16(j->src, base + s + 2, cols(s + 2, sw), 0);
                    const __m512 f = load16(j->src, base + s + 18, cols(s + 18, sw), 0);
                    row[0] = _mm512_permutex2var_ps(a, even, b);
                    row[1] = row[2] = _mm512_permutex2var_ps(a, odd, b);
                    row[3] = row[4] = _mm512_permutex2var_ps(e, even, f);
                    row[5] = _mm512_permutex2var_ps(e, odd, f);
                    continue;
                }
                const int64_t base = n * pr->xs_n + c * pr->xs_c + y * pr->xs_h, s = 4 * tx0 - 1;
                __m512 x[8];   // columns s .. s + 63, then s + 4 .. s + 67
                for (int k = 0; k < 8; k++)
                {
                    const int64_t at = s + 4 * (k >> 2) + 16 * (k & 3);
                    x[k] = load16(j->src, base + at, cols(at, pr->w), 0);
                }
                for (int q = 0; q < 6; q++)
                {
                    const __m512 *p = x + (q >= 4 ? 4 : 0);
                    const __m512i idx = _mm512_add_epi32(by4, _mm512_set1_epi32(q & 3));
                    row[q] = _mm512_mask_mov_ps(_mm512_permutex2var_ps(p[0], idx, p[1]), 0xFF00,
                                                _mm512_permutex2var_ps(p[2], idx, p[3]));
                }
            }
            input_tile4(d, v);
            const __mmask16 m = lanes(tw - tx0);
            const int64_t t = (g - j->g0) * tw + tx0;
            for (int k = 0; k < 36; k++) store16(j->dst, (k * I + c) * T + t, v[k], m, 0);
        }
    }
}

// One tile's 16 channels [c0, c0 + 16) from the input offsets of its 36 positions (off[k] < 0: padding, read as 0);
// full: all 16 channels exist and no position is padding, so the loads need no masks or tests.
static inline __attribute__((always_inline)) void input_rows4_tile(const float *restrict src, float *restrict dst,
                                                                    const int64_t *off, int64_t c0, int64_t at,
                                                                    int64_t kstride, int64_t I, int full)
{
    const __mmask16 m = lanes(I - c0);
    __m512 d[36], v[36];
#pragma GCC unroll 36
    for (int k = 0; k < 36; k++)
        d[k] = full ? _mm512_loadu_ps(src + off[k] + c0)
                    : (off[k] < 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, src + off[k] + c0));
    input_tile4(d, v);
#pragma GCC unroll 36
    for (int k = 0; k < 36; k++)
    {
        if (full) _mm512_storeu_ps(dst + at + k * kstride, v[k]);
        else _mm512_mask_storeu_ps(dst + at + k * kstride, m, v[k]);
    }
}

// rows: work items tiles; 16 channels per vector
static void input_rows4(const dwg_job *j)
{
    const dwg_problem *pr = j->pr;
    const int64_t tw = pr->w / 4, th = pr->h / 4, T = (j->g1 - j->g0) * tw, I = pr->cin;
    int64_t begin, end;
    dk_share(T, &begin, &end);
    for (int64_t t = begin; t < end; t++)
    {
        int64_t off[36];
        const int inside = tile_offsets(pr, th, j->g0 + t / tw, t % tw, 4, off);
        int64_t c0 = 0;
        if (inside)
            for (; c0 + 16 <= I; c0 += 16) input_rows4_tile(j->src, j->dst, off, c0, t * I + c0, T * I, I, 1);
        for (; c0 < I; c0 += 16) input_rows4_tile(j->src, j->dst, off, c0, t * I + c0, T * I, I, 0);
    }
}

void wg4_input_share(void *data)
{
    const dwg_job *j = data;
    if (j->pr->channels_last) input_rows4(j);
    else input_planes4(j);
}

// ---- outputs

static void output_planes4(const dwg_job *j)
{
    const dwg_problem *pr = j->pr;
    const int64_t tw = pr->w / 4, th = pr->h / 4, rows = j->g1 - j->g0, T = rows * tw, O = pr->cout;
    // 4 vectors over 16 tiles (a row's 4 columns b of each tile) interleaved into 64 adjacent outputs: pairs (b, b + 1)
    // of tiles 0-7 and 8-15, then the pairs' pairs as 64-bit elements
    const __m512i lo = interleave_lo(), hi = interleave_hi();
    const __m512i first = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), second = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    int64_t begin, end;
    dk_share(O * rows, &begin, &end);
    for (int64_t item = begin; item < end; item++)
    {
        const int64_t o = item / rows, g = j->g0 + item % rows, n = g / th, ty = g % th;
        const __m512 bias = _mm512_set1_ps(j->bias ? ((const float *)j->bias)[o] : 0.0f);
        for (int64_t tx0 = 0; tx0 < tw; tx0 += 16)
        {
            const __mmask16 m = lanes(tw - tx0);
            const int64_t t = (g - j->g0) * tw + tx0;
            __m512 v[36], y[16];
            for (int k = 0; k < 36; k++) v[k] = load16(j->src, (k * O + o) * T + t, m, 0);
            output_tile4(v, y);
            for (int a = 0; a < 4; a++)
            {
                const __m512 *ya = y + 4 * a;
                const __m512d p01[2] = {_mm512_castps_pd(_mm512_permutex2var_ps(ya[0], lo, ya[1])),
                                        _mm512_castps_pd(_mm512_permutex2var_ps(ya[0], hi, ya[1]))};
                const __m512d p23[2] = {_mm512_castps_pd(_mm512_permutex2var_ps(ya[2], lo, ya[3])),
                                        _mm512_castps_pd(_mm512_permutex2var_ps(ya[2], hi, ya[3]))};
                const int64_t base = n * pr->ys_n + o * pr->ys_c + (4 * ty + a) * pr->ys_h + 4 * tx0;
                for (int q = 0; q < 4; q++)
                {
                    const __m512 out = _mm512_castpd_ps(_mm512_permutex2var_pd(p01[q >> 1], q & 1 ? second : first, p23[q >> 1]));
                    store16(j->dst, base + 16 * q, _mm512_add_ps(out, bias), lanes(pr->w - 4 * tx0 - 16 * q), 0);
                }
            }
        }
    }
}

// One tile's 16 output channels [o0, o0 + 16) (full: all 16 exist, so no masks).
static inline __attribute__((always_inline)) void output_rows4_tile(const dwg_job *j, int64_t o0, int64_t t, int64_t T,
                                                                     int64_t O, int64_t out, int full)
{
    const dwg_problem *pr = j->pr;
    const float *restrict src = j->src;
    float *restrict dst = j->dst;
    const __mmask16 m = lanes(O - o0);
    const __m512 bias = j->bias ? (full ? _mm512_loadu_ps((const float *)j->bias + o0) : _mm512_maskz_loadu_ps(m, (const float *)j->bias + o0))
                                : _mm512_setzero_ps();
    __m512 v[36], y[16];
#pragma GCC unroll 36
    for (int k = 0; k < 36; k++)
        v[k] = full ? _mm512_loadu_ps(src + (k * T + t) * O + o0) : _mm512_maskz_loadu_ps(m, src + (k * T + t) * O + o0);
    output_tile4(v, y);
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++)
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++)
        {
            float *at = dst + out + a * pr->ys_h + b * pr->ys_w + o0;
            if (full) _mm512_storeu_ps(at, _mm512_add_ps(y[4 * a + b], bias));
            else _mm512_mask_storeu_ps(at, m, _mm512_add_ps(y[4 * a + b], bias));
        }
}

static void output_rows4(const dwg_job *j)
{
    const dwg_problem *pr = j->pr;
    const int64_t tw = pr->w / 4, th = pr->h / 4, T = (j->g1 - j->g0) * tw, O = pr->cout;
    int64_t begin, end;
    dk_share(T, &begin, &end);
    for (int64_t t = begin; t < end; t++)
    {
        const int64_t out = tile_output(pr, th, j->g0 + t / tw, t % tw, 4);
        int64_t o0 = 0;
        for (; o0 + 16 <= O; o0 += 16) output_rows4_tile(j, o0, t, T, O, out, 1);
        for (; o0 < O; o0 += 16) output_rows4_tile(j, o0, t, T, O, out, 0);
    }
}

void wg4_output_share(void *data)
{
    const dwg_job *j = data;
    if (j->pr->channels_last) output_rows4(j);
    else output_planes4(j);
}

#pragma GCC pop_options
