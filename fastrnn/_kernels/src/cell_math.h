/* Elementwise math of the recurrent cells, shared by the per-ISA units (internal).
 *
 * float32: exp by a one-constant reduction and a degree-5 minimax polynomial; sigmoid and
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

/* exp for sigmoid and tanh (float32). n = round(x log2 e) and 2^n come from one
 * multiply-add: t = x log2 e + 1.5 * 2^23 + 127 lies in [2^23, 2^24), where a float's
 * unit is 1, so t's low mantissa bits hold n + 127, which a shift moves into the
 * exponent field, and t - magic is n as a float. r = x - n ln 2 in [-ln2/2, ln2/2]
 * by one constant (with an FMA the product is exact; without one, or from ln 2's own
 * rounding, the error grows with |n|, but sigmoid and tanh scale exp's relative error
 * by at most e^-|x|, which falls faster); e^r by a degree-5 polynomial with p(0) = 1,
 * minimax for relative error on that interval (9e-8 in exact arithmetic), so that
 * exp(0) = 1 exactly and sigmoid(0) = 0.5, tanh(0) = 0. Measured against float64 libm
 * (tests/test_kernels.py): sigmoid and tanh within 2.5e-7 absolute everywhere.
 * The clamps keep 2^n a normal float: exp(-87.3) ~ 1.2e-38; a NaN stays NaN.
 * 12 operations where the Cephes form (Cody-Waite with two constants, degree 7,
 * rounding and conversion instructions) took 19, and the cell updates are a fifth of
 * an AVX2 step at hidden 128, batch 16: Xeon, AVX2 kernels, 1 thread, T=100, new / old
 * time 0.92-0.94x for LSTM hidden 64-128 at batch 1-64, 0.97x at 256; GRU 0.93-0.99x.
 * The fused kernels use its lane-by-lane twin vexp in cell_math_impl.h (the same
 * constants; on AVX-512 vexp reduces to 2^f instead, see there). */
#define FR_EXP_MAGIC 12583039.0f       /* 1.5 * 2^23 + 127 */
#define FR_EXP_LOG2E 1.44269504088896341f
#define FR_EXP_LN2 0.693147180559945309f
#define FR_EXP_C1 0.9999997019767761f
#define FR_EXP_C2 0.49999111890792847f
#define FR_EXP_C3 0.16667668521404266f
#define FR_EXP_C4 0.04190177097916603f
#define FR_EXP_C5 0.008290414698421955f

static inline float fr_expf(float x)
{
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    const float t = x * FR_EXP_LOG2E + FR_EXP_MAGIC;
    const float n = t - FR_EXP_MAGIC;
    const float r = x - n * FR_EXP_LN2;
    float p = FR_EXP_C5;
    p = p * r + FR_EXP_C4;
    p = p * r + FR_EXP_C3;
    p = p * r + FR_EXP_C2;
    p = p * r + FR_EXP_C1;
    p = p * r + 1.0f;
    union { float f; uint32_t u; } scale = { t };
    scale.u <<= 23;
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
