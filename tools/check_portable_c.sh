#!/usr/bin/env bash
# Compile the kernel headers (native/simd_dispatch.h and the corr, conv and pool headers built on
# it) the way compilers without GCC extensions (MSVC) see them, and the macOS CPU-detection
# branch, then run both. Linux x86-64 with gcc or clang.
#  1. With __GNUC__/__clang__ undefined the headers must fall back to plain C: built as strict
#     C99 (-pedantic-errors), any vector type, target attribute or builtin left outside the
#     guards fails the compile. The scalar kernel must then compute a correlation correctly.
#  2. With __APPLE__ defined and a stand-in <sys/sysctl.h>, detection must go through
#     sysctlbyname and pick the level the (stubbed) kernel reports.
set -euo pipefail
native="$(cd "$(dirname "$0")/../native" && pwd)"
cc=${CC:-cc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/portable.c" <<'EOF'
#include "corr_simd.h"
#include "conv_simd.h"
#include "pool_simd.h"
#if CN_HAVE_VECTOR_EXT || CN_X86_DISPATCH
#error "the portable path was not selected"
#endif
int main(void)
{
    /* 4x4 image x = 0..15, 2x2 kernel (1 2; 3 4):
     * out[m][n] = x[m][n] + 2 x[m][n+1] + 3 x[m+1][n] + 4 x[m+1][n+1] = 10 (4m + n) + 34 */
    double image[16], out[9], coef[4] = {1, 2, 3, 4};
    cn_idx coloff[2] = {0, 1};
    int i, m, n;
    for (i = 0; i < 16; i++) image[i] = i;
    cn_corr_f64(image, 4, out, 3, 3, 3, coef, coloff, 2, 2, 0);
    for (m = 0; m < 3; m++)
        for (n = 0; n < 3; n++)
            if (out[m * 3 + n] != 10.0 * (4 * m + n) + 34.0) return 1;
    return cn_simd_active() != CN_SIMD_SCALAR;
}
EOF

mkdir -p "$work/stub/sys"
cat > "$work/stub/sys/sysctl.h" <<'EOF'
#include <stddef.h>
int sysctlbyname(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
EOF
cat > "$work/apple.c" <<'EOF'
#include <string.h>
#include "simd_dispatch.h"
/* A Mac with AVX2 and FMA but without AVX-512. */
int sysctlbyname(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
    (void)newp; (void)newlen;
    *(int *)oldp = strcmp(name, "hw.optional.avx2_0") == 0 || strcmp(name, "hw.optional.fma") == 0;
    *oldlenp = sizeof(int);
    return 0;
}
int main(void) { return cn_simd_level() != CN_SIMD_AVX2; }
EOF

"$cc" -U__GNUC__ -U__clang__ -std=c99 -pedantic-errors -I"$native" "$work/portable.c" -o "$work/portable" -lm
"$work/portable"
echo "check_portable_c: headers compile as strict C99 without GCC extensions;" \
     "the scalar path computes correctly"

if [ "$(uname -m)" = x86_64 ]; then
    "$cc" -D__APPLE__ -std=c99 -O2 -I"$work/stub" -I"$native" "$work/apple.c" -o "$work/apple"
    "$work/apple"
    echo "check_portable_c: macOS branch detects through sysctlbyname"
fi
