// DiffusersSharp's Winograd convolution F(2x2, 3x3) for x86-64 CPUs with AVX-512 (fp32) and AVX512-BF16 (bf16): a 3x3
// convolution of stride 1 and padding 1 as 16 matrix products of 2.25x fewer multiply-adds than the direct one, between
// three transforms done here (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//   weights  U = G g G^T     per (output, input) channel pair: 3x3 -> 4x4          (dwg_weights)
//   inputs   V = B^T d B     per 4x4 input tile (tiles 2 apart, the padding read as 0) (dwg_input)
//   products M[k] = U[k] V[k] for the 16 positions k of a tile, over channels        (libtorch's bmm, by the caller)
//   outputs  Y = A^T M A     per tile: its 2x2 outputs, plus the bias                 (dwg_output)
// The transforms compute in fp32; bf16 tensors (raw 16-bit words) are read as fp32 and their results rounded once to
// bf16 (to nearest even, as torch). B^T and A^T hold only 0 and +-1, G halves: fp32 rounding of the transforms is of the
// order of the products' own.
//
// Two layouts of the products' operands, chosen by the caller for the activations' layout:
//   planes (channels_last = 0; NCHW activations, unit W stride): V [16][Cin][T], U [16][Cout][Cin], M [16][Cout][T]
//     (M = U V); vectorised over 16 tiles of a tile row (even and odd columns split with permutes).
//   rows   (channels_last = 1; NHWC activations, unit C stride): V [16][T][Cin], M [16][T][Cout] (M = V U^T, U as
//     above); vectorised over 16 channels.
// With upsample set, the convolution's input is the nearest-neighbour x2 upsampling of the (h / 2, w / 2) input given
// (diffusers' Upsample2D: interpolate, then the 3x3 convolution), read through the index map y -> y / 2, never built.
// The 16 planes of U, V and M lie a multiple of 4 KB apart for the usual sizes, so they share L1 sets: the bf16 transforms
// of the rows layout write and read them in whole 64-byte lines where they can (32 channels at a time), and tiles with
// no padding take unmasked, unrolled loads; that made the input transform 2-3x and the kernel transform ~2x as fast.
// fp32 kernels in NCHW ([O, I, 3, 3] contiguous) are read 16 input channels at a time as a 16 x 9 block transposed in
// registers (gathering each tap was 40% of that transform), and an fp32 U beyond the caches is written with streaming
// stores (no read of each line first): SD's 1280 x 1280 kernel, one thread, 15.8 -> 9.4 ms.
// T counts the tiles of the tile rows [g0, g1) that one call does, a tile row g being row g % th of image g / th, so the
// caller can run a large convolution in bands whose V and M stay small.
//
// Built by build-native.sh into linux-x64/libdiffusers_kernels.so, called by Runtime/WinogradConvolution.cs; callers ask
// dk_supported() (kernels.c) first.
#include "kernels.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")
#include "avx512_math.h"
#include "winograd.h"

// ---- weights: U[k][o][i] = (G g G^T)[k], g = the 3x3 kernel of output o, input i; G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]

// G x for one column (or row) x = (x0, x1, x2) of 16 kernels: (x0, (x0 + x1 + x2) / 2, (x0 - x1 + x2) / 2, x2)
static inline void g_times(__m512 x0, __m512 x1, __m512 x2, __m512 y[4])
{
    const __m512 half = _mm512_set1_ps(0.5f), even = _mm512_add_ps(x0, x2);
    y[0] = x0;
    y[1] = _mm512_mul_ps(half, _mm512_add_ps(even, x1));
    y[2] = _mm512_mul_ps(half, _mm512_sub_ps(even, x1));
    y[3] = x2;
}

// U of 16 kernels (input channels [i0, i0 + 16) of output o) from their 3x3 values g, into u[16] (index 4 r + c).
static inline void weights_tile(__m512 g[3][3], __m512 u[16])
{
    __m512 a[4][3];
    for (int c = 0; c < 3; c++)   // G g: each column
    {
        __m512 col[4];
        g_times(g[0][c], g[1][c], g[2][c], col);
        for (int r = 0; r < 4; r++) a[r][c] = col[r];
    }
    for (int r = 0; r < 4; r++)   // (G g) G^T: each row
        g_times(a[r][0], a[r][1], a[r][2], u + 4 * r);
}

static void weights_share(void *data)
{
    const dwg_job *j = data;
    const dwg_problem *pr = j->pr;
    const int64_t O = pr->cout, I = pr->cin, plane = O * I;
    int64_t begin, end;
    dk_share(O, &begin, &end);
    const int stream = stream_u(pr, j->dst, 16);
    for (int64_t o = begin; o < end; o++)
    {
        int64_t i0 = 0;
        // bf16 kernels with adjacent input channels, 32 at a time: both halves rounded together (vcvtne2ps2bf16), so
        // each of the 16 planes of U (O * I apart, sharing L1 sets) gets whole 64-byte lines (see input_rows_tile32)
        if (pr->ws_i == 1 && pr->bf16)
            for (; i0 + 32 <= I; i0 += 32)
            {
                __m512 g[3][3], u0[16], u1[16];
                for (int h = 0; h < 2; h++)
                {
                    for (int r = 0; r < 3; r++)
                        for (int c = 0; c < 3; c++)
                            g[r][c] = load16_full(j->src, o * pr->ws_o + (i0 + 16 * h) + r * pr->ws_h + c * pr->ws_w, 1);
                    weights_tile(g, h ? u1 : u0);
                }
                for (int k = 0; k < 16; k++) store32_bf16(j->dst, k * plane + o * I + i0, u0[k], u1[k]);
            }
        for (; i0 < I; i0 += 16)
        {
            const __mmask16 m = lanes(I - i0);
            __m512 g[3][3], u[16];
            kernels16(pr, j->src, o, i0, m, g);
            weights_tile(g, u);
            store_u(j->dst, 16, plane, o * I + i0, u, m, pr->bf16, stream);
        }
    }
    if (stream) _mm_sfence();   // the streamed lines in memory before the products read them
}

// ---- inputs

// B^T d B for 16 tiles at once, d[r][c] the 4x4 tile's values (vectors over tiles or channels); the result in v[16]
// (index 4 r + c).
static inline void input_tile(__m512 d[4][4], __m512 v[16])
{
    __m512 t[4][4];
    for (int r = 0; r < 4; r++)
    {
        t[r][0] = _mm512_sub_ps(d[r][0], d[r][2]);
        t[r][1] = _mm512_add_ps(d[r][1], d[r][2]);
        t[r][2] = _mm512_sub_ps(d[r][2], d[r][1]);
        t[r][3] = _mm512_sub_ps(d[r][1], d[r][3]);
    }
    for (int c = 0; c < 4; c++)
    {
        v[0 + c] = _mm512_sub_ps(t[0][c], t[2][c]);
        v[4 + c] = _mm512_add_ps(t[1][c], t[2][c]);
        v[8 + c] = _mm512_sub_ps(t[2][c], t[1][c]);
        v[12 + c] = _mm512_sub_ps(t[1][c], t[3][c]);
    }
}

// planes: work items (input channel, tile row); 16 tiles of the row per vector, their columns split even / odd
static void input_planes_share(void *data)
{
    const dwg_job *j = data;
    const dwg_problem *pr = j->pr;
    const int64_t tw = pr->w / 2, th = pr->h / 2, rows = j->g1 - j->g0, T = rows * tw, I = pr->cin;
    const __m512i even = even_index(), odd = odd_index();
    int64_t begin, end;
    dk_share(I * rows, &begin, &end);
    for (int64_t item = begin; item < end; item++)
    {
        const int64_t c = item / rows, g = j->g0 + item % rows, n = g / th, ty = g % th;
        for (int64_t tx0 = 0; tx0 < tw; tx0 += 16)
        {
            __m512 d[4][4], v[16];
            const int64_t s = 2 * tx0 - 1;
            for (int r = 0; r < 4; r++)
            {
                const int64_t y = 2 * ty - 1 + r;
                if (y < 0 || y >= pr->h)
                {
                    d[r][0] = d[r][1] = d[r][2] = d[r][3] = _mm512_setzero_ps();
                    continue;
                }
                if (pr->upsample)
                {
                    // input columns 2t-1, 2t, 2t+1, 2t+2 of tile t are the small input's t-1, t, t, t+1
                    const int64_t base = n * pr->xs_n + c * pr->xs_c + (y >> 1) * pr->xs_h, sw = pr->w / 2;
                    d[r][0] = load16(j->src, base + tx0 - 1, cols(tx0 - 1, sw), pr->bf16);
                    d[r][1] = d[r][2] = load16(j->src, base + tx0, cols(tx0, sw), pr->bf16);
                    d[r][3] = load16(j->src, base + tx0 + 1, cols(tx0 + 1, sw), pr->bf16);
                    continue;
                }
                const int64_t base = n * pr->xs_n + c * pr->xs_c + y * pr->xs_h;
                __m512 a = load16(j->src, base + s, cols(s, pr->w), pr->bf16);
                __m512 b = load16(j->src, base + s + 16, cols(s + 16, pr->w), pr->bf16);
                __m512 e = load16(j->src, base + s + 2, cols(s + 2, pr->w), pr->bf16);
                __m512 f = load16(j->src, base + s + 18, cols(s + 18, pr->w), pr->bf16);
                d[r][0] = _mm512_permutex2var_ps(a, even, b);
                d[r][1] = _mm512_permutex2var_ps(a, odd, b);
                d[r][2] = _mm512_permutex2var_ps(e, even, f);
                d[r][3] = _mm512_permutex2var_ps(e, odd, f);
            }
            input_tile(d, v);
            const __mmask16 m = lanes(tw - tx0);
            const int64_t t = (g - j->g0) * tw + tx0;
            for (int k = 0; k < 16; k++) store16(j->dst, (k * I + c) * T + t, v[k], m, pr->bf16);
        }
    }
}

// One tile's 16 channels [c0, c0 + 16) from the input offsets of its 16 positions (off[k] < 0: padding, read as 0);
// full: all 16 channels exist and no position is padding, so the loads need no masks or tests and the unrolled tile
// stays in registers (with the tests inside the loop, gcc kept the tile in stack memory: the transform then took ~2x).
static inline __attribute__((always_inline)) void input_rows_tile(const void *restrict src, void *restrict dst,
                                                                   const int64_t *off, int64_t c0, int64_t at,
                                                                   int64_t kstride, int64_t I, int full, int bf16)
{
    const __mmask16 m = lanes(I - c0);
    __m512 d[4][4], v[16];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++)
            d[r][q] = full ? load16_full(src, off[4 * r + q] + c0, bf16)
                           : (off[4 * r + q] < 0 ? _mm512_setzero_ps() : load16(src, off[4 * r + q] + c0, m, bf16));
    input_tile(d, v);
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++)
    {
        if (full) store16_full(dst, at + k * kstride, v[k], bf16);
        else store16(dst, at + k * kstride, v[k], m, bf16);
    }
}

// bf16, 32 channels [c0, c0 + 32) of a tile with no padding: the two halves' transforms are rounded together
// (vcvtne2ps2bf16), so each of the 16 planes gets one whole 64-byte line. The planes lie T * I elements apart, a
// multiple of 4 KB for the usual sizes, so they share L1 sets; written 32 bytes at a time, a line was evicted between
// its two halves and fetched again (the input transform took 2x as long).
static inline __attribute__((always_inline)) void input_rows_tile32(const void *restrict src, void *restrict dst,
                                                                     const int64_t *off, int64_t c0, int64_t at,
                                                                     int64_t kstride)
{
    __m512 d[4][4], v0[16], v1[16];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) d[r][q] = load16_full(src, off[4 * r + q] + c0, 1);
    input_tile(d, v0);
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) d[r][q] = load16_full(src, off[4 * r + q] + c0 + 16, 1);
    input_tile(d, v1);
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++) store32_bf16(dst, at + k * kstride, v0[k], v1[k]);
}

// rows: work items tiles; 16 channels per vector
static inline __attribute__((always_inline)) void input_rows_dtype(const dwg_job *j, int bf16)
{
    const dwg_problem *pr = j->pr;
    const int64_t tw = pr->w / 2, th = pr->h / 2, T = (j->g1 - j->g0) * tw, I = pr->cin;
    int64_t begin, end;
    dk_share(T, &begin, &end);
    for (int64_t t = begin; t < end; t++)
    {
        int64_t off[16];
        const int inside = tile_offsets(pr, th, j->g0 + t / tw, t % tw, 2, off);
        const void *src = j->src;
        void *dst = j->dst;
        int64_t c0 = 0;
        if (inside && bf16)
            for (; c0 + 32 <= I; c0 += 32) input_rows_tile32(src, dst, off, c0, t * I + c0, T * I);
        if (inside)
            for (; c0 + 16 <= I; c0 += 16) input_rows_tile(src, dst, off, c0, t * I + c0, T * I, I, 1, bf16);
        for (; c0 < I; c0 += 16) input_rows_tile(src, dst, off, c0, t * I + c0, T * I, I, 0, bf16);
    }
}

static void input_rows_share(void *data)
{
    const dwg_job *j = data;
    if (j->pr->bf16) input_rows_dtype(j, 1);
    else input_rows_dtype(j, 0);
}

// ---- outputs: A^T M A, A^T = [1 1 1 0; 0 1 -1 -1]; y[a][b] the tile's output at row a, column b

static inline void output_tile(__m512 m[16], __m512 y[2][2])
{
    __m512 s0[4], s1[4];
    for (int r = 0; r < 4; r++)
    {
        s0[r] = _mm512_add_ps(_mm512_add_ps(m[4 * r], m[4 * r + 1]), m[4 * r + 2]);
        s1[r] = _mm512_sub_ps(_mm512_sub_ps(m[4 * r + 1], m[4 * r + 2]), m[4 * r + 3]);
    }
    y[0][0] = _mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]);
    y[0][1] = _mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]);
    y[1][0] = _mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]);
    y[1][1] = _mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]);
}

static void output_planes_share(void *data)
{
    const dwg_job *j = data;
    const dwg_problem *pr = j->pr;
    const int64_t tw = pr->w / 2, th = pr->h / 2, rows = j->g1 - j->g0, T = rows * tw, O = pr->cout;
    const __m512i lo = interleave_lo(), hi = interleave_hi();
    int64_t begin, end;
    dk_share(O * rows, &begin, &end);
    for (int64_t item = begin; item < end; item++)
    {
        const int64_t o = item / rows, g = j->g0 + item % rows, n = g / th, ty = g % th;
        const __m512 bias = _mm512_set1_ps(j->bias ? load1(j->bias, o, pr->bf16) : 0.0f);
        for (int64_t tx0 = 0; tx0 < tw; tx0 += 16)
        {
            const __mmask16 m = lanes(tw - tx0);
            const int64_t t = (g - j->g0) * tw + tx0;
            __m512 v[16], y[2][2];
            for (int k = 0; k < 16; k++) v[k] = load16(j->src, (k * O + o) * T + t, m, pr->bf16);
            output_tile(v, y);
            for (int a = 0; a < 2; a++)
            {
                const int64_t base = n * pr->ys_n + o * pr->ys_c + (2 * ty + a) * pr->ys_h + 2 * tx0;
                __m512 first = _mm512_add_ps(_mm512_permutex2var_ps(y[a][0], lo, y[a][1]), bias);
                __m512 second = _mm512_add_ps(_mm512_permutex2var_ps(y[a][0], hi, y[a][1]), bias);
                store16(j->dst, base, first, lanes(pr->w - 2 * tx0), pr->bf16);
                store16(j->dst, base + 16, second, lanes(pr->w - 2 * tx0 - 16), pr->bf16);
            }
        }
    }
}

// One tile's 16 output channels [o0, o0 + 16) (full: all 16 exist, so no masks).
static inline __attribute__((always_inline)) void output_rows_tile(const dwg_job *j, int64_t o0, int64_t t, int64_t T,
                                                                    int64_t O, int64_t out, int full, int bf16)
{
    const dwg_problem *pr = j->pr;
    const __mmask16 m = lanes(O - o0);
    const __m512 bias = j->bias ? (full ? load16_full(j->bias, o0, bf16) : load16(j->bias, o0, m, bf16)) : _mm512_setzero_ps();
    __m512 v[16], y[2][2];
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++)
        v[k] = full ? load16_full(j->src, (k * T + t) * O + o0, bf16) : load16(j->src, (k * T + t) * O + o0, m, bf16);
    output_tile(v, y);
#pragma GCC unroll 2
    for (int a = 0; a < 2; a++)
#pragma GCC unroll 2
        for (int b = 0; b < 2; b++)
        {
            const int64_t at = out + a * pr->ys_h + b * pr->ys_w + o0;
            if (full) store16_full(j->dst, at, _mm512_add_ps(y[a][b], bias), bf16);
            else store16(j->dst, at, _mm512_add_ps(y[a][b], bias), m, bf16);
        }
}

static inline __attribute__((always_inline)) void output_rows_dtype(const dwg_job *j, int bf16)
{
    const dwg_problem *pr = j->pr;
    const int64_t tw = pr->w / 2, th = pr->h / 2, T = (j->g1 - j->g0) * tw, O = pr->cout;
    int64_t begin, end;
    dk_share(T, &begin, &end);
    for (int64_t t = begin; t < end; t++)
    {
        const int64_t out = tile_output(pr, th, j->g0 + t / tw, t % tw, 2);
        int64_t o0 = 0;
        for (; o0 + 16 <= O; o0 += 16) output_rows_tile(j, o0, t, T, O, out, 1, bf16);
        for (; o0 < O; o0 += 16) output_rows_tile(j, o0, t, T, O, out, 0, bf16);
    }
}

static void output_rows_share(void *data)
{
    const dwg_job *j = data;
    if (j->pr->bf16) output_rows_dtype(j, 1);
    else output_rows_dtype(j, 0);
}

#pragma GCC pop_options

static int valid(const dwg_problem *pr)
{
    const int64_t t = pr->tile;
    return (t == 2 || (t == 4 && !pr->bf16)) && pr->batch > 0 && pr->cin > 0 && pr->cout > 0 && pr->h >= t && pr->w >= t
           && pr->h % t == 0 && pr->w % t == 0;
}

static int valid_rows(const dwg_problem *pr, int64_t g0, int64_t g1)
{
    return valid(pr) && g0 >= 0 && g0 < g1 && g1 <= pr->batch * (pr->h / pr->tile);
}

// U [P][Cout][Cin] (P = (tile + 2)^2 planes) from the weight [Cout, Cin, 3, 3] (any strides). 0 on success, -1 for an
// unsupported problem.
int dwg_weights(const dwg_problem *pr, const void *weight, void *u, int threads)
{
    if (!valid(pr)) return -1;
    dwg_job j = {pr, weight, u, 0, 0, 0};
    dk_run(pr->tile == 4 ? wg4_weights_share : weights_share, &j, pr->cout < 2 ? 1 : threads);
    return 0;
}

// V of the tile rows [g0, g1) from the input (planes: unit W stride; rows: unit C stride; upsampled when asked). 0 on
// success, -1 for an unsupported problem.
int dwg_input(const dwg_problem *pr, const void *x, void *v, int64_t g0, int64_t g1, int threads)
{
    if (!valid_rows(pr, g0, g1) || (pr->channels_last ? pr->xs_c != 1 : pr->xs_w != 1)) return -1;
    dwg_job j = {pr, x, v, 0, g0, g1};
    dk_run(pr->tile == 4 ? wg4_input_share : pr->channels_last ? input_rows_share : input_planes_share, &j, threads);
    return 0;
}

// The outputs of the tile rows [g0, g1) from their M, plus the bias (Cout values, or NULL), into y (planes: unit W
// stride; rows: unit C stride). 0 on success, -1 for an unsupported problem.
int dwg_output(const dwg_problem *pr, const void *m, const void *bias, void *y, int64_t g0, int64_t g1, int threads)
{
    if (!valid_rows(pr, g0, g1) || (pr->channels_last ? pr->ys_c != 1 : pr->ys_w != 1)) return -1;
    dwg_job j = {pr, m, y, bias, g0, g1};
    dk_run(pr->tile == 4 ? wg4_output_share : pr->channels_last ? output_rows_share : output_planes_share, &j, threads);
    return 0;
}
