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

#if CN_HAVE_VECTOR_EXT
/* The reductions' CN_NORM_LANES lanes as CN_NV vectors of CN_NDW doubles: lane j is element
 * j % CN_NDW of vector j / CN_NDW, so every width does the same additions.  (GCC's SLP does
 * not vectorise the fixed-lane loops written element by element: they ran scalar.) */
#define CN_NV (CN_NORM_LANES / CN_NDW)

/* CN_NDW elements at p, in double. */
CN_NATTR static inline CN_NDV CN_NFN(ld_)(const CN_NT *p)
{
    CN_NEV v;
    memcpy(&v, p, sizeof v);
#ifdef CN_NCVT
    return CN_NCVT(v);
#else
    return __builtin_convertvector(v, CN_NDV);
#endif
}

CN_NATTR static inline CN_NDV CN_NFN(ldd_)(const double *p)
{
    CN_NDV v;
    memcpy(&v, p, sizeof v);
    return v;
}

CN_NATTR static inline double CN_NFN(vtotal_)(const CN_NDV *acc)
{
    double t[CN_NORM_LANES];
    memcpy(t, acc, sizeof t);
    return cn_norm_total(t);
}

/* Prefetch the lines of one block (CN_NORM_LANES elements) at q.  The first pass over a channel
 * (sum forward, dot backward) reads it from L3 or memory a segment (a few KiB) at a time, C * S
 * elements apart, which the hardware prefetchers learn anew for every segment: these passes
 * fetch the block CN_NORM_PF_BYTES further along the channel (rounded up to whole segments)
 * while they add up this one (benchmarks/bench_blocks.py's batch-norm cell measures it). */
#define CN_NORM_PREFETCH(q)                                                                     \
    do {                                                                                        \
        for (int l_ = 0; l_ < (int) (CN_NORM_LANES * sizeof(CN_NT)); l_ += 64)                  \
            __builtin_prefetch((const char *) (q) + l_);                                        \
    } while (0)

/* Segments ahead to prefetch: CN_NORM_PF_BYTES of the channel ahead, rounded up to segments. */
CN_NATTR static inline cn_idx CN_NFN(ahead_)(cn_idx len)
{
    const cn_idx bytes = len * (cn_idx) sizeof(CN_NT);
    return (CN_NORM_PF_BYTES + bytes - 1) / bytes;
}

/* Sum of a channel's elements: n_seg segments of len elements, seg_step elements apart. */
CN_NATTR static double CN_NFN(sum)(const CN_NT *x, cn_idx n_seg, cn_idx seg_step, cn_idx len)
{
    const cn_idx ahead = CN_NFN(ahead_)(len);
    CN_NDV acc[CN_NV];
    memset(acc, 0, sizeof acc);
    for (cn_idx n = 0; n < n_seg; n++) {
        const CN_NT *p = x + n * seg_step;
        const CN_NT *next = n + ahead < n_seg ? p + ahead * seg_step : p;
        cn_idx i = 0;
        for (; i + CN_NORM_LANES <= len; i += CN_NORM_LANES) {
            CN_NORM_PREFETCH(next + i);
            CN_UNROLL
            for (int k = 0; k < CN_NV; k++) acc[k] += CN_NFN(ld_)(p + i + k * CN_NDW);
        }
        if (i < len) {
            double t[CN_NORM_LANES];
            cn_norm_tail(t, p + i, len - i);
            CN_UNROLL
            for (int k = 0; k < CN_NV; k++) acc[k] += CN_NFN(ldd_)(t + k * CN_NDW);
        }
    }
    return CN_NFN(vtotal_)(acc);
}

/* Sum of squared deviations from `mean`, same segments and order as CN_NFN(sum).  The channel
 * is in cache from the sum: no prefetch. */
CN_NATTR static double CN_NFN(m2)(const CN_NT *x, cn_idx n_seg, cn_idx seg_step, cn_idx len,
                                  double mean)
{
    CN_NDV acc[CN_NV];
    memset(acc, 0, sizeof acc);
    for (cn_idx n = 0; n < n_seg; n++) {
        const CN_NT *p = x + n * seg_step;
        cn_idx i = 0;
        for (; i + CN_NORM_LANES <= len; i += CN_NORM_LANES)
            CN_UNROLL
            for (int k = 0; k < CN_NV; k++) {
                const CN_NDV d = CN_NFN(ld_)(p + i + k * CN_NDW) - mean;
                acc[k] += d * d;
            }
        if (i < len) {
            /* Lanes past the end get 0 * 0 = +0, not -0.0: d * d is never -0.0 anyway. */
            double t[CN_NORM_LANES];
            cn_norm_tail(t, p + i, len - i);
            for (int j = 0; j < CN_NORM_LANES; j++) {
                const double d = j < len - i ? t[j] - mean : 0.0;
                t[j] = d * d;
            }
            CN_UNROLL
            for (int k = 0; k < CN_NV; k++) acc[k] += CN_NFN(ldd_)(t + k * CN_NDW);
        }
    }
    return CN_NFN(vtotal_)(acc);
}

/* sums[0] = sum of dy, sums[1] = sum of dy * (x - mean), same segments and order. */
CN_NATTR static void CN_NFN(dot)(const CN_NT *dy, const CN_NT *x, cn_idx n_seg, cn_idx seg_step,
                                 cn_idx len, double mean, double *sums)
{
    const cn_idx ahead = CN_NFN(ahead_)(len);
    CN_NDV acc[CN_NV], accx[CN_NV];
    memset(acc, 0, sizeof acc);
    memset(accx, 0, sizeof accx);
    for (cn_idx n = 0; n < n_seg; n++) {
        const CN_NT *g = dy + n * seg_step, *p = x + n * seg_step;
        const cn_idx next = n + ahead < n_seg ? ahead * seg_step : 0;
        cn_idx i = 0;
        for (; i + CN_NORM_LANES <= len; i += CN_NORM_LANES) {
            CN_NORM_PREFETCH(g + next + i);
            CN_NORM_PREFETCH(p + next + i);
            CN_UNROLL
            for (int k = 0; k < CN_NV; k++) {
                const CN_NDV gj = CN_NFN(ld_)(g + i + k * CN_NDW);
                acc[k] += gj;
                accx[k] += gj * (CN_NFN(ld_)(p + i + k * CN_NDW) - mean);
            }
        }
        if (i < len) {
            double tg[CN_NORM_LANES], tx[CN_NORM_LANES];
            cn_norm_tail(tg, g + i, len - i);
            cn_norm_tail(tx, p + i, len - i);
            for (int j = 0; j < CN_NORM_LANES; j++)
                tx[j] = j < len - i ? tg[j] * (tx[j] - mean) : -0.0;
            CN_UNROLL
            for (int k = 0; k < CN_NV; k++) {
                acc[k] += CN_NFN(ldd_)(tg + k * CN_NDW);
                accx[k] += CN_NFN(ldd_)(tx + k * CN_NDW);
            }
        }
    }
    sums[0] = CN_NFN(vtotal_)(acc);
    sums[1] = CN_NFN(vtotal_)(accx);
}
#undef CN_NV
#undef CN_NORM_PREFETCH
#else
/* Without GCC vector extensions: the same lanes, element by element. */
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

#endif /* CN_HAVE_VECTOR_EXT */

/* The element-wise passes below run over the segments last to first: the reduction before
 * them has just read the channel first to last, so its last segments are the likeliest still
 * in cache (in the backward, dy and x of a 28x28 channel of batch 128 take 800 KB, and the
 * writes of grad_x push the earliest lines out first).  The order changes no result. */

/* y = (x - mean) * scale + shift, element by element in the element type. */
CN_NATTR static void CN_NFN(affine)(const CN_NT *x, CN_NT *y, cn_idx n_seg, cn_idx seg_step,
                                    cn_idx len, CN_NT mean, CN_NT scale, CN_NT shift)
{
    for (cn_idx n = n_seg; n-- > 0;) {
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
    for (cn_idx n = n_seg; n-- > 0;) {
        const CN_NT *g = dy + n * seg_step, *p = x + n * seg_step;
        CN_NT *q = gx + n * seg_step;
        for (cn_idx i = 0; i < len; i++) q[i] = (g[i] * a + (p[i] - mean) * b) + d;
    }
}

/* gx = dy * a (evaluation: the statistics are constants). */
CN_NATTR static void CN_NFN(scale)(const CN_NT *dy, CN_NT *gx, cn_idx n_seg, cn_idx seg_step,
                                   cn_idx len, CN_NT a)
{
    for (cn_idx n = n_seg; n-- > 0;) {
        const CN_NT *g = dy + n * seg_step;
        CN_NT *q = gx + n * seg_step;
        for (cn_idx i = 0; i < len; i++) q[i] = g[i] * a;
    }
}
