/* The float32 kernels for the baseline instruction set of the build (SSE2 on x86-64,
 * NEON on aarch64): the template cell_math_impl.h instantiated once, as the table
 * fr_kernels_generic, which every CPU runs. */
#include "cell_math.h"

#define FR_TARGET
#define FR_ISA FR_GENERIC
#define FR_ISA_NAME "generic"
#define FR_NAME(name) fr_##name##_generic
#define FR_ACC 8   /* accumulators, of 16 xmm registers */
#define FR_VBYTES 16
#define FR_NB 1
#include "cell_math_impl.h"
