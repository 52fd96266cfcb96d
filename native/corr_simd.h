/*
 * Direct 2-D correlation over a padded frame, summed in exactly the order scipy.signal's direct
 * convolution uses, so that results match it bit for bit.  The frame is the caller's image itself
 * where every window lies inside it, else a small buffer holding a padded copy of just the rows
 * and columns a region of the output reads (correlate.pyx); the kernel cannot tell them apart.
 *
 * For every output pixel (m, n) the taps are visited in a fixed order t = 0..T-1 given by the
 * caller (kernel row by kernel row); within a kernel row of R taps the sum grows as
 *     acc = acc + (((c0*x0 + c1*x1) + c2*x2) + c3*x3)      for each group of four taps,
 *     acc = acc + c*x                                       for each of the R % 4 left over,
 * starting from acc = +0 and carried across rows.  Tap t reads image[m*stride + n + offset[t]].
 *
 * That is scipy's source order, and what its x86-64 wheels compute: each product rounded on
 * its own.  Where scipy's compiler contracts that source (GCC and clang on aarch64, whose
 * baseline has FMA), the same order rounds differently, and the fused variants below repeat it:
 *     acc = acc + fma(c3, x3, fma(c2, x2, fma(c0, x0, c1*x1)))   for each group of four,
 *     acc = fma(c, x, acc)                                       for each tap left over
 * (the second product of a group is the one rounded on its own: GCC's widening_mul pass and
 * clang both fuse the left operand of `c0*x0 + c1*x1`).  Which of the two a process uses is
 * cn_rounding (rounding.h), set once from a probe of the installed scipy (cnnative.signal).
 *
 * Vectorisation runs across neighbouring output pixels of a row, never across taps, so each
 * SIMD lane performs the scalar sequence above unchanged.  The file must be compiled without
 * floating-point contraction (-ffp-contract=off): the separate variants must not fuse anything,
 * and the fused ones fuse exactly where they call fma explicitly (which the flag leaves alone).
 *
 * Several instruction-set variants are compiled side by side and chosen at run time
 * (simd_dispatch.h): the widest one the CPU supports whose vector fits in an output row computes
 * the whole output; a row's last partial vector is recomputed as a whole vector overlapping its
 * neighbour.
 */
#ifndef CNNATIVE_CORR_SIMD_H
#define CNNATIVE_CORR_SIMD_H

#include "simd_dispatch.h"
#include "rounding.h"
#if defined(__aarch64__) && CN_HAVE_VECTOR_EXT
#include <arm_neon.h>
#define CN_NEON_FUSED 1
#else
#define CN_NEON_FUSED 0
#endif

/* The arithmetic of one group of four taps and of one left-over tap, per rounding pattern.
 * MADD(a, c, x) is a + c*x; GROUP4 is the group's sum before it is added to the accumulator.
 * The separate group is spelled exactly as scipy's source parses, so that the x86 variants
 * compile to the instructions they always had. */
#define CN_MADD_SEPARATE(a, c, x) ((a) + (c) * (x))
#define CN_GROUP4_SEPARATE(c0, x0, c1, x1, c2, x2, c3, x3)                                     \
    (((c0 * x0 + c1 * x1) + c2 * x2) + c3 * x3)
#define CN_GROUP4_FUSED_WITH(MADD, c0, x0, c1, x1, c2, x2, c3, x3)                             \
    MADD(MADD(MADD((c1) * (x1), c0, x0), c2, x2), c3, x3)

/* Scalar fused steps.  On x86 the fused variants carry the AVX2 target (which includes FMA) so
 * that the compiler emits the instruction rather than a call to libm's fma, which the modules
 * do not link; they then need a CPU with FMA (cn_fused_available).  Elsewhere fma()
 * compiles to the instruction where the baseline has one (aarch64) and is C99's correctly
 * rounded fma otherwise. */
#if CN_X86_DISPATCH
#define CN_FUSED_ATTR CN_AVX2
#define CN_MADD_F32_FUSED(a, c, x) __builtin_fmaf((c), (x), (a))
#define CN_MADD_F64_FUSED(a, c, x) __builtin_fma((c), (x), (a))
#elif defined(__GNUC__) || defined(__clang__)
#define CN_FUSED_ATTR
#define CN_MADD_F32_FUSED(a, c, x) __builtin_fmaf((c), (x), (a))
#define CN_MADD_F64_FUSED(a, c, x) __builtin_fma((c), (x), (a))
#else
/* C99's own declarations (7.1.4 allows them without <math.h>, whose glibc version does not
 * parse in the strict-C99 check of tools/check_portable_c.sh). */
float fmaf(float, float, float);
double fma(double, double, double);
#define CN_FUSED_ATTR
#define CN_MADD_F32_FUSED(a, c, x) fmaf((c), (x), (a))
#define CN_MADD_F64_FUSED(a, c, x) fma((c), (x), (a))
#endif
#define CN_GROUP4_F32_FUSED(...) CN_GROUP4_FUSED_WITH(CN_MADD_F32_FUSED, __VA_ARGS__)
#define CN_GROUP4_F64_FUSED(...) CN_GROUP4_FUSED_WITH(CN_MADD_F64_FUSED, __VA_ARGS__)

#if CN_NEON_FUSED
/* NEON's fused multiply-add by a scalar, on the vector-extension types the kernels use (a cast
 * between vector types of one size reinterprets the bits). */
static inline cn_f32x4 cn_neon_fma_f32(cn_f32x4 a, float c, cn_f32x4 x)
{ return (cn_f32x4)vfmaq_n_f32((float32x4_t)a, (float32x4_t)x, c); }
static inline cn_f64x2 cn_neon_fma_f64(cn_f64x2 a, double c, cn_f64x2 x)
{ return (cn_f64x2)vfmaq_n_f64((float64x2_t)a, (float64x2_t)x, c); }
#define CN_MADD_F32X4_FUSED(a, c, x) cn_neon_fma_f32((a), (c), (x))
#define CN_MADD_F64X2_FUSED(a, c, x) cn_neon_fma_f64((a), (c), (x))
#define CN_GROUP4_F32X4_FUSED(...) CN_GROUP4_FUSED_WITH(CN_MADD_F32X4_FUSED, __VA_ARGS__)
#define CN_GROUP4_F64X2_FUSED(...) CN_GROUP4_FUSED_WITH(CN_MADD_F64X2_FUSED, __VA_ARGS__)
#endif

/* Output block of ROWS rows x NB vectors starting at (m, n); variables come from the enclosing
 * kernel function.  ROWS and NB are compile-time constants so the accumulators live in
 * registers once the loops are unrolled.
 *
 * Loads are shared between the rows of the block.  Output row m+r at kernel row s reads image
 * row m+r+s (correlation) or m+r+J-1-s (convolution), so walking the image rows once -- downwards
 * for correlation, upwards for convolution -- meets every row of the block at one of its kernel
 * rows, each row still visiting its kernel rows in ascending order.  Step p of the walk gives
 * accumulator r kernel row s = p - r; for convolution accumulator r belongs to output row
 * m + ROWS-1-r, which is the row that lags.  One vector load thus feeds up to ROWS products,
 * which matters because a load per product (half of them split across cache lines) is what
 * limited the straightforward loop.
 *
 * While the walk enters and leaves the block some rows have no kernel row at step p; ACTIVE(r)
 * says which ones take part.  Coefficients stay scalar: the vector extension broadcasts a scalar
 * operand itself. */
#define CN_CORR_STEP(T, VT, V, LOAD, ROWS, NB, ACTIVE, GROUP4, MADD)                           \
    do {                                                                                       \
        cn_idx k_ = 0;                                                                         \
        for (; k_ + 4 <= taps_per_row; k_ += 4) {                                              \
            const T *q0 = row + coloff[k_], *q1 = row + coloff[k_ + 1];                        \
            const T *q2 = row + coloff[k_ + 2], *q3 = row + coloff[k_ + 3];                    \
            VT x0[NB], x1[NB], x2[NB], x3[NB];                                                 \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) {                                      \
                x0[b_] = LOAD(q0 + b_ * (V)); x1[b_] = LOAD(q1 + b_ * (V));                    \
                x2[b_] = LOAD(q2 + b_ * (V)); x3[b_] = LOAD(q3 + b_ * (V));                    \
            }                                                                                  \
            CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++) {                                    \
                if (!(ACTIVE(r_))) continue;                                                   \
                const T *c = coef + (p_ - r_) * taps_per_row + k_;                             \
                const T c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];                            \
                CN_UNROLL for (int b_ = 0; b_ < (NB); b_++)                                    \
                    acc[r_][b_] = acc[r_][b_] + GROUP4(c0, x0[b_], c1, x1[b_], c2, x2[b_],     \
                                                       c3, x3[b_]);                            \
            }                                                                                  \
        }                                                                                      \
        for (; k_ < taps_per_row; k_++) {                                                      \
            const T *q0 = row + coloff[k_];                                                    \
            VT x0[NB];                                                                         \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) x0[b_] = LOAD(q0 + b_ * (V));          \
            CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++) {                                    \
                if (!(ACTIVE(r_))) continue;                                                   \
                const T c0 = coef[(p_ - r_) * taps_per_row + k_];                              \
                CN_UNROLL for (int b_ = 0; b_ < (NB); b_++)                                    \
                    acc[r_][b_] = MADD(acc[r_][b_], c0, x0[b_]);                               \
            }                                                                                  \
        }                                                                                      \
    } while (0)

#define CN_ALL_ACTIVE(r) 1
/* Kernel row p - r exists; the unsigned compare also rejects negative values. */
#define CN_IN_KERNEL(r) ((size_t)(p_ - (r)) < (size_t)kernel_rows)

#define CN_CORR_BLOCK(T, VT, V, LOAD, STORE, ZERO, ROWS, NB, GROUP4, MADD)                     \
    do {                                                                                       \
        VT acc[ROWS][NB];                                                                      \
        CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++)                                          \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) acc[r_][b_] = ZERO;                    \
        const T *row = image + (flip ? m + (ROWS) - 1 + kernel_rows - 1 : m) * image_stride + n; \
        const cn_idx row_step = flip ? -image_stride : image_stride;                           \
        const cn_idx steps = kernel_rows + (ROWS) - 1;                                         \
        for (cn_idx p_ = 0; p_ < steps; p_++, row += row_step) {                               \
            if (p_ >= (ROWS) - 1 && p_ < kernel_rows)                                          \
                CN_CORR_STEP(T, VT, V, LOAD, ROWS, NB, CN_ALL_ACTIVE, GROUP4, MADD);           \
            else                                                                               \
                CN_CORR_STEP(T, VT, V, LOAD, ROWS, NB, CN_IN_KERNEL, GROUP4, MADD);            \
        }                                                                                      \
        CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++) {                                        \
            T *dst = out + (flip ? m + (ROWS) - 1 - r_ : m + r_) * out_stride + n;             \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) STORE(dst + b_ * (V), acc[r_][b_]);    \
        }                                                                                      \
    } while (0)

/* All columns of output rows [m, m + ROWS).  The last partial vector is computed as a whole
 * vector ending at col_end: the columns it shares with its neighbour get the same value again,
 * which is cheaper than finishing them with narrower code. */
#define CN_CORR_ROWS(T, VT, V, LOAD, STORE, ZERO, ROWS, NB, GROUP4, MADD)                      \
    do {                                                                                       \
        for (n = col_begin; n + (NB) * (V) <= col_end; n += (NB) * (V))                        \
            CN_CORR_BLOCK(T, VT, V, LOAD, STORE, ZERO, ROWS, NB, GROUP4, MADD);                \
        for (; n + (V) <= col_end; n += (V))                                                   \
            CN_CORR_BLOCK(T, VT, V, LOAD, STORE, ZERO, ROWS, 1, GROUP4, MADD);                 \
        if (n < col_end) {                                                                     \
            n = col_end - (V);                                                                 \
            CN_CORR_BLOCK(T, VT, V, LOAD, STORE, ZERO, ROWS, 1, GROUP4, MADD);                 \
        }                                                                                      \
    } while (0)

/* The body of a kernel computing columns [col_begin, col_end) of every output row when that
 * range holds at least one whole vector; returns the first column it left undone (col_end, or
 * col_begin when the range is too narrow).  Blocks are ROWS (<= 4) rows high; the leftover rows
 * get a lower block.  Needs kernel_rows and taps_per_row in scope. */
#define CN_CORR_BODY(T, VT, V, ROWS, NB, LOAD, STORE, ZERO, GROUP4, MADD)                      \
    cn_idx m = 0, n;                                                                           \
    if (col_end - col_begin < (V)) return col_begin;                                           \
    for (; m + (ROWS) <= out_rows; m += (ROWS))                                                \
        CN_CORR_ROWS(T, VT, V, LOAD, STORE, ZERO, ROWS, NB, GROUP4, MADD);                     \
    if ((ROWS) > 3 && out_rows - m >= 3) {                                                     \
        CN_CORR_ROWS(T, VT, V, LOAD, STORE, ZERO, 3, NB, GROUP4, MADD); m += 3;                \
    }                                                                                          \
    if ((ROWS) > 2 && out_rows - m >= 2) {                                                     \
        CN_CORR_ROWS(T, VT, V, LOAD, STORE, ZERO, 2, NB, GROUP4, MADD); m += 2;                \
    }                                                                                          \
    if ((ROWS) > 1 && out_rows - m >= 1)                                                       \
        CN_CORR_ROWS(T, VT, V, LOAD, STORE, ZERO, 1, NB, GROUP4, MADD);                        \
    return col_end

#define CN_DEFINE_CORR(NAME, T, VT, V, ROWS, NB, ATTR, LOAD, STORE, ZERO, GROUP4, MADD)        \
    ATTR static cn_idx NAME(const T *image, cn_idx image_stride, T *out, cn_idx out_stride,    \
                            cn_idx out_rows, cn_idx col_begin, cn_idx col_end,                 \
                            const T *coef, const cn_idx *coloff, cn_idx kernel_rows,           \
                            cn_idx taps_per_row, int flip)                                     \
    {                                                                                          \
        CN_CORR_BODY(T, VT, V, ROWS, NB, LOAD, STORE, ZERO, GROUP4, MADD);                     \
    }

/* The same for a KR x KC kernel fixed at compile time: the walk and the tap loops unroll
 * completely, so the common small kernels run without the loop and index overhead that
 * otherwise outweighs their few products per output.  The arithmetic, and so every result,
 * is the general kernel's. */
#define CN_DEFINE_CORR_FIXED(NAME, KR, KC, T, VT, V, ROWS, NB, ATTR, LOAD, STORE, ZERO, GROUP4, \
                             MADD)                                                             \
    ATTR static cn_idx NAME(const T *image, cn_idx image_stride, T *out, cn_idx out_stride,    \
                            cn_idx out_rows, cn_idx col_begin, cn_idx col_end,                 \
                            const T *coef, const cn_idx *coloff, int flip)                     \
    {                                                                                          \
        const cn_idx kernel_rows = (KR), taps_per_row = (KC);                                  \
        CN_CORR_BODY(T, VT, V, ROWS, NB, LOAD, STORE, ZERO, GROUP4, MADD);                     \
    }

/* Scalar variant: the portable fallback and the last few columns of each row. */
CN_DEFINE_CORR(cn_corr_f32_scalar, float, float, 1, 4, 4, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_GROUP4_SEPARATE, CN_MADD_SEPARATE)
CN_DEFINE_CORR(cn_corr_f64_scalar, double, double, 1, 4, 4, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_GROUP4_SEPARATE, CN_MADD_SEPARATE)

/* Block shapes (rows x vectors per row); overridable for tuning experiments.  A step of the
 * walk keeps the block's 4 * NB loaded vectors live while each row adds its products, so the
 * shape is bounded by that plus ROWS * NB accumulators.  Taller blocks lose at small kernels,
 * where a walk of ROWS + J - 1 steps over a J-row kernel leaves rows idle in most steps; with
 * 16 ymm registers larger shapes than 3 x 2 spill accumulators to the stack. */
#ifndef CN_VEC128_ROWS
#define CN_VEC128_ROWS 2
#define CN_VEC128_NB 2
#endif
#ifndef CN_AVX2_ROWS
#define CN_AVX2_ROWS 3
#define CN_AVX2_NB 2
#endif
#ifndef CN_AVX512_ROWS
#define CN_AVX512_ROWS 3
#define CN_AVX512_NB 2
#endif
/* The fixed-shape kernels below: their walk is short, so each extra row costs idle steps. */
#ifndef CN_AVX512_FIXED_ROWS
#define CN_AVX512_FIXED_ROWS 2
#define CN_AVX512_FIXED_NB 2
#endif

/* The fused variants: scalar everywhere, NEON on aarch64. */
CN_DEFINE_CORR(cn_corr_f32_scalar_fused, float, float, 1, 4, 4, CN_FUSED_ATTR, CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_GROUP4_F32_FUSED, CN_MADD_F32_FUSED)
CN_DEFINE_CORR(cn_corr_f64_scalar_fused, double, double, 1, 4, 4, CN_FUSED_ATTR, CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_GROUP4_F64_FUSED, CN_MADD_F64_FUSED)
#if CN_NEON_FUSED
CN_DEFINE_CORR(cn_corr_f32_neon_fused, float, cn_f32x4, 4, CN_VEC128_ROWS, CN_VEC128_NB, , cn_f32x4_load, cn_f32x4_store, ((cn_f32x4){0}), CN_GROUP4_F32X4_FUSED, CN_MADD_F32X4_FUSED)
CN_DEFINE_CORR(cn_corr_f64_neon_fused, double, cn_f64x2, 2, CN_VEC128_ROWS, CN_VEC128_NB, , cn_f64x2_load, cn_f64x2_store, ((cn_f64x2){0}), CN_GROUP4_F64X2_FUSED, CN_MADD_F64X2_FUSED)
#define CN_CALL_FUSED_VEC(T) if (level >= CN_SIMD_VEC128) col = cn_corr_##T##_neon_fused(CN_CORR_ARGS)
#else
#define CN_CALL_FUSED_VEC(T) (void)0
#endif

#if CN_HAVE_VECTOR_EXT
CN_DEFINE_CORR(cn_corr_f32_vec128, float, cn_f32x4, 4, CN_VEC128_ROWS, CN_VEC128_NB, , cn_f32x4_load, cn_f32x4_store, ((cn_f32x4){0}), CN_GROUP4_SEPARATE, CN_MADD_SEPARATE)
CN_DEFINE_CORR(cn_corr_f64_vec128, double, cn_f64x2, 2, CN_VEC128_ROWS, CN_VEC128_NB, , cn_f64x2_load, cn_f64x2_store, ((cn_f64x2){0}), CN_GROUP4_SEPARATE, CN_MADD_SEPARATE)
#endif

#if CN_X86_DISPATCH
CN_DEFINE_CORR(cn_corr_f32_avx2, float, cn_f32x8, 8, CN_AVX2_ROWS, CN_AVX2_NB, CN_AVX2, cn_f32x8_load, cn_f32x8_store, ((cn_f32x8){0}), CN_GROUP4_SEPARATE, CN_MADD_SEPARATE)
CN_DEFINE_CORR(cn_corr_f64_avx2, double, cn_f64x4, 4, CN_AVX2_ROWS, CN_AVX2_NB, CN_AVX2, cn_f64x4_load, cn_f64x4_store, ((cn_f64x4){0}), CN_GROUP4_SEPARATE, CN_MADD_SEPARATE)
CN_DEFINE_CORR(cn_corr_f32_avx512, float, cn_f32x16, 16, CN_AVX512_ROWS, CN_AVX512_NB, CN_AVX512, cn_f32x16_load, cn_f32x16_store, ((cn_f32x16){0}), CN_GROUP4_SEPARATE, CN_MADD_SEPARATE)
CN_DEFINE_CORR(cn_corr_f64_avx512, double, cn_f64x8, 8, CN_AVX512_ROWS, CN_AVX512_NB, CN_AVX512, cn_f64x8_load, cn_f64x8_store, ((cn_f64x8){0}), CN_GROUP4_SEPARATE, CN_MADD_SEPARATE)
/* Fixed 3x3 and 5x5 kernels, the sizes image filters and CNN layers use most (at 7x7 the
 * general kernel's overhead is already small against the products). */
#define CN_DEFINE_CORR_FIXED_X86(K)                                                            \
    CN_DEFINE_CORR_FIXED(cn_corr_f32_avx2_##K, K, K, float, cn_f32x8, 8, CN_AVX2_ROWS, CN_AVX2_NB, CN_AVX2, cn_f32x8_load, cn_f32x8_store, ((cn_f32x8){0}), CN_GROUP4_SEPARATE, CN_MADD_SEPARATE) \
    CN_DEFINE_CORR_FIXED(cn_corr_f64_avx2_##K, K, K, double, cn_f64x4, 4, CN_AVX2_ROWS, CN_AVX2_NB, CN_AVX2, cn_f64x4_load, cn_f64x4_store, ((cn_f64x4){0}), CN_GROUP4_SEPARATE, CN_MADD_SEPARATE) \
    CN_DEFINE_CORR_FIXED(cn_corr_f32_avx512_##K, K, K, float, cn_f32x16, 16, CN_AVX512_FIXED_ROWS, CN_AVX512_FIXED_NB, CN_AVX512, cn_f32x16_load, cn_f32x16_store, ((cn_f32x16){0}), CN_GROUP4_SEPARATE, CN_MADD_SEPARATE) \
    CN_DEFINE_CORR_FIXED(cn_corr_f64_avx512_##K, K, K, double, cn_f64x8, 8, CN_AVX512_FIXED_ROWS, CN_AVX512_FIXED_NB, CN_AVX512, cn_f64x8_load, cn_f64x8_store, ((cn_f64x8){0}), CN_GROUP4_SEPARATE, CN_MADD_SEPARATE)
CN_DEFINE_CORR_FIXED_X86(3)
CN_DEFINE_CORR_FIXED_X86(5)
#endif

#define CN_CORR_ARGS image, image_stride, out, out_stride, out_rows, col, out_cols, coef, coloff, \
                     kernel_rows, taps_per_row, flip

#if CN_HAVE_VECTOR_EXT
#define CN_CALL_VEC128(T) col = cn_corr_##T##_vec128(CN_CORR_ARGS)
#else
#define CN_CALL_VEC128(T) (void)0
#endif

#if CN_X86_DISPATCH
#define CN_FIXED_ARGS image, image_stride, out, out_stride, out_rows, col, out_cols, coef, coloff, flip
/* A variant for the kernel's shape where there is one, else the general one. */
#define CN_CALL_SHAPED(T, ISA)                                                                 \
    if (kernel_rows == 3 && taps_per_row == 3)                                                 \
        col = cn_corr_##T##_##ISA##_3(CN_FIXED_ARGS);                                          \
    else if (kernel_rows == 5 && taps_per_row == 5)                                            \
        col = cn_corr_##T##_##ISA##_5(CN_FIXED_ARGS);                                          \
    else                                                                                       \
        col = cn_corr_##T##_##ISA(CN_CORR_ARGS)
#define CN_CALL_X86(T)                                                                         \
    if (level >= CN_SIMD_AVX512) { CN_CALL_SHAPED(T, avx512); }                                \
    if (level >= CN_SIMD_AVX2 && col < out_cols) { CN_CALL_SHAPED(T, avx2); }
#else
#define CN_CALL_X86(T)
#endif

/* out[m, n] = sum over taps (kernel row s, tap k) of coef[s * taps_per_row + k] times the image
 * element at row m + s (flip: m + kernel_rows - 1 - s) and column n + coloff[k].  The widest
 * variant whose vector fits in a row does all of it; only outputs narrower than every vector
 * reach the narrower variants. */
#define CN_DEFINE_DISPATCH(T, CT)                                                              \
    static void cn_corr_##T(const CT *image, cn_idx image_stride, CT *out, cn_idx out_stride,  \
                            cn_idx out_rows, cn_idx out_cols, const CT *coef,                  \
                            const cn_idx *coloff, cn_idx kernel_rows, cn_idx taps_per_row,     \
                            int flip)                                                          \
    {                                                                                          \
        const int level = cn_simd_active();                                                    \
        cn_idx col = 0;                                                                        \
        if (cn_rounding == CN_ROUNDING_FUSED) {                                                \
            CN_CALL_FUSED_VEC(T);                                                              \
            if (col < out_cols) cn_corr_##T##_scalar_fused(CN_CORR_ARGS);                      \
            return;                                                                            \
        }                                                                                      \
        CN_CALL_X86(T)                                                                         \
        if (level >= CN_SIMD_VEC128 && col < out_cols) CN_CALL_VEC128(T);                      \
        if (col < out_cols) cn_corr_##T##_scalar(CN_CORR_ARGS);                                \
    }

CN_DEFINE_DISPATCH(f32, float)
CN_DEFINE_DISPATCH(f64, double)

#endif /* CNNATIVE_CORR_SIMD_H */
