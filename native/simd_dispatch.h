/*
 * Run-time instruction-set dispatch shared by every kernel header (corr_simd.h, conv_simd.h,
 * pool_simd.h): the level enum, the guards that say which variants this compiler can build,
 * the target attributes and vector types of those variants, CPU detection and the cap.
 *
 * Each variant is compiled side by side with a target attribute, never with -march flags, so a
 * wheel runs on any CPU of its architecture; a kernel picks the variant for cn_simd_active().
 *
 * Everything here is static, so each extension module (one C translation unit) gets its own
 * copy: in particular its own cn_simd_cap, which that module's set_simd_cap() lowers.  Capping
 * one module never changes the variants another module runs.
 */
#ifndef CNNATIVE_SIMD_DISPATCH_H
#define CNNATIVE_SIMD_DISPATCH_H

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

/* Scalar "vectors" of one element, so the scalar variants share the vector variants' macros. */
#define CN_SCALAR_LOAD(p) (*(p))
#define CN_SCALAR_STORE(p, v) (*(p) = (v))

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
#endif

#if CN_X86_DISPATCH
/* The AVX2 level includes FMA (every AVX2 CPU has it): conv_simd.h's gather kernels use it.
 * Nothing is contracted into FMA implicitly, since the modules build with -ffp-contract=off. */
#define CN_AVX2 __attribute__((target("avx2,fma")))
#define CN_AVX512 __attribute__((target("avx512f")))
typedef float cn_f32x8 __attribute__((vector_size(32)));
typedef double cn_f64x4 __attribute__((vector_size(32)));
typedef float cn_f32x16 __attribute__((vector_size(64)));
typedef double cn_f64x8 __attribute__((vector_size(64)));
CN_DEFINE_VEC_HELPERS(cn_f32x8, float, cn_f32x8, CN_AVX2)
CN_DEFINE_VEC_HELPERS(cn_f64x4, double, cn_f64x4, CN_AVX2)
CN_DEFINE_VEC_HELPERS(cn_f32x16, float, cn_f32x16, CN_AVX512)
CN_DEFINE_VEC_HELPERS(cn_f64x8, double, cn_f64x8, CN_AVX512)
#endif

#if CN_X86_DISPATCH && defined(__APPLE__)
#include <sys/sysctl.h>
/* macOS answers through sysctl, its documented interface.  __builtin_cpu_supports is avoided
 * there: it needs a runtime symbol (__cpu_model) that Apple's toolchain does not reliably
 * provide, and macOS enables AVX-512 register state only on first use, so a check of the OS's
 * enabled state (XCR0) can report AVX-512 missing on a CPU that has it. */
static int cn_sysctl_flag(const char *name)
{
    int value = 0;
    size_t size = sizeof value;
    return sysctlbyname(name, &value, &size, NULL, 0) == 0 && value != 0;
}
#endif

/* The widest instruction set this CPU and OS support, detected once.  The race on first use is
 * benign: every thread computes and stores the same value. */
static int cn_simd_level(void)
{
    static volatile int level = -1;
    if (level < 0) {
        int found = CN_HAVE_VECTOR_EXT ? CN_SIMD_VEC128 : CN_SIMD_SCALAR;
#if CN_X86_DISPATCH && defined(__APPLE__)
        if (cn_sysctl_flag("hw.optional.avx2_0") && cn_sysctl_flag("hw.optional.fma"))
            found = CN_SIMD_AVX2;
        if (found == CN_SIMD_AVX2 && cn_sysctl_flag("hw.optional.avx512f"))
            found = CN_SIMD_AVX512;
#elif CN_X86_DISPATCH
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) found = CN_SIMD_AVX2;
        /* The AVX-512 level also runs AVX2 + FMA code (col2im, correlation tails). */
        if (found == CN_SIMD_AVX2 && __builtin_cpu_supports("avx512f")) found = CN_SIMD_AVX512;
#endif
        level = found;
    }
    return level;
}

/* Highest level this module's dispatchers may use; lowered by tests to exercise every variant.
 * One per translation unit, hence per extension module (see the top of this file). */
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

#endif /* CNNATIVE_SIMD_DISPATCH_H */
