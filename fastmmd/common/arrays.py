"""numpy in, numpy out: the public ops accept numpy arrays wherever they accept tensors.

`as_tensors(x=x, y=y)` turns the inputs into tensors (sharing memory with the arrays where numpy allows it)
and returns an `OutputKind` that turns the op's result back: numpy when any input was a numpy array,
tensors otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch

from fastmmd.common.validation import check_array_like


@dataclass(frozen=True)
class OutputKind:
    """How to return results: as numpy (`numpy=True`) or as the tensors they are."""

    numpy: bool

    def __call__(self, result: torch.Tensor) -> object:
        """A tensor result in the caller's kind; a 0-dim result becomes a numpy scalar (np.float32/64)."""
        if not self.numpy:
            return result
        array = result.detach().cpu().numpy()
        return array[()] if array.ndim == 0 else array


def array_to_tensor(array: np.ndarray, name: str) -> torch.Tensor:
    """A CPU tensor viewing `array` without a copy, or a copy when numpy's layout rules it out
    (read-only, negative strides, non-native byte order)."""
    # float16 passes here and is refused (on CPU) by the tensor checks with the same message as a tensor.
    if array.dtype.kind != "f" or array.dtype.itemsize > 8:
        raise TypeError(f"{name} must be a floating-point array (float32 or float64); got numpy dtype {array.dtype}")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if not array.flags.writeable or any(s < 0 for s in array.strides):
        array = np.array(array, copy=True)
    return torch.from_numpy(array)


def as_tensors(**named: object) -> Tuple[Tuple[torch.Tensor, ...], OutputKind]:
    """The named inputs as tensors (in the order given), and the kind to return results in."""
    tensors = []
    any_numpy = False
    for name, value in named.items():
        check_array_like(value, name)
        if isinstance(value, np.ndarray):
            any_numpy = True
            value = array_to_tensor(value, name)
        tensors.append(value)
    return tuple(tensors), OutputKind(numpy=any_numpy)
