/* The float32 kernels, written once and compiled once per instruction set: each of
 * isa_avx512.c, isa_avx2.c and isa_generic.c sets the parameters (FR_TARGET, FR_ISA,
 * FR_ISA_NAME, FR_NAME, FR_ACC, FR_VBYTES, FR_NB, FR_MV_REGS, and FR_CVTPH, FR_VMAX,
 * FR_VMIN, FR_VSCALEF, FR_VREDUCE, FR_VRCP where the ISA has the instruction)
 * and includes this file, which ends with that ISA's table (fr_kernels.h). Everything
 * else here is static. Plain loops over restrict pointers calling branch-free inline
 * activations, so that gcc vectorises them at the target's width.
 */

static FR_TARGET void FR_NAME(lstm_rows_f32)(
        int m, int H, const float *restrict gates, int ldg, const float *restrict bias,
        float *restrict c, float *restrict h)
{
    for (int b = 0; b < m; ++b) {
        const float *restrict g = gates + (ptrdiff_t)b * ldg;
        float *restrict cb = c + (ptrdiff_t)b * H;
        float *restrict hb = h + (ptrdiff_t)b * H;
        for (int j = 0; j < H; ++j) {
            float i_ = fr_sigmoidf(g[j] + bias[j]);
            float f_ = fr_sigmoidf(g[H + j] + bias[H + j]);
            float g_ = fr_tanhf(g[2 * H + j] + bias[2 * H + j]);
            float o_ = fr_sigmoidf(g[3 * H + j] + bias[3 * H + j]);
            float cj = f_ * cb[j] + i_ * g_;
            cb[j] = cj;
            hb[j] = o_ * fr_tanhf(cj);
        }
    }
}

static FR_TARGET void FR_NAME(gru_rows_f32)(
        int m, int H, const float *restrict gi, int ldg, const float *restrict gh,
        const float *restrict bias, const float *restrict b_hn, float *restrict h)
{
    for (int b = 0; b < m; ++b) {
        const float *restrict x = gi + (ptrdiff_t)b * ldg;
        const float *restrict r_ = gh + (ptrdiff_t)b * 3 * H;
        float *restrict hb = h + (ptrdiff_t)b * H;
        for (int j = 0; j < H; ++j) {
            float r = fr_sigmoidf(x[j] + r_[j] + bias[j]);
            float z = fr_sigmoidf(x[H + j] + r_[H + j] + bias[H + j]);
            float n = fr_tanhf(x[2 * H + j] + bias[2 * H + j] + r * (r_[2 * H + j] + b_hn[j]));
            /* torch's form, (h - n) * z + n: the same rounding as ATen's GRU cell */
            hb[j] = (hb[j] - n) * z + n;
        }
    }
}

static FR_TARGET void FR_NAME(rnn_rows_f32)(
        int m, int H, const float *restrict gates, int ldg, const float *restrict bias,
        int relu, float *restrict h)
{
    for (int b = 0; b < m; ++b) {
        const float *restrict g = gates + (ptrdiff_t)b * ldg;
        float *restrict hb = h + (ptrdiff_t)b * H;
        if (relu) {
            for (int j = 0; j < H; ++j) {
                float a = g[j] + bias[j];
                hb[j] = a > 0.0f ? a : 0.0f;
            }
        } else {
            for (int j = 0; j < H; ++j)
                hb[j] = fr_tanhf(g[j] + bias[j]);
        }
    }
}

/* Feature-major twins (batch >= 2): gate row k of the running batch is the m values
 * at gates + k * ldg; states are (H, B) with row stride lds. The inner loop runs over
 * the batch, contiguous in every array. */

static FR_TARGET void FR_NAME(lstm_cols_f32)(
        int m, int H, const float *restrict gates, int ldg, const float *restrict bias,
        float *restrict c, float *restrict h, int lds)
{
    for (int j = 0; j < H; ++j) {
        const float *restrict gi = gates + (ptrdiff_t)j * ldg;
        const float *restrict gf = gates + (ptrdiff_t)(H + j) * ldg;
        const float *restrict gg = gates + (ptrdiff_t)(2 * H + j) * ldg;
        const float *restrict go = gates + (ptrdiff_t)(3 * H + j) * ldg;
        const float bi = bias[j], bf = bias[H + j], bg = bias[2 * H + j], bo = bias[3 * H + j];
        float *restrict cj = c + (ptrdiff_t)j * lds;
        float *restrict hj = h + (ptrdiff_t)j * lds;
        for (int b = 0; b < m; ++b) {
            float c_ = fr_sigmoidf(gf[b] + bf) * cj[b]
                       + fr_sigmoidf(gi[b] + bi) * fr_tanhf(gg[b] + bg);
            cj[b] = c_;
            hj[b] = fr_sigmoidf(go[b] + bo) * fr_tanhf(c_);
        }
    }
}

static FR_TARGET void FR_NAME(gru_cols_f32)(
        int m, int H, const float *restrict gi, int ldg, const float *restrict gh,
        const float *restrict bias, const float *restrict b_hn, float *restrict h, int lds)
{
    for (int j = 0; j < H; ++j) {
        const float *restrict xr = gi + (ptrdiff_t)j * ldg;
        const float *restrict xz = gi + (ptrdiff_t)(H + j) * ldg;
        const float *restrict xn = gi + (ptrdiff_t)(2 * H + j) * ldg;
        const float *restrict hr = gh + (ptrdiff_t)j * lds;
        const float *restrict hz = gh + (ptrdiff_t)(H + j) * lds;
        const float *restrict hn = gh + (ptrdiff_t)(2 * H + j) * lds;
        const float br = bias[j], bz = bias[H + j], bn = bias[2 * H + j], bhn = b_hn[j];
        float *restrict hj = h + (ptrdiff_t)j * lds;
        for (int b = 0; b < m; ++b) {
            float r = fr_sigmoidf(xr[b] + hr[b] + br);
            float z = fr_sigmoidf(xz[b] + hz[b] + bz);
            float n = fr_tanhf(xn[b] + bn + r * (hn[b] + bhn));
            hj[b] = (hj[b] - n) * z + n;
        }
    }
}

static FR_TARGET void FR_NAME(rnn_cols_f32)(
        int m, int H, const float *restrict gates, int ldg, const float *restrict bias,
        int relu, float *restrict h, int lds)
{
    for (int j = 0; j < H; ++j) {
        const float *restrict g = gates + (ptrdiff_t)j * ldg;
        const float bj = bias[j];
        float *restrict hj = h + (ptrdiff_t)j * lds;
        if (relu) {
            for (int b = 0; b < m; ++b) {
                float a = g[b] + bj;
                hj[b] = a > 0.0f ? a : 0.0f;
            }
        } else {
            for (int b = 0; b < m; ++b)
                hj[b] = fr_tanhf(g[b] + bj);
        }
    }
}

/* ---- The fused step of up to FR_MAXB sequences -------------------------------------
 * W_hh packed once at load into panels of FR_U hidden units (layers.py, _panels):
 * panel p holds, for every k < K, the FR_U rows of each gate for units
 * [p*FR_U, p*FR_U + FR_U) -> w[p][k][gate][u], zero-padded past H. One panel's
 * product W_hh h accumulates in registers and goes straight into the cell update:
 * gate values never travel through memory, and W_hh streams through the cache once
 * per step, in order. The input part W_ih x comes either from gin, this step's rows
 * of the hoisted projection in panel order (npan*gates*FR_U per sequence, written by
 * panel_project from W_ih packed the same way), or, for single streamed steps and
 * large batches, from those W_ih panels in the step itself (wx, with x). bias is
 * in panel order (npan, gates, FR_U), zero-padded. A call computes panels [p0, p1):
 * two cores may share a step by panels (parallel.h).
 *
 * Written in GCC vector types of the target's own width (FR_VBYTES: 64 for AVX-512,
 * 32 for AVX2, 16 for SSE), so that neither the matrix-vector product nor the
 * activations depend on the auto-vectoriser's choices.
 */
typedef float FR_NAME(vf) __attribute__((vector_size(FR_VBYTES)));
typedef float FR_NAME(vfu) __attribute__((vector_size(FR_VBYTES), aligned(4), may_alias));
typedef int32_t FR_NAME(vi) __attribute__((vector_size(FR_VBYTES)));
typedef uint32_t FR_NAME(vu) __attribute__((vector_size(FR_VBYTES)));
#define FR_VF FR_NAME(vf)
#define FR_VFU FR_NAME(vfu)
#define FR_VI FR_NAME(vi)
#define FR_L (FR_VBYTES / 4)      /* lanes */
#define FR_S (FR_U / FR_L)        /* vectors per gate of a panel */
#define FR_LD(p) (*(const FR_VFU *)(p))
#define FR_ST(p, v) (*(FR_VFU *)(p) = (v))
/* A scalar in every lane. Written s - 0, which the compiler may fold to s for every s
 * (-0 included), so that it becomes one broadcast from memory; 0 + s may not fold
 * (it turns -0 into +0) and cost a scalar add and a register broadcast per k. */
#define FR_SPLAT(s) ((s) - (FR_VF){0})

static inline __attribute__((always_inline)) FR_TARGET FR_VF FR_NAME(vsel)(FR_VI m, FR_VF a, FR_VF b)
{
    return (FR_VF)(((FR_VI)a & m) | ((FR_VI)b & ~m));
}

/* fr_expf (cell_math.h), lane by lane: the same clamps, reduction and polynomial (min /
 * max clamp where the ISA has them, operands ordered so that a NaN passes through).
 * AVX-512 reduces to 2^f instead (FR_VREDUCE): y = x log2(e), f = y - floor(y) in
 * [0, 1) by one reduce instruction, 2^f by a degree-6 minimax polynomial (relative
 * error 2e-9 in exact arithmetic, 8e-8 in float32 Horner) and scalef, which applies
 * 2^floor(y) itself: 11 instructions (a bfloat16 step at hidden 64 ran 8% faster than
 * with the Cephes form this file had then). Rounding y to float costs exp a relative
 * 4e-8 |y|, which sigmoid and tanh scale down by their own e^-|x|: their error stays
 * that of the test's 2.5e-7. (Degree 5 there: no faster in a step, and tanh's error
 * rose to 2.0e-7.) */
static inline __attribute__((always_inline)) FR_TARGET FR_VF FR_NAME(vexp)(FR_VF x)
{
    const FR_VF lo = (FR_VF){0} - 87.3f, hi = (FR_VF){0} + 88.3f;
#ifdef FR_VMAX
    x = FR_VMIN(hi, FR_VMAX(lo, x));
#else
    x = FR_NAME(vsel)(x < lo, lo, x);
    x = FR_NAME(vsel)(x > hi, hi, x);
#endif
#ifdef FR_VREDUCE
    const FR_VF y = x * 1.44269504088896341f;
    const FR_VF f = FR_VREDUCE(y);
    FR_VF q = (FR_VF){0} + 2.1703421576e-4f;
    q = q * f + 1.2439797539e-3f;
    q = q * f + 9.6787693094e-3f;
    q = q * f + 5.5483416052e-2f;
    q = q * f + 2.4022980764e-1f;
    q = q * f + 6.9314698782e-1f;
    q = q * f + 1.0000000017f;
    return FR_VSCALEF(q, y);
#else
    const FR_VF magic = (FR_VF){0} + FR_EXP_MAGIC;
    const FR_VF t = x * FR_EXP_LOG2E + magic;
    const FR_VF n = t - magic;
    const FR_VF r = x - n * FR_EXP_LN2;
    FR_VF p = (FR_VF){0} + FR_EXP_C5;
    p = p * r + FR_EXP_C4;
    p = p * r + FR_EXP_C3;
    p = p * r + FR_EXP_C2;
    p = p * r + FR_EXP_C1;
    p = p * r + 1.0f;
    return p * (FR_VF)((FR_NAME(vu))t << 23);  /* unsigned: the bits above shift out */
#endif
}

/* 1 / d: AVX-512's reciprocal estimate and one Newton step (isa_avx512.c; several times
 * cheaper than a division), else a division. */
static inline __attribute__((always_inline)) FR_TARGET FR_VF FR_NAME(vrecip)(FR_VF d)
{
#ifdef FR_VRCP
    const FR_VF r = FR_VRCP(d);
    return r + r * (1.0f - d * r);  /* two FMAs: the residual 1 - d*r is exact */
#else
    return 1.0f / d;
#endif
}

static inline __attribute__((always_inline)) FR_TARGET FR_VF FR_NAME(vsigmoid)(FR_VF x)
{
    return FR_NAME(vrecip)(1.0f + FR_NAME(vexp)(-x));
}

static inline __attribute__((always_inline)) FR_TARGET FR_VF FR_NAME(vtanh)(FR_VF x)
{
    return 1.0f - 2.0f * FR_NAME(vrecip)(FR_NAME(vexp)(2.0f * x) + 1.0f);
}

/* The fused kernels' sigmoid and tanh over an array, for the accuracy tests (a
 * partial last vector goes through a zero-padded buffer). */
static FR_TARGET void FR_NAME(vactivations_f32)(int n, const float *x, float *sig, float *th)
{
    for (int i = 0; i < n; i += FR_L) {
        float xb[FR_L] = {0}, sb[FR_L], tb[FR_L];
        const int k = n - i < FR_L ? n - i : FR_L;
        memcpy(xb, x + i, k * sizeof(float));
        FR_ST(sb, FR_NAME(vsigmoid)(FR_LD(xb)));
        FR_ST(tb, FR_NAME(vtanh)(FR_LD(xb)));
        memcpy(sig + i, sb, k * sizeof(float));
        memcpy(th + i, tb, k * sizeof(float));
    }
}

/* Weights stored as float16 or bfloat16 are widened in registers, FR_L at a time. */
typedef uint16_t FR_NAME(vh) __attribute__((vector_size(FR_VBYTES / 2), aligned(2), may_alias));

static inline __attribute__((always_inline)) FR_TARGET FR_VF FR_NAME(load_f16)(const uint16_t *p)
{
#ifdef FR_CVTPH
    return FR_CVTPH(p);
#else
    /* exact for every half, subnormals included, also under denormals-are-zero (the
     * kernels run with it): move exponent and mantissa into place and rebias; a
     * subnormal half gets the smallest normal half's exponent, which is then
     * subtracted again as a normal float (F. Giesen's half_to_float_fast). */
    const FR_NAME(vu) h = __builtin_convertvector(*(const FR_NAME(vh) *)p, FR_NAME(vu));
    FR_NAME(vu) o = (h & 0x7fffu) << 13;
    const FR_NAME(vu) e = o & (0x7c00u << 13);
    const FR_NAME(vu) inf = (FR_NAME(vu))(e == (0x7c00u << 13));
    const FR_NAME(vu) sub = (FR_NAME(vu))(e == 0);
    o += (112u << 23) + (inf & (112u << 23)) + (sub & (1u << 23));
    FR_VF f = (FR_VF)o - (FR_VF)(sub & 0x38800000u); /* 2^-14 */
    return (FR_VF)((FR_NAME(vu))f | ((h & 0x8000u) << 16));
#endif
}

/* acc[g*FR_U + u] = sum_k wp[k][g][u] * h[k] over the G gates of one panel, with
 * FR_ACC accumulator registers in all: k unrolled to fill them, so that the FMAs
 * overlap their latency. One body per weight storage type. */
#define FR_PANEL_MATVEC(SUFFIX, WT, LOAD)                                                  \
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(panel_matvec_##SUFFIX)(         \
        int G, int K, const WT *restrict wp, const float *restrict h, float *restrict acc) \
{                                                                                          \
    const int per_k = G * FR_S;                                                            \
    const int unroll = FR_ACC / per_k > 0 ? FR_ACC / per_k : 1;                            \
    FR_VF a[FR_ACC > 4 * FR_S ? FR_ACC : 4 * FR_S];                                        \
    for (int i = 0; i < unroll * per_k; ++i) a[i] = (FR_VF){0};                            \
    int k = 0;                                                                             \
    for (; k + unroll <= K; k += unroll) {                                                 \
        for (int v = 0; v < unroll; ++v) {                                                 \
            const FR_VF x = FR_SPLAT(h[k + v]);                                            \
            const WT *restrict w = wp + (ptrdiff_t)(k + v) * G * FR_U;                     \
            for (int i = 0; i < per_k; ++i)                                                \
                a[v * per_k + i] += LOAD(w + i * FR_L) * x;                                \
        }                                                                                  \
    }                                                                                      \
    for (; k < K; ++k) {                                                                   \
        const FR_VF x = FR_SPLAT(h[k]);                                                    \
        const WT *restrict w = wp + (ptrdiff_t)k * G * FR_U;                               \
        for (int i = 0; i < per_k; ++i)                                                    \
            a[i] += LOAD(w + i * FR_L) * x;                                                \
    }                                                                                      \
    for (int v = 1; v < unroll; ++v)                                                       \
        for (int i = 0; i < per_k; ++i)                                                    \
            a[i] += a[v * per_k + i];                                                      \
    for (int i = 0; i < per_k; ++i)                                                        \
        FR_ST(acc + i * FR_L, a[i]);                                                       \
}
FR_PANEL_MATVEC(f32, float, FR_LD)
FR_PANEL_MATVEC(f16, uint16_t, FR_NAME(load_f16))
#undef FR_PANEL_MATVEC

/* bfloat16 panels hold k in pairs (layers.py, _store): the 32-bit word for unit u is
 * w[2kk][u] | w[2kk+1][u] << 16, so one load and two integer operations (a shift, a
 * mask) give the float32 weight vectors of two k, where widening 16-bit lanes one
 * vector at a time costs a cross-lane shuffle each. K is padded to even with zeros;
 * the pad's h is never read. */
typedef uint32_t FR_NAME(vpair) __attribute__((vector_size(FR_VBYTES), aligned(4), may_alias));
#define FR_WORD_LO(v) ((FR_VF)((v) << 16))         /* a loaded word's halves */
#define FR_WORD_HI(v) ((FR_VF)((v) & 0xffff0000u))
#define FR_PAIR_LO(w) FR_WORD_LO(*(const FR_NAME(vpair) *)(w))
#define FR_PAIR_HI(w) FR_WORD_HI(*(const FR_NAME(vpair) *)(w))
/* One load of a word for both its halves: gcc folds the load into the shift and into
 * the mask, reading each word twice, which in the one-sequence product (no reuse: every
 * word comes once per step from L2) cost 11-18% of an AVX-512 step (Xeon, LSTM hidden
 * 128 and GRU 256, batch 1). An empty asm keeps the word in a register. */
#if defined(__x86_64__) && defined(__GNUC__)
#define FR_KEEP_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define FR_KEEP_IN_REGISTER(v) ((void)0)
#endif

static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(panel_matvec_bf16)(
        int G, int K, const uint32_t *restrict wp, const float *restrict h, float *restrict acc)
{
    const int per_k = G * FR_S;
    /* the odd k get accumulators of their own where the registers allow */
    const int odd = 2 * per_k <= FR_ACC ? per_k : 0;
    FR_VF a[FR_ACC > 8 * FR_S ? FR_ACC : 8 * FR_S];
    for (int i = 0; i < per_k + odd; ++i) a[i] = (FR_VF){0};
    int kk = 0;
    for (; 2 * kk + 1 < K; ++kk) {
        const FR_VF x0 = FR_SPLAT(h[2 * kk]), x1 = FR_SPLAT(h[2 * kk + 1]);
        const uint32_t *restrict w = wp + (ptrdiff_t)kk * G * FR_U;
        for (int i = 0; i < per_k; ++i) {
            FR_NAME(vpair) word = *(const FR_NAME(vpair) *)(w + i * FR_L);
            FR_KEEP_IN_REGISTER(word);
            a[i] += FR_WORD_LO(word) * x0;
            a[odd + i] += FR_WORD_HI(word) * x1;
        }
    }
    if (K & 1) {
        const FR_VF x0 = FR_SPLAT(h[K - 1]);
        const uint32_t *restrict w = wp + (ptrdiff_t)kk * G * FR_U;
        for (int i = 0; i < per_k; ++i)
            a[i] += FR_PAIR_LO(w + i * FR_L) * x0;
    }
    for (int i = 0; i < per_k; ++i)
        FR_ST(acc + i * FR_L, odd ? a[i] + a[odd + i] : a[i]);
}

/* Elements of one packed panel: K rows of G*FR_U, K even for bfloat16 pairs. */
static inline __attribute__((always_inline)) ptrdiff_t FR_NAME(panel_size)(int wt, int G, int K)
{
    return (ptrdiff_t)(wt == FR_W_BF16 ? K + (K & 1) : K) * G * FR_U;
}

/* Panel p of a packed matrix whose elements are of storage type wt (FR_W_*). */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(panel_matvec)(
        int wt, int G, int K, int p, const void *restrict w, const float *restrict h,
        float *restrict acc)
{
    const ptrdiff_t at = p * FR_NAME(panel_size)(wt, G, K);
    if (wt == FR_W_F16)
        FR_NAME(panel_matvec_f16)(G, K, (const uint16_t *)w + at, h, acc);
    else if (wt == FR_W_BF16)
        FR_NAME(panel_matvec_bf16)(G, K, (const uint32_t *)((const uint16_t *)w + at), h, acc);
    else
        FR_NAME(panel_matvec_f32)(G, K, (const float *)w + at, h, acc);
}

/* Panels of one gate (an RNN's, the textbook GRU's n rows) go FR_GROUP at a time through
 * the products of 2+ columns, as one panel of FR_GROUP gates would: alone, their
 * FR_S vectors a row left NB * FR_S accumulators, too few to cover the FMA latency
 * (AVX-512, RNN hidden 512: batch 2 1.42x torch's time, slower than two sequences one
 * at a time). */
#define FR_GROUP 4

#if FR_NB >= 2
/* The same product for NB columns at once (NB sequences of a small batch): each
 * weight vector is loaded once and multiplied into NB columns' accumulators, so the
 * weights stream through the cache once per NB sequences. acc is (NB, lda).
 * A panel's row of G * FR_S weight vectors goes in passes over k of at most
 * FR_MV_HELD(NB) vectors (the weights held in registers, one broadcast of h at a time)
 * or FR_MV_XFIRST(NB) (the NB broadcasts held, the weights one vector at a time),
 * whichever gives the larger pass (more accumulators: independent FMA chains to cover
 * the FMA latency), in passes of equal size, all within FR_MV_REGS + 1 registers. The
 * passes read disjoint parts of each k's row, and every sum goes in k order either way:
 * a sequence's outputs do not depend on the block it went in. AVX-512 (32 registers)
 * holds all four gates of a panel at up to 6 columns. AVX2 (16), an LSTM's 8 vectors:
 * 2 columns 4 vectors a pass (8 accumulators), 3 columns the broadcasts first, 4 a pass
 * (12; one gate a pass had 6 and ran at 74-78% of the FMA peak, bound by its latency), 4
 * columns 3, 3 and 2 (12, 12, 8; 2 a pass in streamed panels), 5-6 columns 2 a pass (10-
 * 12); a GRU's 6 at 2 columns all in one pass, the broadcasts first (12, where 4 + 2 had
 * 8 and 4). */
#define FR_MV_CAP(v) ((v) < 1 ? 1 : (v) > 4 * FR_S ? 4 * FR_S : (v))
#define FR_MV_HELD(NB) FR_MV_CAP(FR_MV_REGS / ((NB) + 1))
#define FR_MV_XFIRST(NB) FR_MV_CAP((FR_MV_REGS - (NB)) / (NB))
#define FR_MV_MAXV(NB) (FR_MV_HELD(NB) > FR_MV_XFIRST(NB) ? FR_MV_HELD(NB) : FR_MV_XFIRST(NB))
/* Vectors per pass when the row's nvec vectors go at most cap at a time in equal passes;
 * with lines, each pass starts at a cache line and reads whole ones (where the weights
 * stream from beyond L2, a line shared by two passes cost more than the accumulators
 * gained). */
static inline __attribute__((always_inline)) int FR_NAME(pass_vectors)(int nvec, int cap, int lines)
{
    enum { line = 64 / FR_VBYTES > 1 ? 64 / FR_VBYTES : 1 };
    if (lines && cap >= line)
        cap = cap / line * line;
    const int passes = (nvec + cap - 1) / cap;
    const int per = (nvec + passes - 1) / passes;
    return lines && per >= line ? (per + line - 1) / line * line : per;
}
/* One body for every storage: the k loop steps by KSTEP rows of LOAD(p, j) weight
 * vectors, j < KSTEP (bfloat16 pairs hold two k per word: see panel_matvec_bf16),
 * each row widened once into registers. Kept in registers (FR_KEEP_IN_REGISTER): with
 * 2 or 3 columns gcc folded each float32 load into every column's FMA, reading each
 * weight vector 2-3 times, and those blocks ran at 45% of the FMA peak (batch 3 took as
 * long as batch 6; Xeon, AVX-512, LSTM hidden 112). */
#define FR_PANEL_MV(SUFFIX, WT, LOAD, KSTEP, NB)                                            \
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(panel_mv_##SUFFIX##_##NB)( \
        int G, int np_, ptrdiff_t pstride, ptrdiff_t astride, int k0, int k1, int add,      \
        int pf, int lines, const WT *restrict wp, const float *restrict h, int ldh,         \
        float *restrict acc, int lda)                                                       \
{                                                                                           \
    enum { maxv = FR_MV_MAXV(NB) };                                                         \
    const int nv1 = G * FR_S;                                                               \
    const int nvec = np_ * nv1;                                                             \
    const int held = FR_NAME(pass_vectors)(nvec, FR_MV_HELD(NB), lines);                    \
    const int xfirst = FR_NAME(pass_vectors)(nvec, FR_MV_XFIRST(NB), lines) > held;         \
    const int per = xfirst ? FR_NAME(pass_vectors)(nvec, FR_MV_XFIRST(NB), lines) : held;   \
    const ptrdiff_t pf_ = (ptrdiff_t)pf * G * FR_U;                                         \
    _Pragma("GCC unroll 4")                                                                 \
    for (int v0 = 0; v0 < nvec; v0 += per) {                                                \
        const int nv = nvec - v0 < per ? nvec - v0 : per;                                   \
        FR_VF a[NB][maxv];                                                                  \
        for (int b = 0; b < NB; ++b)                                                        \
            for (int i = 0; i < nv; ++i)                                                    \
                a[b][i] = add ? (FR_VF)FR_LD(acc + FR_MV_A(b, v0 + i)) : (FR_VF){0};        \
        for (int k = k0; k < k1; k += KSTEP) {                                              \
            const WT *restrict w = wp + (ptrdiff_t)(k / KSTEP) * G * FR_U;                  \
            FR_MV_PREFETCH(w, v0, nv, WT);                                                  \
            for (int j = 0; j < KSTEP; ++j) {                                               \
                if (k + j == k1) break;  /* an odd K's last pair holds one k */             \
                const float *restrict h_lo = h + k + j;                                     \
                const float *restrict h_hi = h_lo + 3 * (ptrdiff_t)ldh;                     \
                if (xfirst) {                                                               \
                    FR_VF x[NB];                                                            \
                    for (int b = 0; b < NB; ++b)                                            \
                        x[b] = FR_SPLAT(FR_MV_H(b));                                        \
                    for (int i = 0; i < nv; ++i) {                                          \
                        FR_VF wv = LOAD(FR_MV_W(w, v0 + i), j);                             \
                        FR_KEEP_IN_REGISTER(wv);                                            \
                        for (int b = 0; b < NB; ++b) a[b][i] += wv * x[b];                  \
                    }                                                                       \
                    continue;                                                               \
                }                                                                           \
                FR_VF wv[maxv];                                                             \
                for (int i = 0; i < nv; ++i) {                                              \
                    wv[i] = LOAD(FR_MV_W(w, v0 + i), j);                                    \
                    FR_KEEP_IN_REGISTER(wv[i]);                                             \
                }                                                                           \
                for (int b = 0; b < NB; ++b) {                                              \
                    const FR_VF x = FR_SPLAT(FR_MV_H(b));                                   \
                    for (int i = 0; i < nv; ++i) a[b][i] += wv[i] * x;                      \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        for (int b = 0; b < NB; ++b)                                                        \
            for (int i = 0; i < nv; ++i)                                                    \
                FR_ST(acc + FR_MV_A(b, v0 + i), a[b][i]);                                   \
    }                                                                                       \
}
/* Column b's h at k + j: columns 3-5 from a second base, so that every column's address
 * is a base plus 0, 1 or 2 times ldh (two base registers and one index) */
#define FR_MV_H(b) ((b) < 3 ? h_lo : h_hi)[(ptrdiff_t)((b) % 3) * ldh]
/* Vector t of a group's rows at k (w: panel 0's row): panel t / nv1 (np_ panels,
 * pstride elements apart), its vector t % nv1; and where its sum for column b goes in
 * acc (each panel's columns astride floats apart) */
#define FR_MV_W(w, t) ((w) + ((t) / nv1) * pstride + ((t) % nv1) * FR_L)
#define FR_MV_A(b, t) ((ptrdiff_t)(b) * lda + ((t) / nv1) * astride + ((t) % nv1) * FR_L)
/* The cache lines of the pass's weights (nv vectors from vector v0) pf rows ahead (pf_
 * elements), when pf > 0: one prefetch per line a pass starts in (passes keep to whole
 * lines there: lines). */
#define FR_MV_PREFETCH(w, v0, nv, WT)                                                       \
    do {                                                                                    \
        if (pf_)                                                                            \
            for (int i_ = 0; i_ < (nv); ++i_)                                               \
                if ((((v0) + i_) % nv1) * FR_L * sizeof(WT) % 64 == 0)                      \
                    __builtin_prefetch((const char *)(FR_MV_W(w, (v0) + i_) + pf_), 0, 3);  \
    } while (0)
#define FR_MV_F32(p, j) FR_LD(p)
#define FR_MV_F16(p, j) FR_NAME(load_f16)(p)
#define FR_MV_BF16(p, j) ((j) ? FR_PAIR_HI(p) : FR_PAIR_LO(p))
#define FR_PANEL_MVS(NB)                                                                    \
    FR_PANEL_MV(f32, float, FR_MV_F32, 1, NB)                                               \
    FR_PANEL_MV(f16, uint16_t, FR_MV_F16, 1, NB)                                            \
    FR_PANEL_MV(bf16, uint32_t, FR_MV_BF16, 2, NB)
FR_PANEL_MVS(2)
#if FR_NB >= 4
FR_PANEL_MVS(4)
#endif
#if FR_NB >= 6
FR_PANEL_MVS(6)
FR_PANEL_MVS(5)
FR_PANEL_MVS(3)
#endif
#undef FR_PANEL_MV
#undef FR_PANEL_MVS
#undef FR_MV_F32
#undef FR_MV_PREFETCH
#undef FR_MV_H
#undef FR_MV_W
#undef FR_MV_A
#undef FR_MV_F16
#undef FR_MV_BF16
#undef FR_MV_CAP
#undef FR_MV_HELD
#undef FR_MV_XFIRST
#undef FR_MV_MAXV

/* NB columns of the product of np_ panels (at: the first one's first element in w, the
 * others pstride elements on, in w's storage elements as at; their sums astride floats
 * apart in acc), by the body of the weights' storage type. */
#define FR_PANEL_MV_NB(NB)                                                                 \
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(panel_mv_##NB)(       \
        int wt, int G, int np_, ptrdiff_t pstride, ptrdiff_t astride, int k0, int k1,      \
        int add, int pf, int lines, const void *restrict w, ptrdiff_t at,                  \
        const float *restrict h, int ldh, float *restrict acc, int lda)                    \
{                                                                                          \
    if (wt == FR_W_F16)                                                                    \
        FR_NAME(panel_mv_f16_##NB)(G, np_, pstride, astride, k0, k1, add, pf, lines,       \
                                   (const uint16_t *)w + at, h, ldh, acc, lda);            \
    else if (wt == FR_W_BF16)   /* pairs: two elements a word */                           \
        FR_NAME(panel_mv_bf16_##NB)(G, np_, pstride / 2, astride, k0, k1, add, pf, lines,  \
                                    (const uint32_t *)((const uint16_t *)w + at), h, ldh,  \
                                    acc, lda);                                             \
    else                                                                                   \
        FR_NAME(panel_mv_f32_##NB)(G, np_, pstride, astride, k0, k1, add, pf, lines,       \
                                   (const float *)w + at, h, ldh, acc, lda);               \
}
FR_PANEL_MV_NB(2)
#if FR_NB >= 4
FR_PANEL_MV_NB(4)
#endif
#if FR_NB >= 6
FR_PANEL_MV_NB(6)
FR_PANEL_MV_NB(5)
FR_PANEL_MV_NB(3)
#endif
#undef FR_PANEL_MV_NB
#endif

#if FR_NB >= 2
/* Rows [k0, k1) of panel p's product for columns [0, m) in blocks of 2-6 (add: onto
 * the partial sums already in acc, else from zero); returns the columns done, the rest
 * (with blocks to 6: only a batch of one) left to panel_matvec. pf > 0 (panels of
 * FR_KBLOCK_MIN_K rows and more, whose weights stream from beyond L2 on cores with
 * 512 KB of it) also keeps each block's passes to whole cache lines (pass_vectors). */
static inline __attribute__((always_inline)) FR_TARGET int FR_NAME(panel_blocks)(
        int wt, int G, int np_, ptrdiff_t pstride, ptrdiff_t astride, int k0, int k1, int add,
        int pf, const void *restrict w, ptrdiff_t at, const float *restrict h, int ldh, int m,
        float *restrict acc, int lda)
{
    int b = 0;
    /* the first block prefetches, the others find the rows in cache; a group's panels
     * one by one where a panel alone fills FR_ACC accumulators (AVX2, 4+ columns: the
     * group's passes would be no fuller) */
#define FR_BLOCK_OF(NB, NP, J) FR_NAME(panel_mv_##NB)(wt, G, NP, pstride, astride, k0, k1, add, \
                                            b == 0 ? pf : 0, pf != 0, w, at + (J) * pstride, \
                                            h + (ptrdiff_t)b * ldh, ldh,                     \
                                            acc + (ptrdiff_t)b * lda + (J) * astride, lda)
#define FR_BLOCK(NB)                                                                       \
    do {                                                                                   \
        if (np_ > 1 && (NB) * G * FR_S >= FR_ACC)                                          \
            for (int j_ = 0; j_ < np_; ++j_)                                               \
                FR_BLOCK_OF(NB, 1, j_);                                                    \
        else                                                                               \
            FR_BLOCK_OF(NB, np_, 0);                                                       \
    } while (0)
#if FR_NB >= 6
    /* sixes, then what is left (2 to 6, or 8 as 4 + 4: 5 + 3 ran 10% slower; 7 as 4 + 3)
     * in one pass over the panel: 3 or 5 sequences read the weights once, not twice
     * (2 + 1, 4 + 1), which at hidden 200-300 had made batch 3 slower than ONNX Runtime.
     * No column of 2+ is left alone: panel_matvec sums in another order (k in FR_ACC
     * interleaved parts), and a sequence's results would depend on the batch it went in
     * (batch 7 as 6 + 1, and so one core's batch of 14 against two cores' halves of 7) */
    for (; b + 6 <= m && m - b != 8 && m - b != 7; b += 6)
        FR_BLOCK(6);
    for (; b + 4 <= m && (m - b == 8 || m - b == 7); b += 4)
        FR_BLOCK(4);
    for (; b + 5 <= m; b += 5)
        FR_BLOCK(5);
#endif
#if FR_NB >= 4
    for (; b + 4 <= m; b += 4)
        FR_BLOCK(4);
#endif
#if FR_NB >= 6
    for (; b + 3 <= m; b += 3)
        FR_BLOCK(3);
#endif
    for (; b + 2 <= m; b += 2)
        FR_BLOCK(2);
#undef FR_BLOCK
#undef FR_BLOCK_OF
    return b;
}
#endif

#ifdef FR_KBLOCK_BYTES
/* panel_blocks over a row block of at most FR_KBLOCK_BYTES of weights at a time (see
 * panel_matvec_m), in whole multiples of FR_PF_ROWS rows (even: bfloat16 pairs; a GRU's
 * 84-row AVX2 blocks had run 3-4% slower than 64), in functions of their own, one per
 * gate count, so that the steps' plain passes compile as before and each function's
 * k loops keep their columns' h addresses in registers (in one function for every gate
 * count, a GRU's 6-column loop reloaded two of them from the stack at each k: batch 16
 * 2-8% slower, AVX2 and AVX-512). */
static inline __attribute__((always_inline)) FR_TARGET int FR_NAME(panel_blocked_g)(
        int wt, int G, int np_, ptrdiff_t pstride, ptrdiff_t astride, int K,
        const void *restrict w, ptrdiff_t at, const float *restrict h, int ldh, int m,
        float *restrict acc, int lda)
{
    int b = 0;
    const int rows = FR_KBLOCK_BYTES / (np_ * G * FR_U * (wt == FR_W_F32 ? 4 : 2))
                     / FR_PF_ROWS * FR_PF_ROWS;
    const int kb = m > FR_NB ? rows : K;
    for (int k0 = 0; k0 < K; k0 += kb)
        b = FR_NAME(panel_blocks)(wt, G, np_, pstride, astride, k0,
                                  K - k0 < kb ? K : k0 + kb, k0 > 0, FR_PF_ROWS, w, at, h,
                                  ldh, m, acc, lda);
    return b;
}

#define FR_BLOCKED(GC, NP)                                                                 \
static __attribute__((noinline)) FR_TARGET int FR_NAME(panel_blocked_##GC##_##NP)(          \
        int wt, ptrdiff_t pstride, ptrdiff_t astride, int K, const void *restrict w,       \
        ptrdiff_t at, const float *restrict h, int ldh, int m, float *restrict acc, int lda) \
{                                                                                          \
    return FR_NAME(panel_blocked_g)(wt, GC, NP, pstride, astride, K, w, at, h, ldh, m,     \
                                    acc, lda);                                             \
}
FR_BLOCKED(4, 1)
FR_BLOCKED(3, 1)
FR_BLOCKED(2, 1)
FR_BLOCKED(1, 1)
FR_BLOCKED(1, 4)   /* FR_GROUP */
#undef FR_BLOCKED

static inline __attribute__((always_inline)) FR_TARGET int FR_NAME(panel_blocked)(
        int wt, int G, int np_, ptrdiff_t pstride, ptrdiff_t astride, int K,
        const void *restrict w, ptrdiff_t at, const float *restrict h, int ldh, int m,
        float *restrict acc, int lda)
{
    if (np_ > 1)
        return FR_NAME(panel_blocked_1_4)(wt, pstride, astride, K, w, at, h, ldh, m, acc, lda);
    if (G == 4)
        return FR_NAME(panel_blocked_4_1)(wt, pstride, astride, K, w, at, h, ldh, m, acc, lda);
    if (G == 3)
        return FR_NAME(panel_blocked_3_1)(wt, pstride, astride, K, w, at, h, ldh, m, acc, lda);
    if (G == 2)
        return FR_NAME(panel_blocked_2_1)(wt, pstride, astride, K, w, at, h, ldh, m, acc, lda);
    return FR_NAME(panel_blocked_1_1)(wt, pstride, astride, K, w, at, h, ldh, m, acc, lda);
}
#endif

/* The product of np_ panels, p and the next np_ - 1 pstep (+1 or -1) apart, for m
 * columns (h rows of stride ldh) into acc (m rows of stride lda, G*FR_U used, for each
 * panel astride floats on from the one before). Where the ISA sets FR_KBLOCK_BYTES
 * (AVX2 and AVX-512: 6 columns per pass, so that a batch above 6 passes over each
 * panel several times), the rows of the panel go that many bytes of weights at a time
 * through every column block, the partial sums kept in acc between row blocks: a row
 * block (AVX-512: 32 KB, 128 rows of an LSTM's float32 panel) stays in L1 for the
 * column blocks after the first, where a whole panel (128 KB at hidden 512) came back
 * from L2 for each; and the first column block
 * of each pass prefetches its weights FR_PF_ROWS rows ahead (past the panel's end: the
 * next panel's first rows), which the hardware prefetcher did not do for a pass's one
 * line in every G*FR_U*4 bytes: at hidden 512 an LSTM's W_hh (4 MB) comes from L3
 * every step. Both from FR_KBLOCK_MIN_K rows on; shorter panels (weights that stay in
 * L2) keep the plain passes (no gain at hidden 128, 1.02-1.07x in a short run). Each
 * sum is still taken in k order, so the results do not change. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(panels_matvec_m)(
        int wt, int G, int np_, int pstep, ptrdiff_t astride, int K, int p,
        const void *restrict w, const float *restrict h, int ldh, int m, float *restrict acc,
        int lda)
{
    int b = 0;
#if FR_NB >= 2
    const ptrdiff_t at = p * FR_NAME(panel_size)(wt, G, K);
    const ptrdiff_t pstride = pstep * FR_NAME(panel_size)(wt, G, K);
    if (np_ > 1 && FR_S > 1 && m > FR_NB) {
        /* AVX2 (a panel's row two vectors): a group pays only in blocks of 2-3 columns,
         * and beyond one block of columns its shorter row blocks cost more (RNN hidden
         * 256, batch 9 and 16: 1.04-1.13x the time of panels one by one) */
        for (int j = 0; j < np_; ++j)
            FR_NAME(panels_matvec_m)(wt, G, 1, 0, 0, K, p + j * pstep, w, h, ldh, m,
                                     acc + j * astride, lda);
        return;
    }
#ifdef FR_KBLOCK_BYTES
    if (K >= FR_KBLOCK_MIN_K)
        b = FR_NAME(panel_blocked)(wt, G, np_, pstride, astride, K, w, at, h, ldh, m, acc,
                                   lda);
    else
#endif
    b = FR_NAME(panel_blocks)(wt, G, np_, pstride, astride, 0, K, 0, 0, w, at, h, ldh, m,
                              acc, lda);
#endif
    for (; b < m; ++b)
        for (int j = 0; j < np_; ++j)
            FR_NAME(panel_matvec)(wt, G, K, p + j * pstep, w, h + (ptrdiff_t)b * ldh,
                                  acc + (ptrdiff_t)b * lda + j * astride);
}

/* Panel p's product for m columns: panels_matvec_m of one panel. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(panel_matvec_m)(
        int wt, int G, int K, int p, const void *restrict w, const float *restrict h,
        int ldh, int m, float *restrict acc, int lda)
{
    FR_NAME(panels_matvec_m)(wt, G, 1, 0, 0, K, p, w, h, ldh, m, acc, lda);
}

#if FR_NB >= 2
/* Rows of a projection's half-precision panel widened at a time (FR_PROJ_ROWS * 4 *
 * FR_U floats, 16 KB for an LSTM: in L1 beside x's rows while every column passes). */
#define FR_PROJ_ROWS 64

/* Rows [k0, k1) of panel `at` of a half-precision matrix as float32 rows (k0 even). */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(widen_rows)(
        int wt, int G, int k0, int k1, const void *restrict w, ptrdiff_t at,
        float *restrict dst)
{
    const int row = G * FR_U;
    if (wt == FR_W_BF16) {
        const uint32_t *restrict wp = (const uint32_t *)((const uint16_t *)w + at);
        for (int k = k0; k < k1; k += 2) {
            const uint32_t *restrict src = wp + (ptrdiff_t)(k / 2) * row;
            float *restrict lo = dst + (ptrdiff_t)(k - k0) * row;
            for (int i = 0; i < row; i += FR_L) {
                FR_NAME(vpair) word = *(const FR_NAME(vpair) *)(src + i);
                FR_ST(lo + i, FR_WORD_LO(word));
                if (k + 1 < k1)
                    FR_ST(lo + row + i, FR_WORD_HI(word));
            }
        }
    } else {
        const uint16_t *restrict wp = (const uint16_t *)w + at;
        for (int k = k0; k < k1; ++k)
            for (int i = 0; i < row; i += FR_L)
                FR_ST(dst + (ptrdiff_t)(k - k0) * row + i,
                      FR_NAME(load_f16)(wp + (ptrdiff_t)k * row + i));
    }
}

/* panel_project_g for half-precision weights: each panel's rows widened to float32
 * FR_PROJ_ROWS at a time, once for all n columns, and multiplied by the float32 body
 * (widening in the product, once per weight vector and 6 columns, had kept the
 * projection at 66-75% of the FMA peak where float32 runs at 80-100%). The sums run in
 * the same k order, so the results do not change; a column left over by the blocks of
 * 2-6 takes the plain product. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(panel_project_half)(
        int wt, int G, int K, int npan, int p0, int p1, const void *restrict w,
        const float *restrict x, int ldx, int n, float *restrict out)
{
    const int ld = npan * G * FR_U;
    float wf[FR_PROJ_ROWS * 4 * FR_U] __attribute__((aligned(64)));
    for (int p = p0; p < p1; ++p) {
        const ptrdiff_t at = p * FR_NAME(panel_size)(wt, G, K);
        for (int k0 = 0; k0 < K; k0 += FR_PROJ_ROWS) {
            const int k1 = K - k0 < FR_PROJ_ROWS ? K : k0 + FR_PROJ_ROWS;
            FR_NAME(widen_rows)(wt, G, k0, k1, w, at, wf);
            for (int c0 = 0; c0 < n; c0 += FR_MAXB) {
                const int m = n - c0 < FR_MAXB ? n - c0 : FR_MAXB;
                const int b = FR_NAME(panel_blocks)(FR_W_F32, G, 1, 0, 0, 0, k1 - k0, k0 > 0, 0,
                                                    wf, 0, x + (ptrdiff_t)c0 * ldx + k0, ldx,
                                                    m, out + (ptrdiff_t)c0 * ld + p * G * FR_U,
                                                    ld);
                if (k0 == 0 && b < m)   /* the leftover column, all of K at once */
                    FR_NAME(panel_matvec)(wt, G, K, p, w, x + (ptrdiff_t)(c0 + b) * ldx,
                                          out + (ptrdiff_t)(c0 + b) * ld + p * G * FR_U);
            }
        }
    }
}
#endif

/* The hoisted input projection of the fused path, from the packed W_ih panels: row c of
 * out, (n, npan*G*FR_U) in panel order, is W_ih x_c for panels [p0, p1), x's rows of
 * stride ldx. Columns go FR_MAXB at a time (their x stays in cache while every panel
 * passes), each panel's weights once per NB columns: nearer the FMA peak than sgemm on
 * these thin shapes, and in the order the steps read it. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(panel_project_g)(
        int wt, int G, int K, int npan, int p0, int p1, const void *restrict w,
        const float *restrict x, int ldx, int n, float *restrict out)
{
    const int ld = npan * G * FR_U;
#if FR_NB >= 2
    if (wt != FR_W_F32 && n >= 2) {
        FR_NAME(panel_project_half)(wt, G, K, npan, p0, p1, w, x, ldx, n, out);
        return;
    }
#endif
    for (int c0 = 0; c0 < n; c0 += FR_MAXB) {
        const int m = n - c0 < FR_MAXB ? n - c0 : FR_MAXB;
        for (int p = p0; p < p1; ++p) {
            float *restrict o = out + (ptrdiff_t)c0 * ld + p * G * FR_U;
            /* one-gate panels FR_GROUP at a time (their outputs side by side in a row) */
            if (G == 1 && p + FR_GROUP <= p1) {
                FR_NAME(panels_matvec_m)(wt, 1, FR_GROUP, 1, FR_U, K, p, w,
                                         x + (ptrdiff_t)c0 * ldx, ldx, m, o, ld);
                p += FR_GROUP - 1;
            } else {
                FR_NAME(panel_matvec_m)(wt, G, K, p, w, x + (ptrdiff_t)c0 * ldx, ldx, m, o, ld);
            }
        }
    }
}

static FR_TARGET void FR_NAME(panel_project)(
        int wt, int G, int K, int npan, int p0, int p1, const void *restrict w,
        const float *restrict x, int ldx, int n, float *restrict out)
{
    /* one body per gate count, so that the register blocking is fixed at compile time
     * (as in the steps, which pass their own) */
    if (G == 4)
        FR_NAME(panel_project_g)(wt, 4, K, npan, p0, p1, w, x, ldx, n, out);
    else if (G == 3)
        FR_NAME(panel_project_g)(wt, 3, K, npan, p0, p1, w, x, ldx, n, out);
    else
        FR_NAME(panel_project_g)(wt, 1, K, npan, p0, p1, w, x, ldx, n, out);
}

/* xin = xw + bias for one panel and one sequence: xw is that sequence's W_ih x for the
 * panel, from the hoisted projection (panel order, panel_project) or computed from the
 * packed W_ih panels in the step itself. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(panel_x)(
        int G, const float *restrict xw, const float *restrict bias, float *restrict xin)
{
    for (int i = 0; i < G * FR_S; ++i)
        FR_ST(xin + i * FR_L, FR_LD(xw + i * FR_L) + FR_LD(bias + i * FR_L));
}

/* n valid floats of a panel-wide buffer from / to memory that may end before FR_U. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(load_units)(
        int n, const float *restrict src, float *restrict dst)
{
    if (n == FR_U) { for (int s = 0; s < FR_S; ++s) FR_ST(dst + s * FR_L, FR_LD(src + s * FR_L)); }
    else { for (int u = 0; u < FR_U; ++u) dst[u] = u < n ? src[u] : 0.0f; }
}

static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(store_units)(
        int n, const float *restrict src, float *restrict dst)
{
    if (n == FR_U) { for (int s = 0; s < FR_S; ++s) FR_ST(dst + s * FR_L, FR_LD(src + s * FR_L)); }
    else { for (int u = 0; u < n; ++u) dst[u] = src[u]; }
}

/* Which cell a fused step computes: a compile-time constant in every call of the body
 * below, so that gcc compiles one copy of the loops per family around its lane math. */
enum { FR_CELL_LSTM = 0, FR_CELL_GRU = 1, FR_CELL_RNN = 2 };

/* Rows per panel and unit: the gates of each family (LSTM i f g o, GRU r z n, RNN one). */
static inline __attribute__((always_inline)) int FR_NAME(cell_gates)(int cell)
{
    return cell == FR_CELL_LSTM ? 4 : cell == FR_CELL_GRU ? 3 : 1;
}

/* Panels whose products go before their cell updates, at a time. With half-precision
 * weights (products bound by instructions, not by the cache) and one or two sequences,
 * a group of four panels goes before their cell updates, so that the updates' long
 * chains (exp, reciprocal, exp again) of different panels overlap one another instead
 * of each waiting out its own: 10-18% of a step at hidden 64. float32 products wait on
 * the cache, and each panel's update hides behind the next one's loads (grouping them
 * lost 2-4% there). Panels of one gate (G) go FR_GROUP at a time, their products
 * together (group_products). The step's accs holds a group. */
static inline __attribute__((always_inline)) int FR_NAME(group_panels)(int wt, int m, int G)
{
    return G == 1 ? FR_GROUP : wt != FR_W_F32 && m <= 2 ? 4 : 1;
}

/* The q-th panel of a call over [p0, p1): ascending, or descending when rev (see
 * lstm_fused_f32 in fr_kernels.h). */
static inline __attribute__((always_inline)) int FR_NAME(panel_at)(int p0, int p1, int rev, int q)
{
    return rev ? p1 - 1 - (q - p0) : q;
}

/* The products of the fused steps for panels [q0, q1) of a call over [p0, p1): W h into
 * accs (G rows per unit) and, when wx is given, W_ih x into xws (Gx rows per unit: the
 * textbook GRU's first product covers r and z of W_hh but all three gates of W_ih),
 * each panel's m columns after the previous panel's. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(group_products)(
        int G, int Gx, int p0, int p1, int rev, int q0, int q1, int m, int wt, int n_in,
        int K, const void *restrict wx, const float *restrict x, const void *restrict w,
        const float *restrict h, float *restrict accs, float *restrict xws)
{
    for (int q = q0; q < q1; ++q) {
        const int p = FR_NAME(panel_at)(p0, p1, rev, q);
        float *restrict acc = accs + (ptrdiff_t)(q - q0) * m * G * FR_U;
        float *restrict xw = xws + (ptrdiff_t)(q - q0) * m * Gx * FR_U;
        /* one-gate panels FR_GROUP at a time (the group's panels are side by side in p,
         * in the order of q) */
        if (G == 1 && Gx == 1 && q + FR_GROUP <= q1) {
            const int pstep = rev ? -1 : 1;
            FR_NAME(panels_matvec_m)(wt, 1, FR_GROUP, pstep, (ptrdiff_t)m * FR_U, K, p, w, h, K,
                                     m, acc, FR_U);
            if (wx != NULL)
                FR_NAME(panels_matvec_m)(wt, 1, FR_GROUP, pstep, (ptrdiff_t)m * FR_U, n_in, p,
                                         wx, x, n_in, m, xw, FR_U);
            q += FR_GROUP - 1;
            continue;
        }
        FR_NAME(panel_matvec_m)(wt, G, K, p, w, h, K, m, acc, G * FR_U);
        if (wx != NULL)
            FR_NAME(panel_matvec_m)(wt, Gx, n_in, p, wx, x, n_in, m, xw, Gx * FR_U);
    }
}

/* ---- The cell epilogues: one panel's lane math for one sequence ------------------
 * xin: W_ih x + bias and acc: W h, both (G, FR_U) for the panel's units; the state
 * pointers are at the panel's first unit, n (<= FR_U) of them valid. */

/* LSTM in two halves, each over every sequence of a panel in turn (fused_body): the
 * gates, with c advancing in place, then h_out = o * tanh(c). The second half's chain
 * (exp, reciprocal) waits on the first's (exp, reciprocal, c): run back to back for one
 * sequence, the two chains were one long wait, which the next sequence's could not
 * overlap; halves over all sequences give the core independent work. lstm_gates
 * leaves c and o in acc's f and o rows for lstm_out. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(lstm_gates)(
        int n, const float *restrict xin, float *restrict acc, float *restrict c)
{
    float cb[FR_U];
    FR_NAME(load_units)(n, c, cb);
    for (int s = 0; s < FR_S; ++s) {
        const int u = s * FR_L;
        FR_VF i_ = FR_NAME(vsigmoid)(FR_LD(xin + u) + FR_LD(acc + u));
        FR_VF f_ = FR_NAME(vsigmoid)(FR_LD(xin + FR_U + u) + FR_LD(acc + FR_U + u));
        FR_VF g_ = FR_NAME(vtanh)(FR_LD(xin + 2 * FR_U + u) + FR_LD(acc + 2 * FR_U + u));
        FR_VF o_ = FR_NAME(vsigmoid)(FR_LD(xin + 3 * FR_U + u) + FR_LD(acc + 3 * FR_U + u));
        FR_VF c_ = f_ * FR_LD(cb + u) + i_ * g_;
        FR_ST(cb + u, c_);
        FR_ST(acc + FR_U + u, c_);
        FR_ST(acc + 3 * FR_U + u, o_);
    }
    FR_NAME(store_units)(n, cb, c);
}

static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(lstm_out)(
        int n, const float *restrict acc, float *restrict h_out)
{
    float hb[FR_U];
    for (int s = 0; s < FR_S; ++s) {
        const int u = s * FR_L;
        FR_ST(hb + u, FR_LD(acc + 3 * FR_U + u) * FR_NAME(vtanh)(FR_LD(acc + FR_U + u)));
    }
    FR_NAME(store_units)(n, hb, h_out);
}

/* GRU in two halves over a panel's sequences, as the LSTM's: r and z, then n and h_out
 * (n's chain waits on r's). b_hn (the panel's FR_U) sits inside r * (W_hn h + b_hn).
 * gru_gates leaves z and n's argument in acc's z and n rows for gru_out. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(gru_gates)(
        const float *restrict xin, float *restrict acc, const float *restrict b_hn)
{
    for (int s = 0; s < FR_S; ++s) {
        const int u = s * FR_L;
        FR_VF r = FR_NAME(vsigmoid)(FR_LD(xin + u) + FR_LD(acc + u));
        FR_VF z = FR_NAME(vsigmoid)(FR_LD(xin + FR_U + u) + FR_LD(acc + FR_U + u));
        FR_ST(acc + FR_U + u, z);
        FR_ST(acc + 2 * FR_U + u, FR_LD(xin + 2 * FR_U + u) + r * (
            FR_LD(acc + 2 * FR_U + u) + FR_LD(b_hn + u)));
    }
}

/* h -> h_out */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(gru_out)(
        int n, const float *restrict acc, const float *restrict h, float *restrict h_out)
{
    float hb[FR_U];
    FR_NAME(load_units)(n, h, hb);
    for (int s = 0; s < FR_S; ++s) {
        const int u = s * FR_L;
        FR_VF nn = FR_NAME(vtanh)(FR_LD(acc + 2 * FR_U + u));
        /* torch's form, (h - n) * z + n */
        FR_ST(hb + u, (FR_LD(hb + u) - nn) * FR_LD(acc + FR_U + u) + nn);
    }
    FR_NAME(store_units)(n, hb, h_out);
}

/* RNN: h_out = tanh or relu of the sum. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(rnn_lanes)(
        int n, const float *restrict xin, const float *restrict acc, int relu,
        float *restrict h_out)
{
    float hb[FR_U];
    for (int s = 0; s < FR_S; ++s) {
        const int u = s * FR_L;
        FR_VF a = FR_LD(xin + u) + FR_LD(acc + u);
        FR_ST(hb + u, relu ? FR_NAME(vsel)(a > 0.0f, a, (FR_VF){0}) : FR_NAME(vtanh)(a));
    }
    FR_NAME(store_units)(n, hb, h_out);
}

/* ---- The fused step, one loop for every family --------------------------------
 * Walks the panels [p0, p1) in groups (group_panels), computes each group's products
 * (group_products), then for each panel and sequence adds the input part and bias and
 * hands the sums to the family's epilogue (the LSTM's and GRU's in two halves, each
 * over all the panel's sequences: see lstm_gates). cell is a constant at every call, so each
 * family gets its own copy of this body (as do m = 1 and each storage type: see
 * fused_specialised below). h is (m, K) (K = H but for a projecting LSTM), c and h_out (m, H);
 * the arguments a family does not use (K, b_hn, c, relu) are ignored. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(fused_body)(
        int cell, int p0, int p1, int rev, int m, int wt, int H, int n_in, int K,
        const void *restrict wx, const float *restrict x, const void *restrict w,
        const float *restrict bias, const float *restrict b_hn, const float *restrict gin,
        int relu, const float *restrict h, float *restrict c, float *restrict h_out)
{
    const int G = FR_NAME(cell_gates)(cell);
    const int npan = (H + FR_U - 1) / FR_U;
    const int group = FR_NAME(group_panels)(wt, m, G);
    for (int q0 = p0; q0 < p1; q0 += group) {
        const int q1 = q0 + group < p1 ? q0 + group : p1;
        float accs[FR_MAXB * 4 * FR_U], xws[FR_MAXB * 4 * FR_U];
        FR_NAME(group_products)(G, G, p0, p1, rev, q0, q1, m, wt, n_in, K, wx, x, w, h, accs,
                                xws);
        for (int q = q0; q < q1; ++q) {
            const int p = FR_NAME(panel_at)(p0, p1, rev, q);
            const int j0 = p * FR_U, n = H - j0 < FR_U ? H - j0 : FR_U;
            float xin[4 * FR_U];
            for (int b = 0; b < m; ++b) {
                const ptrdiff_t col = (ptrdiff_t)(q - q0) * m + b;  /* in accs and xws */
                float *acc = accs + col * G * FR_U;
                /* W_ih x: from the step's own product, or the hoisted projection */
                const float *xw = wx != NULL ? xws + col * G * FR_U
                                             : gin + ((ptrdiff_t)b * npan + p) * G * FR_U;
                FR_NAME(panel_x)(G, xw, bias + p * G * FR_U, xin);
                const ptrdiff_t at = (ptrdiff_t)b * H + j0;
                if (cell == FR_CELL_LSTM)
                    FR_NAME(lstm_gates)(n, xin, acc, c + at);
                else if (cell == FR_CELL_GRU)
                    FR_NAME(gru_gates)(xin, acc, b_hn + p * FR_U);
                else
                    FR_NAME(rnn_lanes)(n, xin, acc, relu, h_out + at);
            }
            for (int b = 0; cell != FR_CELL_RNN && b < m; ++b) {
                const float *acc = accs + ((ptrdiff_t)(q - q0) * m + b) * G * FR_U;
                const ptrdiff_t at = (ptrdiff_t)b * H + j0;
                if (cell == FR_CELL_LSTM)
                    FR_NAME(lstm_out)(n, acc, h_out + at);
                else
                    FR_NAME(gru_out)(n, acc, h + at, h_out + at);
            }
        }
    }
}

/* The steps as called: one sequence (a served stream, a batch-1 sequence) gets a
 * copy of the body compiled for m = 1 and its weight storage, in which the compiler
 * drops the column loops and keeps the products in registers: 15-20% of a step at
 * hidden 64 (the general body must serve any m and storage from the same code). */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(fused_specialised)(
        int cell, int p0, int p1, int rev, int m, int wt, int H, int n_in, int K,
        const void *restrict wx, const float *restrict x, const void *restrict w,
        const float *restrict bias, const float *restrict b_hn, const float *restrict gin,
        int relu, const float *restrict h, float *restrict c, float *restrict h_out)
{
    if (m == 1 && wt == FR_W_F32)
        FR_NAME(fused_body)(cell, p0, p1, rev, 1, FR_W_F32, H, n_in, K, wx, x, w, bias, b_hn,
                            gin, relu, h, c, h_out);
    else if (m == 1 && wt == FR_W_BF16)
        FR_NAME(fused_body)(cell, p0, p1, rev, 1, FR_W_BF16, H, n_in, K, wx, x, w, bias, b_hn,
                            gin, relu, h, c, h_out);
    else if (m == 1)
        FR_NAME(fused_body)(cell, p0, p1, rev, 1, FR_W_F16, H, n_in, K, wx, x, w, bias, b_hn,
                            gin, relu, h, c, h_out);
    else
        FR_NAME(fused_body)(cell, p0, p1, rev, m, wt, H, n_in, K, wx, x, w, bias, b_hn,
                            gin, relu, h, c, h_out);
}

static FR_TARGET void FR_NAME(lstm_fused_f32)(
        int p0, int p1, int rev, int m, int wt, int H, int n_in, int K, const void *restrict wx,
        const float *restrict x, const void *restrict w, const float *restrict bias,
        const float *restrict gin, const float *restrict h, float *restrict c,
        float *restrict h_out)
{
    FR_NAME(fused_specialised)(FR_CELL_LSTM, p0, p1, rev, m, wt, H, n_in, K, wx, x, w, bias,
                                 NULL, gin, 0, h, c, h_out);
}

static FR_TARGET void FR_NAME(gru_fused_f32)(
        int p0, int p1, int rev, int m, int wt, int H, int n_in, const void *restrict wx,
        const float *restrict x, const void *restrict w, const float *restrict bias,
        const float *restrict b_hn, const float *restrict gin, const float *restrict h,
        float *restrict h_out)
{
    FR_NAME(fused_specialised)(FR_CELL_GRU, p0, p1, rev, m, wt, H, n_in, H, wx, x, w, bias,
                                 b_hn, gin, 0, h, NULL, h_out);
}

static FR_TARGET void FR_NAME(rnn_fused_f32)(
        int p0, int p1, int rev, int m, int wt, int H, int n_in, const void *restrict wx,
        const float *restrict x, const void *restrict w, const float *restrict bias,
        const float *restrict gin, int relu, const float *restrict h, float *restrict h_out)
{
    FR_NAME(fused_specialised)(FR_CELL_RNN, p0, p1, rev, m, wt, H, n_in, H, wx, x, w, bias,
                                 NULL, gin, relu, h, NULL, h_out);
}

/* ---- The textbook GRU (reset_after=False): two phases per step -------------------
 * n = tanh(W_in x + b_n + W_hn (r * h)): every n panel's product reads r * h of every
 * unit, so a step runs in two phases over the panels, and a step split across two
 * cores meets between them (_stack.pyx, fused_step):
 *   phase 1: W_h{r,z} h per panel, r and z, r * h of the panel's units;
 *   phase 2: W_hn (r * h) per panel, n and h_out.
 * W_hh is packed (packing.py, textbook_panels) as the r, z rows' panels (npan, K, 2,
 * FR_U) followed by the n rows' own (npan, K, 1, FR_U), so that the second product
 * streams whole panels as the first does. W_ih and the bias keep the three-gate panels
 * (the input part does not wait on r); every bias is folded. Between the phases,
 * scratch holds z and W_in x + b_n, (m, npan*FR_U) each, then r * h, (m, H). */

/* Phase 1 for one panel of one sequence: xin (3, FR_U) = W_ih x + bias, acc (2, FR_U)
 * = W_h{r,z} h. */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(grut_rz_lanes)(
        int n, const float *restrict xin, const float *restrict acc, const float *restrict h,
        float *restrict z_out, float *restrict xn_out, float *restrict rh_out)
{
    float hb[FR_U], rb[FR_U];
    FR_NAME(load_units)(n, h, hb);
    for (int s = 0; s < FR_S; ++s) {
        const int u = s * FR_L;
        FR_VF r = FR_NAME(vsigmoid)(FR_LD(xin + u) + FR_LD(acc + u));
        FR_ST(z_out + u, FR_NAME(vsigmoid)(FR_LD(xin + FR_U + u) + FR_LD(acc + FR_U + u)));
        FR_ST(xn_out + u, FR_LD(xin + 2 * FR_U + u));
        FR_ST(rb + u, r * FR_LD(hb + u));
    }
    FR_NAME(store_units)(n, rb, rh_out);
}

/* Phase 2 for one panel of one sequence: acc (FR_U) = W_hn (r * h). */
static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(grut_n_lanes)(
        int n, const float *restrict xn, const float *restrict acc, const float *restrict z,
        const float *restrict h, float *restrict h_out)
{
    float hb[FR_U];
    FR_NAME(load_units)(n, h, hb);
    for (int s = 0; s < FR_S; ++s) {
        const int u = s * FR_L;
        FR_VF nn = FR_NAME(vtanh)(FR_LD(xn + u) + FR_LD(acc + u));
        /* torch's form of the update, (h - n) * z + n */
        FR_ST(hb + u, (FR_LD(hb + u) - nn) * FR_LD(z + u) + nn);
    }
    FR_NAME(store_units)(n, hb, h_out);
}

static inline __attribute__((always_inline)) FR_TARGET void FR_NAME(grut_body)(
        int phase, int p0, int p1, int rev, int m, int wt, int H, int n_in,
        const void *restrict wx, const float *restrict x, const void *restrict w,
        const float *restrict bias, const float *restrict gin, const float *restrict h,
        float *restrict scratch, float *restrict h_out)
{
    const int npan = (H + FR_U - 1) / FR_U, ld = npan * FR_U;
    const int group = FR_NAME(group_panels)(wt, m, phase == 1 ? 2 : 1);
    float *restrict zs = scratch;
    float *restrict xn = scratch + (ptrdiff_t)m * ld;
    float *restrict rh = scratch + (ptrdiff_t)2 * m * ld;
    /* the n rows' panels follow the r, z rows' (in storage elements of 2 or 4 bytes) */
    const void *w_n = (const char *)w + (ptrdiff_t)npan * FR_NAME(panel_size)(wt, 2, H)
                                        * (wt == FR_W_F32 ? 4 : 2);
    for (int q0 = p0; q0 < p1; q0 += group) {
        const int q1 = q0 + group < p1 ? q0 + group : p1;
        float accs[FR_MAXB * 4 * FR_U], xws[FR_MAXB * 4 * FR_U];
        if (phase == 1)
            FR_NAME(group_products)(2, 3, p0, p1, rev, q0, q1, m, wt, n_in, H, wx, x, w, h,
                                    accs, xws);
        else
            FR_NAME(group_products)(1, 1, p0, p1, rev, q0, q1, m, wt, 0, H, NULL, NULL, w_n,
                                    rh, accs, NULL);
        for (int q = q0; q < q1; ++q) {
            const int p = FR_NAME(panel_at)(p0, p1, rev, q);
            const int j0 = p * FR_U, n = H - j0 < FR_U ? H - j0 : FR_U;
            float xin[3 * FR_U];
            for (int b = 0; b < m; ++b) {
                const ptrdiff_t col = (ptrdiff_t)(q - q0) * m + b;  /* in accs and xws */
                const ptrdiff_t at = (ptrdiff_t)b * ld + j0, ah = (ptrdiff_t)b * H + j0;
                if (phase == 1) {
                    const float *xw = wx != NULL ? xws + col * 3 * FR_U
                                                 : gin + ((ptrdiff_t)b * npan + p) * 3 * FR_U;
                    FR_NAME(panel_x)(3, xw, bias + p * 3 * FR_U, xin);
                    FR_NAME(grut_rz_lanes)(n, xin, accs + col * 2 * FR_U, h + ah, zs + at,
                                           xn + at, rh + ah);
                } else {
                    FR_NAME(grut_n_lanes)(n, xn + at, accs + col * FR_U, zs + at, h + ah,
                                          h_out + ah);
                }
            }
        }
    }
}

/* Phase 1 or 2 of a textbook GRU step over panels [p0, p1), m sequences: h (m, H) ->
 * h_out (m, H), the input part from gin or wx with x as in gru_fused_f32 (phase 1
 * only), scratch (m, 2*npan*FR_U + H) carrying the step from phase 1 to phase 2. One
 * sequence gets its own copies of the body, as in fused_specialised. */
static FR_TARGET void FR_NAME(grut_fused_f32)(
        int phase, int p0, int p1, int rev, int m, int wt, int H, int n_in,
        const void *restrict wx, const float *restrict x, const void *restrict w,
        const float *restrict bias, const float *restrict gin, const float *restrict h,
        float *restrict scratch, float *restrict h_out)
{
#define FR_GRUT(PHASE, M, WT) FR_NAME(grut_body)(PHASE, p0, p1, rev, M, WT, H, n_in, wx, x, \
                                                 w, bias, gin, h, scratch, h_out)
    if (phase == 1) {
        if (m == 1 && wt == FR_W_F32) FR_GRUT(1, 1, FR_W_F32);
        else if (m == 1 && wt == FR_W_BF16) FR_GRUT(1, 1, FR_W_BF16);
        else if (m == 1) FR_GRUT(1, 1, FR_W_F16);
        else FR_GRUT(1, m, wt);
    } else {
        if (m == 1 && wt == FR_W_F32) FR_GRUT(2, 1, FR_W_F32);
        else if (m == 1 && wt == FR_W_BF16) FR_GRUT(2, 1, FR_W_BF16);
        else if (m == 1) FR_GRUT(2, 1, FR_W_F16);
        else FR_GRUT(2, m, wt);
    }
#undef FR_GRUT
}

/* This ISA's table (fr_kernels.h), the unit's one external symbol. */
FR_HIDDEN const fr_kernels FR_NAME(kernels) = {
    .isa = FR_ISA,
    .name = FR_ISA_NAME,
    .lstm_rows_f32 = FR_NAME(lstm_rows_f32),
    .gru_rows_f32 = FR_NAME(gru_rows_f32),
    .rnn_rows_f32 = FR_NAME(rnn_rows_f32),
    .lstm_cols_f32 = FR_NAME(lstm_cols_f32),
    .gru_cols_f32 = FR_NAME(gru_cols_f32),
    .rnn_cols_f32 = FR_NAME(rnn_cols_f32),
    .panel_project_f32 = FR_NAME(panel_project),
    .lstm_fused_f32 = FR_NAME(lstm_fused_f32),
    .gru_fused_f32 = FR_NAME(gru_fused_f32),
    .rnn_fused_f32 = FR_NAME(rnn_fused_f32),
    .grut_fused_f32 = FR_NAME(grut_fused_f32),
    .vactivations_f32 = FR_NAME(vactivations_f32),
};

/* The unit's parameters end here. */
#undef FR_TARGET
#undef FR_ISA
#undef FR_ISA_NAME
#undef FR_NAME
#undef FR_ACC
#undef FR_VBYTES
#undef FR_NB
#undef FR_MV_REGS
#undef FR_KBLOCK_BYTES
#undef FR_PF_ROWS
#undef FR_KBLOCK_MIN_K
#undef FR_PROJ_ROWS
#undef FR_CVTPH
#undef FR_PAIR_LO
#undef FR_VMAX
#undef FR_VMIN
#undef FR_VSCALEF
#undef FR_VREDUCE
#undef FR_VRCP
#undef FR_PAIR_HI
#undef FR_WORD_LO
#undef FR_WORD_HI
#undef FR_KEEP_IN_REGISTER
#undef FR_VF
#undef FR_VFU
#undef FR_VI
#undef FR_L
#undef FR_S
#undef FR_LD
#undef FR_ST
#undef FR_SPLAT
