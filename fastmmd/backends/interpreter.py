"""Whether the Triton kernels run under Triton's interpreter (on CPU tensors, as the tests do without a GPU)."""
from __future__ import annotations

import os

__all__ = ["interpreting"]


def interpreting() -> bool:
    """Whether Triton runs its interpreter (TRITON_INTERPRET=1, read when triton is imported)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
