"""fastmmd.metrics: KID and MMD as stateful metrics with torchmetrics' interface (update, compute, reset),
exact over all pairs by default and combined over the ranks of a process group without gathering the
features. They are torchmetrics.Metric subclasses when torchmetrics is installed (TORCHMETRICS_AVAILABLE),
and plain torch.nn.Modules with the same methods otherwise (fastmmd.metrics.base explains the states and the
ranks)."""
from fastmmd.metrics.base import TORCHMETRICS_AVAILABLE
from fastmmd.metrics.kid import KernelInceptionDistance
from fastmmd.metrics.mmd import MMD

__all__ = ["KernelInceptionDistance", "MMD", "TORCHMETRICS_AVAILABLE"]
