"""How close 3x3 convolutions come to one core's multiply-add peak, pass by pass, and torch.

The peak is measured, not taken from a data sheet: a small C loop of twelve independent fused
multiply-add chains on the widest vectors this CPU has (AVX-512, else AVX2), compiled with the
system's C compiler (cc) at run time and timed for about a second; the best of five runs
counts.  Each layer is then timed forward, weight gradient and input gradient on one thread,
and its rate (2 x multiply-adds per second) is given as a share of that peak, next to torch's
time for the same pass (``torch.ops.aten.convolution_backward`` with one gradient asked for)
when torch is installed.  Both the peak loop and the passes are timed in thread CPU time, and
the contenders interleaved, medians kept: on a machine shared with other jobs wall time counts
the time the thread waited for a core.

Layers: the VGG-style network of ``cnnative.models.vgg`` (``--preset fashion``) at widths 24 and
32 and ResNet-20's 3x3 layers with >= 32 channels, batch 128, 28x28 input, padding 1.

    python benchmarks/conv_efficiency.py [--dtype float32] [--repeats 7] [--widths 24 32]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

PEAK_C = r"""
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
                          return t.tv_sec + t.tv_nsec * 1e-9; }
#define CHAINS(V, FMA, SET, LANES)                                                        \
    V a0 = SET(0), a1 = SET(1), a2 = SET(2), a3 = SET(3), a4 = SET(4), a5 = SET(5);        \
    V a6 = SET(6), a7 = SET(7), a8 = SET(8), a9 = SET(9), a10 = SET(10), a11 = SET(11);   \
    V x = SET(1.0000001), y = SET(1e-7);                                                  \
    double t = now();                                                                     \
    for (long n = 0; n < iters; n++) {                                                    \
        a0 = FMA(a0, x, y); a1 = FMA(a1, x, y); a2 = FMA(a2, x, y); a3 = FMA(a3, x, y);   \
        a4 = FMA(a4, x, y); a5 = FMA(a5, x, y); a6 = FMA(a6, x, y); a7 = FMA(a7, x, y);   \
        a8 = FMA(a8, x, y); a9 = FMA(a9, x, y); a10 = FMA(a10, x, y); a11 = FMA(a11, x, y); \
    }                                                                                     \
    t = now() - t;                                                                        \
    V s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;                    \
    volatile REAL sink = ((REAL *) &s)[0]; (void) sink;                                   \
    return iters * 12.0 * LANES * 2 / t / 1e9;
__attribute__((target("avx512f"))) static double wide(long iters) { CHAINS(VEC512, FMA512, SET512, 64 / sizeof(REAL)) }
__attribute__((target("avx2,fma"))) static double narrow(long iters) { CHAINS(VEC256, FMA256, SET256, 32 / sizeof(REAL)) }
int main(void) {
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f");
    double best = 0;
    for (int run = 0; run < 5; run++) {
        double g = avx512 ? wide(100000000) : narrow(100000000);
        if (g > best) best = g;
    }
    printf("%s %.1f\n", avx512 ? "avx512f" : "avx2", best);
    return 0;
}
"""
TYPES = {"float32": "-DREAL=float -DVEC512=__m512 -DFMA512=_mm512_fmadd_ps -DSET512=_mm512_set1_ps "
                    "-DVEC256=__m256 -DFMA256=_mm256_fmadd_ps -DSET256=_mm256_set1_ps",
         "float64": "-DREAL=double -DVEC512=__m512d -DFMA512=_mm512_fmadd_pd -DSET512=_mm512_set1_pd "
                    "-DVEC256=__m256d -DFMA256=_mm256_fmadd_pd -DSET256=_mm256_set1_pd"}
# ResNet-20's 3x3 layers with >= 32 channels, batch 128, 28x28 input: (C, F, H, stride).
RESNET_LAYERS = [(32, 32, 14, 1), (16, 32, 28, 2), (64, 64, 7, 1), (32, 64, 14, 2)]


def vgg_layers(width):
    """The five 3x3 layers of cnnative.models.vgg(width) on 28x28 images: (C, F, H, stride)."""
    return [(1, width, 28, 1), (width, width, 28, 1), (width, 2 * width, 14, 1),
            (2 * width, 2 * width, 14, 1), (2 * width, 4 * width, 7, 1)]


def fma_peak(dtype):
    """(instruction set, GFLOP/s) of the multiply-add loop on one core."""
    with tempfile.TemporaryDirectory() as directory:
        source, binary = os.path.join(directory, "peak.c"), os.path.join(directory, "peak")
        with open(source, "w") as file:
            file.write(PEAK_C)
        subprocess.run(["cc", "-O2", *TYPES[dtype].split(), source, "-o", binary], check=True)
        level, rate = subprocess.run([binary], check=True, capture_output=True,
                                     text=True).stdout.split()
    return level, float(rate)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=sorted(TYPES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--widths", type=int, nargs="*", default=[24, 32],
                        help="widths of the VGG-style network to time (none: ResNet-20 only)")
    args = parser.parse_args()
    from cnnative.bench import timing
    timing.configure_threads(1)
    import numpy as np

    import cnnative

    torch, _ = timing.optional_import("torch")
    if torch is not None:
        torch.set_num_threads(1)
    level, peak = fma_peak(args.dtype)
    print(f"one core's {args.dtype} multiply-add peak ({level} loop, thread CPU time): "
          f"{peak:.0f} GFLOP/s; load average {timing.environment()['loadavg']}\n")
    rng = np.random.default_rng(0)
    layers = [layer for width in args.widths for layer in vgg_layers(width)] + RESNET_LAYERS
    rows = []
    for channels, filters, size, stride in layers:
        x = rng.standard_normal((128, channels, size, size)).astype(args.dtype)
        w = rng.standard_normal((filters, channels, 3, 3)).astype(args.dtype)
        grad_y = np.ones_like(cnnative.conv2d(x, w, None, stride, 1))
        gflop = 2 * grad_y.size * channels * 9 / 1e9
        calls = {
            "forward": lambda: cnnative.conv2d(x, w, None, stride, 1),
            "weights": lambda: cnnative.conv2d_backward(grad_y, x, w, stride, 1, need_grad_x=False),
            "both": lambda: cnnative.conv2d_backward(grad_y, x, w, stride, 1),
        }
        if torch is not None:
            tx, tw, tg = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(grad_y)

            def torch_backward(mask):
                return lambda: torch.ops.aten.convolution_backward(
                    tg, tx, tw, None, [stride] * 2, [1, 1], [1, 1], False, [0, 0], 1, mask)

            calls["torch forward"] = lambda: torch.nn.functional.conv2d(tx, tw, None, stride, 1)
            calls["torch weights"] = torch_backward([False, True, False])
            calls["torch input"] = torch_backward([True, False, False])
        times = {name: [] for name in calls}
        for repeat in range(args.repeats + 1):
            for name, call in calls.items():
                start = time.thread_time()
                call()
                if repeat:  # the first round warms up
                    times[name].append(time.thread_time() - start)
        median = {name: statistics.median(values) for name, values in times.items()}
        parts = [("forward", median["forward"], median.get("torch forward")),
                 ("weight grad", median["weights"], median.get("torch weights")),
                 ("input grad", median["both"] - median["weights"], median.get("torch input"))]
        if channels == 1:
            parts.pop()  # a first layer's input gradient is never needed
        for name, seconds, theirs in parts:
            rate = gflop / seconds
            rows.append([f"({channels}, {size}x{size}) -> {filters}, stride {stride}", name,
                         timing.format_us(seconds), f"{rate:.0f}", f"{rate / peak:.0%}",
                         timing.format_ratio(theirs / seconds) if theirs else "-"])
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    print(timing.markdown_table(["layer (batch 128, 3x3, pad 1)", "product", "µs (CPU)",
                                 "GFLOP/s", "of peak", "torch / cnnative"], rows))


if __name__ == "__main__":
    sys.exit(main())
