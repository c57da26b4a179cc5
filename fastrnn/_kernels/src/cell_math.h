/* Elementwise math of the recurrent cells, shared by the per-ISA units (internal).
 *
 * float32: exp by Cody-Waite reduction and Cephes' degree-6 polynomial; sigmoid and
 * tanh from it, branch-free so that loops vectorise. Measured against float64 libm
 * (tests/test_kernels.py): sigmoid and tanh within 2.5e-7 absolute everywhere.
 * float64: libm (in _cell.pxd), since float64 models are for exactness rather than speed.
 *
 * The float32 row loops and fused steps are the template cell_math_impl.h, compiled
 * once per instruction set by isa_avx512.c, isa_avx2.c and isa_generic.c into one
 * table each (fr_kernels.h); dispatch.c reads the CPU and hands the tables out.
 */
#ifndef FASTRNN_CELL_MATH_H
#define FASTRNN_CELL_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../fr_kernels.h"

/* The tables, one per unit; the x86 ones exist only in x86-64 builds. */
extern FR_HIDDEN const fr_kernels fr_kernels_generic;
#if defined(__x86_64__)
extern FR_HIDDEN const fr_kernels fr_kernels_avx2;
extern FR_HIDDEN const fr_kernels fr_kernels_avx512;
#endif

/* Scalar form, for the row / column loops that gcc vectorises itself; the fused
 * kernels use its lane-by-lane twin vexp in cell_math_impl.h (the same constants:
 * change both together; on AVX-512 vexp reduces to 2^f instead, see there). */
static inline float fr_expf(float x)
{
    /* clamp so that 2^n stays a normal float: exp(-87.3) ~ 1.2e-38 */
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    /* n = round(x / ln 2) by the magic-number trick (SSE2 has no vector round) */
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    float n = (x * 1.44269504088896341f + magic) - magic;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* shifted unsigned: a NaN x gives n = INT_MIN here, whose signed shift is UB */
    union { uint32_t u; float f; } scale;
    scale.u = (uint32_t)((int32_t)n + 127) << 23;
    return p * scale.f;
}

static inline float fr_sigmoidf(float x)
{
    return 1.0f / (1.0f + fr_expf(-x));
}

static inline float fr_tanhf(float x)
{
    /* 1 - 2 / (exp(2x) + 1): one exp and one division, no branch. Near 0 the
     * subtraction is exact (Sterbenz), so the absolute error stays that of the
     * quotient, ~1e-7; relative accuracy for tiny |x| is not needed in a cell. */
    return 1.0f - 2.0f / (fr_expf(2.0f * x) + 1.0f);
}

#endif
