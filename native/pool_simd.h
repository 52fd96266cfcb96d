/*
 * 2x2 max pooling with horizontal stride 2 (any vertical stride) over windows that lie wholly
 * inside a plane, in AVX2 and AVX-512 variants chosen at run time (the dispatch machinery and
 * the per-module cap are simd_dispatch.h's).  The portable build has no such variant: its callers
 * keep their own loops for everything a variant leaves undone.
 *
 * Each output's window is scanned row-major (a = top left, b = top right, c, d below) and an
 * element replaces the running maximum when it is larger or NaN, exactly as the scalar code:
 * the same sequence of compares runs in every lane, so values and indices are bit-identical.
 * Output columns go across the lanes; one vector of outputs reads two vectors of each input
 * row, split into even (a, c) and odd (b, d) columns by a permute.  Indices are written as
 * int64 directly, from 32-bit offsets within the window (0, 1, W, W + 1).
 */
#ifndef CNNATIVE_POOL_SIMD_H
#define CNNATIVE_POOL_SIMD_H

#include <stdint.h>

#include "simd_dispatch.h"

/* Arguments of every variant: output rows [row_first, row_stop) and columns
 * [col_first, col_stop) of a plane whose rows are row_step elements apart (unit stride within
 * a row), each output's window starting at input row oh * stride_h - pad_h, column
 * 2 * ow - pad_w.  y and indices are the plane's (rows, out_cols) outputs. */
#define CN_POOL2X2_PARAMS(T)                                                                    \
    const T *plane, cn_idx row_step, cn_idx width, T *y, int64_t *indices, cn_idx out_cols,     \
        cn_idx row_first, cn_idx row_stop, cn_idx col_first, cn_idx col_stop, cn_idx stride_h, \
        cn_idx pad_h, cn_idx pad_w
#define CN_POOL2X2_ARGS plane, row_step, width, y, indices, out_cols, row_first, row_stop, \
                        col_first, col_stop, stride_h, pad_h, pad_w

#if CN_X86_DISPATCH
#include <immintrin.h>

/* AVX-512: masked loads and stores finish a row's last partial vector, so any width works and
 * nothing outside the window columns is touched (masked-off lanes do not fault). */
#define CN_TAKE512(PS, MASK_MOV_OFF, v, o)                                                      \
    do {                                                                                        \
        const cn_mask_##PS m_ = _mm512_cmp_##PS##_mask((v), best, _CMP_GT_OQ)               \
                                   | _mm512_cmp_##PS##_mask((v), (v), _CMP_UNORD_Q);            \
        best = _mm512_mask_mov_##PS(best, m_, (v));                                             \
        off = MASK_MOV_OFF(off, m_, (o));                                                       \
    } while (0)
typedef __mmask16 cn_mask_ps;
typedef __mmask8 cn_mask_pd;

CN_AVX512 static void cn_pool2x2_f32_avx512(CN_POOL2X2_PARAMS(float))
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i step_lo = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i step_hi = _mm512_add_epi64(step_lo, _mm512_set1_epi64(16));
    const __m512i off_b = _mm512_set1_epi32(1), off_c = _mm512_set1_epi32((int32_t) width);
    const __m512i off_d = _mm512_set1_epi32((int32_t) (width + 1));
    for (cn_idx oh = row_first; oh < row_stop; oh++) {
        const cn_idx ih = oh * stride_h - pad_h;
        for (cn_idx ow = col_first; ow < col_stop; ow += 16) {
            const unsigned n = (unsigned) (col_stop - ow < 16 ? col_stop - ow : 16);
            const __mmask16 lo_mask = (__mmask16) (n >= 8 ? 0xFFFFu : (1u << (2 * n)) - 1);
            const __mmask16 hi_mask = (__mmask16) (n > 8 ? (1u << (2 * n - 16)) - 1 : 0);
            const __mmask16 out_mask = (__mmask16) ((1u << n) - 1);
            const cn_idx iw = 2 * ow - pad_w;
            const float *top = plane + ih * row_step + iw, *bottom = top + row_step;
            const __m512 t0 = _mm512_maskz_loadu_ps(lo_mask, top);
            const __m512 t1 = _mm512_maskz_loadu_ps(hi_mask, top + 16);
            const __m512 b0 = _mm512_maskz_loadu_ps(lo_mask, bottom);
            const __m512 b1 = _mm512_maskz_loadu_ps(hi_mask, bottom + 16);
            __m512 best = _mm512_permutex2var_ps(t0, even, t1);
            __m512i off = _mm512_setzero_si512();
            const __m512 b = _mm512_permutex2var_ps(t0, odd, t1);
            const __m512 c = _mm512_permutex2var_ps(b0, even, b1);
            const __m512 d = _mm512_permutex2var_ps(b0, odd, b1);
            CN_TAKE512(ps, _mm512_mask_mov_epi32, b, off_b);
            CN_TAKE512(ps, _mm512_mask_mov_epi32, c, off_c);
            CN_TAKE512(ps, _mm512_mask_mov_epi32, d, off_d);
            _mm512_mask_storeu_ps(y + oh * out_cols + ow, out_mask, best);
            const __m512i base = _mm512_set1_epi64(ih * width + iw);
            const __m512i lo = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(off)),
                                                _mm512_add_epi64(base, step_lo));
            const __m512i hi = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(off, 1)),
                                                _mm512_add_epi64(base, step_hi));
            int64_t *dst = indices + oh * out_cols + ow;
            _mm512_mask_storeu_epi64(dst, (__mmask8) out_mask, lo);
            _mm512_mask_storeu_epi64(dst + 8, (__mmask8) (out_mask >> 8), hi);
        }
    }
}

CN_AVX512 static void cn_pool2x2_f64_avx512(CN_POOL2X2_PARAMS(double))
{
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_add_epi64(even, _mm512_set1_epi64(1));
    const __m512i off_b = _mm512_set1_epi64(1), off_c = _mm512_set1_epi64(width);
    const __m512i off_d = _mm512_set1_epi64(width + 1);
    for (cn_idx oh = row_first; oh < row_stop; oh++) {
        const cn_idx ih = oh * stride_h - pad_h;
        for (cn_idx ow = col_first; ow < col_stop; ow += 8) {
            const unsigned n = (unsigned) (col_stop - ow < 8 ? col_stop - ow : 8);
            const __mmask8 lo_mask = (__mmask8) (n >= 4 ? 0xFFu : (1u << (2 * n)) - 1);
            const __mmask8 hi_mask = (__mmask8) (n > 4 ? (1u << (2 * n - 8)) - 1 : 0);
            const __mmask8 out_mask = (__mmask8) ((1u << n) - 1);
            const cn_idx iw = 2 * ow - pad_w;
            const double *top = plane + ih * row_step + iw, *bottom = top + row_step;
            const __m512d t0 = _mm512_maskz_loadu_pd(lo_mask, top);
            const __m512d t1 = _mm512_maskz_loadu_pd(hi_mask, top + 8);
            const __m512d b0 = _mm512_maskz_loadu_pd(lo_mask, bottom);
            const __m512d b1 = _mm512_maskz_loadu_pd(hi_mask, bottom + 8);
            __m512d best = _mm512_permutex2var_pd(t0, even, t1);
            __m512i off = _mm512_setzero_si512();
            const __m512d b = _mm512_permutex2var_pd(t0, odd, t1);
            const __m512d c = _mm512_permutex2var_pd(b0, even, b1);
            const __m512d d = _mm512_permutex2var_pd(b0, odd, b1);
            CN_TAKE512(pd, _mm512_mask_mov_epi64, b, off_b);
            CN_TAKE512(pd, _mm512_mask_mov_epi64, c, off_c);
            CN_TAKE512(pd, _mm512_mask_mov_epi64, d, off_d);
            _mm512_mask_storeu_pd(y + oh * out_cols + ow, out_mask, best);
            /* even[k] = 2k is also lane k's column offset from iw. */
            const __m512i where = _mm512_add_epi64(off, _mm512_add_epi64(_mm512_set1_epi64(ih * width + iw), even));
            _mm512_mask_storeu_epi64(indices + oh * out_cols + ow, out_mask, where);
        }
    }
}

/* AVX2: whole vectors only; a row's last partial vector is recomputed as a whole vector
 * ending at col_stop (the overlapped outputs get the same values again).  The caller
 * guarantees col_stop - col_first >= 4; float32 rows of fewer than 8 take the 128-bit path
 * below.  The in-lane shuffles that split even from odd columns leave the outputs in the
 * order of 64-bit pairs 0, 2, 1, 3; every tap is in that order alike, and one permute at the
 * end restores it. */
#define CN_TAKE256(PS, v, o)                                                                    \
    do {                                                                                        \
        const cn_m256_##PS m_ = _mm256_or_##PS(_mm256_cmp_##PS((v), best, _CMP_GT_OQ),           \
                                             _mm256_cmp_##PS((v), (v), _CMP_UNORD_Q));          \
        best = _mm256_blendv_##PS(best, (v), m_);                                               \
        off = _mm256_blendv_##PS(off, (o), m_);                                                 \
    } while (0)
typedef __m256 cn_m256_ps;
typedef __m256d cn_m256_pd;
#define CN_PAIRS_0213 0xD8 /* _MM_SHUFFLE(3, 1, 2, 0) */

#define CN_TAKE128(v, o)                                                                        \
    do {                                                                                        \
        const __m128 m_ = _mm_or_ps(_mm_cmp_ps((v), best, _CMP_GT_OQ),                          \
                                    _mm_cmp_ps((v), (v), _CMP_UNORD_Q));                        \
        best = _mm_blendv_ps(best, (v), m_);                                                    \
        off = _mm_blendv_ps(off, (o), m_);                                                      \
    } while (0)

/* Rows of 4 to 7 outputs (planes 8 to 15 wide, like a 28x28 image's second pooling layer),
 * which no 8-wide vector fits: four outputs at a time in 128-bit registers, where the even
 * and odd columns split without the 256-bit shuffles' lane order.  Same taps, same order. */
CN_AVX2 static void cn_pool2x2_f32_avx2_narrow(CN_POOL2X2_PARAMS(float))
{
    const __m128 off_b = _mm_castsi128_ps(_mm_set1_epi32(1));
    const __m128 off_c = _mm_castsi128_ps(_mm_set1_epi32((int32_t) width));
    const __m128 off_d = _mm_castsi128_ps(_mm_set1_epi32((int32_t) (width + 1)));
    const __m256i step = _mm256_setr_epi64x(0, 2, 4, 6);
    for (cn_idx oh = row_first; oh < row_stop; oh++) {
        const cn_idx ih = oh * stride_h - pad_h;
        for (cn_idx ow = col_first; ow < col_stop; ow += 4) {
            if (ow + 4 > col_stop) ow = col_stop - 4;
            const cn_idx iw = 2 * ow - pad_w;
            const float *top = plane + ih * row_step + iw, *bottom = top + row_step;
            const __m128 t0 = _mm_loadu_ps(top), t1 = _mm_loadu_ps(top + 4);
            const __m128 b0 = _mm_loadu_ps(bottom), b1 = _mm_loadu_ps(bottom + 4);
            __m128 best = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));
            __m128 off = _mm_setzero_ps();
            const __m128 b = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1));
            const __m128 c = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
            const __m128 d = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
            CN_TAKE128(b, off_b);
            CN_TAKE128(c, off_c);
            CN_TAKE128(d, off_d);
            _mm_storeu_ps(y + oh * out_cols + ow, best);
            const __m256i where = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm_castps_si128(off)),
                                                   _mm256_add_epi64(_mm256_set1_epi64x(ih * width + iw), step));
            _mm256_storeu_si256((__m256i *) (indices + oh * out_cols + ow), where);
        }
    }
}

CN_AVX2 static void cn_pool2x2_f32_avx2(CN_POOL2X2_PARAMS(float))
{
    if (col_stop - col_first < 8) {
        cn_pool2x2_f32_avx2_narrow(CN_POOL2X2_ARGS);
        return;
    }
    /* Offsets ride in float registers as bit patterns: blendv only moves them. */
    const __m256 off_b = _mm256_castsi256_ps(_mm256_set1_epi32(1));
    const __m256 off_c = _mm256_castsi256_ps(_mm256_set1_epi32((int32_t) width));
    const __m256 off_d = _mm256_castsi256_ps(_mm256_set1_epi32((int32_t) (width + 1)));
    const __m256i step_lo = _mm256_setr_epi64x(0, 2, 4, 6), step_hi = _mm256_setr_epi64x(8, 10, 12, 14);
    for (cn_idx oh = row_first; oh < row_stop; oh++) {
        const cn_idx ih = oh * stride_h - pad_h;
        for (cn_idx ow = col_first; ow < col_stop; ow += 8) {
            if (ow + 8 > col_stop) ow = col_stop - 8;
            const cn_idx iw = 2 * ow - pad_w;
            const float *top = plane + ih * row_step + iw, *bottom = top + row_step;
            const __m256 t0 = _mm256_loadu_ps(top), t1 = _mm256_loadu_ps(top + 8);
            const __m256 b0 = _mm256_loadu_ps(bottom), b1 = _mm256_loadu_ps(bottom + 8);
            __m256 best = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));
            __m256 off = _mm256_setzero_ps();
            const __m256 b = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1));
            const __m256 c = _mm256_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
            const __m256 d = _mm256_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
            CN_TAKE256(ps, b, off_b);
            CN_TAKE256(ps, c, off_c);
            CN_TAKE256(ps, d, off_d);
            best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), CN_PAIRS_0213));
            const __m256i offs = _mm256_permute4x64_epi64(_mm256_castps_si256(off), CN_PAIRS_0213);
            _mm256_storeu_ps(y + oh * out_cols + ow, best);
            const __m256i base = _mm256_set1_epi64x(ih * width + iw);
            const __m256i lo = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(offs)),
                                                _mm256_add_epi64(base, step_lo));
            const __m256i hi = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(offs, 1)),
                                                _mm256_add_epi64(base, step_hi));
            int64_t *dst = indices + oh * out_cols + ow;
            _mm256_storeu_si256((__m256i *) dst, lo);
            _mm256_storeu_si256((__m256i *) (dst + 4), hi);
        }
    }
}

CN_AVX2 static void cn_pool2x2_f64_avx2(CN_POOL2X2_PARAMS(double))
{
    const __m256d off_b = _mm256_castsi256_pd(_mm256_set1_epi64x(1));
    const __m256d off_c = _mm256_castsi256_pd(_mm256_set1_epi64x(width));
    const __m256d off_d = _mm256_castsi256_pd(_mm256_set1_epi64x(width + 1));
    const __m256i step = _mm256_setr_epi64x(0, 2, 4, 6);
    for (cn_idx oh = row_first; oh < row_stop; oh++) {
        const cn_idx ih = oh * stride_h - pad_h;
        for (cn_idx ow = col_first; ow < col_stop; ow += 4) {
            if (ow + 4 > col_stop) ow = col_stop - 4;
            const cn_idx iw = 2 * ow - pad_w;
            const double *top = plane + ih * row_step + iw, *bottom = top + row_step;
            const __m256d t0 = _mm256_loadu_pd(top), t1 = _mm256_loadu_pd(top + 4);
            const __m256d b0 = _mm256_loadu_pd(bottom), b1 = _mm256_loadu_pd(bottom + 4);
            __m256d best = _mm256_unpacklo_pd(t0, t1);
            __m256d off = _mm256_setzero_pd();
            const __m256d b = _mm256_unpackhi_pd(t0, t1);
            const __m256d c = _mm256_unpacklo_pd(b0, b1);
            const __m256d d = _mm256_unpackhi_pd(b0, b1);
            CN_TAKE256(pd, b, off_b);
            CN_TAKE256(pd, c, off_c);
            CN_TAKE256(pd, d, off_d);
            _mm256_storeu_pd(y + oh * out_cols + ow, _mm256_permute4x64_pd(best, CN_PAIRS_0213));
            const __m256i offs = _mm256_permute4x64_epi64(_mm256_castpd_si256(off), CN_PAIRS_0213);
            const __m256i where = _mm256_add_epi64(offs, _mm256_add_epi64(_mm256_set1_epi64x(ih * width + iw), step));
            _mm256_storeu_si256((__m256i *) (indices + oh * out_cols + ow), where);
        }
    }
}
#endif /* CN_X86_DISPATCH */

/* Pools the given range with the widest variant available; returns 1, or 0 when none applies
 * (portable build, capped below AVX2, fewer than 4 columns, or offsets beyond
 * int32), leaving the range to the caller. */
#define CN_DEFINE_POOL2X2_DISPATCH(T, CT, AVX2_WIDTH)                                           \
    static int cn_pool2x2_##T(CN_POOL2X2_PARAMS(CT))                                            \
    {                                                                                           \
        if (row_first >= row_stop || col_first >= col_stop || width >= INT32_MAX) return 0;    \
        CN_POOL2X2_DISPATCH_X86(T, AVX2_WIDTH)                                                  \
        return 0;                                                                               \
    }
#if CN_X86_DISPATCH
#define CN_POOL2X2_DISPATCH_X86(T, AVX2_WIDTH)                                                  \
    const int level = cn_simd_active();                                                         \
    if (level >= CN_SIMD_AVX512) { cn_pool2x2_##T##_avx512(CN_POOL2X2_ARGS); return 1; }        \
    if (level >= CN_SIMD_AVX2 && col_stop - col_first >= (AVX2_WIDTH)) {                        \
        cn_pool2x2_##T##_avx2(CN_POOL2X2_ARGS); return 1;                                       \
    }
#else
#define CN_POOL2X2_DISPATCH_X86(T, AVX2_WIDTH)
#endif

CN_DEFINE_POOL2X2_DISPATCH(f32, float, 4)
CN_DEFINE_POOL2X2_DISPATCH(f64, double, 4)


/*
 * 2x2 average pooling with stride 2, over windows wholly inside a plane, and its backward.
 * Plain C compiled once per level (baseline, AVX2, AVX-512 target attributes): the compiler
 * vectorises across output columns, de-interleaving even and odd input columns itself.  Each
 * output is PyTorch's sum ((((0 + a) + b) + c) + d) (row-major, from zero) times 0.25, which
 * equals the division by 4 exactly; every level computes the same bits.  Backward writes
 * 0 + grad * 0.25 to the four inputs of each window (each input lies in one window only).
 */
#define CN_AVG2X2_PARAMS(T)                                                                     \
    const T *plane, cn_idx row_step, T *y, cn_idx out_cols, cn_idx row_first, cn_idx row_stop, \
        cn_idx col_first, cn_idx col_stop, cn_idx pad_h, cn_idx pad_w
#define CN_AVG2X2_ARGS plane, row_step, y, out_cols, row_first, row_stop, col_first, col_stop, \
                       pad_h, pad_w
#define CN_AVG2X2_BACK_PARAMS(T)                                                                \
    const T *grad_y, cn_idx out_cols, T *grad_x, cn_idx width, cn_idx row_first,                \
        cn_idx row_stop, cn_idx col_first, cn_idx col_stop, cn_idx pad_h, cn_idx pad_w
#define CN_AVG2X2_BACK_ARGS grad_y, out_cols, grad_x, width, row_first, row_stop, col_first, \
                            col_stop, pad_h, pad_w

#define CN_DEFINE_AVG2X2(SUFFIX, T, ATTR)                                                       \
    ATTR static void cn_avg2x2_##SUFFIX(CN_AVG2X2_PARAMS(T))                                    \
    {                                                                                           \
        for (cn_idx oh = row_first; oh < row_stop; oh++) {                                      \
            const T *top = plane + (2 * oh - pad_h) * row_step - pad_w;                         \
            const T *bottom = top + row_step;                                                   \
            T *out = y + oh * out_cols;                                                         \
            for (cn_idx ow = col_first; ow < col_stop; ow++) {                                  \
                T sum = (T) 0 + top[2 * ow];                                                    \
                sum += top[2 * ow + 1];                                                         \
                sum += bottom[2 * ow];                                                          \
                sum += bottom[2 * ow + 1];                                                      \
                out[ow] = sum * (T) 0.25;                                                       \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    ATTR static void cn_avg2x2_back_##SUFFIX(CN_AVG2X2_BACK_PARAMS(T))                          \
    {                                                                                           \
        for (cn_idx oh = row_first; oh < row_stop; oh++) {                                      \
            T *top = grad_x + (2 * oh - pad_h) * width - pad_w;                                 \
            T *bottom = top + width;                                                            \
            const T *g = grad_y + oh * out_cols;                                                \
            for (cn_idx ow = col_first; ow < col_stop; ow++) {                                  \
                const T d = (T) 0 + g[ow] * (T) 0.25;                                           \
                top[2 * ow] = d;                                                                \
                top[2 * ow + 1] = d;                                                            \
                bottom[2 * ow] = d;                                                             \
                bottom[2 * ow + 1] = d;                                                         \
            }                                                                                   \
        }                                                                                       \
    }

CN_DEFINE_AVG2X2(f32_base, float, )
CN_DEFINE_AVG2X2(f64_base, double, )
#if CN_X86_DISPATCH
CN_DEFINE_AVG2X2(f32_avx2, float, CN_AVX2)
CN_DEFINE_AVG2X2(f64_avx2, double, CN_AVX2)
CN_DEFINE_AVG2X2(f32_avx512, float, CN_AVX512)
CN_DEFINE_AVG2X2(f64_avx512, double, CN_AVX512)
#define CN_AVG2X2_PICK(NAME, T)                                                                 \
    (cn_simd_active() >= CN_SIMD_AVX512 ? NAME##_##T##_avx512                                   \
     : cn_simd_active() >= CN_SIMD_AVX2 ? NAME##_##T##_avx2 : NAME##_##T##_base)
#else
#define CN_AVG2X2_PICK(NAME, T) NAME##_##T##_base
#endif

static void cn_avg2x2_f32(CN_AVG2X2_PARAMS(float)) { CN_AVG2X2_PICK(cn_avg2x2, f32)(CN_AVG2X2_ARGS); }
static void cn_avg2x2_f64(CN_AVG2X2_PARAMS(double)) { CN_AVG2X2_PICK(cn_avg2x2, f64)(CN_AVG2X2_ARGS); }
static void cn_avg2x2_back_f32(CN_AVG2X2_BACK_PARAMS(float))
{
    CN_AVG2X2_PICK(cn_avg2x2_back, f32)(CN_AVG2X2_BACK_ARGS);
}
static void cn_avg2x2_back_f64(CN_AVG2X2_BACK_PARAMS(double))
{
    CN_AVG2X2_PICK(cn_avg2x2_back, f64)(CN_AVG2X2_BACK_ARGS);
}

/*
 * Global average pooling: y[p] = (sum of plane p) / size, for planes [first, last) of `size`
 * contiguous elements.  Each plane is summed in double in 8 lanes (element i to lane i % 8),
 * the lanes added by a fixed tree ((0+4) + (2+6)) + ((1+5) + (3+7)), so every level computes
 * the same bits.
 */
/* Adds plane v's `size` elements into acc[0..8): element i to lane i % 8.  The last partial
 * block goes through a buffer padded with -0.0, the exact identity of addition, so the lanes
 * stay in registers (a loop over a variable number of lanes would keep them in memory). */
#define CN_PLANE_SUM(v, acc, size)                                                              \
    do {                                                                                        \
        cn_idx i_ = 0;                                                                          \
        for (; i_ + 8 <= (size); i_ += 8)                                                       \
            for (int j = 0; j < 8; j++) (acc)[j] += (double) (v)[i_ + j];                       \
        if (i_ < (size)) {                                                                      \
            double t_[8] = {-0.0, -0.0, -0.0, -0.0, -0.0, -0.0, -0.0, -0.0};                    \
            for (int j = 0; j < (size) - i_; j++) t_[j] = (double) (v)[i_ + j];                 \
            for (int j = 0; j < 8; j++) (acc)[j] += t_[j];                                      \
        }                                                                                       \
    } while (0)
#define CN_DEFINE_PLANE_MEANS(SUFFIX, T, ATTR)                                                  \
    ATTR static void cn_plane_means_##SUFFIX(const T *x, cn_idx size, cn_idx first,            \
                                             cn_idx last, T *y)                                 \
    {                                                                                           \
        for (cn_idx p = first; p < last; p++) {                                                 \
            double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                           \
            CN_PLANE_SUM(x + p * size, acc, size);                                              \
            /* The tree (lane j + w into lane j for w = 4, 2, 1), written out: a loop over   \
             * the lanes made the compiler spill them and reload single lanes. */             \
            const double total = ((acc[0] + acc[4]) + (acc[2] + acc[6]))                        \
                                 + ((acc[1] + acc[5]) + (acc[3] + acc[7]));                     \
            y[p] = (T) (total / (double) size);                                                 \
        }                                                                                       \
    }

CN_DEFINE_PLANE_MEANS(f32_base, float, )
CN_DEFINE_PLANE_MEANS(f64_base, double, )
#if CN_X86_DISPATCH
CN_DEFINE_PLANE_MEANS(f32_avx2, float, CN_AVX2)
CN_DEFINE_PLANE_MEANS(f64_avx2, double, CN_AVX2)
CN_DEFINE_PLANE_MEANS(f32_avx512, float, CN_AVX512)
CN_DEFINE_PLANE_MEANS(f64_avx512, double, CN_AVX512)
#endif
static void cn_plane_means_f32(const float *x, cn_idx size, cn_idx first, cn_idx last, float *y)
{
    CN_AVG2X2_PICK(cn_plane_means, f32)(x, size, first, last, y);
}
static void cn_plane_means_f64(const double *x, cn_idx size, cn_idx first, cn_idx last,
                               double *y)
{
    CN_AVG2X2_PICK(cn_plane_means, f64)(x, size, first, last, y);
}

#endif /* CNNATIVE_POOL_SIMD_H */
