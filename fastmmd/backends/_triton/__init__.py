"""Triton kernels of the GPU backend (fastmmd.backends.triton): the kernel epilogue, the tiled value
reduction, the fused gradient kernels, the coefficient chunks of the large-d gradient path and the
kernel-matrix product K(a, b) @ v.

Importing this package imports triton; the backend imports it only when it is first used.
"""
