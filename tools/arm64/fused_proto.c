/*
 * Prototype of the fused-multiply-add variant of native/corr_simd.h's kernel, built beside the
 * unchanged header (which it includes read-only) to check the proposal in NOTES.md before the
 * header itself changes.  Only CN_CORR_STEP is replaced: the group of four becomes
 *     acc = acc + fma(c3, x3, fma(c2, x2, fma(c0, x0, c1*x1)))
 * and a left-over tap  acc = fma(c, x, acc)  -- what GCC and clang make of scipy's
 * `dsum += t0*v0 + t1*v1 + t2*v2 + t3*v3;` / `dsum += t*v;` when they contract.  The
 * fused operation is CN_PROTO_MADD(addend, c, x) = addend + c*x rounded once, defined around
 * each instantiation: fmaf/fma from <math.h> for scalars (a single fmadd on aarch64), NEON's
 * vfmaq_n_f32/vfmaq_n_f64 for 128-bit vectors.  Compile like the modules: -O3 -ffp-contract=off.
 *
 * Driven by tools/arm64/fused_proto.py.
 */
#include <math.h>
#include "corr_simd.h"
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

#undef CN_CORR_STEP
#define CN_CORR_STEP(T, VT, V, LOAD, ROWS, NB, ACTIVE)                                         \
    do {                                                                                       \
        cn_idx k_ = 0;                                                                         \
        for (; k_ + 4 <= taps_per_row; k_ += 4) {                                              \
            const T *q0 = row + coloff[k_], *q1 = row + coloff[k_ + 1];                        \
            const T *q2 = row + coloff[k_ + 2], *q3 = row + coloff[k_ + 3];                    \
            VT x0[NB], x1[NB], x2[NB], x3[NB];                                                 \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) {                                      \
                x0[b_] = LOAD(q0 + b_ * (V)); x1[b_] = LOAD(q1 + b_ * (V));                   \
                x2[b_] = LOAD(q2 + b_ * (V)); x3[b_] = LOAD(q3 + b_ * (V));                   \
            }                                                                                  \
            CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++) {                                    \
                if (!(ACTIVE(r_))) continue;                                                   \
                const T *c = coef + (p_ - r_) * taps_per_row + k_;                             \
                const T c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];                            \
                CN_UNROLL for (int b_ = 0; b_ < (NB); b_++)                                    \
                    acc[r_][b_] = acc[r_][b_] + CN_PROTO_MADD(CN_PROTO_MADD(CN_PROTO_MADD(     \
                        c1 * x1[b_], c0, x0[b_]), c2, x2[b_]), c3, x3[b_]);                   \
            }                                                                                  \
        }                                                                                      \
        for (; k_ < taps_per_row; k_++) {                                                      \
            const T *q0 = row + coloff[k_];                                                    \
            VT x0[NB];                                                                         \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) x0[b_] = LOAD(q0 + b_ * (V));        \
            CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++) {                                    \
                if (!(ACTIVE(r_))) continue;                                                   \
                const T c0 = coef[(p_ - r_) * taps_per_row + k_];                              \
                CN_UNROLL for (int b_ = 0; b_ < (NB); b_++)                                    \
                    acc[r_][b_] = CN_PROTO_MADD(acc[r_][b_], c0, x0[b_]);                      \
            }                                                                                  \
        }                                                                                      \
    } while (0)

#define CN_PROTO_MADD(a, c, x) fmaf((c), (x), (a))
CN_DEFINE_CORR(proto_f32_scalar_fused, float, float, 1, 4, 4, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0)
#undef CN_PROTO_MADD
#define CN_PROTO_MADD(a, c, x) fma((c), (x), (a))
CN_DEFINE_CORR(proto_f64_scalar_fused, double, double, 1, 4, 4, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0)
#undef CN_PROTO_MADD

#if defined(__aarch64__) && CN_HAVE_VECTOR_EXT
static inline cn_f32x4 proto_fma_f32x4(cn_f32x4 a, float c, cn_f32x4 x)
{ return (cn_f32x4)vfmaq_n_f32((float32x4_t)a, (float32x4_t)x, c); }
static inline cn_f64x2 proto_fma_f64x2(cn_f64x2 a, double c, cn_f64x2 x)
{ return (cn_f64x2)vfmaq_n_f64((float64x2_t)a, (float64x2_t)x, c); }
#define CN_PROTO_MADD(a, c, x) proto_fma_f32x4((a), (c), (x))
CN_DEFINE_CORR(proto_f32_neon_fused, float, cn_f32x4, 4, CN_VEC128_ROWS, CN_VEC128_NB, , cn_f32x4_load, cn_f32x4_store, ((cn_f32x4){0}))
#undef CN_PROTO_MADD
#define CN_PROTO_MADD(a, c, x) proto_fma_f64x2((a), (c), (x))
CN_DEFINE_CORR(proto_f64_neon_fused, double, cn_f64x2, 2, CN_VEC128_ROWS, CN_VEC128_NB, , cn_f64x2_load, cn_f64x2_store, ((cn_f64x2){0}))
#undef CN_PROTO_MADD
#define PROTO_HAVE_NEON 1
#else
#define PROTO_HAVE_NEON 0
#endif

int proto_have_neon(void) { return PROTO_HAVE_NEON; }

/* variant: 0 the header's unfused dispatch (today's kernel), 1 fused scalar, 2 fused NEON then
 * fused scalar for the columns left (as the real dispatch would). */
#define PROTO_ENTRY(T, CT)                                                                     \
    void proto_corr_##T(const CT *image, cn_idx image_stride, CT *out, cn_idx out_stride,      \
                        cn_idx out_rows, cn_idx out_cols, const CT *coef, const cn_idx *coloff, \
                        cn_idx kernel_rows, cn_idx taps_per_row, int flip, int variant)        \
    {                                                                                          \
        cn_idx col = 0;                                                                        \
        if (variant == 0) {                                                                    \
            cn_corr_##T(image, image_stride, out, out_stride, out_rows, out_cols, coef, coloff, \
                        kernel_rows, taps_per_row, flip);                                      \
            return;                                                                            \
        }                                                                                      \
        PROTO_NEON_##T                                                                         \
        if (col < out_cols) proto_##T##_scalar_fused(CN_CORR_ARGS);                            \
    }
#if PROTO_HAVE_NEON
#define PROTO_NEON_f32 if (variant == 2) col = proto_f32_neon_fused(CN_CORR_ARGS);
#define PROTO_NEON_f64 if (variant == 2) col = proto_f64_neon_fused(CN_CORR_ARGS);
#else
#define PROTO_NEON_f32
#define PROTO_NEON_f64
#endif
PROTO_ENTRY(f32, float)
PROTO_ENTRY(f64, double)
