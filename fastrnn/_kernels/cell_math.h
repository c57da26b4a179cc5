/* Elementwise math of the recurrent cells.
 *
 * float32: exp by Cody-Waite reduction and Cephes' degree-6 polynomial; sigmoid and
 * tanh from it, branch-free so that loops vectorise. Measured against float64 libm
 * (tests/test_kernels.py): sigmoid and tanh within 2.5e-7 absolute everywhere.
 * float64: libm, since float64 models are for exactness rather than speed.
 *
 * The float32 row loops are compiled three times, for AVX-512, AVX2+FMA and the
 * baseline instruction set; fr_select_isa() picks one at import from what the CPU
 * reports, and FASTRNN_ISA=generic|avx2 caps it (the tests use that).
 */
#ifndef FASTRNN_CELL_MATH_H
#define FASTRNN_CELL_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/* Hidden units per panel of the fused batch-1 kernels (one zmm of floats). */
#define FR_U 16
/* Most sequences one fused call advances; more go through BLAS. */
#define FR_MAXB 64
/* Storage types of packed weights: float32, or float16 / bfloat16 widened in registers. */
enum { FR_W_F32 = 0, FR_W_F16 = 1, FR_W_BF16 = 2 };

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
    /* 1 - 2 / (exp(2x) + 1): one exp and one division, no branch. Near 0 the
     * subtraction is exact (Sterbenz), so the absolute error stays that of the
     * quotient, ~1e-7; relative accuracy for tiny |x| is not needed in a cell. */
    return 1.0f - 2.0f / (fr_expf(2.0f * x) + 1.0f);
}

/* AVX-512 at full width: on cores with 512-bit units (Zen 4/5, Sapphire Rapids) the
 * cell update runs at twice the AVX2 rate; gcc otherwise prefers 256-bit vectors. */
#define FR_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,f16c,prefer-vector-width=512")))
#define FR_CVTPH(p) ((FR_VF)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p))))
#define FR_NAME(name) fr_##name##_avx512
#define FR_VMAX(a, b) ((FR_VF)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define FR_VMIN(a, b) ((FR_VF)_mm512_min_ps((__m512)(a), (__m512)(b)))
#define FR_VROUND(a) ((FR_VF)_mm512_roundscale_ps((__m512)(a), _MM_FROUND_TO_NEAREST_INT))
#define FR_VSCALEF(a, n) ((FR_VF)_mm512_scalef_ps((__m512)(a), (__m512)(n)))
/* a - floor(a) (imm 0x09: no fraction bits kept, round down, no precision exception) */
#define FR_VREDUCE(a) ((FR_VF)_mm512_reduce_ps((__m512)(a), 0x09))
/* rcp14 and one Newton step: within 2 ulp of 1/d, exact for powers of two (AVX2's
 * 12-bit rcpps is not, even after the step: tanh(0) would be 3e-8, so AVX2 divides) */
#define FR_VRCP(a) ((FR_VF)_mm512_rcp14_ps((__m512)(a)))
#define FR_ACC 8   /* accumulators, of 32 zmm registers */
#define FR_VBYTES 64
#define FR_NB 6    /* columns per pass of the small-batch product */
#define FR_MV_REGS 31 /* registers for its accumulators and weights */
#include "cell_math_impl.h"
#define FR_TARGET __attribute__((target("avx2,fma,f16c")))
#define FR_CVTPH(p) ((FR_VF)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p))))
#define FR_NAME(name) fr_##name##_avx2
#define FR_VMAX(a, b) ((FR_VF)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define FR_VMIN(a, b) ((FR_VF)_mm256_min_ps((__m256)(a), (__m256)(b)))
#define FR_VROUND(a) ((FR_VF)_mm256_round_ps((__m256)(a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
#define FR_ACC 8   /* accumulators, of 16 ymm registers */
#define FR_VBYTES 32
#define FR_NB 6
#define FR_MV_REGS 15
#include "cell_math_impl.h"
#define FR_TARGET
#define FR_NAME(name) fr_##name##_generic
#define FR_ACC 8   /* accumulators, of 16 xmm registers */
#define FR_VBYTES 16
#define FR_NB 1
#include "cell_math_impl.h"

enum { FR_GENERIC = 0, FR_AVX2 = 1, FR_AVX512 = 2 };
static int fr_isa = FR_GENERIC;

/* Pick the widest instruction set the CPU has, capped by FASTRNN_ISA
 * (generic / avx2 / avx512) when it is set. Returns the choice. */
static int fr_select_isa(void)
{
    int best = FR_GENERIC;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
        && __builtin_cpu_supports("f16c"))
        best = FR_AVX2;
    if (best == FR_AVX2 && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512bw"))
        best = FR_AVX512;
#endif
    const char *cap = getenv("FASTRNN_ISA");
    if (cap != NULL) {
        if (strcmp(cap, "generic") == 0) best = FR_GENERIC;
        else if (strcmp(cap, "avx2") == 0 && best > FR_AVX2) best = FR_AVX2;
    }
    fr_isa = best;
    return best;
}

#define FR_DISPATCH(name, args) \
    do { \
        if (fr_isa == FR_AVX512) fr_##name##_avx512 args; \
        else if (fr_isa == FR_AVX2) fr_##name##_avx2 args; \
        else fr_##name##_generic args; \
    } while (0)

static inline void fr_lstm_rows_f32(int m, int H, const float *gates, int ldg,
                                    const float *bias, float *c, float *h)
{
    FR_DISPATCH(lstm_rows_f32, (m, H, gates, ldg, bias, c, h));
}

static inline void fr_gru_rows_f32(int m, int H, const float *gi, int ldg, const float *gh,
                                   const float *bias, const float *b_hn, float *h)
{
    FR_DISPATCH(gru_rows_f32, (m, H, gi, ldg, gh, bias, b_hn, h));
}

static inline void fr_rnn_rows_f32(int m, int H, const float *gates, int ldg,
                                   const float *bias, int relu, float *h)
{
    FR_DISPATCH(rnn_rows_f32, (m, H, gates, ldg, bias, relu, h));
}

static inline void fr_lstm_cols_f32(int m, int H, const float *gates, int ldg,
                                    const float *bias, float *c, float *h, int lds)
{
    FR_DISPATCH(lstm_cols_f32, (m, H, gates, ldg, bias, c, h, lds));
}

static inline void fr_gru_cols_f32(int m, int H, const float *gi, int ldg, const float *gh,
                                   const float *bias, const float *b_hn, float *h, int lds)
{
    FR_DISPATCH(gru_cols_f32, (m, H, gi, ldg, gh, bias, b_hn, h, lds));
}

static inline void fr_rnn_cols_f32(int m, int H, const float *gates, int ldg,
                                   const float *bias, int relu, float *h, int lds)
{
    FR_DISPATCH(rnn_cols_f32, (m, H, gates, ldg, bias, relu, h, lds));
}

/* The fused path's hoisted input projection: out (n, npan*G*FR_U), panels [p0, p1). */
static inline void fr_panel_project_f32(int wt, int G, int K, int npan, int p0, int p1,
                                        const void *w, const float *x, int ldx, int n,
                                        float *out)
{
    FR_DISPATCH(panel_project, (wt, G, K, npan, p0, p1, w, x, ldx, n, out));
}

/* The fused steps of m <= FR_MAXB sequences, panels [p0, p1): rows of x (m, n_in),
 * gin (m, npan*gates*FR_U, panel order), h (m, K), c (m, H) and h_out (m, H).
 * rev: the panels in descending order. Alternating the order from step to step (the
 * caller's job) lets the panels read last stay in cache for the next step when the
 * weights are larger than the cache: a plain cyclic walk evicts each panel just
 * before it is needed again. */
static inline void fr_lstm_step1_f32(int p0, int p1, int rev, int m, int wt, int H, int n_in, int K,
                                     const void *wx, const float *x, const void *w,
                                     const float *bias, const float *gin, const float *h,
                                     float *c, float *h_out)
{
    FR_DISPATCH(lstm_step1_f32, (p0, p1, rev, m, wt, H, n_in, K, wx, x, w, bias, gin, h, c, h_out));
}

static inline void fr_gru_step1_f32(int p0, int p1, int rev, int m, int wt, int H, int n_in,
                                    const void *wx, const float *x, const void *w,
                                    const float *bias, const float *b_hn, const float *gin,
                                    const float *h, float *h_out)
{
    FR_DISPATCH(gru_step1_f32, (p0, p1, rev, m, wt, H, n_in, wx, x, w, bias, b_hn, gin, h, h_out));
}

static inline void fr_rnn_step1_f32(int p0, int p1, int rev, int m, int wt, int H, int n_in,
                                    const void *wx, const float *x, const void *w,
                                    const float *bias, const float *gin, int relu,
                                    const float *h, float *h_out)
{
    FR_DISPATCH(rnn_step1_f32, (p0, p1, rev, m, wt, H, n_in, wx, x, w, bias, gin, relu, h, h_out));
}

/* Flush-to-zero and denormals-are-zero for the length of a kernel call: a state
 * decaying towards zero would otherwise step through denormals, each operation on
 * them costing ~100 cycles. MXCSR is per thread; the caller's mode is restored. */
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
static inline unsigned int fr_ftz_enter(void)
{
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8040); /* FTZ (bit 15) | DAZ (bit 6) */
    return old;
}
static inline void fr_ftz_leave(unsigned int old) { _mm_setcsr(old); }
#else
static inline unsigned int fr_ftz_enter(void) { return 0; }
static inline void fr_ftz_leave(unsigned int old) { (void)old; }
#endif

/* The fused kernels' vector activations (the selected ISA's), for the accuracy tests. */
static inline void fr_vactivations_f32(int n, const float *x, float *sig, float *th)
{
    FR_DISPATCH(vactivations_f32, (n, x, sig, th));
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
