/* CPU detection and the per-ISA tables (fr_kernels.h). */
#include "cell_math.h"

int fr_cpu_isa(void)
{
    /* called when a model is packed, never per kernel call: no need to cache */
    int best = FR_GENERIC;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
        && __builtin_cpu_supports("f16c"))
        best = FR_AVX2;
    if (best == FR_AVX2 && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512bw"))
        best = FR_AVX512;
#endif
    return best;
}

const fr_kernels *fr_kernels_for(int isa)
{
    if (isa < FR_GENERIC || isa > fr_cpu_isa())
        return NULL;
#if defined(__x86_64__)
    if (isa == FR_AVX512)
        return &fr_kernels_avx512;
    if (isa == FR_AVX2)
        return &fr_kernels_avx2;
#endif
    return &fr_kernels_generic;
}

void fr_activations_f32(int n, const float *x, float *sig, float *th)
{
    for (int i = 0; i < n; ++i) {
        sig[i] = fr_sigmoidf(x[i]);
        th[i] = fr_tanhf(x[i]);
    }
}
