// What the two Winograd convolutions share: F(2x2, 3x3) (winograd.c, fp32 and bf16) and F(4x4, 3x3) (winograd4.c, fp32).
// The problem and job structures, the dispatch from winograd.c's entry points to winograd4.c's work functions, and the
// AVX-512 helpers both use. Include it after avx512_math.h, inside the region compiled for AVX-512 (#pragma GCC target).
#ifndef DIFFUSERS_WINOGRAD_H
#define DIFFUSERS_WINOGRAD_H
#include <stdint.h>
#include "kernels.h"

typedef struct
{
    int64_t batch, cin, cout, h, w;   // h and w multiples of tile: the output has the input's size
    int64_t xs_n, xs_c, xs_h, xs_w;   // input strides (elements)
    int64_t ys_n, ys_c, ys_h, ys_w;   // output strides
    int64_t ws_o, ws_i, ws_h, ws_w;   // weight strides ([Cout, Cin, 3, 3])
    int32_t channels_last;            // the operands' layout (see winograd.c)
    int32_t bf16;                     // all tensors bf16 (else fp32)
    int32_t upsample;                 // the input is (h / 2, w / 2), read upsampled x2 by nearest neighbour
    int32_t tile;                     // the output tile's edge: 2, F(2x2, 3x3) (16 planes); 4, F(4x4, 3x3) (36 planes, fp32)
} dwg_problem;

typedef struct
{
    const dwg_problem *pr;
    const void *src;
    void *dst;
    const void *bias;
    int64_t g0, g1;   // tile rows [g0, g1): a tile row g is row g % (h / tile) of image g / (h / tile)
} dwg_job;

// winograd4.c's work functions (dk_run jobs), F(4x4, 3x3), fp32.
void wg4_weights_share(void *job);
void wg4_input_share(void *job);
void wg4_output_share(void *job);

// permutex2var indexes over a pair of vectors (a, b): the even and the odd elements of a then b (columns of tiles 2 apart),
// and a's and b's first (lo) or last (hi) 8 lanes interleaved (a0 b0 a1 b1 ...).
static inline __m512i even_index(void) { return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30); }
static inline __m512i odd_index(void) { return _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31); }
static inline __m512i interleave_lo(void) { return _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23); }
static inline __m512i interleave_hi(void) { return _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31); }

// The lanes l of a 16-wide load starting at column q that fall in [0, w).
static inline __mmask16 cols(int64_t q, int64_t w)
{
    int64_t lo = q < 0 ? -q : 0, hi = w - q < 16 ? w - q : 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// The 16 x 16 matrix of rows r[0..15] transposed in place (r[c] becomes column c): 64 shuffles.
static inline void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++)
    {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++)
    {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
        {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
        }
    for (int j = 0; j < 8; j++)
    {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    }
}

// The 3x3 kernels of output o and input channels [i0, i0 + 16) (the lanes of m), as g[r][c] vectors over those input
// channels, fp32 or bf16 (read as fp32): loaded where the input channels are adjacent (channels-last kernels); fp32
// kernels [O, I, 3, 3] contiguous (NCHW models), 16 whole channels, read as 16 rows of 9 adjacent values and transposed
// in registers (gathering each tap took ~2x the whole transform's time); else gathered (fp32) or read one by one (bf16).
static inline void kernels16(const dwg_problem *pr, const void *src, int64_t o, int64_t i0, __mmask16 m, __m512 g[3][3])
{
    const int direct = pr->ws_i == 1, gather = !direct && !pr->bf16 && pr->ws_i <= INT32_MAX / 16;
    if (!pr->bf16 && m == 0xFFFF && pr->ws_i == 9 && pr->ws_h == 3 && pr->ws_w == 1)
    {
        __m512 r[16];
        const float *base = (const float *)src + o * pr->ws_o + i0 * 9;
        for (int l = 0; l < 16; l++) r[l] = _mm512_maskz_loadu_ps(0x1FF, base + 9 * l);
        transpose16(r);
        for (int t = 0; t < 9; t++) g[t / 3][t % 3] = r[t];
        return;
    }
    const __m512i step = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32((int)(gather ? pr->ws_i : 0)));
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
        {
            const int64_t at = o * pr->ws_o + i0 * pr->ws_i + r * pr->ws_h + c * pr->ws_w;
            if (direct) g[r][c] = load16(src, at, m, pr->bf16);
            else if (gather) g[r][c] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, step, (const float *)src + at, 4);
            else
            {
                float v[16] = {0};
                for (int l = 0; l < 16 && i0 + l < pr->cin; l++) v[l] = load1(src, at + l * pr->ws_i, pr->bf16);
                g[r][c] = _mm512_loadu_ps(v);
            }
        }
}

// Whether U, `planes` planes of O x I fp32 values, is written with streaming stores: beyond the caches (64 MB; SD's
// 1280 x 1280 kernels in F(2x2, 3x3): 105 MB), whole 64-byte lines (I a multiple of 16, U aligned), so its lines go to
// memory without being read first.
static inline int stream_u(const dwg_problem *pr, const void *u, int planes)
{
    return !pr->bf16 && planes * pr->cout * pr->cin * 4 > (64 << 20) && pr->cin % 16 == 0 && ((uintptr_t)u & 63) == 0;
}

// The input offsets of the (m + 2)^2 positions of tile (g, tx), tiles m apart (m = the problem's tile, th = h / m), in
// off[(m + 2) r + q] (-1 for padding; upsampled problems read the small input through y / 2, x / 2); 1 when none is
// padding.
static inline __attribute__((always_inline)) int tile_offsets(const dwg_problem *pr, int64_t th, int64_t g, int64_t tx, int m,
                                                              int64_t *off)
{
    const int64_t n = g / th, ty = g % th, up = pr->upsample;
    int inside = 1;
    for (int r = 0; r < m + 2; r++)
        for (int q = 0; q < m + 2; q++)
        {
            const int64_t y = m * ty - 1 + r, x = m * tx - 1 + q;
            const int in = y >= 0 && y < pr->h && x >= 0 && x < pr->w;
            off[(m + 2) * r + q] = in ? n * pr->xs_n + (y >> up) * pr->xs_h + (x >> up) * pr->xs_w : -1;
            inside &= in;
        }
    return inside;
}

// The output offset of tile (g, tx)'s first output (row m * ty, column m * tx of image n; g = n * th + ty, th = h / m,
// given by the caller: read from *pr after the kernels' stores, which may alias it, it was computed again per tile).
static inline int64_t tile_output(const dwg_problem *pr, int64_t th, int64_t g, int64_t tx, int m)
{
    return g / th * pr->ys_n + m * (g % th) * pr->ys_h + m * tx * pr->ys_w;
}

// A kernel tile's u[k] at element `at` of each plane k < planes of U (planes `plane` elements apart), the lanes of m;
// streamed past the caches (whole fp32 vectors only) when `stream`.
static inline void store_u(void *dst, int planes, int64_t plane, int64_t at, const __m512 *u, __mmask16 m, int bf16, int stream)
{
    if (stream && !bf16 && m == 0xFFFF)
        for (int k = 0; k < planes; k++) _mm512_stream_ps((float *)dst + k * plane + at, u[k]);
    else
        for (int k = 0; k < planes; k++) store16(dst, k * plane + at, u[k], m, bf16);
}

#endif
