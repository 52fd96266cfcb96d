/*
 * Work claiming for kernels that share a range among threads without going back to Python
 * between pieces: each thread adds its piece size to a shared counter and works on the range
 * the old value names.  Relaxed ordering suffices: the counter only hands out disjoint ranges,
 * and the threads' results are joined (with the synchronisation that implies) by the caller.
 */
#ifndef CNNATIVE_CLAIM_H
#define CNNATIVE_CLAIM_H

#include <stdint.h>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static __inline int64_t cn_claim(int64_t *counter, int64_t n)
{
    return _InterlockedExchangeAdd64((volatile __int64 *) counter, n);
}
#else
static inline int64_t cn_claim(int64_t *counter, int64_t n)
{
    return __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}
#endif

#endif /* CNNATIVE_CLAIM_H */
