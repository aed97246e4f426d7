// DiffusersSharp's fused attention for x86-64 CPUs with AVX-512 (fp32) and AVX512-BF16 (bf16): softmax(Q K^T * scale) V
// without a mask or dropout, computed block by block with an online softmax (FlashAttention-2), so the L x S scores never
// exist in memory. libtorch's CPU flash kernel calls a GEMM per block; with the 40-wide heads of SD 1.x's 64x64 level,
// each score costs only 160 flops and those calls, the softmax bookkeeping and the layout copies between them dominate.
// Here the two products are register-tiled loops of vdpbf16ps (bf16) or vfmadd (fp32) with the softmax between them.
//
// Numerics follow libtorch's kernel: fp32 scores, scaled in fp32; fp32 running max and sum; in bf16 the probabilities
// are rounded to bf16 for the second product (as libtorch's qk_reduced buffer), the sum uses the fp32 values.
//
// Built by build-native.sh into linux-x64/libdiffusers_kernels.so (with kernels.c and group_norm.c), called by
// Runtime/FusedAttention.cs. The kernel is compiled for AVX-512: callers ask dk_supported() (kernels.c) first.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "kernels.h"

#define ROWS 8          // query rows of a register tile
#define KVECS 3         // 16-key vectors of a score tile (48 keys)
#define KTILE (16 * KVECS)
#define BQ 64           // query rows of a block (multiple of ROWS)
#define BK 768          // keys of a block (multiple of KTILE; 384 was 1% slower in bf16 and 3-4% in fp32)
#define MAX_DV 16       // head dims up to 256

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")
#include "avx512_math.h"

static inline float hmax16(__m512 v) { return _mm512_reduce_max_ps(v); }
static inline float hsum16(__m512 v) { return _mm512_reduce_add_ps(v); }

// The online-softmax step of one block for one query row: scores s[0..nk) (fp32, unscaled; keys >= valid masked) and
// the lane-wise max of its valid scores (from the score tiles); updates the row's max and sum (kept in log2 units: the
// scores times scale * log2(e)), writes the probabilities (fp32 into p32, or bf16 into p16; either may be s itself:
// each vector is written at or behind the scores already read) and returns the factor the row's accumulated output must
// be multiplied by.
static inline float softmax_row(const float *s, __m512 rowmax, int nk, int valid, float scale2, float *m, float *l,
                                float *p32, uint16_t *p16)
{
    float bmax = hmax16(rowmax) * scale2;
    float mnew = *m > bmax ? *m : bmax;
    float corr = *m == -INFINITY ? 0.0f : exp2f(*m - mnew);
    __m512 vs = _mm512_set1_ps(scale2), vm = _mm512_set1_ps(mnew), vsum = _mm512_setzero_ps();
    for (int j = 0; j < nk; j += 16)
    {
        __m512 e = exp2_16(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), vs, vm), p32 != NULL);
        if (valid - j < 16) e = _mm512_maskz_mov_ps(lanes(valid - j), e);   // keys past S (the last block only)
        vsum = _mm512_add_ps(vsum, e);
        if (p32) _mm512_storeu_ps(p32 + j, e);
        else _mm256_storeu_si256((__m256i *)(p16 + j), (__m256i)_mm512_cvtneps_pbh(e));
    }
    *l = *l * corr + hsum16(vsum);
    *m = mnew;
    return corr;
}

// ---------------------------------------------------------------- tiles ---------------------------------------------
// The two products, written once for both dtypes: every operand is a 32-bit word (a pair of bf16 or one fp32), so loads
// and broadcasts are the same instructions, and madd() is vdpbf16ps (two products a lane) or vfmadd (one). bf16 is a
// constant at every call (attend() is compiled once per dtype), so each copy keeps only its own instruction.
static inline __m512 load_words(const uint32_t *p) { return _mm512_loadu_ps((const float *)p); }
static inline __m512 bcast_word(uint32_t w) { return _mm512_castsi512_ps(_mm512_set1_epi32((int)w)); }
static inline __m512 madd(__m512 acc, __m512 a, __m512 b, int bf16)
{
    return bf16 ? _mm512_dpbf16_ps(acc, (__m512bh)_mm512_castps_si512(a), (__m512bh)_mm512_castps_si512(b))
                : _mm512_fmadd_ps(a, b, acc);
}

// Score tile: ROWS query rows (wn words each) x KVECS groups of 16 keys (packed [group][word][16 keys]); stores the
// scores and folds them into the rows' lane-wise max (valid: keys of the tile that exist). Every loop but the one over
// words is unrolled and the tail masks are computed up front, so the 24 accumulators stay in registers from the first
// product to the stores (with the masks computed inside a rolled loop, gcc kept them in stack memory: 7% of the bf16 time).
static inline void qk_tile(const uint32_t *q, int wn, const uint32_t *kp, long kgroup_stride, float *s, int s_stride,
                           int valid, __m512 *rowmax, int bf16)
{
    __m512 acc[ROWS][KVECS];
    __mmask16 mk[KVECS];
#pragma GCC unroll 8
    for (int c = 0; c < KVECS; c++) mk[c] = lanes(valid - c * 16);
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 8
        for (int c = 0; c < KVECS; c++) acc[r][c] = _mm512_setzero_ps();
    for (int w = 0; w < wn; w++)
    {
        __m512 b[KVECS];
#pragma GCC unroll 8
        for (int c = 0; c < KVECS; c++) b[c] = load_words(kp + c * kgroup_stride + w * 16);
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
        {
            __m512 a = bcast_word(q[r * wn + w]);
#pragma GCC unroll 8
            for (int c = 0; c < KVECS; c++) acc[r][c] = madd(acc[r][c], a, b[c], bf16);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
    {
        __m512 mx = rowmax[r];
#pragma GCC unroll 8
        for (int c = 0; c < KVECS; c++)
        {
            _mm512_storeu_ps(s + r * s_stride + c * 16, acc[r][c]);
            mx = _mm512_mask_max_ps(mx, mk[c], mx, acc[r][c]);
        }
        rowmax[r] = mx;
    }
}

// Output tile: o[ROWS][NV vectors] = o * corr + P x V, P as words [row][kn] (a key pair or a key each), V packed
// [kn][dv][16 dims].
#define PV_TILE(NV)                                                                                                    \
    static inline void pv_tile_##NV(const uint32_t *p, int p_stride, int kn, const uint32_t *vp, int dvn, float *o,    \
                                    int o_stride, const float *corr, int bf16)                                        \
    {                                                                                                                  \
        __m512 acc[ROWS][NV];                                                                                          \
        for (int r = 0; r < ROWS; r++)                                                                                 \
            for (int c = 0; c < NV; c++) acc[r][c] = _mm512_mul_ps(_mm512_loadu_ps(o + r * o_stride + c * 16),      \
                                                                   _mm512_set1_ps(corr[r]));                           \
        for (int k = 0; k < kn; k++)                                                                                   \
        {                                                                                                              \
            __m512 b[NV];                                                                                              \
            for (int c = 0; c < NV; c++) b[c] = load_words(vp + ((long)k * dvn + c) * 16);                             \
            for (int r = 0; r < ROWS; r++)                                                                             \
            {                                                                                                          \
                __m512 a = bcast_word(p[r * p_stride + k]);                                                            \
                for (int c = 0; c < NV; c++) acc[r][c] = madd(acc[r][c], a, b[c], bf16);                               \
            }                                                                                                          \
        }                                                                                                              \
        for (int r = 0; r < ROWS; r++)                                                                                 \
            for (int c = 0; c < NV; c++) _mm512_storeu_ps(o + r * o_stride + c * 16, acc[r][c]);                      \
    }
PV_TILE(1)
PV_TILE(2)
PV_TILE(3)

// Output tile for head dims of 16k + 8 up to 40 (SD 1.x's 40): two rows share NV = D / 8 vectors (row r's D values,
// then row r+1's), so no lane is padding (D = 40 in whole vectors would be 48 lanes a row); the one vector holding
// both rows (NV / 2: its lanes 8-15 are row r+1's) gets blended broadcasts and factors. o holds rows D floats apart.
#define PAIR_MIX 0xFF00
#define PV_PAIR(NV)                                                                                                    \
    static inline void pv_pair_##NV(const uint32_t *p, int p_stride, int kn, const uint32_t *vp, float *o,             \
                                    const float *corr, int bf16)                                                      \
    {                                                                                                                  \
        __m512 acc[ROWS / 2][NV];                                                                                      \
        for (int q = 0; q < ROWS / 2; q++)                                                                             \
        {                                                                                                              \
            __m512 c0 = _mm512_set1_ps(corr[2 * q]), c1 = _mm512_set1_ps(corr[2 * q + 1]);                             \
            for (int c = 0; c < NV; c++)                                                                               \
                acc[q][c] = _mm512_mul_ps(_mm512_loadu_ps(o + (q * NV + c) * 16),                                     \
                                          c < NV / 2 ? c0 : (c > NV / 2 ? c1 : _mm512_mask_blend_ps(PAIR_MIX, c0, c1))); \
        }                                                                                                              \
        for (int k = 0; k < kn; k++)                                                                                   \
        {                                                                                                              \
            __m512 b[NV];                                                                                              \
            for (int c = 0; c < NV; c++) b[c] = load_words(vp + ((long)k * NV + c) * 16);                              \
            for (int q = 0; q < ROWS / 2; q++)                                                                         \
            {                                                                                                          \
                __m512 a0 = bcast_word(p[2 * q * p_stride + k]), a1 = bcast_word(p[(2 * q + 1) * p_stride + k]);      \
                __m512 am = _mm512_mask_blend_ps(PAIR_MIX, a0, a1);                                                    \
                for (int c = 0; c < NV; c++)                                                                           \
                    acc[q][c] = madd(acc[q][c], c < NV / 2 ? a0 : (c > NV / 2 ? a1 : am), b[c], bf16);                 \
            }                                                                                                          \
        }                                                                                                              \
        for (int q = 0; q < ROWS / 2; q++)                                                                             \
            for (int c = 0; c < NV; c++) _mm512_storeu_ps(o + (q * NV + c) * 16, acc[q][c]);                          \
    }
PV_PAIR(1)
PV_PAIR(3)
PV_PAIR(5)

// ---------------------------------------------------------------- driver --------------------------------------------

// One attention problem: q (B, H, L, D), k and v (B, H, S, D), out (B, H, L, D), each given by its element strides
// for B, H and the row (the head dim is contiguous). Work items are (b*H + h) * qchunks + chunk, chunk being a range of
// ceil(L / qchunks) query rows; attend() does items [item_begin, item_end), packing k and v once per (b, h).
typedef struct
{
    int64_t b, h, l, s, d;
    int64_t q_sb, q_sh, q_sl, k_sb, k_sh, k_ss, v_sb, v_sh, v_ss, o_sb, o_sh, o_sl;
    float scale;
    int64_t qchunks;
} dsa_problem;

// Packs head (bi, hi)'s keys as [group][word][16 keys] (each 16-key group's D words transposed: one gather a word) and
// values as [key pair (bf16) or key (fp32)][dv][16 dims] (the rows' dims, twice over when two rows share vectors
// (pair), else zeros up to dvn * 16); zeros past S. Vector loads and gathers: the scalar loop it replaces, one word
// at a time with a division for the pair layout's dims, took ~10% of the fp32 kernel's time at SD 1.5's 64² level.
static inline __attribute__((always_inline)) void pack_kv(const dsa_problem *pr, const void *kv, const void *vv, long bi,
                                                          long hi, uint32_t *kp, uint32_t *vp, long spad, int dwords,
                                                          int dvn, int pair, int bf16)
{
    const long S = pr->s, D = pr->d, esz = bf16 ? 2 : 4;
    const char *kbase = (const char *)kv + (bi * pr->k_sb + hi * pr->k_sh) * esz;
    const long kstep = pr->k_ss * esz;   // bytes between two keys' rows
    const int gather = kstep >= 0 && 15 * kstep <= INT32_MAX;
    const __m512i koff = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(gather ? (int)kstep : 0));
    for (long g = 0; g < spad / 16; g++)
    {
        const long key0 = g * 16;
        const __mmask16 km = lanes(S - key0);
        uint32_t *dst = kp + g * dwords * 16;
        for (int w = 0; w < dwords; w++)
        {
            if (gather)
            {
                const __m512i words = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), km, koff,
                                                                  kbase + key0 * kstep + (long)w * 4, 1);
                _mm512_storeu_si512(dst + w * 16, words);
                continue;
            }
            for (int j = 0; j < 16; j++)
            {
                uint32_t word = 0;
                if (key0 + j < S) memcpy(&word, kbase + (key0 + j) * kstep + (long)w * 4, 4);
                dst[w * 16 + j] = word;
            }
        }
    }
    const long vrows = bf16 ? spad / 2 : spad, width = (long)dvn * 16;
    for (long r = 0; r < vrows; r++)
    {
        uint32_t *dst = vp + r * width;
        // the row's D words (dims 0 .. D-1): a key's fp32 values, or in bf16 keys 2r and 2r+1 interleaved
        if (!bf16)
        {
            if (r < S) memcpy(dst, (const float *)vv + bi * pr->v_sb + hi * pr->v_sh + r * pr->v_ss, (size_t)D * 4);
            else memset(dst, 0, (size_t)D * 4);
        }
        else
        {
            const uint16_t *vb = (const uint16_t *)vv + bi * pr->v_sb + hi * pr->v_sh;
            for (long d0 = 0; d0 < D; d0 += 16)
            {
                const __mmask16 m = lanes(D - d0);
                const __m256i lo = 2 * r < S ? _mm256_maskz_loadu_epi16(m, vb + 2 * r * pr->v_ss + d0) : _mm256_setzero_si256();
                const __m256i hi16 = 2 * r + 1 < S ? _mm256_maskz_loadu_epi16(m, vb + (2 * r + 1) * pr->v_ss + d0) : _mm256_setzero_si256();
                const __m512i words = _mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi16), 16));
                _mm512_mask_storeu_epi32(dst + d0, m, words);
            }
        }
        if (pair) memcpy(dst + D, dst, (size_t)D * 4);   // 2D = dvn * 16: the second row's copy
        else memset(dst + D, 0, (size_t)(width - D) * 4);
    }
}

static inline __attribute__((always_inline)) int attend_dtype(const dsa_problem *pr, const void *qv, const void *kv,
                                                              const void *vv, void *ov, int64_t item_begin,
                                                              int64_t item_end, int bf16)
{
    const long D = pr->d, S = pr->s, L = pr->l;
    if (D <= 0 || D > 16 * MAX_DV || (bf16 && (D & 1)) || S <= 0 || L <= 0 || pr->qchunks <= 0) return -1;
    const int pair = D % 16 == 8 && D <= 40;                 // rows share vectors two by two (pv_pair_*)
    const int dvn = pair ? (int)(D / 8) : (int)((D + 15) / 16); // vectors of a packed v row (a row pair's when pair)
    const int ostride = pair ? (int)D : dvn * 16;            // floats between two rows of the output block
    const int dwords = bf16 ? (int)(D / 2) : (int)D;         // 32-bit words of a q/k row
    const long spad = (S + KTILE - 1) / KTILE * KTILE;       // keys the packed k and v hold (zeros past S)
    const long kgroup_stride = (long)dwords * 16;            // words between two 16-key groups of the packed keys
    const long vrows = bf16 ? spad / 2 : spad;               // packed v: one row per key pair (bf16) or key (fp32)

    uint32_t *kp = aligned_alloc(64, sizeof(uint32_t) * (size_t)(spad / 16 * kgroup_stride));
    uint32_t *vp = aligned_alloc(64, sizeof(uint32_t) * (size_t)(vrows * dvn * 16));
    uint32_t *qs = aligned_alloc(64, sizeof(uint32_t) * (size_t)(BQ * dwords));
    // a row tile's scores, then its probabilities over them (BK floats, or BK/2 bf16 pairs, a row): 24 KB, in L1
    float *sc = aligned_alloc(64, sizeof(float) * ROWS * BK);
    float *o = aligned_alloc(64, sizeof(float) * (size_t)(BQ * dvn * 16));
    float *m = aligned_alloc(64, sizeof(float) * BQ), *lsum = aligned_alloc(64, sizeof(float) * BQ);
    __m512 rowmax[ROWS];   // the row tile's lane-wise max of a block's scores
    float corr[ROWS];      // and the factors its accumulated output is rescaled by
    const float scale2 = pr->scale * 1.44269504088896341f;   // scores to log2 units
    if (!kp || !vp || !qs || !sc || !o || !m || !lsum)
    {
        free(kp); free(vp); free(qs); free(sc); free(o); free(m); free(lsum);
        return -2;
    }
    const long chunk_rows = (L + pr->qchunks - 1) / pr->qchunks;
    long packed_bh = -1;
    for (long item = item_begin; item < item_end; item++)
    {
        const long bh = item / pr->qchunks, chunk = item % pr->qchunks;
        const long bi = bh / pr->h, hi = bh % pr->h;
        const long row0 = chunk * chunk_rows, row1 = row0 + chunk_rows < L ? row0 + chunk_rows : L;
        if (row0 >= row1) continue;
        if (bh != packed_bh)
        {
            pack_kv(pr, kv, vv, bi, hi, kp, vp, spad, dwords, dvn, pair, bf16);
            packed_bh = bh;
        }
        for (long q0 = row0; q0 < row1; q0 += BQ)
        {
            const int rows = (int)(row1 - q0 < BQ ? row1 - q0 : BQ);
            memset(qs, 0, sizeof(uint32_t) * BQ * dwords);
            for (int r = 0; r < rows; r++)
                memcpy(qs + (long)r * dwords,
                       (const char *)qv + (bi * pr->q_sb + hi * pr->q_sh + (q0 + r) * pr->q_sl) * (bf16 ? 2 : 4),
                       (size_t)D * (bf16 ? 2 : 4));
            memset(o, 0, sizeof(float) * BQ * dvn * 16);
            for (int r = 0; r < BQ; r++) { m[r] = -INFINITY; lsum[r] = 0.0f; }
            for (long k0 = 0; k0 < spad; k0 += BK)
            {
                const int nk = (int)(spad - k0 < BK ? spad - k0 : BK);
                const int valid = (int)(S - k0 < nk ? S - k0 : nk);
                // per ROWS query rows: scores, softmax (the probabilities written over the scores) and output, so the
                // tile's scores and probabilities stay in L1 between the three (the block's 64 rows at once went through
                // L2: bf16 7%, fp32 3-6% slower)
                const int kn = bf16 ? nk / 2 : nk;   // P and V in words: a key pair each in bf16, a key in fp32
                const uint32_t *vblock = vp + (bf16 ? k0 / 2 : k0) * dvn * 16;
                for (int r0 = 0; r0 < BQ; r0 += ROWS)
                {
                    for (int r = 0; r < ROWS; r++) rowmax[r] = _mm512_set1_ps(-INFINITY);
                    for (int t = 0; t < nk; t += KTILE)
                    {
                        const uint32_t *kt = kp + (k0 + t) / 16 * kgroup_stride;
                        qk_tile(qs + (long)r0 * dwords, dwords, kt, kgroup_stride, sc + t, BK, valid - t, rowmax, bf16);
                    }
                    for (int r = 0; r < ROWS; r++)
                        corr[r] = softmax_row(sc + r * BK, rowmax[r], nk, valid, scale2, m + r0 + r, lsum + r0 + r,
                                              bf16 ? NULL : sc + r * BK, bf16 ? (uint16_t *)(sc + r * BK) : NULL);
                    float *ot = o + (long)r0 * ostride;
                    const uint32_t *pt = (const uint32_t *)sc;
                    if (pair)
                    {
                        if (dvn == 5) pv_pair_5(pt, BK, kn, vblock, ot, corr, bf16);
                        else if (dvn == 3) pv_pair_3(pt, BK, kn, vblock, ot, corr, bf16);
                        else pv_pair_1(pt, BK, kn, vblock, ot, corr, bf16);
                        continue;
                    }
                    for (int dv = 0; dv < dvn; dv += 3)
                    {
                        const int nv = dvn - dv < 3 ? dvn - dv : 3;
                        if (nv == 3) pv_tile_3(pt, BK, kn, vblock + dv * 16, dvn, ot + dv * 16, ostride, corr, bf16);
                        else if (nv == 2) pv_tile_2(pt, BK, kn, vblock + dv * 16, dvn, ot + dv * 16, ostride, corr, bf16);
                        else pv_tile_1(pt, BK, kn, vblock + dv * 16, dvn, ot + dv * 16, ostride, corr, bf16);
                    }
                }
            }
            for (int r = 0; r < rows; r++)
            {
                const float inv = 1.0f / lsum[r];
                const float *orow = o + (long)r * ostride;
                long off = bi * pr->o_sb + hi * pr->o_sh + (q0 + r) * pr->o_sl;
                for (long dd = 0; dd < D; dd += 16)
                {
                    __mmask16 mk = lanes(D - dd);   // the lanes of the row's last dims
                    __m512 val = _mm512_mul_ps(_mm512_loadu_ps(orow + dd), _mm512_set1_ps(inv));
                    if (bf16) _mm256_mask_storeu_epi16((uint16_t *)ov + off + dd, mk, (__m256i)_mm512_cvtneps_pbh(val));
                    else _mm512_mask_storeu_ps((float *)ov + off + dd, mk, val);
                }
            }
        }
    }
    free(kp); free(vp); free(qs); free(sc); free(o); free(m); free(lsum);
    return 0;
}

// attend_dtype() compiled once per dtype (bf16 a constant inside each copy)
static int attend(const dsa_problem *pr, const void *q, const void *k, const void *v, void *o, int64_t begin, int64_t end,
                  int bf16)
{
    return bf16 ? attend_dtype(pr, q, k, v, o, begin, end, 1) : attend_dtype(pr, q, k, v, o, begin, end, 0);
}

// The calls spread the work items over libtorch's own OpenMP team (kernels.c), so no second set of threads competes
// with libtorch's spinning workers for the cores.
typedef struct
{
    const dsa_problem *pr;
    const void *q, *k, *v;
    void *o;
    int bf16;
    int64_t items;
    int rc;
} dsa_job;

static void run_share(void *data)
{
    dsa_job *j = data;
    int64_t begin, end;
    dk_share(j->items, &begin, &end);
    int rc = attend(j->pr, j->q, j->k, j->v, j->o, begin, end, j->bf16);
    if (rc != 0) __atomic_store_n(&j->rc, rc, __ATOMIC_RELAXED);
}

// softmax(q k^T * scale) v for one problem, q, k, v and out of one dtype: bf16 (raw 16-bit words) when bf16 != 0, else
// fp32. threads > 1 runs on the OpenMP team given to dk_set_openmp (serially without one). 0 on success, -1 for an
// unsupported problem (head dim, sizes), -2 when out of memory.
int dsa_attention(const dsa_problem *pr, const void *q, const void *k, const void *v, void *out, int bf16, int threads)
{
    dsa_job j = {pr, q, k, v, out, bf16 != 0, pr->b * pr->h * pr->qchunks, 0};
    dk_run(run_share, &j, j.items <= 1 ? 1 : threads);
    return j.rc;
}

#pragma GCC pop_options
