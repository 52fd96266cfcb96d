/*
 * Direct N-d correlation in 'valid' form, summed in exactly the order scipy.signal's N-d direct
 * correlation (_sigtools._correlateND) uses, so that results match it bit for bit.
 *
 * The caller sees the frame (the image, or a zero-padded copy of it for 'same' and 'full') as
 * rows of its last axis: output row m of a plane reads frame rows m + s (s a kernel row along
 * the second-to-last axis) of each kernel plane, a plane being one index of all the axes before
 * those two; plane_off[q] gives the frame offset of plane q.  For every output element the sum
 * runs over the kernel's taps in C order, one product at a time:
 *     acc = +0;  for each plane q, kernel row s, tap k:  acc = acc + c[q, s, k] * x
 * which is scipy's loop (a neighbourhood iterator walking the kernel in C order).  No grouping:
 * N-d scipy adds every product to the accumulator directly, unlike its 2-D convolve2d.
 *
 * Where scipy's compiler contracts that loop (aarch64 wheels), each step is one fused
 * multiply-add, acc = fma(c, x, acc); the fused variants below repeat that, chosen by
 * cn_rounding (rounding.h, set once per process from a probe of the installed scipy).
 *
 * Vectorisation runs across neighbouring outputs of a row, never across taps, so each lane
 * performs the scalar sequence above unchanged.  Compile without floating-point contraction
 * (-ffp-contract=off): the separate variants must not fuse, and the fused ones fuse only
 * where they call fma explicitly.
 */
#ifndef CNNATIVE_CORR_ND_SIMD_H
#define CNNATIVE_CORR_ND_SIMD_H

#include "simd_dispatch.h"
#include "rounding.h"
#if defined(__aarch64__) && CN_HAVE_VECTOR_EXT
#include <arm_neon.h>
#define CN_ND_NEON_FUSED 1
#else
#define CN_ND_NEON_FUSED 0
#endif

/* MADD(a, c, x) = a + c*x, rounded after the product and the sum, or once (fused).  On x86 the
 * fused variants carry the AVX2 target (which includes FMA) so that fma becomes the instruction
 * and no libm call (the modules do not link libm); they need a CPU with FMA. */
#define CN_ND_MADD_SEPARATE(a, c, x) ((a) + (c) * (x))
#if CN_X86_DISPATCH
#define CN_ND_FUSED_ATTR CN_AVX2
#define CN_ND_MADD_F32_FUSED(a, c, x) __builtin_fmaf((c), (x), (a))
#define CN_ND_MADD_F64_FUSED(a, c, x) __builtin_fma((c), (x), (a))
#elif defined(__GNUC__) || defined(__clang__)
#define CN_ND_FUSED_ATTR
#define CN_ND_MADD_F32_FUSED(a, c, x) __builtin_fmaf((c), (x), (a))
#define CN_ND_MADD_F64_FUSED(a, c, x) __builtin_fma((c), (x), (a))
#else
/* C99's own declarations (7.1.4 allows them without <math.h>, whose glibc version does not
 * parse in the strict-C99 check of tools/check_portable_c.sh). */
float fmaf(float, float, float);
double fma(double, double, double);
#define CN_ND_FUSED_ATTR
#define CN_ND_MADD_F32_FUSED(a, c, x) fmaf((c), (x), (a))
#define CN_ND_MADD_F64_FUSED(a, c, x) fma((c), (x), (a))
#endif
#if CN_ND_NEON_FUSED
/* NEON's multiply-add by a scalar on the vector-extension types (the casts reinterpret). */
static inline cn_f32x4 cn_nd_neon_fma_f32(cn_f32x4 a, float c, cn_f32x4 x)
{ return (cn_f32x4)vfmaq_n_f32((float32x4_t)a, (float32x4_t)x, c); }
static inline cn_f64x2 cn_nd_neon_fma_f64(cn_f64x2 a, double c, cn_f64x2 x)
{ return (cn_f64x2)vfmaq_n_f64((float64x2_t)a, (float64x2_t)x, c); }
#define CN_ND_MADD_F32X4_FUSED(a, c, x) cn_nd_neon_fma_f32((a), (c), (x))
#define CN_ND_MADD_F64X2_FUSED(a, c, x) cn_nd_neon_fma_f64((a), (c), (x))
#endif

/* One step of the walk over frame rows: frame row m + p_ serves accumulator r_ as kernel row
 * p_ - r_ (ACTIVE(r_) says whether that row exists).  Walking the frame rows once per plane, in
 * ascending order, gives every output row its kernel rows in ascending order too, and one
 * vector load feeds up to ROWS products (the loads, not the arithmetic, limited a row at a
 * time). */
#define CN_ND_STEP(T, VT, V, LOAD, ROWS, NB, ACTIVE, MADD)                                     \
    do {                                                                                       \
        for (cn_idx k_ = 0; k_ < taps_per_row; k_++) {                                         \
            VT x_[NB];                                                                         \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) x_[b_] = LOAD(row + k_ + b_ * (V));    \
            CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++) {                                    \
                if (!(ACTIVE(r_))) continue;                                                   \
                const T c_ = plane_coef[(p_ - r_) * taps_per_row + k_];                        \
                CN_UNROLL for (int b_ = 0; b_ < (NB); b_++)                                    \
                    acc[r_][b_] = MADD(acc[r_][b_], c_, x_[b_]);                               \
            }                                                                                  \
        }                                                                                      \
    } while (0)

#define CN_ND_ALL_ACTIVE(r) 1
/* Kernel row p - r exists; the unsigned compare also rejects negative values. */
#define CN_ND_IN_KERNEL(r) ((size_t)(p_ - (r)) < (size_t)kernel_rows)

/* Output rows [m, m + ROWS) x NB vectors from column n. */
#define CN_ND_BLOCK(T, VT, V, LOAD, STORE, ZERO, ROWS, NB, MADD)                               \
    do {                                                                                       \
        VT acc[ROWS][NB];                                                                      \
        CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++)                                          \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) acc[r_][b_] = ZERO;                    \
        const cn_idx steps = kernel_rows + (ROWS) - 1;                                         \
        for (cn_idx q_ = 0; q_ < planes; q_++) {                                               \
            const T *row = frame + plane_off[q_] + m * row_stride + n;                         \
            const T *plane_coef = coef + q_ * kernel_rows * taps_per_row;                      \
            for (cn_idx p_ = 0; p_ < steps; p_++, row += row_stride) {                         \
                if (p_ >= (ROWS) - 1 && p_ < kernel_rows)                                      \
                    CN_ND_STEP(T, VT, V, LOAD, ROWS, NB, CN_ND_ALL_ACTIVE, MADD);              \
                else                                                                           \
                    CN_ND_STEP(T, VT, V, LOAD, ROWS, NB, CN_ND_IN_KERNEL, MADD);               \
            }                                                                                  \
        }                                                                                      \
        CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++) {                                        \
            T *dst = out + (m + r_) * out_stride + n;                                          \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) STORE(dst + b_ * (V), acc[r_][b_]);    \
        }                                                                                      \
    } while (0)

/* All columns [col_begin, col_end) of output rows [m, m + ROWS).  The last partial vector is
 * computed as a whole vector ending at col_end: the columns it shares with its neighbour get
 * the same value again, which is cheaper than finishing them with narrower code. */
#define CN_ND_ROWS(T, VT, V, LOAD, STORE, ZERO, ROWS, NB, MADD)                                \
    do {                                                                                       \
        for (n = col_begin; n + (NB) * (V) <= col_end; n += (NB) * (V))                        \
            CN_ND_BLOCK(T, VT, V, LOAD, STORE, ZERO, ROWS, NB, MADD);                          \
        for (; n + (V) <= col_end; n += (V))                                                   \
            CN_ND_BLOCK(T, VT, V, LOAD, STORE, ZERO, ROWS, 1, MADD);                           \
        if (n < col_end) {                                                                     \
            n = col_end - (V);                                                                 \
            CN_ND_BLOCK(T, VT, V, LOAD, STORE, ZERO, ROWS, 1, MADD);                           \
        }                                                                                      \
    } while (0)

/* Defines NAME(...) computing columns [col_begin, col_end) of every output row when that range
 * holds at least one whole vector; returns the first column it left undone (col_end, or
 * col_begin when the range is too narrow).  Blocks are ROWS (<= 4) rows high; the leftover rows
 * get lower blocks. */
#define CN_DEFINE_CORR_ND(NAME, T, VT, V, ROWS, NB, ATTR, LOAD, STORE, ZERO, MADD)             \
    ATTR static cn_idx NAME(const T *frame, cn_idx row_stride, const cn_idx *plane_off,        \
                            cn_idx planes, T *out, cn_idx out_stride, cn_idx out_rows,         \
                            cn_idx col_begin, cn_idx col_end, const T *coef,                   \
                            cn_idx kernel_rows, cn_idx taps_per_row)                           \
    {                                                                                          \
        cn_idx m = 0, n;                                                                       \
        if (col_end - col_begin < (V)) return col_begin;                                       \
        for (; m + (ROWS) <= out_rows; m += (ROWS))                                            \
            CN_ND_ROWS(T, VT, V, LOAD, STORE, ZERO, ROWS, NB, MADD);                           \
        if ((ROWS) > 3 && out_rows - m >= 3) {                                                 \
            CN_ND_ROWS(T, VT, V, LOAD, STORE, ZERO, 3, NB, MADD); m += 3;                      \
        }                                                                                      \
        if ((ROWS) > 2 && out_rows - m >= 2) {                                                 \
            CN_ND_ROWS(T, VT, V, LOAD, STORE, ZERO, 2, NB, MADD); m += 2;                      \
        }                                                                                      \
        if ((ROWS) > 1 && out_rows - m >= 1)                                                   \
            CN_ND_ROWS(T, VT, V, LOAD, STORE, ZERO, 1, NB, MADD);                              \
        return col_end;                                                                        \
    }

/* Scalar variant: the portable fallback and rows narrower than every vector. */
CN_DEFINE_CORR_ND(cn_corr_nd_f32_scalar, float, float, 1, 4, 4, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_ND_MADD_SEPARATE)
CN_DEFINE_CORR_ND(cn_corr_nd_f64_scalar, double, double, 1, 4, 4, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_ND_MADD_SEPARATE)

/* Block shapes (rows x vectors per row), overridable for tuning.  Each step keeps NB loaded
 * vectors and ROWS * NB accumulators live: 16 registers (SSE, AVX2) hold 3 x 2 plus the
 * loads and the broadcast coefficient; AVX-512's 32 hold 4 x 2 with room to spare. */
#ifndef CN_ND_VEC128_ROWS
#define CN_ND_VEC128_ROWS 3
#define CN_ND_VEC128_NB 2
#endif
#ifndef CN_ND_AVX2_ROWS
#define CN_ND_AVX2_ROWS 3
#define CN_ND_AVX2_NB 2
#endif
#ifndef CN_ND_AVX512_ROWS
#define CN_ND_AVX512_ROWS 4
#define CN_ND_AVX512_NB 2
#endif

/* The fused variants: scalar everywhere, NEON on aarch64. */
CN_DEFINE_CORR_ND(cn_corr_nd_f32_scalar_fused, float, float, 1, 4, 4, CN_ND_FUSED_ATTR, CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_ND_MADD_F32_FUSED)
CN_DEFINE_CORR_ND(cn_corr_nd_f64_scalar_fused, double, double, 1, 4, 4, CN_ND_FUSED_ATTR, CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_ND_MADD_F64_FUSED)
#if CN_ND_NEON_FUSED
CN_DEFINE_CORR_ND(cn_corr_nd_f32_neon_fused, float, cn_f32x4, 4, CN_ND_VEC128_ROWS, CN_ND_VEC128_NB, , cn_f32x4_load, cn_f32x4_store, ((cn_f32x4){0}), CN_ND_MADD_F32X4_FUSED)
CN_DEFINE_CORR_ND(cn_corr_nd_f64_neon_fused, double, cn_f64x2, 2, CN_ND_VEC128_ROWS, CN_ND_VEC128_NB, , cn_f64x2_load, cn_f64x2_store, ((cn_f64x2){0}), CN_ND_MADD_F64X2_FUSED)
#define CN_ND_CALL_FUSED_VEC(T) if (level >= CN_SIMD_VEC128) col = cn_corr_nd_##T##_neon_fused(CN_CORR_ND_ARGS)
#else
#define CN_ND_CALL_FUSED_VEC(T) (void)0
#endif

#if CN_HAVE_VECTOR_EXT
CN_DEFINE_CORR_ND(cn_corr_nd_f32_vec128, float, cn_f32x4, 4, CN_ND_VEC128_ROWS, CN_ND_VEC128_NB, , cn_f32x4_load, cn_f32x4_store, ((cn_f32x4){0}), CN_ND_MADD_SEPARATE)
CN_DEFINE_CORR_ND(cn_corr_nd_f64_vec128, double, cn_f64x2, 2, CN_ND_VEC128_ROWS, CN_ND_VEC128_NB, , cn_f64x2_load, cn_f64x2_store, ((cn_f64x2){0}), CN_ND_MADD_SEPARATE)
#endif

#if CN_X86_DISPATCH
CN_DEFINE_CORR_ND(cn_corr_nd_f32_avx2, float, cn_f32x8, 8, CN_ND_AVX2_ROWS, CN_ND_AVX2_NB, CN_AVX2, cn_f32x8_load, cn_f32x8_store, ((cn_f32x8){0}), CN_ND_MADD_SEPARATE)
CN_DEFINE_CORR_ND(cn_corr_nd_f64_avx2, double, cn_f64x4, 4, CN_ND_AVX2_ROWS, CN_ND_AVX2_NB, CN_AVX2, cn_f64x4_load, cn_f64x4_store, ((cn_f64x4){0}), CN_ND_MADD_SEPARATE)
CN_DEFINE_CORR_ND(cn_corr_nd_f32_avx512, float, cn_f32x16, 16, CN_ND_AVX512_ROWS, CN_ND_AVX512_NB, CN_AVX512, cn_f32x16_load, cn_f32x16_store, ((cn_f32x16){0}), CN_ND_MADD_SEPARATE)
CN_DEFINE_CORR_ND(cn_corr_nd_f64_avx512, double, cn_f64x8, 8, CN_ND_AVX512_ROWS, CN_ND_AVX512_NB, CN_AVX512, cn_f64x8_load, cn_f64x8_store, ((cn_f64x8){0}), CN_ND_MADD_SEPARATE)
#endif

#define CN_CORR_ND_ARGS frame, row_stride, plane_off, planes, out, out_stride, out_rows, col,  \
                        out_cols, coef, kernel_rows, taps_per_row

#if CN_HAVE_VECTOR_EXT
#define CN_ND_CALL_VEC128(T) col = cn_corr_nd_##T##_vec128(CN_CORR_ND_ARGS)
#else
#define CN_ND_CALL_VEC128(T) (void)0
#endif

#if CN_X86_DISPATCH
#define CN_ND_CALL_X86(T)                                                                      \
    if (level >= CN_SIMD_AVX512) col = cn_corr_nd_##T##_avx512(CN_CORR_ND_ARGS);               \
    if (level >= CN_SIMD_AVX2 && col < out_cols) col = cn_corr_nd_##T##_avx2(CN_CORR_ND_ARGS);
#else
#define CN_ND_CALL_X86(T)
#endif

/* out[m * out_stride + n] for m < out_rows, n < out_cols = the sum over planes q < planes,
 * kernel rows s < kernel_rows and taps k < taps_per_row, in that nesting, of
 * coef[(q * kernel_rows + s) * taps_per_row + k] * frame[plane_off[q] + (m + s) * row_stride
 * + n + k].  The widest variant whose vector fits in a row does all of it; only rows narrower
 * than every vector reach the narrower variants. */
#define CN_DEFINE_ND_DISPATCH(T, CT)                                                           \
    static void cn_corr_nd_##T(const CT *frame, cn_idx row_stride, const cn_idx *plane_off,    \
                               cn_idx planes, CT *out, cn_idx out_stride, cn_idx out_rows,     \
                               cn_idx out_cols, const CT *coef, cn_idx kernel_rows,            \
                               cn_idx taps_per_row)                                            \
    {                                                                                          \
        const int level = cn_simd_active();                                                    \
        cn_idx col = 0;                                                                        \
        if (cn_rounding == CN_ROUNDING_FUSED) {                                                \
            CN_ND_CALL_FUSED_VEC(T);                                                           \
            if (col < out_cols) cn_corr_nd_##T##_scalar_fused(CN_CORR_ND_ARGS);                \
            return;                                                                            \
        }                                                                                      \
        CN_ND_CALL_X86(T)                                                                      \
        if (level >= CN_SIMD_VEC128 && col < out_cols) CN_ND_CALL_VEC128(T);                   \
        if (col < out_cols) cn_corr_nd_##T##_scalar(CN_CORR_ND_ARGS);                          \
    }

CN_DEFINE_ND_DISPATCH(f32, float)
CN_DEFINE_ND_DISPATCH(f64, double)

#endif /* CNNATIVE_CORR_ND_SIMD_H */
