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
static __inline int cn_claim_swap(int64_t *counter, int64_t *expected, int64_t desired)
{
    int64_t seen = _InterlockedCompareExchange64((volatile __int64 *) counter, desired, *expected);
    if (seen == *expected) return 1;
    *expected = seen;
    return 0;
}
#define CN_CLAIM_READ(counter) (*(volatile int64_t *) (counter))
#else
static inline int64_t cn_claim(int64_t *counter, int64_t n)
{
    return __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}
static inline int cn_claim_swap(int64_t *counter, int64_t *expected, int64_t desired)
{
    return __atomic_compare_exchange_n(counter, expected, desired, 0, __ATOMIC_RELAXED,
                                       __ATOMIC_RELAXED);
}
#define CN_CLAIM_READ(counter) __atomic_load_n((counter), __ATOMIC_RELAXED)
#endif

/* Guided claiming of [0, total): each piece is 1/parts of what is left, but at least `least`
 * items.  Threads start on long runs of neighbouring rows, which row-walking kernels need to
 * reuse what the previous rows loaded, and finish on short ones, so a thread that started late
 * (a sleeping core takes tens of microseconds to wake) is not waited for.  Returns the offset
 * claimed and sets *piece; a value outside [0, total) means nothing is left (or the counter
 * held garbage, which the caller must not trust either). */
static inline int64_t cn_claim_guided(int64_t *counter, int64_t total, int64_t least,
                                      int64_t parts, int64_t *piece)
{
    int64_t taken = CN_CLAIM_READ(counter);
    for (;;) {
        int64_t left, n;
        if (taken < 0 || taken >= total) return taken;
        left = total - taken;
        n = left / parts;
        if (n < least) n = least;
        if (n > left) n = left;
        if (cn_claim_swap(counter, &taken, taken + n)) {
            *piece = n;
            return taken;
        }
    }
}

#endif /* CNNATIVE_CLAIM_H */
