/*
 * Body of norm_simd.h's channel kernels, included once per (element type, instruction-set
 * level): CN_NT is the element type, CN_NFN(name) the function's name for this instantiation,
 * CN_NATTR its target attribute.  No include guard, by design.
 *
 * Every reduction runs in CN_NORM_LANES double lanes: element i of a segment goes to lane
 * i % CN_NORM_LANES (segments restart at lane 0) and the lanes are added up by cn_norm_total's
 * fixed tree.  That order is written out in the source, so every level computes the same
 * bits; the wider levels only make the compiler's vectors wider.
 */

/* t[0..n) = x[0..n) in double, t[n..CN_NORM_LANES) = -0.0 (the identity of addition): the
 * last partial block then adds into every lane, which keeps the lanes in registers. */
CN_NATTR static inline void CN_NFN(tail_)(double *t, const CN_NT *x, cn_idx n)
{
    for (int j = 0; j < CN_NORM_LANES; j++) t[j] = -0.0;
    for (int j = 0; j < n; j++) t[j] = (double) x[j];
}
#define cn_norm_tail CN_NFN(tail_)

/* Sum of a channel's elements: n_seg segments of len elements, seg_step elements apart. */
CN_NATTR static double CN_NFN(sum)(const CN_NT *x, cn_idx n_seg, cn_idx seg_step, cn_idx len)
{
    double acc[CN_NORM_LANES] = {0};
    for (cn_idx n = 0; n < n_seg; n++) {
        const CN_NT *p = x + n * seg_step;
        cn_idx i = 0;
        for (; i + CN_NORM_LANES <= len; i += CN_NORM_LANES)
            for (int j = 0; j < CN_NORM_LANES; j++) acc[j] += (double) p[i + j];
        if (i < len) {
            double t[CN_NORM_LANES];
            cn_norm_tail(t, p + i, len - i);
            for (int j = 0; j < CN_NORM_LANES; j++) acc[j] += t[j];
        }
    }
    return cn_norm_total(acc);
}

/* Sum of squared deviations from `mean`, same segments and order as CN_NFN(sum). */
CN_NATTR static double CN_NFN(m2)(const CN_NT *x, cn_idx n_seg, cn_idx seg_step, cn_idx len,
                                  double mean)
{
    double acc[CN_NORM_LANES] = {0};
    for (cn_idx n = 0; n < n_seg; n++) {
        const CN_NT *p = x + n * seg_step;
        cn_idx i = 0;
        for (; i + CN_NORM_LANES <= len; i += CN_NORM_LANES)
            for (int j = 0; j < CN_NORM_LANES; j++) {
                const double d = (double) p[i + j] - mean;
                acc[j] += d * d;
            }
        if (i < len) {
            /* Lanes past the end get 0 * 0 = +0, not -0.0: d * d is never -0.0 anyway. */
            double t[CN_NORM_LANES];
            cn_norm_tail(t, p + i, len - i);
            for (int j = 0; j < CN_NORM_LANES; j++) {
                const double d = j < len - i ? t[j] - mean : 0.0;
                acc[j] += d * d;
            }
        }
    }
    return cn_norm_total(acc);
}

/* sums[0] = sum of dy, sums[1] = sum of dy * (x - mean), same segments and order. */
CN_NATTR static void CN_NFN(dot)(const CN_NT *dy, const CN_NT *x, cn_idx n_seg, cn_idx seg_step,
                                 cn_idx len, double mean, double *sums)
{
    double acc[CN_NORM_LANES] = {0}, accx[CN_NORM_LANES] = {0};
    for (cn_idx n = 0; n < n_seg; n++) {
        const CN_NT *g = dy + n * seg_step, *p = x + n * seg_step;
        cn_idx i = 0;
        for (; i + CN_NORM_LANES <= len; i += CN_NORM_LANES)
            for (int j = 0; j < CN_NORM_LANES; j++) {
                const double gj = (double) g[i + j];
                acc[j] += gj;
                accx[j] += gj * ((double) p[i + j] - mean);
            }
        if (i < len) {
            double tg[CN_NORM_LANES], tx[CN_NORM_LANES];
            cn_norm_tail(tg, g + i, len - i);
            cn_norm_tail(tx, p + i, len - i);
            for (int j = 0; j < CN_NORM_LANES; j++) {
                acc[j] += tg[j];
                accx[j] += j < len - i ? tg[j] * (tx[j] - mean) : -0.0;
            }
        }
    }
    sums[0] = cn_norm_total(acc);
    sums[1] = cn_norm_total(accx);
}

/* y = (x - mean) * scale + shift, element by element in the element type. */
CN_NATTR static void CN_NFN(affine)(const CN_NT *x, CN_NT *y, cn_idx n_seg, cn_idx seg_step,
                                    cn_idx len, CN_NT mean, CN_NT scale, CN_NT shift)
{
    for (cn_idx n = 0; n < n_seg; n++) {
        const CN_NT *p = x + n * seg_step;
        CN_NT *q = y + n * seg_step;
        for (cn_idx i = 0; i < len; i++) q[i] = (p[i] - mean) * scale + shift;
    }
}

/* gx = dy * a + (x - mean) * b + d (training), element by element in the element type. */
CN_NATTR static void CN_NFN(grad)(const CN_NT *dy, const CN_NT *x, CN_NT *gx, cn_idx n_seg,
                                  cn_idx seg_step, cn_idx len, CN_NT a, CN_NT mean, CN_NT b,
                                  CN_NT d)
{
    for (cn_idx n = 0; n < n_seg; n++) {
        const CN_NT *g = dy + n * seg_step, *p = x + n * seg_step;
        CN_NT *q = gx + n * seg_step;
        for (cn_idx i = 0; i < len; i++) q[i] = (g[i] * a + (p[i] - mean) * b) + d;
    }
}

/* gx = dy * a (evaluation: the statistics are constants). */
CN_NATTR static void CN_NFN(scale)(const CN_NT *dy, CN_NT *gx, cn_idx n_seg, cn_idx seg_step,
                                   cn_idx len, CN_NT a)
{
    for (cn_idx n = 0; n < n_seg; n++) {
        const CN_NT *g = dy + n * seg_step;
        CN_NT *q = gx + n * seg_step;
        for (cn_idx i = 0; i < len; i++) q[i] = g[i] * a;
    }
}
