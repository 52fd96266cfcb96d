/*
 * Direct 2-D correlation over a pre-padded image, summed in exactly the order
 * scipy.signal's direct convolution uses, so that results match it bit for bit.
 *
 * For every output pixel (m, n) the taps are visited in a fixed order t = 0..T-1 given by the
 * caller (kernel row by kernel row); within a kernel row of R taps the sum grows as
 *     acc = acc + (((c0*x0 + c1*x1) + c2*x2) + c3*x3)      for each group of four taps,
 *     acc = acc + c*x                                       for each of the R % 4 left over,
 * starting from acc = +0 and carried across rows.  Tap t reads image[m*stride + n + offset[t]].
 *
 * Vectorisation runs across neighbouring output pixels of a row, never across taps, so each
 * SIMD lane performs the scalar sequence above unchanged.  The file must be compiled without
 * floating-point contraction (-ffp-contract=off): a fused multiply-add would round differently.
 *
 * Several instruction-set variants are compiled side by side and chosen at run time: the widest
 * one the CPU supports handles as many columns as it can in whole vectors, then narrower ones
 * (and finally plain scalar code) finish the remaining columns of each row.
 */
#ifndef CNNATIVE_CORR_SIMD_H
#define CNNATIVE_CORR_SIMD_H

#include <stddef.h>
#include <string.h>

typedef ptrdiff_t cn_idx;

#if defined(__GNUC__) || defined(__clang__)
#define CN_HAVE_VECTOR_EXT 1
#define CN_UNROLL _Pragma("GCC unroll 16")
#else
#define CN_HAVE_VECTOR_EXT 0
#define CN_UNROLL
#endif

#if CN_HAVE_VECTOR_EXT && (defined(__x86_64__) || defined(__i386__)) && !defined(CN_NO_X86_DISPATCH)
#define CN_X86_DISPATCH 1
#else
#define CN_X86_DISPATCH 0
#endif

enum cn_simd_level { CN_SIMD_SCALAR = 0, CN_SIMD_VEC128 = 1, CN_SIMD_AVX2 = 2, CN_SIMD_AVX512 = 3 };

/* Output block of ROWS x NB vectors starting at (m, n); variables come from the enclosing
 * kernel function.  ROWS and NB are compile-time constants so the accumulators live in
 * registers once the loops are unrolled.  Coefficients stay scalar: the vector extension
 * broadcasts a scalar operand itself, which compiles to a broadcast instead of a lane-by-lane
 * build through the stack. */
#define CN_CORR_BLOCK(T, VT, V, LOAD, STORE, ZERO, ROWS, NB)                                  \
    do {                                                                                       \
        VT acc[ROWS][NB];                                                                      \
        CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++)                                          \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) acc[r_][b_] = ZERO;              \
        const T *origin = image + m * image_stride + n;                                        \
        const T *c = coef;                                                                     \
        const cn_idx *o = offset;                                                              \
        for (cn_idx j_ = 0; j_ < kernel_rows; j_++) {                                          \
            cn_idx k_ = 0;                                                                     \
            for (; k_ + 4 <= taps_per_row; k_ += 4, c += 4, o += 4) {                          \
                const T c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];                         \
                CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++)                                  \
                    CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) {                              \
                        const T *p = origin + r_ * image_stride + b_ * (V);                    \
                        acc[r_][b_] = acc[r_][b_] + (((c0 * LOAD(p + o[0]) + c1 * LOAD(p + o[1])) \
                                                      + c2 * LOAD(p + o[2])) + c3 * LOAD(p + o[3])); \
                    }                                                                          \
            }                                                                                  \
            for (; k_ < taps_per_row; k_++, c++, o++) {                                        \
                const T c0 = c[0];                                                             \
                CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++)                                  \
                    CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) {                              \
                        const T *p = origin + r_ * image_stride + b_ * (V);                    \
                        acc[r_][b_] = acc[r_][b_] + c0 * LOAD(p + o[0]);                       \
                    }                                                                          \
            }                                                                                  \
        }                                                                                      \
        CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++)                                          \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++)                                        \
                STORE(out + (m + r_) * out_stride + n + b_ * (V), acc[r_][b_]);                \
    } while (0)

/* Defines NAME(...) computing columns [col_begin, col_begin + whole vectors) of every output
 * row and returning the first column it left undone. */
#define CN_DEFINE_CORR(NAME, T, VT, V, NB, ATTR, LOAD, STORE, ZERO)                           \
    ATTR static cn_idx NAME(const T *image, cn_idx image_stride, T *out, cn_idx out_stride,     \
                            cn_idx out_rows, cn_idx col_begin, cn_idx col_end,                 \
                            const T *coef, const cn_idx *offset, cn_idx kernel_rows,           \
                            cn_idx taps_per_row)                                               \
    {                                                                                          \
        cn_idx m = 0, n;                                                                       \
        for (; m + 2 <= out_rows; m += 2) {                                                    \
            for (n = col_begin; n + (NB) * (V) <= col_end; n += (NB) * (V))                    \
                CN_CORR_BLOCK(T, VT, V, LOAD, STORE, ZERO, 2, NB);                            \
            for (; n + (V) <= col_end; n += (V))                                               \
                CN_CORR_BLOCK(T, VT, V, LOAD, STORE, ZERO, 2, 1);                             \
        }                                                                                      \
        for (; m < out_rows; m++) {                                                            \
            for (n = col_begin; n + (NB) * (V) <= col_end; n += (NB) * (V))                    \
                CN_CORR_BLOCK(T, VT, V, LOAD, STORE, ZERO, 1, NB);                            \
            for (; n + (V) <= col_end; n += (V))                                               \
                CN_CORR_BLOCK(T, VT, V, LOAD, STORE, ZERO, 1, 1);                             \
        }                                                                                      \
        return col_begin + (col_end - col_begin) / (V) * (V);                                  \
    }

/* Scalar variant: the portable fallback and the last few columns of each row. */
#define CN_SCALAR_LOAD(p) (*(p))
#define CN_SCALAR_STORE(p, v) (*(p) = (v))
CN_DEFINE_CORR(cn_corr_f32_scalar, float, float, 1, 4, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0)
CN_DEFINE_CORR(cn_corr_f64_scalar, double, double, 1, 4, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0)

#if CN_HAVE_VECTOR_EXT
/* Vector helpers: memcpy keeps loads unaligned-safe and free of aliasing assumptions; the
 * compiler turns each into a single vector move. */
#define CN_DEFINE_VEC_HELPERS(PREFIX, T, VT, ATTR)                                          \
    ATTR static inline VT PREFIX##_load(const T *p) { VT v; memcpy(&v, p, sizeof v); return v; } \
    ATTR static inline void PREFIX##_store(T *p, VT v) { memcpy(p, &v, sizeof v); }

typedef float cn_f32x4 __attribute__((vector_size(16)));
typedef double cn_f64x2 __attribute__((vector_size(16)));
CN_DEFINE_VEC_HELPERS(cn_f32x4, float, cn_f32x4, )
CN_DEFINE_VEC_HELPERS(cn_f64x2, double, cn_f64x2, )
CN_DEFINE_CORR(cn_corr_f32_vec128, float, cn_f32x4, 4, 4, , cn_f32x4_load, cn_f32x4_store, ((cn_f32x4){0}))
CN_DEFINE_CORR(cn_corr_f64_vec128, double, cn_f64x2, 2, 4, , cn_f64x2_load, cn_f64x2_store, ((cn_f64x2){0}))
#endif

#if CN_X86_DISPATCH
#define CN_AVX2 __attribute__((target("avx2")))
#define CN_AVX512 __attribute__((target("avx512f")))
typedef float cn_f32x8 __attribute__((vector_size(32)));
typedef double cn_f64x4 __attribute__((vector_size(32)));
typedef float cn_f32x16 __attribute__((vector_size(64)));
typedef double cn_f64x8 __attribute__((vector_size(64)));
CN_DEFINE_VEC_HELPERS(cn_f32x8, float, cn_f32x8, CN_AVX2)
CN_DEFINE_VEC_HELPERS(cn_f64x4, double, cn_f64x4, CN_AVX2)
CN_DEFINE_VEC_HELPERS(cn_f32x16, float, cn_f32x16, CN_AVX512)
CN_DEFINE_VEC_HELPERS(cn_f64x8, double, cn_f64x8, CN_AVX512)
/* 16 ymm registers: 8 accumulators, 4 coefficients, room for loads. */
CN_DEFINE_CORR(cn_corr_f32_avx2, float, cn_f32x8, 8, 4, CN_AVX2, cn_f32x8_load, cn_f32x8_store, ((cn_f32x8){0}))
CN_DEFINE_CORR(cn_corr_f64_avx2, double, cn_f64x4, 4, 4, CN_AVX2, cn_f64x4_load, cn_f64x4_store, ((cn_f64x4){0}))
/* 32 zmm registers allow a wider block. */
CN_DEFINE_CORR(cn_corr_f32_avx512, float, cn_f32x16, 16, 6, CN_AVX512, cn_f32x16_load, cn_f32x16_store, ((cn_f32x16){0}))
CN_DEFINE_CORR(cn_corr_f64_avx512, double, cn_f64x8, 8, 6, CN_AVX512, cn_f64x8_load, cn_f64x8_store, ((cn_f64x8){0}))
#endif

/* The widest instruction set this CPU and OS support, detected once.  The race on first use is
 * benign: every thread computes and stores the same value. */
static int cn_simd_level(void)
{
    static volatile int level = -1;
    if (level < 0) {
        int found = CN_HAVE_VECTOR_EXT ? CN_SIMD_VEC128 : CN_SIMD_SCALAR;
#if CN_X86_DISPATCH
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2")) found = CN_SIMD_AVX2;
        if (__builtin_cpu_supports("avx512f")) found = CN_SIMD_AVX512;
#endif
        level = found;
    }
    return level;
}

/* Highest level the dispatcher may use; lowered by tests to exercise every variant. */
static volatile int cn_simd_cap = CN_SIMD_AVX512;

static int cn_simd_active(void)
{
    int level = cn_simd_level();
    return level < cn_simd_cap ? level : cn_simd_cap;
}

static const char *cn_simd_name(int level)
{
    switch (level) {
    case CN_SIMD_AVX512: return "avx512f";
    case CN_SIMD_AVX2: return "avx2";
#if defined(__aarch64__) || defined(__arm__)
    case CN_SIMD_VEC128: return "neon";
#else
    case CN_SIMD_VEC128: return "sse2";
#endif
    default: return "scalar";
    }
}

#if CN_HAVE_VECTOR_EXT
#define CN_CALL_VEC128(T) col = cn_corr_##T##_vec128(image, image_stride, out, out_stride, out_rows, \
                                                     col, out_cols, coef, offset, kernel_rows, taps_per_row)
#else
#define CN_CALL_VEC128(T) (void)0
#endif

#if CN_X86_DISPATCH
#define CN_CALL_X86(T)                                                                         \
    if (level >= CN_SIMD_AVX512)                                                               \
        col = cn_corr_##T##_avx512(image, image_stride, out, out_stride, out_rows, col, out_cols, \
                                   coef, offset, kernel_rows, taps_per_row);                   \
    if (level >= CN_SIMD_AVX2)                                                                 \
        col = cn_corr_##T##_avx2(image, image_stride, out, out_stride, out_rows, col, out_cols,  \
                                 coef, offset, kernel_rows, taps_per_row);
#else
#define CN_CALL_X86(T)
#endif

#define CN_DEFINE_DISPATCH(T, CT)                                                              \
    static void cn_corr_##T(const CT *image, cn_idx image_stride, CT *out, cn_idx out_stride,  \
                            cn_idx out_rows, cn_idx out_cols, const CT *coef,                  \
                            const cn_idx *offset, cn_idx kernel_rows, cn_idx taps_per_row)     \
    {                                                                                          \
        const int level = cn_simd_active();                                                    \
        cn_idx col = 0;                                                                        \
        CN_CALL_X86(T)                                                                         \
        if (level >= CN_SIMD_VEC128) CN_CALL_VEC128(T);                                        \
        cn_corr_##T##_scalar(image, image_stride, out, out_stride, out_rows, col, out_cols,    \
                             coef, offset, kernel_rows, taps_per_row);                         \
    }

CN_DEFINE_DISPATCH(f32, float)
CN_DEFINE_DISPATCH(f64, double)

#endif /* CNNATIVE_CORR_SIMD_H */
