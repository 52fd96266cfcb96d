"""Batch normalisation over the channels of (N, C, S) float32/float64 arrays, fused per channel."""
import numpy as np

def simd_info() -> tuple[str, str]: ...
def set_simd_cap(level: int) -> int: ...
def batch_norm_train(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
                     y: np.ndarray, mean: np.ndarray, inv_std: np.ndarray, var: np.ndarray,
                     start: int, stop: int, counter: np.ndarray | None = None,
                     claim: int = 1, given: np.ndarray | None = None,
                     count: float = 0.0) -> None: ...
def batch_norm_eval(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
                    inv_std: np.ndarray, y: np.ndarray, start: int, stop: int,
                    counter: np.ndarray | None = None, claim: int = 1) -> None: ...
def batch_norm_backward(grad_y: np.ndarray, x: np.ndarray, gamma: np.ndarray, mean: np.ndarray,
                        inv_std: np.ndarray, training: bool, grad_x: np.ndarray,
                        grad_gamma: np.ndarray, grad_beta: np.ndarray, start: int, stop: int,
                        counter: np.ndarray | None = None, claim: int = 1,
                        given: np.ndarray | None = None, count: float = 0.0) -> None: ...
def channel_sums(kind: int, a: np.ndarray, b: np.ndarray | None = None,
                 center: np.ndarray | None = None) -> np.ndarray: ...
