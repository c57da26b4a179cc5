/* The float32 kernels for AVX2 with FMA and F16C: the template cell_math_impl.h
 * instantiated once, as the table fr_kernels_avx2. dispatch.c hands it out only where
 * the CPU has these features. */
#include "cell_math.h"

#if defined(__x86_64__)
#define FR_TARGET __attribute__((target("avx2,fma,f16c")))
#define FR_ISA FR_AVX2
#define FR_ISA_NAME "avx2"
#define FR_CVTPH(p) ((FR_VF)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p))))
#define FR_NAME(name) fr_##name##_avx2
#define FR_VMAX(a, b) ((FR_VF)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define FR_VMIN(a, b) ((FR_VF)_mm256_min_ps((__m256)(a), (__m256)(b)))
#define FR_ACC 8   /* accumulators, of 16 ymm registers */
#define FR_VBYTES 32
#define FR_NB 6
/* Panels of 256 rows and more: the batch product's rows in blocks of at most 16 KB of
 * weights (64 rows of an LSTM's float32 panel) through every 6-column block, the first column
 * block of each pass prefetching its weights 32 rows ahead (cell_math_impl.h,
 * panel_matvec_m). Xeon (KVM, 2 cores), 1 thread, T=100, interleaved processes, new /
 * old time, with blocks of 128 rows: LSTM H=512 0.90-0.95x at batch 8-64, GRU H=512
 * 0.85-0.98x, H=256 0.91-1.01x (docs/avx2.md). Blocks of 32 KB ran as fast or up to 3%
 * faster on that Xeon (48 KB of L1D), but most AVX2 cores (Zen 2 and 3, Haswell to
 * Cascade Lake) have 32 KB, which a 32 KB block and the columns' h overflow: no block
 * would stay in L1 from one column block to the next. */
#define FR_KBLOCK_BYTES 16384
#define FR_PF_ROWS 32
#define FR_KBLOCK_MIN_K 256
#define FR_MV_REGS 15
#include "cell_math_impl.h"
#endif
