/*
 * How the correlation kernels (corr_simd.h, corr_nd_simd.h) round each multiply-add: the one
 * setting both headers' dispatchers read, declared once.  Like the SIMD cap it is static, so
 * each extension module has its own; cnnative.signal sets each module's from its own probe of
 * the installed scipy (scipy's 2-D and N-d loops are separate C functions and could differ).
 */
#ifndef CNNATIVE_ROUNDING_H
#define CNNATIVE_ROUNDING_H

#include "simd_dispatch.h"

/* UNDECIDED until cnnative.signal probes scipy: the small-call fast paths then leave every call
 * to cnnative.signal, which decides first.  SCIPY: they leave every call too, since
 * cnnative.signal then hands float calls to scipy itself.  The kernels run their separate
 * variants unless the rounding is FUSED. */
enum cn_rounding_mode {
    CN_ROUNDING_UNDECIDED = -1,
    CN_ROUNDING_SEPARATE = 0,
    CN_ROUNDING_FUSED = 1,
    CN_ROUNDING_SCIPY = 2
};

/* Set once per process before the kernels are used (set_rounding_of_module in _rounding.pxd). */
static volatile int cn_rounding = CN_ROUNDING_UNDECIDED;

/* Whether the fused variants can run here: on x86 they need the FMA instructions. */
static int cn_fused_available(void)
{
#if CN_X86_DISPATCH
    return cn_simd_level() >= CN_SIMD_AVX2;
#else
    return 1;
#endif
}

#endif
