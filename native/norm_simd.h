/*
 * Batch normalisation's per-channel loops, in a baseline, an AVX2 and an AVX-512 build of the
 * same C source (norm_simd_body.h), chosen at run time through simd_dispatch.h.
 *
 * A channel of an (N, C, S) array is N segments of S contiguous elements, C * S apart.  The
 * reductions (sum, sum of squared deviations, the two backward sums) accumulate in double, in
 * CN_NORM_LANES lanes in a fixed order (see the body), so the variants differ in speed only:
 * their results are bit-identical, and identical to the portable build's (the lanes are vectors
 * of the level's width, 2, 4 or 8 doubles, or plain doubles without GCC vector extensions).
 * The element-wise passes compute in the element type, one rounding per operation (no FMA
 * contraction: the modules build with -ffp-contract=off).
 */
#ifndef CNNATIVE_NORM_SIMD_H
#define CNNATIVE_NORM_SIMD_H

#include "simd_dispatch.h"

#define CN_NORM_LANES 16

/* How far ahead along a channel its first pass prefetches (see CN_NORM_PREFETCH in the body). */
#define CN_NORM_PF_BYTES 6144

/* The lanes' total, by a fixed tree: lane j + w is added to lane j for w = 8, 4, 2, 1. */
static inline double cn_norm_total(double *acc)
{
    for (int w = CN_NORM_LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

#define CN_NCAT_(a, b, c) cn_norm_##a##_##b##_##c
#define CN_NCAT(a, b, c) CN_NCAT_(a, b, c)

#if CN_HAVE_VECTOR_EXT
typedef float cn_norm_f32x2 __attribute__((vector_size(8)));
#endif

/* Each instantiation names CN_NDV, a vector of CN_NDW doubles (the reductions' lanes go
 * CN_NORM_LANES / CN_NDW such vectors to a block), and CN_NEV, CN_NDW elements of CN_NT. */
#define CN_NT float
#define CN_NATTR
#define CN_NFN(name) CN_NCAT(name, f32, base)
#define CN_NDV cn_f64x2
#define CN_NDW 2
#define CN_NEV cn_norm_f32x2
#include "norm_simd_body.h"
#undef CN_NT
#undef CN_NFN
#undef CN_NEV
#define CN_NT double
#define CN_NFN(name) CN_NCAT(name, f64, base)
#define CN_NEV cn_f64x2
#include "norm_simd_body.h"
#undef CN_NT
#undef CN_NFN
#undef CN_NEV
#undef CN_NDV
#undef CN_NDW
#undef CN_NATTR

#if CN_X86_DISPATCH
#include <immintrin.h>
/* float to double conversions of whole vectors: GCC 12 lowers __builtin_convertvector of 8
 * floats to two conversions of 4 and an insert. */
#define CN_NCVT_AVX2(v) ((cn_f64x4) _mm256_cvtps_pd((__m128) (v)))
#define CN_NCVT_AVX512(v) ((cn_f64x8) _mm512_cvtps_pd((__m256) (v)))
#define CN_NATTR CN_AVX2
#define CN_NDV cn_f64x4
#define CN_NDW 4
#define CN_NT float
#define CN_NFN(name) CN_NCAT(name, f32, avx2)
#define CN_NEV cn_f32x4
#define CN_NCVT CN_NCVT_AVX2
#include "norm_simd_body.h"
#undef CN_NCVT
#undef CN_NT
#undef CN_NFN
#undef CN_NEV
#define CN_NT double
#define CN_NFN(name) CN_NCAT(name, f64, avx2)
#define CN_NEV cn_f64x4
#include "norm_simd_body.h"
#undef CN_NT
#undef CN_NFN
#undef CN_NEV
#undef CN_NDV
#undef CN_NDW
#undef CN_NATTR
#define CN_NATTR CN_AVX512
#define CN_NDV cn_f64x8
#define CN_NDW 8
#define CN_NT float
#define CN_NFN(name) CN_NCAT(name, f32, avx512)
#define CN_NEV cn_f32x8
#define CN_NCVT CN_NCVT_AVX512
#include "norm_simd_body.h"
#undef CN_NCVT
#undef CN_NT
#undef CN_NFN
#undef CN_NEV
#define CN_NT double
#define CN_NFN(name) CN_NCAT(name, f64, avx512)
#define CN_NEV cn_f64x8
#include "norm_simd_body.h"
#undef CN_NT
#undef CN_NFN
#undef CN_NEV
#undef CN_NDV
#undef CN_NDW
#undef CN_NATTR
/* The variant for this module's active level (base below AVX2), as a function designator. */
#define CN_NORM_PICK(name, T)                                                                   \
    (cn_simd_active() >= CN_SIMD_AVX512 ? CN_NCAT(name, T, avx512)                              \
     : cn_simd_active() >= CN_SIMD_AVX2 ? CN_NCAT(name, T, avx2) : CN_NCAT(name, T, base))
#else
#define CN_NORM_PICK(name, T) CN_NCAT(name, T, base)
#endif

#define CN_NORM_DISPATCHERS(T, CT)                                                              \
    static double cn_norm_sum_##T(const CT *x, cn_idx n_seg, cn_idx seg_step, cn_idx len)       \
    { return CN_NORM_PICK(sum, T)(x, n_seg, seg_step, len); }                                          \
    static double cn_norm_m2_##T(const CT *x, cn_idx n_seg, cn_idx seg_step, cn_idx len,        \
                                 double mean)                                                   \
    { return CN_NORM_PICK(m2, T)(x, n_seg, seg_step, len, mean); }                                     \
    static void cn_norm_dot_##T(const CT *dy, const CT *x, cn_idx n_seg, cn_idx seg_step,       \
                                cn_idx len, double mean, double *sums)                          \
    { CN_NORM_PICK(dot, T)(dy, x, n_seg, seg_step, len, mean, sums); }                          \
    static void cn_norm_affine_##T(const CT *x, CT *y, cn_idx n_seg, cn_idx seg_step,           \
                                   cn_idx len, CT mean, CT scale, CT shift)                     \
    { CN_NORM_PICK(affine, T)(x, y, n_seg, seg_step, len, mean, scale, shift); }                \
    static void cn_norm_grad_##T(const CT *dy, const CT *x, CT *gx, cn_idx n_seg,               \
                                 cn_idx seg_step, cn_idx len, CT a, CT mean, CT b, CT d)        \
    { CN_NORM_PICK(grad, T)(dy, x, gx, n_seg, seg_step, len, a, mean, b, d); }                  \
    static void cn_norm_scale_##T(const CT *dy, CT *gx, cn_idx n_seg, cn_idx seg_step,          \
                                  cn_idx len, CT a)                                             \
    { CN_NORM_PICK(scale, T)(dy, gx, n_seg, seg_step, len, a); }

CN_NORM_DISPATCHERS(f32, float)
CN_NORM_DISPATCHERS(f64, double)

#endif /* CNNATIVE_NORM_SIMD_H */
