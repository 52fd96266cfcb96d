"""2-D max and average pooling (with backward passes) for float32/float64 planes."""
import enum

import numpy as np

class Status(enum.IntEnum):
    STATUS_OK = 0
    STATUS_BAD_INDEX = 1

def simd_info() -> tuple[str, str]: ...
def set_simd_cap(level: int) -> int: ...
def max_pool2d_planes(x: np.ndarray, y: np.ndarray, indices: np.ndarray,
                      kernel_size: tuple[int, int], stride: tuple[int, int],
                      padding: tuple[int, int], start: int, stop: int,
                      counter: np.ndarray | None = None, claim: int = 1) -> None: ...
def max_pool2d_backward_planes(grad_y: np.ndarray, indices: np.ndarray, grad_x: np.ndarray,
                               start: int, stop: int, counter: np.ndarray | None = None,
                               claim: int = 1) -> int: ...
def avg_pool2d_planes(x: np.ndarray, y: np.ndarray, kernel_size: tuple[int, int],
                      stride: tuple[int, int], padding: tuple[int, int],
                      count_include_pad: bool, start: int, stop: int,
                      counter: np.ndarray | None = None, claim: int = 1) -> None: ...
def avg_pool2d_backward_planes(grad_y: np.ndarray, grad_x: np.ndarray,
                               kernel_size: tuple[int, int], stride: tuple[int, int],
                               padding: tuple[int, int], count_include_pad: bool, start: int,
                               stop: int, counter: np.ndarray | None = None,
                               claim: int = 1) -> None: ...
def global_avg_pool_planes(x: np.ndarray, y: np.ndarray, start: int, stop: int,
                           counter: np.ndarray | None = None, claim: int = 1) -> None: ...
def global_avg_pool_backward_planes(grad_y: np.ndarray, grad_x: np.ndarray, start: int,
                                    stop: int, counter: np.ndarray | None = None,
                                    claim: int = 1) -> None: ...
