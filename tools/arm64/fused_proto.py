"""Checks the prototype fused kernel (tools/arm64/fused_proto.c) against the installed scipy.

    python tools/arm64/fused_proto.py [--cases 2000] [--seed 5]

Compiles fused_proto.c with the modules' flags (-O3 -ffp-contract=off -fno-math-errno) against
native/corr_simd.h, then for random correlate2d/convolve2d cases (modes valid and full, fill
boundary, float32 and float64, images 1-40, kernels 1-9) runs the header's kernel over the
padded frame as correlate.pyx does, in three variants: the unfused kernel of today, the fused
scalar kernel, and (on aarch64) the fused NEON kernel; counts results bit-identical to scipy.
('same' is a window of 'full' with the fill boundary, and symm/wrap change only the frame, so
these cover the kernels' arithmetic.)
"""
import argparse
import ctypes
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np
import scipy.signal

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE = os.path.join(HERE, "..", "..", "native")


def build():
    so = os.path.join(tempfile.gettempdir(), f"cnnative-fused-proto-{platform.machine()}.so")
    subprocess.run(["cc", "-O3", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC",
                    "-w", "-I", NATIVE, "-o", so, os.path.join(HERE, "fused_proto.c"), "-lm"],
                   check=True)
    lib = ctypes.CDLL(so)
    for name in ("proto_corr_f32", "proto_corr_f64"):
        getattr(lib, name).restype = None
    return lib


def run(lib, image, kernel, mode, fill, flip, variant):
    T = image.dtype
    J, K = kernel.shape
    if mode == "full":
        frame = np.pad(image, ((J - 1, J - 1), (K - 1, K - 1)), constant_values=T.type(fill))
    else:
        frame = image
    frame = np.ascontiguousarray(frame)
    rows, cols = frame.shape[0] - J + 1, frame.shape[1] - K + 1
    out = np.empty((rows, cols), T)
    coef = np.ascontiguousarray(kernel)
    coloff = np.array([K - 1 - k if flip else k for k in range(K)], np.intp)
    fn = lib.proto_corr_f32 if T == np.float32 else lib.proto_corr_f64
    p = lambda a: ctypes.c_void_p(a.ctypes.data)  # noqa: E731
    fn(p(frame), ctypes.c_ssize_t(frame.shape[1]), p(out), ctypes.c_ssize_t(cols),
       ctypes.c_ssize_t(rows), ctypes.c_ssize_t(cols), p(coef), p(coloff), ctypes.c_ssize_t(J),
       ctypes.c_ssize_t(K), ctypes.c_int(int(flip)), ctypes.c_int(variant))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    lib = build()
    variants = {0: "unfused (today)", 1: "fused scalar"}
    if lib.proto_have_neon():
        variants[2] = "fused neon"
    rng = np.random.default_rng(args.seed)
    hits = dict.fromkeys(variants, 0)
    for _ in range(args.cases):
        func = ("correlate2d", "convolve2d")[rng.integers(2)]
        mode = ("valid", "full")[rng.integers(2)]
        dtype = (np.float32, np.float64)[rng.integers(2)]
        h, w = (int(v) for v in rng.integers(1, 41, size=2))
        kh, kw = (int(v) for v in rng.integers(1, 10, size=2))
        if mode == "valid":
            kh, kw = min(kh, h), min(kw, w)
        image = rng.standard_normal((h, w)).astype(dtype)
        kernel = rng.standard_normal((kh, kw)).astype(dtype)
        fill = float(np.round(rng.standard_normal(), 3)) if rng.integers(2) else 0.0
        ref = getattr(scipy.signal, func)(image, kernel, mode, "fill", fill)
        for v in variants:
            got = run(lib, image, kernel, mode, fill, func == "convolve2d", v)
            hits[v] += got.shape == ref.shape and got.tobytes() == ref.tobytes()
    print(f"{platform.machine()}, scipy {scipy.__version__}: {args.cases} cases")
    for v, name in variants.items():
        print(f"  {name:16s} {hits[v]:5d} of {args.cases} bit-identical to scipy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
