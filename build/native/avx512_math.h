// AVX-512 math the kernels share. Include it inside a region compiled for AVX-512 (#pragma GCC target), as the kernels'
// .c files do.
#ifndef DIFFUSERS_AVX512_MATH_H
#define DIFFUSERS_AVX512_MATH_H
#include <immintrin.h>

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

#endif
