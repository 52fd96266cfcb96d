"""cnnative.correlate2d against scipy.signal.correlate2d, fftconvolve and torch.

The benchmark itself is ``cnnative.bench`` (also ``cnnative bench``); run from here, its
results go to benchmarks/results/.  ``--help`` lists the options.
"""
import os
import sys

from cnnative import bench

if __name__ == "__main__":
    sys.exit(bench.main(results=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                             "results")))
