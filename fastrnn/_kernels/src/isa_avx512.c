/* The float32 kernels for AVX-512 (F, VL, DQ, BW, with AVX2, FMA and F16C): the
 * template cell_math_impl.h instantiated once, as the table fr_kernels_avx512.
 * dispatch.c hands it out only where the CPU has these features. */
#include "cell_math.h"

#if defined(__x86_64__)
/* AVX-512 at full width: on cores with 512-bit units (Zen 4/5, Sapphire Rapids) the
 * cell update runs at twice the AVX2 rate; gcc otherwise prefers 256-bit vectors. */
#define FR_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,f16c,prefer-vector-width=512")))
#define FR_ISA FR_AVX512
#define FR_ISA_NAME "avx512"
#define FR_CVTPH(p) ((FR_VF)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p))))
#define FR_NAME(name) fr_##name##_avx512
#define FR_VMAX(a, b) ((FR_VF)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define FR_VMIN(a, b) ((FR_VF)_mm512_min_ps((__m512)(a), (__m512)(b)))
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
/* Panels of 256 rows and more in row blocks of 32 KB of weights (128 rows of an LSTM's
 * float32 panel, kept in L1 through every 6-column block), the first block prefetching
 * 32 rows ahead, as on AVX2 (cell_math_impl.h, panel_matvec_m). Xeon (KVM, 2 MB L2), 1
 * thread, T=100, 5-7
 * alternating processes, new / old time: LSTM hidden 256 0.95-0.96x at batch 8-64,
 * hidden 512 0.97x at 8-16, 1.00x at 64; GRU 0.99-1.00x (hidden 128: unchanged).
 * Blocks of 64 rows there (48 KB of L1D, as Zen 5's): 1.02-1.05x at hidden 256, 0.98-
 * 0.99x at 512, so 32 KB stays; a core with 32 KB of L1D (Zen 4, Skylake-SP) would keep
 * a 16 KB block in L1 where a 32 KB one is evicted (untested: the AVX2 table, whose
 * cores mostly have 32 KB, uses 16 KB). In bytes (multiples of 32 rows) rather than
 * 128 rows for every family: RNN batches 0.92-0.96x the time (their 128-row blocks had
 * been 8 KB), GRU (160 rows) 0.96-0.99x, bfloat16 LSTM (256 rows) 0.96x. */
#define FR_KBLOCK_BYTES 32768
#define FR_PF_ROWS 32
#define FR_KBLOCK_MIN_K 256
#include "cell_math_impl.h"
#endif
