/* The C kernel layer's public interface: declarations only.
 *
 * The float32 kernels are compiled once per instruction set (src/isa_avx512.c,
 * src/isa_avx2.c, src/isa_generic.c, each instantiating the template
 * src/cell_math_impl.h) into one table of function pointers per ISA, as XNNPACK's
 * hardware config does. The CPU is read once (fr_cpu_isa); whoever packs a model picks
 * a table (fr_kernels_for) and keeps the pointer with the model (CellParams.fns), so
 * no global "current ISA" is consulted per call and two models in one process may run
 * on different ISAs (the tests do). Only the fastrnn._kernels._stack extension links
 * these units; the Cython code reaches them through _cell.pxd.
 */
#ifndef FASTRNN_FR_KERNELS_H
#define FASTRNN_FR_KERNELS_H

/* Hidden units per panel of the fused kernels (one zmm of floats). */
#define FR_U 16
/* Most sequences one fused call advances; more go through BLAS. */
#define FR_MAXB 64
/* Storage types of packed weights: float32, or float16 / bfloat16 widened in registers. */
enum { FR_W_F32 = 0, FR_W_F16 = 1, FR_W_BF16 = 2 };
/* Instruction sets, narrowest first: a wider one may run wherever the CPU has it. */
enum { FR_GENERIC = 0, FR_AVX2 = 1, FR_AVX512 = 2 };

/* Only the extension module that links the kernels calls them. */
#if defined(__GNUC__)
#define FR_HIDDEN __attribute__((visibility("hidden")))
#else
#define FR_HIDDEN
#endif

/* One ISA's kernels. The entries keep the names and signatures of the functions they
 * point to (fr_<entry>_<isa> in src/cell_math_impl.h), where each is documented. */
typedef struct fr_kernels {
    int isa;                  /* FR_GENERIC / FR_AVX2 / FR_AVX512 */
    const char *name;         /* "generic" / "avx2" / "avx512" */
    /* cell updates of m sequences from gate rows (batch-major, states (m, H)) */
    void (*lstm_rows_f32)(int m, int H, const float *gates, int ldg, const float *bias,
                          float *c, float *h);
    void (*gru_rows_f32)(int m, int H, const float *gi, int ldg, const float *gh,
                         const float *bias, const float *b_hn, float *h);
    void (*rnn_rows_f32)(int m, int H, const float *gates, int ldg, const float *bias,
                         int relu, float *h);
    /* the same, feature-major: gates (G, m) of row stride ldg, states (H, m) of lds */
    void (*lstm_cols_f32)(int m, int H, const float *gates, int ldg, const float *bias,
                          float *c, float *h, int lds);
    void (*gru_cols_f32)(int m, int H, const float *gi, int ldg, const float *gh,
                         const float *bias, const float *b_hn, float *h, int lds);
    void (*rnn_cols_f32)(int m, int H, const float *gates, int ldg, const float *bias,
                         int relu, float *h, int lds);
    /* the fused path's hoisted input projection: out (n, npan*G*FR_U), panels [p0, p1) */
    void (*panel_project_f32)(int wt, int G, int K, int npan, int p0, int p1, const void *w,
                              const float *x, int ldx, int n, float *out);
    /* The fused steps of m <= FR_MAXB sequences, panels [p0, p1): rows of x (m, n_in),
     * gin (m, npan*gates*FR_U, panel order), h (m, K), c (m, H) and h_out (m, H).
     * rev: the panels in descending order. Alternating the order from step to step
     * (the caller's job) lets the panels read last stay in cache for the next step
     * when the weights are larger than the cache: a plain cyclic walk evicts each
     * panel just before it is needed again. */
    void (*lstm_fused_f32)(int p0, int p1, int rev, int m, int wt, int H, int n_in, int K,
                           const void *wx, const float *x, const void *w, const float *bias,
                           const float *gin, const float *h, float *c, float *h_out);
    void (*gru_fused_f32)(int p0, int p1, int rev, int m, int wt, int H, int n_in,
                          const void *wx, const float *x, const void *w, const float *bias,
                          const float *b_hn, const float *gin, const float *h, float *h_out);
    void (*rnn_fused_f32)(int p0, int p1, int rev, int m, int wt, int H, int n_in,
                          const void *wx, const float *x, const void *w, const float *bias,
                          const float *gin, int relu, const float *h, float *h_out);
    /* The textbook GRU's fused step (reset_after=False), phase 1 or 2 (of panels
     * [p0, p1) each; every panel's phase 1 before any panel's phase 2), scratch
     * (m, 2*npan*FR_U + H) carrying it from one to the other; w: W_hh's r, z panels,
     * then its n panels (packing.py). */
    void (*grut_fused_f32)(int phase, int p0, int p1, int rev, int m, int wt, int H,
                           int n_in, const void *wx, const float *x, const void *w,
                           const float *bias, const float *gin, const float *h,
                           float *scratch, float *h_out);
    /* the fused kernels' vector sigmoid and tanh over an array, for the accuracy tests */
    void (*vactivations_f32)(int n, const float *x, float *sig, float *th);
} fr_kernels;

/* The widest ISA this CPU runs and this build has (read once; no environment). */
FR_HIDDEN int fr_cpu_isa(void);
/* The table of one ISA, or NULL when this CPU or build lacks it (or isa is unknown). */
FR_HIDDEN const fr_kernels *fr_kernels_for(int isa);
/* The scalar float32 sigmoid and tanh of the row / column loops, for the accuracy tests. */
FR_HIDDEN void fr_activations_f32(int n, const float *x, float *sig, float *th);

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

#endif
