"""Direct 2-D correlation and convolution for float32/float64, bit-identical to scipy.signal."""
import enum

import numpy as np
import numpy.typing as npt

class Mode(enum.IntEnum):
    MODE_VALID = 0
    MODE_SAME = 1
    MODE_FULL = 2

class Boundary(enum.IntEnum):
    BOUNDARY_FILL = 0
    BOUNDARY_SYMM = 1
    BOUNDARY_WRAP = 2

ROUNDING_PATTERNS: dict[str, int]

SIMD_LEVEL_NAMES: dict[int, str]

def rounding() -> int: ...
def fused_available() -> bool: ...
def set_rounding(rounding: int) -> int: ...

def simd_info() -> tuple[str, str]: ...
def set_simd_cap(level: int) -> int: ...
def correlate_direct(image: np.ndarray, kernel: np.ndarray, flip: bool, mode: int, boundary: int,
                     fillvalue: float, out: np.ndarray | None = None, start: int = 0,
                     stop: int | None = None, counter: np.ndarray | None = None,
                     claim: int = 1, parts: int = 0) -> npt.NDArray[np.floating]: ...
def correlate_small(in1: object, in2: object, mode: object, boundary: object, fillvalue: object,
                    method: object, flip: bool, max_work: float) -> npt.NDArray[np.floating] | None: ...
