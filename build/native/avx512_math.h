// AVX-512 math the kernels share. Include it inside a region compiled for AVX-512 (#pragma GCC target), as the kernels'
// .c files do.
#ifndef DIFFUSERS_AVX512_MATH_H
#define DIFFUSERS_AVX512_MATH_H
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

// 2^x over 16 floats, x finite: a polynomial for 2^r on r = x - round(x) in [-0.5, 0.5], scaled by 2^round(x) with
// vscalefps (which also gives 0 or +inf where that under- or overflows, so x needs no clamp). The coefficients are a
// weighted least-squares fit of 2^r: degree 5, relative error 1.1e-7 (fp32: as exact as fp32 arithmetic), or degree 4,
// 3.1e-6 (bf16 attention: its probabilities are then rounded to bf16, 3.9e-3; libtorch's own kernel uses an exp of
// ~2e-6, exp_u20).
static inline __m512 exp2_16(__m512 x, int degree5)
{
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(x, n), p;
    if (degree5)
    {
        p = _mm512_set1_ps(1.321886288e-3f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.671977912e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.550895982e-2f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(2.402223370e-1f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.931468518e-1f));
    }
    else
    {
        p = _mm512_set1_ps(9.600840220e-3f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.591943871e-2f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(2.402372297e-1f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.931216865e-1f));
    }
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

// The lanes of a 16-wide vector that hold one of the n values left (all for n >= 16, none for n <= 0).
static inline __mmask16 lanes(int64_t n) { return n >= 16 ? 0xFFFF : (n <= 0 ? 0 : (__mmask16)((1u << n) - 1)); }

// 16 values (the lanes of m; the others 0) at p[i..], fp32 or bf16 (raw 16-bit words), as fp32.
static inline __m512 load16(const void *p, int64_t i, __mmask16 m, int bf16)
{
    if (!bf16) return _mm512_maskz_loadu_ps(m, (const float *)p + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// The value at p[i], fp32 or bf16 (a raw 16-bit word), as fp32: load16's scalar companion.
static inline float load1(const void *p, int64_t i, int bf16)
{
    if (!bf16) return ((const float *)p)[i];
    uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Stores the lanes of m of v at p[i..] as fp32, or rounded to bf16 (to nearest even, as torch).
static inline void store16(void *p, int64_t i, __m512 v, __mmask16 m, int bf16)
{
    if (bf16) _mm256_mask_storeu_epi16((uint16_t *)p + i, m, (__m256i)_mm512_cvtneps_pbh(v));
    else _mm512_mask_storeu_ps((float *)p + i, m, v);
}

// 16 values all present at p[i..] as fp32: load16 without the mask (the bf16 widening load then takes its operand from
// memory).
static inline __m512 load16_full(const void *p, int64_t i, int bf16)
{
    if (!bf16) return _mm512_loadu_ps((const float *)p + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i))), 16));
}

// store16 of all 16 lanes, without the mask.
static inline void store16_full(void *p, int64_t i, __m512 v, int bf16)
{
    if (bf16) _mm256_storeu_si256((__m256i *)((uint16_t *)p + i), (__m256i)_mm512_cvtneps_pbh(v));
    else _mm512_storeu_ps((float *)p + i, v);
}

// 32 bf16 values at p[i..]: lo's 16 then hi's, rounded by one vcvtne2ps2bf16 and written as one 64-byte store.
static inline void store32_bf16(void *p, int64_t i, __m512 lo, __m512 hi)
{
    _mm512_storeu_si512((void *)((uint16_t *)p + i), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

#endif
