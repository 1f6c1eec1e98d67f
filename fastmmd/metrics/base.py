"""The stateful two-sample metric behind fastmmd.metrics: features accumulated by `update(inputs, real=...)`,
scored by `compute()`, cleared by `reset()`, in torchmetrics' interface.

When torchmetrics is installed the metrics are `torchmetrics.Metric` subclasses (Lightning's `self.log`,
`MetricCollection`, `.to(device)`, `state_dict` all work); without it they derive from `LocalMetric`, a
small `torch.nn.Module` with the same update/compute/reset and state handling, for one process or a
torch.distributed group.

States: `real_features` and `fake_features`, lists of (batch, d) tensors with dist_reduce_fx="cat", so that
torchmetrics' `sync()` gathers them as it gathers any list state. compute() does not rely on that gather:

- `sync_on_compute=True` (the default, as in torchmetrics): the score is that of the union of every rank's
  features, in rank order. When a torch.distributed group of more than one rank is initialised, the exact
  estimates run on the ring of fastmmd.distributed, each rank holding only its own features; the subset
  modes gather the features on every rank, as torchmetrics does, and draw their subsets from the union.
- `sync_on_compute=False`: each rank scores its own features.
- After an explicit `metric.sync()` (or with `dist_sync_on_step`), the states already hold the union and
  are scored in the process.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import torch
import torch.distributed as dist
from torch import nn

from fastmmd.distributed import all_gather_rows

try:  # torchmetrics is optional: the metrics are torchmetrics.Metric subclasses when it is installed.
    from torchmetrics import Metric as _TorchmetricsMetric
except ImportError:  # pragma: no cover - exercised by tests/test_metrics.py in a subprocess
    _TorchmetricsMetric = None

__all__ = ["TORCHMETRICS_AVAILABLE", "LocalMetric", "MetricBase", "TwoSampleMetric"]

TORCHMETRICS_AVAILABLE = _TorchmetricsMetric is not None


class LocalMetric(nn.Module):
    """The part of torchmetrics.Metric the metrics here use, for when torchmetrics is not installed: list
    states (`add_state`), `reset()`, `update_count`, `process_group` and the `_is_synced` flag (never set:
    there is no `sync()` without torchmetrics). forward(*args) is update(*args) and returns None."""

    def __init__(self, process_group=None, sync_on_compute: bool = True, **kwargs):
        super().__init__()
        if kwargs:
            names = ", ".join(sorted(kwargs))
            raise TypeError(f"unexpected keyword arguments: {names} (torchmetrics' Metric options need "
                            f"torchmetrics installed)")
        if not isinstance(sync_on_compute, bool):
            raise TypeError(f"sync_on_compute must be a bool; got {sync_on_compute!r}")
        self.process_group = process_group
        self.sync_on_compute = sync_on_compute
        self._defaults: dict = {}
        self._update_count = 0
        self._is_synced = False

    def add_state(self, name: str, default: list, dist_reduce_fx=None, persistent: bool = False) -> None:
        """A list state `name`, emptied by reset()."""
        if not isinstance(default, list) or default:
            raise ValueError("LocalMetric holds list states only, empty by default")
        self._defaults[name] = default
        setattr(self, name, [])

    @property
    def update_count(self) -> int:
        return self._update_count

    def reset(self) -> None:
        self._update_count = 0
        for name in self._defaults:
            getattr(self, name).clear()

    def forward(self, *args, **kwargs) -> None:
        self.update(*args, **kwargs)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # As torchmetrics' wrapped update: count the calls and keep autograd out of the stored features.
        update = cls.__dict__.get("update")
        if update is not None:
            def counted(self, *args, _update=update, **kw):
                self._update_count += 1
                with torch.no_grad():
                    return _update(self, *args, **kw)
            counted.__doc__, counted.__name__ = update.__doc__, update.__name__
            cls.update = counted


MetricBase = _TorchmetricsMetric if TORCHMETRICS_AVAILABLE else LocalMetric


def _group_size(group) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


class TwoSampleMetric(MetricBase):
    """Features of two samples ("real" and "fake"), stored per update, scored over the union of the ranks.

    Subclasses implement `_score(real, fake)` (one process: (n, d) and (m, d) tensors) and
    `_score_sharded(real, fake, group)` (every rank's own features; collective), and set `_needs_union` for
    a score that must see the gathered union (the subset modes)."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    real_features: List[torch.Tensor]
    fake_features: List[torch.Tensor]

    def __init__(self, feature: Optional[Callable] = None, reset_real_features: bool = True, **kwargs):
        union = kwargs.pop("sync_on_compute", True)
        if not isinstance(union, bool):
            raise TypeError(f"sync_on_compute must be a bool; got {union!r}")
        # torchmetrics' own gather at compute is off: compute() decides how the ranks are combined.
        super().__init__(sync_on_compute=False, **kwargs)
        if feature is not None and not callable(feature):
            raise TypeError(
                f"feature must be None (update receives features) or a callable such as an nn.Module mapping a "
                f"batch to (batch, d) features; got {type(feature).__name__}. fastmmd has no built-in Inception: "
                f"pass torchmetrics.image.fid.NoTrainInceptionV3(name='inception-v3-compat', "
                f"features_list=['2048']) (needs torch-fidelity) or your own network")
        if not isinstance(reset_real_features, bool):
            raise TypeError(f"reset_real_features must be a bool; got {reset_real_features!r}")
        self.feature = feature
        self.reset_real_features = reset_real_features
        self.union_over_ranks = union
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    _needs_union = False

    def update(self, inputs, real: bool) -> None:
        """Adds a batch to the real (real=True) or the fake (real=False) sample.

        inputs: (batch, d) features when the metric has no `feature` network, else what that network takes
        (its output must be (batch, d)). Floating point, the same d, dtype and device in every batch."""
        if not isinstance(real, bool):
            raise TypeError(f"real must be a bool (True: the batch belongs to the real sample); got {real!r}")
        features = inputs if self.feature is None else self.feature(inputs)
        name = "inputs" if self.feature is None else "feature(inputs)"
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (batch, d); got {type(features).__name__}")
        if features.dim() != 2:
            raise ValueError(f"{name} must be 2-D (batch, d); got shape {tuple(features.shape)}")
        if not features.is_floating_point():
            raise TypeError(f"{name} must be floating point; got {features.dtype}")
        stored = self.real_features + self.fake_features
        if stored:
            first = stored[0]
            if features.shape[1] != first.shape[1]:
                raise ValueError(f"{name} has {features.shape[1]} features, earlier batches {first.shape[1]}")
            if features.dtype != first.dtype:
                raise TypeError(f"{name} has dtype {features.dtype}, earlier batches {first.dtype}")
        (self.real_features if real else self.fake_features).append(features.detach())

    def compute(self):
        """The score of the stored features (see the module docstring for how ranks combine)."""
        group = self.process_group
        distributed = self.union_over_ranks and not self._is_synced and _group_size(group) > 1
        if distributed and self._needs_union:
            real = _gathered(self._local("real_features"), "real", group)
            fake = _gathered(self._local("fake_features"), "fake", group)
            return self._score(real, fake)
        if distributed:
            return self._score_sharded(self._local("real_features"), self._local("fake_features"), group)
        real, fake = self._local("real_features"), self._local("fake_features")
        for name, t in (("real", real), ("fake", fake)):
            if t.shape[0] == 0:
                raise ValueError(f"no {name} features: call update(..., real={name == 'real'}) before compute()")
        return self._score(real, fake)

    def _local(self, state: str) -> torch.Tensor:
        """The stored batches of `state` as one (n, d) tensor; the list is replaced by that tensor, so a
        later compute does not concatenate again and the batches' memory is released."""
        parts = getattr(self, state)
        if isinstance(parts, torch.Tensor):  # torchmetrics' sync leaves the gathered tensor
            return parts
        if not parts:
            return torch.empty((0, 0), device=_collective_device(self.process_group))
        if len(parts) > 1:
            parts[:] = [torch.cat(parts)]
        return parts[0]

    def forward(self, inputs, real: bool) -> None:
        """metric(inputs, real=...) is update(inputs, real=...): a one-sided batch has no score of its own."""
        self.update(inputs, real)

    def reset(self) -> None:
        """Empties the fake features, and the real ones unless reset_real_features=False."""
        kept = self.real_features
        if not self.reset_real_features:
            self.real_features = []  # reset() empties the list it finds in place
        super().reset()
        if not self.reset_real_features:
            self.real_features = kept

    def _score(self, real: torch.Tensor, fake: torch.Tensor):
        raise NotImplementedError

    def _score_sharded(self, real: torch.Tensor, fake: torch.Tensor, group):
        raise NotImplementedError


def _collective_device(group) -> torch.device:
    """Where a rank without features puts its empty tensor: the device its process group communicates on."""
    if dist.is_available() and dist.is_initialized() and dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _gathered(local: torch.Tensor, name: str, group) -> torch.Tensor:
    """Every rank's `local` (n_r, d), concatenated in rank order, on every rank (collective). Raises the
    same ValueError on every rank when a rank has no rows."""
    count = torch.tensor([local.shape[0]], dtype=torch.int64, device=local.device)
    counts = [torch.empty_like(count) for _ in range(dist.get_world_size(group))]
    dist.all_gather(counts, count, group=group)
    empty = [rank for rank, c in enumerate(counts) if int(c) == 0]
    if empty:
        raise ValueError(f"no {name} features on rank(s) {empty}: every rank needs features of both samples "
                         f"before compute()")
    return all_gather_rows(local, group=group).detach()
