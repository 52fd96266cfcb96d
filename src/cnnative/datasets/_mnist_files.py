"""The published MNIST and Fashion-MNIST files: names, sizes, SHA-256 digests, mirrors, download.

Both datasets use the same four file names and the same shapes, so a decompressed file of the
standard size is one of two known contents.  Digests of the decompressed files are what
``load_mnist`` checks: they hold whatever the compression (Debian, for one, ships Fashion-MNIST
re-compressed, with .gz files that differ from the published ones but decompress to the same
bytes).  Digests of the published .gz files are what ``download_mnist`` checks.

Sources: every digest below is quoted identically by several independent projects that
download these files; in addition, the four decompressed Fashion-MNIST digests were recomputed
from Debian's ``dataset-fashion-mnist`` package.  The MNIST files were not at hand to recompute.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from typing import Iterable

from .._files import atomic_write

# Canonical file name (without .gz) -> (decompressed size, {sha256 of decompressed bytes: dataset}).
STANDARD_CONTENTS: dict[str, tuple[int, dict[str, str]]] = {
    "train-images-idx3-ubyte": (47_040_016, {
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db": "MNIST",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888": "Fashion-MNIST",
    }),
    "train-labels-idx1-ubyte": (60_008, {
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5": "MNIST",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9": "Fashion-MNIST",
    }),
    "t10k-images-idx3-ubyte": (7_840_016, {
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7": "MNIST",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b": "Fashion-MNIST",
    }),
    "t10k-labels-idx1-ubyte": (10_008, {
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2": "MNIST",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34": "Fashion-MNIST",
    }),
}

# Dataset -> {published .gz name: (size, sha256)}.
PUBLISHED_GZ: dict[str, dict[str, tuple[int, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": (9_912_422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte.gz": (28_881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte.gz": (1_648_877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte.gz": (4_542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": (26_421_880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte.gz": (29_515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte.gz": (4_422_102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte.gz": (5_148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
}

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        # Plain HTTP is safe enough here: every download is checked against its SHA-256.
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}


class ChecksumError(ValueError):
    """A file that claims to be a published dataset file has other contents."""


def check_standard(path: str, stem: str, size: int, digest: str,
                   dataset: str | None = None) -> None:
    """ChecksumError if ``stem`` is a canonical name, ``size`` its standard size, and
    ``digest`` none of the known contents (or, given ``dataset``, not that dataset's content).
    Other files pass unchecked."""
    standard = STANDARD_CONTENTS.get(stem)
    if standard is None or size != standard[0]:
        return
    found = standard[1].get(digest)
    if found is not None and dataset in (None, found):
        return
    if found is not None:
        # Both datasets share names and sizes, so only the digest tells a mix-up of directories.
        raise ChecksumError(f"{path}: holds the published {found} file, not {dataset}'s: the "
                            "directory has the wrong dataset")
    known = ", ".join(f"{sha} ({name})" for sha, name in standard[1].items()
                      if dataset in (None, name))
    raise ChecksumError(f"{path}: has the name and size ({size} bytes decompressed) of a published "
                        f"dataset file but SHA-256 {digest}; expected one of {known}. The file "
                        "is damaged or altered; download it again, or pass verify=False")


def _file_sha256(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def download(directory: str, dataset: str, mirrors: Iterable[str] | None, timeout: float) -> str:
    """Fetch the four .gz files of ``dataset`` into ``directory``; see datasets.download_mnist."""
    func = "download_mnist"
    files = PUBLISHED_GZ[dataset]
    mirrors = MIRRORS[dataset] if mirrors is None else tuple(mirrors)
    if not mirrors or not all(isinstance(m, str) for m in mirrors):
        raise TypeError(f"{func}: mirrors must be a non-empty sequence of URL prefixes, "
                        f"got {mirrors!r}")
    os.makedirs(directory, exist_ok=True)
    for name, (size, sha256) in files.items():
        target = os.path.join(directory, name)
        if (os.path.isfile(target) and os.path.getsize(target) == size
                and _file_sha256(target) == sha256):
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    # One byte more than expected is enough to tell an oversized answer.
                    payload = response.read(size + 1)
            except (OSError, ValueError) as error:
                failures.append(f"{url}: {error}")
                continue
            got = hashlib.sha256(payload).hexdigest()
            if len(payload) != size or got != sha256:
                failures.append(f"{url}: got {len(payload)} bytes with SHA-256 {got}, expected "
                                f"{size} bytes with SHA-256 {sha256}")
                continue
            atomic_write(target, lambda stream: stream.write(payload), func)
            break
        else:
            raise OSError(f"{func}: could not fetch {name}:\n  " + "\n  ".join(failures))
    return directory
