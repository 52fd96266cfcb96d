/*
 * Direct convolution as a matrix product whose left operand is read from the image in place:
 *
 *     out[p * lanes + f] = sum over t = 0..taps-1 of  image[pixel_base[p] + tap_offset[t]] * weights[t * lanes + f]
 *
 * p runs over "pixels" (output positions), t over "taps" (kernel positions), f over "lanes"
 * (filters).  One kernel serves all three convolution products of a layer:
 *   forward:  pixels = output positions, taps = (c, i, j), lanes = filters;
 *   grad_w:   pixels = (c, i, j), taps = (sample, output position), lanes = filters;
 *   grad_x:   stride 1: a transposed convolution, pixels = input positions, taps = (f, i, j)
 *             over the framed output gradient, lanes = channels (weights flipped, F <-> C);
 *             otherwise one sample's column matrix: pixels = (c, i, j) read from the weights,
 *             taps = filters, lanes = output positions (the sample's output gradient, as it
 *             lies), folded back into the image by col2im.
 * Unlike im2col + gemm, the image is never unrolled into memory: each image value is broadcast
 * from where it lies and multiplied into a register block of ROWS pixels x NB vectors of lanes
 * (only grad_x writes a column matrix, one sample's, which col2im then folds back).
 *
 * lanes must be a multiple of the active variant's vector width (cn_gather_width); callers pad
 * the weights with zero lanes.  Every output element sums its taps in ascending order, so a
 * result depends only on the variant, never on threads or blocking.  The AVX2 and AVX-512
 * variants use fused multiply-add, the others multiply then add, so the last bit of a result
 * can differ between machines, never between runs or thread counts on one machine.
 */
#ifndef CNNATIVE_CONV_SIMD_H
#define CNNATIVE_CONV_SIMD_H

#include "simd_dispatch.h"
#if CN_X86_DISPATCH
#include <immintrin.h>
#endif

/* Taps are taken in tiles whose weight rows (of one block's lanes) fit in a third of a 32 KiB
 * L1 cache, so each tile is read from L2 once rather than once per block of pixels; between
 * tiles the partial sums wait in `out`, and the next tile resumes them exactly (the per-output
 * order of additions is unchanged). */
static cn_idx cn_gather_tap_tile(cn_idx lanes, cn_idx element_size)
{
    const cn_idx tile = (cn_idx) 10240 / (lanes * element_size);
    return tile < 16 ? 16 : tile;
}

#define CN_GATHER_BLOCK(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB)                           \
    do {                                                                                       \
        VT acc[ROWS][NB];                                                                      \
        const T *src[ROWS];                                                                    \
        CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++) {                                        \
            src[r_] = image + pixel_base[p + r_];                                              \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++)                                        \
                acc[r_][b_] = tap_first ? LOAD(out + (p + r_) * lanes + f + b_ * (V)) : ZERO;  \
        }                                                                                      \
        const T *w = weights + tap_first * lanes + f;                                          \
        for (cn_idx t_ = tap_first; t_ < tap_stop; t_++, w += lanes) {                         \
            const cn_idx o = tap_offset[t_];                                                   \
            VT wv[NB];                                                                         \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) wv[b_] = LOAD(w + b_ * (V));           \
            CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++) {                                    \
                const T x = src[r_][o];                                                        \
                CN_UNROLL for (int b_ = 0; b_ < (NB); b_++) acc[r_][b_] = MADD(acc[r_][b_], x, wv[b_]); \
            }                                                                                  \
        }                                                                                      \
        CN_UNROLL for (int r_ = 0; r_ < (ROWS); r_++)                                          \
            CN_UNROLL for (int b_ = 0; b_ < (NB); b_++)                                        \
                STORE(out + (p + r_) * lanes + f + b_ * (V), acc[r_][b_]);                     \
    } while (0)

#if CN_HAVE_VECTOR_EXT
#define CN_TAIL_FN __attribute__((noinline, unused))
#else
#define CN_TAIL_FN
#endif

#define CN_GATHER_CASE(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB, K)                       \
    case K:                                                                                    \
        if ((K) <= (ROWS)) CN_GATHER_BLOCK(T, VT, V, LOAD, STORE, ZERO, MADD, (K) <= (ROWS) ? (K) : 1, NB); \
        break;

/* Pixels [p, pixels) of filter block f, fewer than 2 * ROWS: one block of their number, or,
 * past ROWS, two halves.  A 7x7 output is 49 pixels, which left a block of one row (three
 * multiply-adds per four loads, one dependent chain) behind six of eight; blocks of 5 and 4
 * rows keep every unit busy instead.  A function of its own, never inlined: inlined, its
 * variables cost the main loop a register, and the weight gradient 3-5%. */
#define CN_DEFINE_GATHER_TAIL(NAME, T, VT, V, ATTR, LOAD, STORE, ZERO, MADD, ROWS, NB)         \
    ATTR CN_TAIL_FN static void NAME##_tail##NB(                                               \
        const T *image, const cn_idx *pixel_base, cn_idx p, cn_idx pixels,                     \
        const cn_idx *tap_offset, cn_idx tap_first, cn_idx tap_stop, const T *weights,         \
        cn_idx lanes, T *out, cn_idx f)                                                        \
    {                                                                                          \
        while (p < pixels) {                                                                   \
            const cn_idx n = pixels - p > (ROWS) ? (pixels - p + 1) / 2 : pixels - p;          \
            switch (n) {                                                                       \
                CN_GATHER_CASE(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB, 1)                 \
                CN_GATHER_CASE(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB, 2)                 \
                CN_GATHER_CASE(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB, 3)                 \
                CN_GATHER_CASE(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB, 4)                 \
                CN_GATHER_CASE(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB, 5)                 \
                CN_GATHER_CASE(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB, 6)                 \
                CN_GATHER_CASE(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB, 7)                 \
                CN_GATHER_CASE(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB, 8)                 \
            default: break;                                                                    \
            }                                                                                  \
            p += n;                                                                            \
        }                                                                                      \
    }

/* All pixels for filter blocks of NB vectors starting at f, advancing f: whole blocks of ROWS,
 * then the tail (with the last whole block when fewer than ROWS / 2 pixels are left). */
#define CN_GATHER_COLUMNS(NAME, T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB)                   \
    for (; f + (NB) * (V) <= lanes; f += (NB) * (V)) {                                         \
        cn_idx p = 0;                                                                          \
        for (; p + (ROWS) <= main_end##NB; p += (ROWS))                                        \
            CN_GATHER_BLOCK(T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, NB);                      \
        if (p < pixels)                                                                        \
            NAME##_tail##NB(image, pixel_base, p, pixels, tap_offset, tap_first, tap_stop,     \
                            weights, lanes, out, f);                                           \
    }

/* Where the whole blocks of ROWS end. */
static cn_idx cn_gather_main_end(cn_idx pixels, cn_idx rows)
{
    const cn_idx rest = pixels % rows, end = pixels - rest;
    return rest > 0 && rest < rows / 2 && end > 0 ? end - rows : end;
}

/* Blocks of two (or, with NB3, three) vectors span ROWS pixels; blocks of one vector, for the
 * last lanes, span ROWS1.  NB3 is set only where registers allow 3 x ROWS accumulators plus
 * the weights.  The tap tile is sized for one block's lanes (at most three vectors): filter
 * blocks are done one after the other within a tile, so only one block's weights need to stay
 * in L1, and 96 filters no longer cut the taps into tiles of 26. */
#define CN_DEFINE_GATHER(NAME, T, VT, V, ROWS, ROWS1, NB3, ATTR, LOAD, STORE, ZERO, MADD)      \
    CN_DEFINE_GATHER_TAIL(NAME, T, VT, V, ATTR, LOAD, STORE, ZERO, MADD, ROWS, 3)              \
    CN_DEFINE_GATHER_TAIL(NAME, T, VT, V, ATTR, LOAD, STORE, ZERO, MADD, ROWS, 2)              \
    CN_DEFINE_GATHER_TAIL(NAME, T, VT, V, ATTR, LOAD, STORE, ZERO, MADD, ROWS1, 1)             \
    ATTR static void NAME(const T *image, const cn_idx *pixel_base, cn_idx pixels,             \
                          const cn_idx *tap_offset, cn_idx taps, const T *weights,             \
                          cn_idx lanes, T *out)                                                \
    {                                                                                          \
        const cn_idx tile = cn_gather_tap_tile(lanes < 3 * (V) ? lanes : 3 * (V), sizeof(T));  \
        const cn_idx main_end3 = cn_gather_main_end(pixels, ROWS);                             \
        const cn_idx main_end2 = main_end3, main_end1 = cn_gather_main_end(pixels, ROWS1);     \
        cn_idx tap_first = 0;                                                                  \
        do {                                                                                   \
            const cn_idx tap_stop = taps - tap_first < tile ? taps : tap_first + tile;         \
            cn_idx f = 0;                                                                      \
            if (NB3) {                                                                         \
                CN_GATHER_COLUMNS(NAME, T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, 3)            \
            }                                                                                  \
            CN_GATHER_COLUMNS(NAME, T, VT, V, LOAD, STORE, ZERO, MADD, ROWS, 2)                \
            CN_GATHER_COLUMNS(NAME, T, VT, V, LOAD, STORE, ZERO, MADD, ROWS1, 1)               \
            tap_first = tap_stop;                                                              \
        } while (tap_first < taps);                                                            \
    }

/* Multiply, then add (two roundings): the portable variants make no use of fused multiply-add,
 * which not every target has. */
#define CN_MUL_ADD(acc, x, w) ((acc) + (x) * (w))

CN_DEFINE_GATHER(cn_gather_f32_scalar, float, float, 1, 4, 4, 0, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_MUL_ADD)
CN_DEFINE_GATHER(cn_gather_f64_scalar, double, double, 1, 4, 4, 0, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_MUL_ADD)

#if CN_HAVE_VECTOR_EXT
/* 16 registers: 4 x 2 accumulators, 2 weights, the broadcast value. */
CN_DEFINE_GATHER(cn_gather_f32_vec128, float, cn_f32x4, 4, 4, 4, 0, , cn_f32x4_load, cn_f32x4_store, ((cn_f32x4){0}), CN_MUL_ADD)
CN_DEFINE_GATHER(cn_gather_f64_vec128, double, cn_f64x2, 2, 4, 4, 0, , cn_f64x2_load, cn_f64x2_store, ((cn_f64x2){0}), CN_MUL_ADD)
#endif

#if CN_X86_DISPATCH
/* Fused multiply-add: half the instructions of a multiply and an add, and one rounding.  A
 * layer's results need no bit-parity with scipy (only thread-independence), unlike corr_simd.h. */
CN_AVX2 static inline cn_f32x8 cn_f32x8_madd(cn_f32x8 acc, float x, cn_f32x8 w)
{
    return _mm256_fmadd_ps(_mm256_set1_ps(x), w, acc);
}
CN_AVX2 static inline cn_f64x4 cn_f64x4_madd(cn_f64x4 acc, double x, cn_f64x4 w)
{
    return _mm256_fmadd_pd(_mm256_set1_pd(x), w, acc);
}
CN_AVX512 static inline cn_f32x16 cn_f32x16_madd(cn_f32x16 acc, float x, cn_f32x16 w)
{
    return _mm512_fmadd_ps(_mm512_set1_ps(x), w, acc);
}
CN_AVX512 static inline cn_f64x8 cn_f64x8_madd(cn_f64x8 acc, double x, cn_f64x8 w)
{
    return _mm512_fmadd_pd(_mm512_set1_pd(x), w, acc);
}

/* 16 registers: 4 x 3 accumulators, 3 weights, the broadcast value (blocks of 4 x 2 and 8 x 1
 * take the last lanes).  With fused multiply-adds of 4 cycles' latency, two a cycle, a block
 * needs at least 8 independent accumulators: one-vector blocks of 4 rows left half the units
 * idle.  Three-vector blocks also load less per multiply-add (8 loads for 12, against 7 for 8),
 * which counts most on cores where loads, not multiply-adds, limit the loop. */
CN_DEFINE_GATHER(cn_gather_f32_avx2, float, cn_f32x8, 8, 4, 8, 1, CN_AVX2, cn_f32x8_load, cn_f32x8_store, ((cn_f32x8){0}), cn_f32x8_madd)
CN_DEFINE_GATHER(cn_gather_f64_avx2, double, cn_f64x4, 4, 4, 8, 1, CN_AVX2, cn_f64x4_load, cn_f64x4_store, ((cn_f64x4){0}), cn_f64x4_madd)
/* 32 registers: 8 x 3 accumulators, 3 weights, the broadcast value. */
CN_DEFINE_GATHER(cn_gather_f32_avx512, float, cn_f32x16, 16, 8, 8, 1, CN_AVX512, cn_f32x16_load, cn_f32x16_store, ((cn_f32x16){0}), cn_f32x16_madd)
CN_DEFINE_GATHER(cn_gather_f64_avx512, double, cn_f64x8, 8, 8, 8, 1, CN_AVX512, cn_f64x8_load, cn_f64x8_store, ((cn_f64x8){0}), cn_f64x8_madd)
#endif

/* Lanes per vector of the variant cn_gather_* uses at `level` (read once by the caller from
 * cn_simd_active and passed to both): weights must be padded to a multiple. */
static cn_idx cn_gather_width(int level, int double_precision)
{
    const int scale = double_precision ? 1 : 2;
    switch (level) {
#if CN_X86_DISPATCH
    case CN_SIMD_AVX512: return 8 * scale;
    case CN_SIMD_AVX2: return 4 * scale;
#endif
#if CN_HAVE_VECTOR_EXT
    case CN_SIMD_VEC128: return 2 * scale;
#endif
    default: return 1;
    }
}

#if CN_X86_DISPATCH
#define CN_GATHER_X86(T)                                                                       \
    case CN_SIMD_AVX512:                                                                       \
        cn_gather_##T##_avx512(image, pixel_base, pixels, tap_offset, taps, weights, lanes, out); \
        return;                                                                                \
    case CN_SIMD_AVX2:                                                                         \
        cn_gather_##T##_avx2(image, pixel_base, pixels, tap_offset, taps, weights, lanes, out); \
        return;
#else
#define CN_GATHER_X86(T)
#endif

#if CN_HAVE_VECTOR_EXT
#define CN_GATHER_VEC128(T)                                                                    \
    case CN_SIMD_VEC128:                                                                       \
        cn_gather_##T##_vec128(image, pixel_base, pixels, tap_offset, taps, weights, lanes, out); \
        return;
#else
#define CN_GATHER_VEC128(T)
#endif

#define CN_DEFINE_GATHER_DISPATCH(T, CT)                                                       \
    static void cn_gather_##T(int level, const CT *image, const cn_idx *pixel_base,            \
                              cn_idx pixels, const cn_idx *tap_offset, cn_idx taps,            \
                              const CT *weights, cn_idx lanes, CT *out)                        \
    {                                                                                          \
        switch (level) {                                                                       \
            CN_GATHER_X86(T)                                                                   \
            CN_GATHER_VEC128(T)                                                                \
        default:                                                                               \
            cn_gather_##T##_scalar(image, pixel_base, pixels, tap_offset, taps, weights, lanes, out); \
        }                                                                                      \
    }

CN_DEFINE_GATHER_DISPATCH(f32, float)
CN_DEFINE_GATHER_DISPATCH(f64, double)

/* dst[c * dst_pitch + r] = src[r * src_pitch + c] (+ shift[c] when shift is not NULL) for
 * r < rows, c < cols: the gather kernel's (pixels x lanes) products into planes, and planes
 * into (pixels x lanes) operands.  In tiles of 16 x 16, so that the strided side's cache lines
 * are used 16 times while they are in L1; sizes in locals and restrict pointers let the
 * compiler keep the indices in registers. */
#define CN_DEFINE_TRANSPOSE(NAME, T)                                                           \
    static void NAME(const T *restrict src, cn_idx src_pitch, cn_idx rows, cn_idx cols,        \
                     T *restrict dst, cn_idx dst_pitch, const T *restrict shift)               \
    {                                                                                          \
        for (cn_idx r0 = 0; r0 < rows; r0 += 16) {                                             \
            const cn_idx r1 = rows - r0 < 16 ? rows : r0 + 16;                                 \
            for (cn_idx c0 = 0; c0 < cols; c0 += 16) {                                         \
                const cn_idx c1 = cols - c0 < 16 ? cols : c0 + 16;                             \
                for (cn_idx c = c0; c < c1; c++) {                                             \
                    const T add = shift != NULL ? shift[c] : (T) 0;                            \
                    T *restrict d = dst + c * dst_pitch;                                       \
                    if (shift != NULL)                                                         \
                        for (cn_idx r = r0; r < r1; r++) d[r] = src[r * src_pitch + c] + add;  \
                    else                                                                       \
                        for (cn_idx r = r0; r < r1; r++) d[r] = src[r * src_pitch + c];        \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

CN_DEFINE_TRANSPOSE(cn_transpose_f32_scalar, float)
CN_DEFINE_TRANSPOSE(cn_transpose_f64, double)

#if CN_X86_DISPATCH
/* 8 x 8 blocks in registers (the usual unpack / shuffle / lane-permute sequence), the edges by
 * the scalar loop: one vector load and store per row instead of eight scalar ones. */
CN_AVX2 static void cn_transpose_f32_avx2(const float *restrict src, cn_idx src_pitch,
                                          cn_idx rows, cn_idx cols, float *restrict dst,
                                          cn_idx dst_pitch, const float *restrict shift)
{
    const cn_idx rows8 = rows - rows % 8, cols8 = cols - cols % 8;
    for (cn_idx r = 0; r < rows8; r += 8) {
        for (cn_idx c = 0; c < cols8; c += 8) {
            const float *s_ = src + r * src_pitch + c;
            const __m256 r0 = _mm256_loadu_ps(s_), r1 = _mm256_loadu_ps(s_ + src_pitch);
            const __m256 r2 = _mm256_loadu_ps(s_ + 2 * src_pitch), r3 = _mm256_loadu_ps(s_ + 3 * src_pitch);
            const __m256 r4 = _mm256_loadu_ps(s_ + 4 * src_pitch), r5 = _mm256_loadu_ps(s_ + 5 * src_pitch);
            const __m256 r6 = _mm256_loadu_ps(s_ + 6 * src_pitch), r7 = _mm256_loadu_ps(s_ + 7 * src_pitch);
            const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            __m256 o[8];
            o[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
            o[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
            o[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
            o[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
            o[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
            o[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
            o[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
            o[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
            float *d_ = dst + c * dst_pitch + r;
            if (shift != NULL) {
                for (int k = 0; k < 8; k++)
                    _mm256_storeu_ps(d_ + k * dst_pitch, _mm256_add_ps(o[k], _mm256_set1_ps(shift[c + k])));
            } else {
                for (int k = 0; k < 8; k++) _mm256_storeu_ps(d_ + k * dst_pitch, o[k]);
            }
        }
    }
    /* The right edge (columns past cols8, every row) and the bottom edge (rows past rows8). */
    if (cols8 < cols)
        cn_transpose_f32_scalar(src + cols8, src_pitch, rows, cols - cols8, dst + cols8 * dst_pitch,
                                dst_pitch, shift != NULL ? shift + cols8 : NULL);
    if (rows8 < rows)
        cn_transpose_f32_scalar(src + rows8 * src_pitch, src_pitch, rows - rows8, cols8,
                                dst + rows8, dst_pitch, shift);
}
#endif

static void cn_transpose_f32(int level, const float *src, cn_idx src_pitch, cn_idx rows,
                             cn_idx cols, float *dst, cn_idx dst_pitch, const float *shift)
{
#if CN_X86_DISPATCH
    if (level >= CN_SIMD_AVX2) {
        cn_transpose_f32_avx2(src, src_pitch, rows, cols, dst, dst_pitch, shift);
        return;
    }
#endif
    (void) level;
    cn_transpose_f32_scalar(src, src_pitch, rows, cols, dst, dst_pitch, shift);
}

/* ---- Column matrices: im2col and its adjoint ----
 *
 * A chunk of `batch` images (C, H, W) unrolls into cols, C*kh*kw rows of batch*Ho*Wo columns
 * (rows row_len >= batch*Ho*Wo apart; the gather kernel's rows end in padding lanes):
 *     cols[(c*kh + i)*kw + j][s*Ho*Wo + oh*Wo + ow] = x[s, c, oh*sh + i*dh - ph, ow*sw + j*dw - pw],
 * 0 where that lies off the image; ph and pw are the top and left padding (the bottom and right
 * ones only shape Ho and Wo), dh and dw the dilation, and samples lie image_stride elements
 * apart in x (more than C*H*W when the channels are one group of several).  col2im adds every entry back where it was read from, in a
 * fixed order (CN_FOR_COLUMN_ROWS's), so its sums are deterministic. */
typedef struct {
    cn_idx batch, channels, height, width, kernel_h, kernel_w;
    cn_idx stride_h, stride_w, pad_h, pad_w, out_h, out_w, row_len;
    cn_idx dilation_h, dilation_w, image_stride;
} cn_columns;

/* Output rows or columns [*first, *last) of `out` whose input index o*stride + k - pad lies in
 * [0, size), for kernel row or column k. */
static void cn_on_image(cn_idx size, cn_idx pad, cn_idx stride, cn_idx out, cn_idx k,
                        cn_idx *first, cn_idx *last)
{
    const cn_idx before = pad - k, until = size + pad - k;
    /* Divisions rounded up, of non-negative numbers; stride 1 skips them. */
    cn_idx lo = before <= 0 ? 0 : stride == 1 ? before : (before + stride - 1) / stride;
    cn_idx hi = until <= 0 ? 0 : stride == 1 ? until : (until + stride - 1) / stride;
    /* Both within [0, out]: callers zero [0, first) and [last, out) of a row of out entries. */
    if (lo > out) lo = out;
    if (hi > out) hi = out;
    if (hi < lo) hi = lo;
    *first = lo;
    *last = hi;
}

/* Runs BODY for each (j, c, i, s, oh) whose input row ih = oh*sh + i*dh - ph lies on the image,
 * with `column` the offset of its Wo entries in cols, of which [first, last) lie on the image,
 * from offset `image_row` of the input on (valid only when first < last); OFF_IMAGE for the
 * other rows.  Kernel columns come outermost: col2im's read-modify-writes for one kernel
 * column overlap the next column's by all but one element, and are long done when those come.
 * BODY may `continue`. */
#define CN_FOR_COLUMN_ROWS(g, BODY, OFF_IMAGE)                                                 \
    /* Sizes in locals: the vector stores below (memcpy) could alias *g, whose fields would    \
     * then be reloaded for every row. */                                                     \
    const cn_idx batch = (g)->batch, channels = (g)->channels, height = (g)->height;           \
    const cn_idx width = (g)->width, kernel_h = (g)->kernel_h, kernel_w = (g)->kernel_w;       \
    const cn_idx stride_h = (g)->stride_h, stride_w = (g)->stride_w, pad_h = (g)->pad_h;       \
    const cn_idx pad_w = (g)->pad_w, out_h = (g)->out_h, out_w = (g)->out_w;                   \
    const cn_idx row_len = (g)->row_len, dilation_h = (g)->dilation_h;                         \
    const cn_idx dilation_w = (g)->dilation_w, image_stride = (g)->image_stride;               \
    for (cn_idx j = 0; j < kernel_w; j++) {                                                    \
        cn_idx first, last;                                                                    \
        cn_on_image(width, pad_w, stride_w, out_w, j * dilation_w, &first, &last);             \
        for (cn_idx c = 0; c < channels; c++)                                                  \
        for (cn_idx i = 0; i < kernel_h; i++) {                                                \
            cn_idx column = ((c * kernel_h + i) * kernel_w + j) * row_len;                     \
            for (cn_idx s = 0; s < batch; s++) {                                               \
                const cn_idx plane = s * image_stride + c * height * width                     \
                                     + first * stride_w + j * dilation_w - pad_w;              \
                for (cn_idx oh = 0; oh < out_h; oh++, column += out_w) {                       \
                    const cn_idx ih = oh * stride_h + i * dilation_h - pad_h;                  \
                    if (ih < 0 || ih >= height) { OFF_IMAGE; continue; }                       \
                    const cn_idx image_row = plane + ih * width;                               \
                    BODY;                                                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

#define CN_DEFINE_IM2COL(NAME, T)                                                              \
    static void NAME(const cn_columns *g, const T *x, T *cols)                                 \
    {                                                                                          \
        CN_FOR_COLUMN_ROWS(g, {                                                                \
            T *dst = cols + column;                                                            \
            for (cn_idx ow = 0; ow < first; ow++) dst[ow] = 0;                                 \
            if (last > first) {                                                                \
                const T *src = x + image_row;                                                  \
                if (stride_w == 1)                                                             \
                    for (cn_idx ow = first; ow < last; ow++) dst[ow] = src[ow - first];        \
                else                                                                           \
                    for (cn_idx ow = first; ow < last; ow++) dst[ow] = src[(ow - first) * stride_w]; \
            }                                                                                  \
            for (cn_idx ow = last; ow < out_w; ow++) dst[ow] = 0;                              \
        }, memset(cols + column, 0, out_w * sizeof(T)))                                        \
    }

CN_DEFINE_IM2COL(cn_im2col_f32, float)
CN_DEFINE_IM2COL(cn_im2col_f64, double)

/* Rows of a column matrix are one output row long (8 or 24 values in the MNIST network): a
 * vector loop of the variant's own width adds them, where the portable loop added one or two
 * 128-bit vectors per row behind run-time alias checks. */
#define CN_DEFINE_COL2IM(NAME, T, VT, V, ATTR, LOAD, STORE)                                    \
    ATTR static void NAME(const cn_columns *g, const T *cols, T *grad)                         \
    {                                                                                          \
        CN_FOR_COLUMN_ROWS(g, {                                                                \
            const cn_idx n = last - first;                                                     \
            if (n <= 0) continue;                                                              \
            T *dst = grad + image_row;                                                         \
            const T *src = cols + column + first;                                              \
            if (stride_w == 1 && n == (V)) {                                                   \
                /* One vector (8-float rows of the second MNIST layer): no loop bookkeeping. */ \
                STORE(dst, LOAD(dst) + LOAD(src));                                             \
            } else if (stride_w == 1) {                                                        \
                cn_idx k = 0;                                                                  \
                for (; k + (V) <= n; k += (V)) STORE(dst + k, LOAD(dst + k) + LOAD(src + k));  \
                for (; k < n; k++) dst[k] += src[k];                                           \
            } else {                                                                           \
                for (cn_idx k = 0; k < n; k++) dst[k * stride_w] += src[k];                    \
            }                                                                                  \
        }, (void) 0)                                                                           \
    }

CN_DEFINE_COL2IM(cn_col2im_f32_scalar, float, float, 1, , CN_SCALAR_LOAD, CN_SCALAR_STORE)
CN_DEFINE_COL2IM(cn_col2im_f64_scalar, double, double, 1, , CN_SCALAR_LOAD, CN_SCALAR_STORE)
#if CN_HAVE_VECTOR_EXT
CN_DEFINE_COL2IM(cn_col2im_f32_vec128, float, cn_f32x4, 4, , cn_f32x4_load, cn_f32x4_store)
CN_DEFINE_COL2IM(cn_col2im_f64_vec128, double, cn_f64x2, 2, , cn_f64x2_load, cn_f64x2_store)
#endif
#if CN_X86_DISPATCH
/* AVX-512 machines take this one too: rows are rarely 16 floats long. */
CN_DEFINE_COL2IM(cn_col2im_f32_avx2, float, cn_f32x8, 8, CN_AVX2, cn_f32x8_load, cn_f32x8_store)
CN_DEFINE_COL2IM(cn_col2im_f64_avx2, double, cn_f64x4, 4, CN_AVX2, cn_f64x4_load, cn_f64x4_store)
#endif

#define CN_DEFINE_COL2IM_DISPATCH(T, CT)                                                       \
    static void cn_col2im_##T(int level, const cn_columns *g, const CT *cols, CT *grad)        \
    {                                                                                          \
        CN_COL2IM_X86(T)                                                                       \
        CN_COL2IM_VEC128(T)                                                                    \
        cn_col2im_##T##_scalar(g, cols, grad);                                                 \
    }
#if CN_X86_DISPATCH
#define CN_COL2IM_X86(T) if (level >= CN_SIMD_AVX2) { cn_col2im_##T##_avx2(g, cols, grad); return; }
#else
#define CN_COL2IM_X86(T)
#endif
#if CN_HAVE_VECTOR_EXT
#define CN_COL2IM_VEC128(T) if (level >= CN_SIMD_VEC128) { cn_col2im_##T##_vec128(g, cols, grad); return; }
#else
#define CN_COL2IM_VEC128(T)
#endif
CN_DEFINE_COL2IM_DISPATCH(f32, float)
CN_DEFINE_COL2IM_DISPATCH(f64, double)

/* ---- Depthwise convolution (groups == channels): one (sample, channel) plane at a time ----
 *
 * A depthwise layer has one input channel per filter group, so the gather kernel above would
 * run with one to a few lanes of filters.  These kernels put the lanes across output columns
 * instead, and unroll the taps: one vector of a row of the input (padded by the caller) per
 * tap, times the tap's weight broadcast.
 *
 * cn_dw_rows:  out[r * out_pitch + l] = sum over t of in[r * row_step + tap_offset[t] + l] * weights[t],
 *              then + shift, for r < rows and l < width.  Taps are summed in ascending order.
 *              Reads (and computes) whole vectors: lanes up to width rounded up to the vector
 *              width must be readable; only l < width is stored.  Forward (taps = (i, j)) and
 *              input gradient (taps = (multiplier, i, j) over the zero-framed output
 *              gradient, weights flipped).
 * cn_dw_grad_w: acc[t * V + v] += sum over r < rows and l + v < width of
 *              grad[r * grad_pitch + l + v] * in[r * row_step + tap_offset[t] + l + v], l a
 *              multiple of V = cn_gather_width: per-lane partial sums of the weight gradient,
 *              in the order rows, then vectors; the caller adds the V lanes up in a fixed order
 *              once the chunk is done.  The last vector of a row is loaded masked (lanes past
 *              width read as zero, and are not read at all where the instruction set allows),
 *              so no product involves a value outside the rows.
 */

#define CN_DW_ROWS_BLOCK(T, VT, V, LOAD, STORE, STORE_TAIL, ZERO, SPLAT, VMADD, R)                         \
    do {                                                                                       \
        VT acc_[R];                                                                            \
        CN_UNROLL for (int k_ = 0; k_ < (R); k_++) acc_[k_] = ZERO;                            \
        const T *row_ = in + r * row_step + l;                                                 \
        for (cn_idx t_ = 0; t_ < taps; t_++) {                                                 \
            const VT w_ = SPLAT(weights[t_]);                                                  \
            const T *src_ = row_ + tap_offset[t_];                                             \
            CN_UNROLL for (int k_ = 0; k_ < (R); k_++)                                         \
                acc_[k_] = VMADD(acc_[k_], LOAD(src_ + k_ * row_step), w_);                    \
        }                                                                                      \
        CN_UNROLL for (int k_ = 0; k_ < (R); k_++) {                                           \
            const VT v_ = acc_[k_] + SPLAT(shift);                                             \
            T *dst_ = out + (r + k_) * out_pitch + l;                                          \
            if (n >= (V)) STORE(dst_, v_);                                                     \
            else STORE_TAIL(dst_, v_, n);                                                      \
        }                                                                                      \
        r += (R);                                                                              \
    } while (0)

#define CN_DEFINE_DW_ROWS(NAME, T, VT, V, ATTR, LOAD, STORE, STORE_TAIL, ZERO, SPLAT, VMADD)   \
    ATTR static void NAME(const T *in, cn_idx row_step, const cn_idx *tap_offset, cn_idx taps, \
                          const T *weights, T shift, cn_idx rows, cn_idx width, T *out,        \
                          cn_idx out_pitch)                                                    \
    {                                                                                          \
        for (cn_idx l = 0; l < width; l += (V)) {                                              \
            const cn_idx n = width - l;                                                        \
            cn_idx r = 0;                                                                      \
            while (r + 8 <= rows)                                                              \
                CN_DW_ROWS_BLOCK(T, VT, V, LOAD, STORE, STORE_TAIL, ZERO, SPLAT, VMADD, 8);    \
            if (r + 4 <= rows)                                                                 \
                CN_DW_ROWS_BLOCK(T, VT, V, LOAD, STORE, STORE_TAIL, ZERO, SPLAT, VMADD, 4);    \
            if (r + 2 <= rows)                                                                 \
                CN_DW_ROWS_BLOCK(T, VT, V, LOAD, STORE, STORE_TAIL, ZERO, SPLAT, VMADD, 2);    \
            if (r < rows)                                                                      \
                CN_DW_ROWS_BLOCK(T, VT, V, LOAD, STORE, STORE_TAIL, ZERO, SPLAT, VMADD, 1);    \
        }                                                                                      \
    }

#define CN_DW_GRAD_W_BLOCK(T, VT, V, LOAD, LOAD_TAIL, STORE, VMADD, TB)                        \
    for (; t + (TB) <= taps; t += (TB)) {                                                      \
        VT acc_[TB];                                                                           \
        const T *src_[TB];                                                                     \
        CN_UNROLL for (int k_ = 0; k_ < (TB); k_++) {                                          \
            acc_[k_] = LOAD(acc + (t + k_) * (V));                                             \
            src_[k_] = in + tap_offset[t + k_];                                                \
        }                                                                                      \
        for (cn_idx r = 0; r < rows; r++) {                                                    \
            const T *g_ = grad + r * grad_pitch;                                               \
            const cn_idx o_ = r * row_step;                                                    \
            cn_idx l = 0;                                                                      \
            for (; l + (V) <= width; l += (V)) {                                               \
                const VT gv_ = LOAD(g_ + l);                                                   \
                CN_UNROLL for (int k_ = 0; k_ < (TB); k_++)                                    \
                    acc_[k_] = VMADD(acc_[k_], gv_, LOAD(src_[k_] + o_ + l));                  \
            }                                                                                  \
            if (l < width) {                                                                   \
                const VT gv_ = LOAD_TAIL(g_ + l, width - l);                                   \
                CN_UNROLL for (int k_ = 0; k_ < (TB); k_++)                                    \
                    acc_[k_] = VMADD(acc_[k_], gv_, LOAD_TAIL(src_[k_] + o_ + l, width - l));  \
            }                                                                                  \
        }                                                                                      \
        CN_UNROLL for (int k_ = 0; k_ < (TB); k_++) STORE(acc + (t + k_) * (V), acc_[k_]);    \
    }

/* Blocks of TB taps (TB accumulators, one output-gradient vector, one input vector live),
 * then 4, 2, 1 for the rest. */
#define CN_DEFINE_DW_GRAD_W(NAME, T, VT, V, TB, ATTR, LOAD, LOAD_TAIL, STORE, VMADD)           \
    ATTR static void NAME(const T *grad, cn_idx grad_pitch, cn_idx rows, cn_idx width,         \
                          const T *in, cn_idx row_step, const cn_idx *tap_offset, cn_idx taps, \
                          T *acc)                                                              \
    {                                                                                          \
        cn_idx t = 0;                                                                          \
        CN_DW_GRAD_W_BLOCK(T, VT, V, LOAD, LOAD_TAIL, STORE, VMADD, TB)                                   \
        CN_DW_GRAD_W_BLOCK(T, VT, V, LOAD, LOAD_TAIL, STORE, VMADD, 4)                                    \
        CN_DW_GRAD_W_BLOCK(T, VT, V, LOAD, LOAD_TAIL, STORE, VMADD, 2)                                    \
        CN_DW_GRAD_W_BLOCK(T, VT, V, LOAD, LOAD_TAIL, STORE, VMADD, 1)                                    \
    }

/* dst[r * pitch + c] = src[r * width + c] for r < rows, c < width: a plane into the inside of
 * a zero frame (the frame itself is never written). */
#define CN_DEFINE_DW_FRAME(NAME, T, VT, V, ATTR, LOAD, LOAD_TAIL, STORE, STORE_TAIL)           \
    ATTR static void NAME(const T *src, cn_idx rows, cn_idx width, T *dst, cn_idx pitch)       \
    {                                                                                          \
        for (cn_idx r = 0; r < rows; r++) {                                                    \
            const T *s_ = src + r * width;                                                     \
            T *d_ = dst + r * pitch;                                                           \
            cn_idx l = 0;                                                                      \
            for (; l + (V) <= width; l += (V)) STORE(d_ + l, LOAD(s_ + l));                    \
            if (l < width) STORE_TAIL(d_ + l, LOAD_TAIL(s_ + l, width - l), width - l);        \
        }                                                                                      \
    }

/* Asks for `bytes` from p on into the cache ahead of use: depthwise planes are small, and the
 * kernels would otherwise wait for each plane's first lines when the arrays come from memory. */
static inline void cn_prefetch(const void *p, cn_idx bytes)
{
#if CN_HAVE_VECTOR_EXT
    for (cn_idx o = 0; o < bytes; o += 64) __builtin_prefetch((const char *) p + o);
#else
    (void) p;
    (void) bytes;
#endif
}

#define CN_SCALAR_SPLAT(x) (x)
#define CN_VV_MUL_ADD(acc, x, w) ((acc) + (x) * (w))
/* Scalar rows have no partial vectors: these never run. */
#define CN_SCALAR_LOAD_TAIL(p, n) (*(p))
#define CN_SCALAR_STORE_TAIL(p, v, n) (*(p) = (v))
CN_DEFINE_DW_ROWS(cn_dw_rows_f32_scalar, float, float, 1, , CN_SCALAR_LOAD, CN_SCALAR_STORE, CN_SCALAR_STORE_TAIL, 0, CN_SCALAR_SPLAT, CN_VV_MUL_ADD)
CN_DEFINE_DW_ROWS(cn_dw_rows_f64_scalar, double, double, 1, , CN_SCALAR_LOAD, CN_SCALAR_STORE, CN_SCALAR_STORE_TAIL, 0, CN_SCALAR_SPLAT, CN_VV_MUL_ADD)
CN_DEFINE_DW_GRAD_W(cn_dw_grad_w_f32_scalar, float, float, 1, 8, , CN_SCALAR_LOAD, CN_SCALAR_LOAD_TAIL, CN_SCALAR_STORE, CN_VV_MUL_ADD)
CN_DEFINE_DW_GRAD_W(cn_dw_grad_w_f64_scalar, double, double, 1, 8, , CN_SCALAR_LOAD, CN_SCALAR_LOAD_TAIL, CN_SCALAR_STORE, CN_VV_MUL_ADD)
CN_DEFINE_DW_FRAME(cn_dw_frame_f32_scalar, float, float, 1, , CN_SCALAR_LOAD, CN_SCALAR_LOAD_TAIL, CN_SCALAR_STORE, CN_SCALAR_STORE_TAIL)
CN_DEFINE_DW_FRAME(cn_dw_frame_f64_scalar, double, double, 1, , CN_SCALAR_LOAD, CN_SCALAR_LOAD_TAIL, CN_SCALAR_STORE, CN_SCALAR_STORE_TAIL)

#if CN_HAVE_VECTOR_EXT
/* Partial vectors through a zeroed bounce buffer: only the first n elements are touched. */
#define CN_DEFINE_TAIL_HELPERS(PREFIX, T, VT, V, ATTR)                                         \
    ATTR static inline VT PREFIX##_load_tail(const T *p, cn_idx n)                             \
    {                                                                                          \
        T part[V] = {0};                                                                       \
        memcpy(part, p, (size_t) n * sizeof(T));                                               \
        return PREFIX##_load(part);                                                            \
    }                                                                                          \
    ATTR static inline void PREFIX##_store_tail(T *p, VT v, cn_idx n)                          \
    {                                                                                          \
        T part[V];                                                                             \
        PREFIX##_store(part, v);                                                               \
        memcpy(p, part, (size_t) n * sizeof(T));                                               \
    }
CN_DEFINE_TAIL_HELPERS(cn_f32x4, float, cn_f32x4, 4, )
CN_DEFINE_TAIL_HELPERS(cn_f64x2, double, cn_f64x2, 2, )
#define CN_F32X4_SPLAT(x) ((cn_f32x4){0} + (float) (x))
#define CN_F64X2_SPLAT(x) ((cn_f64x2){0} + (double) (x))
CN_DEFINE_DW_ROWS(cn_dw_rows_f32_vec128, float, cn_f32x4, 4, , cn_f32x4_load, cn_f32x4_store, cn_f32x4_store_tail, ((cn_f32x4){0}), CN_F32X4_SPLAT, CN_VV_MUL_ADD)
CN_DEFINE_DW_ROWS(cn_dw_rows_f64_vec128, double, cn_f64x2, 2, , cn_f64x2_load, cn_f64x2_store, cn_f64x2_store_tail, ((cn_f64x2){0}), CN_F64X2_SPLAT, CN_VV_MUL_ADD)
CN_DEFINE_DW_GRAD_W(cn_dw_grad_w_f32_vec128, float, cn_f32x4, 4, 8, , cn_f32x4_load, cn_f32x4_load_tail, cn_f32x4_store, CN_VV_MUL_ADD)
CN_DEFINE_DW_GRAD_W(cn_dw_grad_w_f64_vec128, double, cn_f64x2, 2, 8, , cn_f64x2_load, cn_f64x2_load_tail, cn_f64x2_store, CN_VV_MUL_ADD)
CN_DEFINE_DW_FRAME(cn_dw_frame_f32_vec128, float, cn_f32x4, 4, , cn_f32x4_load, cn_f32x4_load_tail, cn_f32x4_store, cn_f32x4_store_tail)
CN_DEFINE_DW_FRAME(cn_dw_frame_f64_vec128, double, cn_f64x2, 2, , cn_f64x2_load, cn_f64x2_load_tail, cn_f64x2_store, cn_f64x2_store_tail)
#endif

#if CN_X86_DISPATCH
CN_AVX2 static inline cn_f32x8 cn_f32x8_splat(float x) { return _mm256_set1_ps(x); }
CN_AVX2 static inline cn_f64x4 cn_f64x4_splat(double x) { return _mm256_set1_pd(x); }
CN_AVX512 static inline cn_f32x16 cn_f32x16_splat(float x) { return _mm512_set1_ps(x); }
CN_AVX512 static inline cn_f64x8 cn_f64x8_splat(double x) { return _mm512_set1_pd(x); }
CN_AVX2 static inline cn_f32x8 cn_f32x8_vmadd(cn_f32x8 acc, cn_f32x8 x, cn_f32x8 w) { return _mm256_fmadd_ps(x, w, acc); }
CN_AVX2 static inline cn_f64x4 cn_f64x4_vmadd(cn_f64x4 acc, cn_f64x4 x, cn_f64x4 w) { return _mm256_fmadd_pd(x, w, acc); }
CN_AVX512 static inline cn_f32x16 cn_f32x16_vmadd(cn_f32x16 acc, cn_f32x16 x, cn_f32x16 w) { return _mm512_fmadd_ps(x, w, acc); }
CN_AVX512 static inline cn_f64x8 cn_f64x8_vmadd(cn_f64x8 acc, cn_f64x8 x, cn_f64x8 w) { return _mm512_fmadd_pd(x, w, acc); }
/* Masked loads and stores of the first n < V lanes: masked-off lanes are neither read (no
 * fault past the end of an array) nor written; loads give zero there. */
CN_AVX2 static inline __m256i cn_avx2_mask32(cn_idx n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int) n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
CN_AVX2 static inline __m256i cn_avx2_mask64(cn_idx n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long) n), _mm256_setr_epi64x(0, 1, 2, 3));
}
CN_AVX2 static inline cn_f32x8 cn_f32x8_load_tail(const float *p, cn_idx n) { return _mm256_maskload_ps(p, cn_avx2_mask32(n)); }
CN_AVX2 static inline cn_f64x4 cn_f64x4_load_tail(const double *p, cn_idx n) { return _mm256_maskload_pd(p, cn_avx2_mask64(n)); }
CN_AVX2 static inline void cn_f32x8_store_tail(float *p, cn_f32x8 v, cn_idx n) { _mm256_maskstore_ps(p, cn_avx2_mask32(n), v); }
CN_AVX2 static inline void cn_f64x4_store_tail(double *p, cn_f64x4 v, cn_idx n) { _mm256_maskstore_pd(p, cn_avx2_mask64(n), v); }
CN_AVX512 static inline cn_f32x16 cn_f32x16_load_tail(const float *p, cn_idx n) { return _mm512_maskz_loadu_ps((__mmask16) ((1u << n) - 1), p); }
CN_AVX512 static inline cn_f64x8 cn_f64x8_load_tail(const double *p, cn_idx n) { return _mm512_maskz_loadu_pd((__mmask8) ((1u << n) - 1), p); }
CN_AVX512 static inline void cn_f32x16_store_tail(float *p, cn_f32x16 v, cn_idx n) { _mm512_mask_storeu_ps(p, (__mmask16) ((1u << n) - 1), v); }
CN_AVX512 static inline void cn_f64x8_store_tail(double *p, cn_f64x8 v, cn_idx n) { _mm512_mask_storeu_pd(p, (__mmask8) ((1u << n) - 1), v); }
/* 16 registers: 8 row accumulators and the weight; 9 tap accumulators (a 3x3 kernel in one
 * block), the gradient and an input vector (AVX-512 alike: the usual 3x3 fits one block). */
CN_DEFINE_DW_ROWS(cn_dw_rows_f32_avx2, float, cn_f32x8, 8, CN_AVX2, cn_f32x8_load, cn_f32x8_store, cn_f32x8_store_tail, ((cn_f32x8){0}), cn_f32x8_splat, cn_f32x8_vmadd)
CN_DEFINE_DW_ROWS(cn_dw_rows_f64_avx2, double, cn_f64x4, 4, CN_AVX2, cn_f64x4_load, cn_f64x4_store, cn_f64x4_store_tail, ((cn_f64x4){0}), cn_f64x4_splat, cn_f64x4_vmadd)
CN_DEFINE_DW_ROWS(cn_dw_rows_f32_avx512, float, cn_f32x16, 16, CN_AVX512, cn_f32x16_load, cn_f32x16_store, cn_f32x16_store_tail, ((cn_f32x16){0}), cn_f32x16_splat, cn_f32x16_vmadd)
CN_DEFINE_DW_ROWS(cn_dw_rows_f64_avx512, double, cn_f64x8, 8, CN_AVX512, cn_f64x8_load, cn_f64x8_store, cn_f64x8_store_tail, ((cn_f64x8){0}), cn_f64x8_splat, cn_f64x8_vmadd)
CN_DEFINE_DW_GRAD_W(cn_dw_grad_w_f32_avx2, float, cn_f32x8, 8, 9, CN_AVX2, cn_f32x8_load, cn_f32x8_load_tail, cn_f32x8_store, cn_f32x8_vmadd)
CN_DEFINE_DW_GRAD_W(cn_dw_grad_w_f64_avx2, double, cn_f64x4, 4, 9, CN_AVX2, cn_f64x4_load, cn_f64x4_load_tail, cn_f64x4_store, cn_f64x4_vmadd)
CN_DEFINE_DW_GRAD_W(cn_dw_grad_w_f32_avx512, float, cn_f32x16, 16, 9, CN_AVX512, cn_f32x16_load, cn_f32x16_load_tail, cn_f32x16_store, cn_f32x16_vmadd)
CN_DEFINE_DW_GRAD_W(cn_dw_grad_w_f64_avx512, double, cn_f64x8, 8, 9, CN_AVX512, cn_f64x8_load, cn_f64x8_load_tail, cn_f64x8_store, cn_f64x8_vmadd)
CN_DEFINE_DW_FRAME(cn_dw_frame_f32_avx2, float, cn_f32x8, 8, CN_AVX2, cn_f32x8_load, cn_f32x8_load_tail, cn_f32x8_store, cn_f32x8_store_tail)
CN_DEFINE_DW_FRAME(cn_dw_frame_f64_avx2, double, cn_f64x4, 4, CN_AVX2, cn_f64x4_load, cn_f64x4_load_tail, cn_f64x4_store, cn_f64x4_store_tail)
CN_DEFINE_DW_FRAME(cn_dw_frame_f32_avx512, float, cn_f32x16, 16, CN_AVX512, cn_f32x16_load, cn_f32x16_load_tail, cn_f32x16_store, cn_f32x16_store_tail)
CN_DEFINE_DW_FRAME(cn_dw_frame_f64_avx512, double, cn_f64x8, 8, CN_AVX512, cn_f64x8_load, cn_f64x8_load_tail, cn_f64x8_store, cn_f64x8_store_tail)
#endif

#if CN_X86_DISPATCH
#define CN_DW_X86(NAME, T, ARGS)                                                               \
    case CN_SIMD_AVX512: NAME##_##T##_avx512 ARGS; return;                                     \
    case CN_SIMD_AVX2: NAME##_##T##_avx2 ARGS; return;
#else
#define CN_DW_X86(NAME, T, ARGS)
#endif
#if CN_HAVE_VECTOR_EXT
#define CN_DW_VEC128(NAME, T, ARGS) case CN_SIMD_VEC128: NAME##_##T##_vec128 ARGS; return;
#else
#define CN_DW_VEC128(NAME, T, ARGS)
#endif

#define CN_DEFINE_DW_DISPATCH(T, CT)                                                           \
    static void cn_dw_rows_##T(int level, const CT *in, cn_idx row_step,                       \
                               const cn_idx *tap_offset, cn_idx taps, const CT *weights,       \
                               CT shift, cn_idx rows, cn_idx width, CT *out, cn_idx out_pitch) \
    {                                                                                          \
        switch (level) {                                                                       \
            CN_DW_X86(cn_dw_rows, T, (in, row_step, tap_offset, taps, weights, shift, rows, width, out, out_pitch)) \
            CN_DW_VEC128(cn_dw_rows, T, (in, row_step, tap_offset, taps, weights, shift, rows, width, out, out_pitch)) \
        default:                                                                               \
            cn_dw_rows_##T##_scalar(in, row_step, tap_offset, taps, weights, shift, rows, width, out, out_pitch); \
        }                                                                                      \
    }                                                                                          \
    static void cn_dw_grad_w_##T(int level, const CT *grad, cn_idx grad_pitch, cn_idx rows,    \
                                 cn_idx width, const CT *in, cn_idx row_step,                  \
                                 const cn_idx *tap_offset, cn_idx taps, CT *acc)               \
    {                                                                                          \
        switch (level) {                                                                       \
            CN_DW_X86(cn_dw_grad_w, T, (grad, grad_pitch, rows, width, in, row_step, tap_offset, taps, acc)) \
            CN_DW_VEC128(cn_dw_grad_w, T, (grad, grad_pitch, rows, width, in, row_step, tap_offset, taps, acc)) \
        default:                                                                               \
            cn_dw_grad_w_##T##_scalar(grad, grad_pitch, rows, width, in, row_step, tap_offset, taps, acc); \
        }                                                                                      \
    }                                                                                          \
    static void cn_dw_frame_##T(int level, const CT *src, cn_idx rows, cn_idx width, CT *dst,  \
                                cn_idx pitch)                                                  \
    {                                                                                          \
        switch (level) {                                                                       \
            CN_DW_X86(cn_dw_frame, T, (src, rows, width, dst, pitch))                          \
            CN_DW_VEC128(cn_dw_frame, T, (src, rows, width, dst, pitch))                       \
        default:                                                                               \
            cn_dw_frame_##T##_scalar(src, rows, width, dst, pitch);                            \
        }                                                                                      \
    }

CN_DEFINE_DW_DISPATCH(f32, float)
CN_DEFINE_DW_DISPATCH(f64, double)

/* ---- Row-vector kernels: lanes across neighbouring output positions ----
 *
 * The gather kernel puts filters in the lanes, so a layer of 24 filters fills 24 of 32 AVX-512
 * lanes and a group of 4 filters 4 of 16, and each product is transposed into planes
 * afterwards.  These put output positions in the lanes instead, over a zero-framed image whose
 * rows are `pitch` apart: position p = oh * pitch + ow, and tap t of position p reads
 * image[p + tap_offset[t]], so a stride-1 window is one contiguous vector per tap.  The
 * positions ow >= Wo of each row are computed and thrown away (a 28-wide row in a 30-wide
 * frame wastes 2 lanes in 30, filters rounded up to vectors wasted 8 in 32).
 *
 * cn_rows:        out[f * out_pitch + p] = sum over t of image[p + tap_offset[t]] * weights[t * filters + f]
 *                 for f < filters and p < pixels rounded up to whole vectors (computed and
 *                 stored: out rows must hold them, and image must be readable that far past
 *                 every tap's offset).  Taps are summed in ascending order.
 * cn_rows_grad_w: acc[(f * taps + t) * V + v] += sum over s < samples, then l < pixels (l a
 *                 multiple of V) of grad[s * grad_sample + f * grad_pitch + l + v]
 *                 * image[s * image_sample + l + v + tap_offset[t]]: per-lane partial sums of
 *                 the weight gradient, held in registers across as many samples as keep a
 *                 block's gradient rows in L1 (planes of 7x7 positions are only four vectors
 *                 long; 28x28 ones fill L1 with one sample's); grad rows hold zeros at the
 *                 thrown-away positions and up to whole vectors, and the caller adds the V lanes
 *                 in a fixed order once the chunk is done.
 * Blocks of KF filters x PV vectors (cn_rows) or KF filters x KT taps (cn_rows_grad_w) keep
 * every loaded vector and broadcast weight in use several times. */
#define CN_ROWS_BLOCK(T, VT, V, LOAD, STORE, ZERO, MADD, KF, PV)                               \
    do {                                                                                       \
        VT acc_[KF][PV];                                                                       \
        CN_UNROLL for (int k_ = 0; k_ < (KF); k_++)                                            \
            CN_UNROLL for (int v_ = 0; v_ < (PV); v_++) acc_[k_][v_] = ZERO;                   \
        const T *w_ = weights + f;                                                             \
        for (cn_idx t_ = 0; t_ < taps; t_++, w_ += filters) {                                  \
            const T *s_ = image + p + tap_offset[t_];                                          \
            VT x_[PV];                                                                         \
            CN_UNROLL for (int v_ = 0; v_ < (PV); v_++) x_[v_] = LOAD(s_ + v_ * (V));          \
            CN_UNROLL for (int k_ = 0; k_ < (KF); k_++)                                        \
                CN_UNROLL for (int v_ = 0; v_ < (PV); v_++)                                    \
                    acc_[k_][v_] = MADD(acc_[k_][v_], w_[k_], x_[v_]);                         \
        }                                                                                      \
        CN_UNROLL for (int k_ = 0; k_ < (KF); k_++)                                            \
            CN_UNROLL for (int v_ = 0; v_ < (PV); v_++)                                        \
                STORE(out + (f + k_) * out_pitch + p + v_ * (V), acc_[k_][v_]);                \
    } while (0)

#define CN_ROWS_FILTERS(T, VT, V, LOAD, STORE, ZERO, MADD, KF, PV)                             \
    {                                                                                          \
        cn_idx f = 0;                                                                          \
        for (; f + (KF) <= filters; f += (KF))                                                 \
            CN_ROWS_BLOCK(T, VT, V, LOAD, STORE, ZERO, MADD, KF, PV);                          \
        for (; f + 2 <= filters; f += 2) CN_ROWS_BLOCK(T, VT, V, LOAD, STORE, ZERO, MADD, 2, PV); \
        for (; f < filters; f++) CN_ROWS_BLOCK(T, VT, V, LOAD, STORE, ZERO, MADD, 1, PV);      \
    }

/* Pixel blocks outermost: a block's window of the image stays in L1 while every filter block
 * passes over it. */
#define CN_DEFINE_ROWS(NAME, T, VT, V, KF, PV, ATTR, LOAD, STORE, ZERO, MADD)                  \
    ATTR static void NAME(const T *image, cn_idx pixels, const cn_idx *tap_offset, cn_idx taps, \
                          const T *weights, cn_idx filters, T *out, cn_idx out_pitch)          \
    {                                                                                          \
        cn_idx p = 0;                                                                          \
        for (; p + (PV) * (V) <= pixels; p += (PV) * (V))                                      \
            CN_ROWS_FILTERS(T, VT, V, LOAD, STORE, ZERO, MADD, KF, PV)                         \
        for (; p < pixels; p += (V))                                                           \
            CN_ROWS_FILTERS(T, VT, V, LOAD, STORE, ZERO, MADD, KF, 1)                          \
    }

#define CN_ROWS_GW_BLOCK(T, VT, V, LOAD, STORE, VMADD, KF, KT)                                 \
    do {                                                                                       \
        VT acc_[KF][KT];                                                                       \
        const T *src_[KT];                                                                     \
        CN_UNROLL for (int u_ = 0; u_ < (KT); u_++) src_[u_] = image + tap_offset[t + u_];     \
        CN_UNROLL for (int k_ = 0; k_ < (KF); k_++)                                            \
            CN_UNROLL for (int u_ = 0; u_ < (KT); u_++)                                        \
                acc_[k_][u_] = LOAD(acc + ((f + k_) * taps + t + u_) * (V));                   \
        for (cn_idx s_ = s_first; s_ < s_stop; s_++) {                                         \
            const T *grad_ = grad + s_ * grad_sample + f * grad_pitch;                         \
            const cn_idx shift_ = s_ * image_sample;                                           \
            for (cn_idx l = 0; l < pixels; l += (V)) {                                         \
                VT g_[KF];                                                                     \
                CN_UNROLL for (int k_ = 0; k_ < (KF); k_++) g_[k_] = LOAD(grad_ + k_ * grad_pitch + l); \
                CN_UNROLL for (int u_ = 0; u_ < (KT); u_++) {                                  \
                    const VT x_ = LOAD(src_[u_] + shift_ + l);                                 \
                    CN_UNROLL for (int k_ = 0; k_ < (KF); k_++)                                \
                        acc_[k_][u_] = VMADD(acc_[k_][u_], g_[k_], x_);                        \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        CN_UNROLL for (int k_ = 0; k_ < (KF); k_++)                                            \
            CN_UNROLL for (int u_ = 0; u_ < (KT); u_++)                                        \
                STORE(acc + ((f + k_) * taps + t + u_) * (V), acc_[k_][u_]);                   \
    } while (0)

#define CN_ROWS_GW_TAPS(T, VT, V, LOAD, STORE, VMADD, KF, KT)                                  \
    {                                                                                          \
        cn_idx t = 0;                                                                          \
        for (; t + (KT) <= taps; t += (KT)) CN_ROWS_GW_BLOCK(T, VT, V, LOAD, STORE, VMADD, KF, KT); \
        for (; t + 2 <= taps; t += 2) CN_ROWS_GW_BLOCK(T, VT, V, LOAD, STORE, VMADD, KF, 2);   \
        for (; t < taps; t++) CN_ROWS_GW_BLOCK(T, VT, V, LOAD, STORE, VMADD, KF, 1);           \
    }

#define CN_DEFINE_ROWS_GRAD_W(NAME, T, VT, V, KF, KT, ATTR, LOAD, STORE, VMADD)                \
    ATTR static void NAME(const T *grad, cn_idx grad_pitch, cn_idx grad_sample, cn_idx filters, \
                          cn_idx pixels, const T *image, cn_idx image_sample, cn_idx samples,  \
                          const cn_idx *tap_offset, cn_idx taps, T *acc)                       \
    {                                                                                          \
        cn_idx group = (cn_idx) 16384 / ((KF) * grad_pitch * (cn_idx) sizeof(T));              \
        if (group < 1) group = 1;                                                              \
        for (cn_idx s_first = 0; s_first < samples; s_first += group) {                        \
            const cn_idx s_stop = samples - s_first < group ? samples : s_first + group;       \
            cn_idx f = 0;                                                                      \
            for (; f + (KF) <= filters; f += (KF)) CN_ROWS_GW_TAPS(T, VT, V, LOAD, STORE, VMADD, KF, KT) \
            for (; f + 2 <= filters; f += 2) CN_ROWS_GW_TAPS(T, VT, V, LOAD, STORE, VMADD, 2, KT) \
            for (; f < filters; f++) CN_ROWS_GW_TAPS(T, VT, V, LOAD, STORE, VMADD, 1, KT)      \
        }                                                                                      \
    }

CN_DEFINE_ROWS(cn_rows_f32_scalar, float, float, 1, 4, 1, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_MUL_ADD)
CN_DEFINE_ROWS(cn_rows_f64_scalar, double, double, 1, 4, 1, , CN_SCALAR_LOAD, CN_SCALAR_STORE, 0, CN_MUL_ADD)
CN_DEFINE_ROWS_GRAD_W(cn_rows_grad_w_f32_scalar, float, float, 1, 2, 3, , CN_SCALAR_LOAD, CN_SCALAR_STORE, CN_VV_MUL_ADD)
CN_DEFINE_ROWS_GRAD_W(cn_rows_grad_w_f64_scalar, double, double, 1, 2, 3, , CN_SCALAR_LOAD, CN_SCALAR_STORE, CN_VV_MUL_ADD)
#if CN_HAVE_VECTOR_EXT
CN_DEFINE_ROWS(cn_rows_f32_vec128, float, cn_f32x4, 4, 4, 2, , cn_f32x4_load, cn_f32x4_store, ((cn_f32x4){0}), CN_MUL_ADD)
CN_DEFINE_ROWS(cn_rows_f64_vec128, double, cn_f64x2, 2, 4, 2, , cn_f64x2_load, cn_f64x2_store, ((cn_f64x2){0}), CN_MUL_ADD)
CN_DEFINE_ROWS_GRAD_W(cn_rows_grad_w_f32_vec128, float, cn_f32x4, 4, 2, 3, , cn_f32x4_load, cn_f32x4_store, CN_VV_MUL_ADD)
CN_DEFINE_ROWS_GRAD_W(cn_rows_grad_w_f64_vec128, double, cn_f64x2, 2, 2, 3, , cn_f64x2_load, cn_f64x2_store, CN_VV_MUL_ADD)
#endif
#if CN_X86_DISPATCH
/* 16 registers: 4 x 3 accumulators, 3 image vectors, the broadcast weight; 2 x 6 accumulators,
 * 2 gradient vectors and an image vector.  32 registers: 8 x 3, and 6 filters x 4 taps (the
 * caller aligns the gradient rows, so 6 aligned and 4 unaligned loads feed 24 multiply-adds,
 * where 4 x 6 took 4 and 6, each unaligned one touching two cache lines). */
CN_DEFINE_ROWS(cn_rows_f32_avx2, float, cn_f32x8, 8, 4, 3, CN_AVX2, cn_f32x8_load, cn_f32x8_store, ((cn_f32x8){0}), cn_f32x8_madd)
CN_DEFINE_ROWS(cn_rows_f64_avx2, double, cn_f64x4, 4, 4, 3, CN_AVX2, cn_f64x4_load, cn_f64x4_store, ((cn_f64x4){0}), cn_f64x4_madd)
CN_DEFINE_ROWS(cn_rows_f32_avx512, float, cn_f32x16, 16, 8, 3, CN_AVX512, cn_f32x16_load, cn_f32x16_store, ((cn_f32x16){0}), cn_f32x16_madd)
CN_DEFINE_ROWS(cn_rows_f64_avx512, double, cn_f64x8, 8, 8, 3, CN_AVX512, cn_f64x8_load, cn_f64x8_store, ((cn_f64x8){0}), cn_f64x8_madd)
CN_DEFINE_ROWS_GRAD_W(cn_rows_grad_w_f32_avx2, float, cn_f32x8, 8, 2, 6, CN_AVX2, cn_f32x8_load, cn_f32x8_store, cn_f32x8_vmadd)
CN_DEFINE_ROWS_GRAD_W(cn_rows_grad_w_f64_avx2, double, cn_f64x4, 4, 2, 6, CN_AVX2, cn_f64x4_load, cn_f64x4_store, cn_f64x4_vmadd)
CN_DEFINE_ROWS_GRAD_W(cn_rows_grad_w_f32_avx512, float, cn_f32x16, 16, 6, 4, CN_AVX512, cn_f32x16_load, cn_f32x16_store, cn_f32x16_vmadd)
CN_DEFINE_ROWS_GRAD_W(cn_rows_grad_w_f64_avx512, double, cn_f64x8, 8, 6, 4, CN_AVX512, cn_f64x8_load, cn_f64x8_store, cn_f64x8_vmadd)
#endif

#define CN_DEFINE_ROWS_DISPATCH(T, CT)                                                         \
    static void cn_rows_##T(int level, const CT *image, cn_idx pixels, const cn_idx *tap_offset, \
                            cn_idx taps, const CT *weights, cn_idx filters, CT *out,           \
                            cn_idx out_pitch)                                                  \
    {                                                                                          \
        switch (level) {                                                                       \
            CN_DW_X86(cn_rows, T, (image, pixels, tap_offset, taps, weights, filters, out, out_pitch)) \
            CN_DW_VEC128(cn_rows, T, (image, pixels, tap_offset, taps, weights, filters, out, out_pitch)) \
        default:                                                                               \
            cn_rows_##T##_scalar(image, pixels, tap_offset, taps, weights, filters, out, out_pitch); \
        }                                                                                      \
    }                                                                                          \
    static void cn_rows_grad_w_##T(int level, const CT *grad, cn_idx grad_pitch,               \
                                   cn_idx grad_sample, cn_idx filters, cn_idx pixels,          \
                                   const CT *image, cn_idx image_sample, cn_idx samples,       \
                                   const cn_idx *tap_offset, cn_idx taps, CT *acc)             \
    {                                                                                          \
        switch (level) {                                                                       \
            CN_DW_X86(cn_rows_grad_w, T, (grad, grad_pitch, grad_sample, filters, pixels, image, image_sample, samples, tap_offset, taps, acc)) \
            CN_DW_VEC128(cn_rows_grad_w, T, (grad, grad_pitch, grad_sample, filters, pixels, image, image_sample, samples, tap_offset, taps, acc)) \
        default:                                                                               \
            cn_rows_grad_w_##T##_scalar(grad, grad_pitch, grad_sample, filters, pixels, image, image_sample, samples, tap_offset, taps, acc); \
        }                                                                                      \
    }

CN_DEFINE_ROWS_DISPATCH(f32, float)
CN_DEFINE_ROWS_DISPATCH(f64, double)

/* Whether none of n values is an infinity or a NaN: exponent bits compared as integers, with
 * no early exit inside a block, so the loop vectorizes (a test per value with a branch ran at
 * a value a cycle, a tenth of a weight gradient's time when x was checked). */
#define CN_DEFINE_ALL_FINITE(NAME, T, U, EXPONENT)                                             \
    static int NAME(const T *values, cn_idx n)                                                 \
    {                                                                                          \
        for (cn_idx first = 0; first < n; first += 4096) {                                     \
            const cn_idx count = n - first < 4096 ? n - first : 4096;                          \
            U bad = 0;                                                                         \
            for (cn_idx k = 0; k < count; k++) {                                              \
                U bits;                                                                        \
                memcpy(&bits, values + first + k, sizeof bits);                                \
                bad |= (U) ((bits & (EXPONENT)) == (EXPONENT));                                \
            }                                                                                  \
            if (bad) return 0;                                                                 \
        }                                                                                      \
        return 1;                                                                              \
    }
CN_DEFINE_ALL_FINITE(cn_all_finite_f32, float, unsigned int, 0x7f800000u)
CN_DEFINE_ALL_FINITE(cn_all_finite_f64, double, unsigned long long, 0x7ff0000000000000ull)

#endif /* CNNATIVE_CONV_SIMD_H */
