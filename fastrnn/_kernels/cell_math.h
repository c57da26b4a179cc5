/* Elementwise math of the recurrent cells.
 *
 * float32: exp by Cody-Waite reduction and Cephes' degree-6 polynomial, tanh by
 * Cephes' odd polynomial below |x| = 0.625 and 1 - 2 / (exp(2|x|) + 1) above; both
 * branch-free so loops vectorise. Measured against float64 libm over [-20, 20]
 * (tests/test_kernels.py): sigmoid and tanh within 2.5e-7 absolute, a few ulp.
 * float64: libm, since float64 models are for exactness rather than speed.
 *
 * The float32 row loops are compiled twice, for AVX2+FMA and for the baseline
 * instruction set; fr_select_isa() picks one at import from what the CPU reports,
 * and FASTRNN_ISA=generic forces the baseline (the tests use it).
 */
#ifndef FASTRNN_CELL_MATH_H
#define FASTRNN_CELL_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    union { int32_t i; float f; } scale;
    scale.i = ((int32_t)n + 127) << 23;
    return p * scale.f;
}

static inline float fr_sigmoidf(float x)
{
    return 1.0f / (1.0f + fr_expf(-x));
}

static inline float fr_tanhf(float x)
{
    float ax = fabsf(x);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z
                     - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                   - 3.33332819422e-1f) * z * x + x;
    float large = 1.0f - 2.0f / (fr_expf(2.0f * ax) + 1.0f);
    large = x < 0.0f ? -large : large;
    return ax < 0.625f ? small : large;
}

#define FR_TARGET __attribute__((target("avx2,fma")))
#define FR_NAME(name) fr_##name##_avx2
#include "cell_math_impl.h"
#undef FR_TARGET
#undef FR_NAME
#define FR_TARGET
#define FR_NAME(name) fr_##name##_generic
#include "cell_math_impl.h"
#undef FR_TARGET
#undef FR_NAME

static int fr_use_avx2 = 0;

/* 1 when the AVX2+FMA loops are in use. */
static int fr_select_isa(void)
{
    const char *isa = getenv("FASTRNN_ISA");
    int forced_generic = isa != NULL && strcmp(isa, "generic") == 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    fr_use_avx2 = !forced_generic && __builtin_cpu_supports("avx2")
                  && __builtin_cpu_supports("fma");
#else
    (void)forced_generic;
    fr_use_avx2 = 0;
#endif
    return fr_use_avx2;
}

static inline void fr_lstm_rows_f32(int m, int H, const float *gates, int ldg,
                                    const float *bias, float *c, float *h)
{
    if (fr_use_avx2) fr_lstm_rows_f32_avx2(m, H, gates, ldg, bias, c, h);
    else fr_lstm_rows_f32_generic(m, H, gates, ldg, bias, c, h);
}

static inline void fr_gru_rows_f32(int m, int H, const float *gi, int ldg, const float *gh,
                                   const float *bias, const float *b_hn, float *h)
{
    if (fr_use_avx2) fr_gru_rows_f32_avx2(m, H, gi, ldg, gh, bias, b_hn, h);
    else fr_gru_rows_f32_generic(m, H, gi, ldg, gh, bias, b_hn, h);
}

static inline void fr_rnn_rows_f32(int m, int H, const float *gates, int ldg,
                                   const float *bias, int relu, float *h)
{
    if (fr_use_avx2) fr_rnn_rows_f32_avx2(m, H, gates, ldg, bias, relu, h);
    else fr_rnn_rows_f32_generic(m, H, gates, ldg, bias, relu, h);
}

/* float32 activations over an array, for the accuracy tests. */
static inline void fr_activations_f32(int n, const float *x, float *sig, float *th)
{
    for (int i = 0; i < n; ++i) {
        sig[i] = fr_sigmoidf(x[i]);
        th[i] = fr_tanhf(x[i]);
    }
}

#endif
