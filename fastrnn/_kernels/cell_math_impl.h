/* The fused cell updates, written once and compiled once per instruction set by
 * cell_math.h (FR_TARGET / FR_NAME). Plain loops over restrict pointers calling
 * branch-free inline activations, so that gcc vectorises them at the target's width.
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
