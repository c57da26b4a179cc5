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
