"""Learning-rate adaptation by the relative three-sample test (Demystifying MMD GANs; REFERENCES.md §6).

Every `every` generator steps: X = fixed real features, Y = features of new generated samples, Z = the
generated features kept from `lookback` tests back. p = fastmmd.relative_mmd_test(X, Y, Z).p_value (KID
kernel); p > 0.1 (the generator is not significantly better than `lookback` tests ago) is a failure; after
`patience` consecutive failures every learning rate becomes max(lr · decay, 1e-6); a success resets the count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

import fastmmd

__all__ = ["RelativeTestLR"]

MIN_LR = 1e-6


@dataclass
class RelativeTestLR:
    decay: float
    every: int = 2000
    lookback: int = 10
    patience: int = 3
    threshold: float = 0.1
    failures: int = 0
    history: List[torch.Tensor] = field(default_factory=list)

    def due(self, step: int) -> bool:
        return self.every > 0 and step > 0 and step % self.every == 0

    def update(self, real: torch.Tensor, fake: torch.Tensor, optimizers) -> Optional[Dict[str, float]]:
        """Record fake (m, F); test against the features `lookback` tests back if there are any, and decay the
        learning rates of `optimizers` on the `patience`-th consecutive failure. Returns the test's log or None."""
        self.history.append(fake.detach().cpu())
        if len(self.history) <= self.lookback:
            return None
        older = self.history.pop(0)
        test = fastmmd.relative_mmd_test(real.double(), fake.double(), older.double())
        self.failures = self.failures + 1 if test.p_value > self.threshold else 0
        decayed = self.failures >= self.patience
        if decayed:
            self.failures = 0
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = max(group["lr"] * self.decay, MIN_LR)
        return {"lr_test_p": float(test.p_value), "lr_decayed": int(decayed)}

    def state_dict(self) -> Dict:
        return {"failures": self.failures, "history": list(self.history)}

    def load_state_dict(self, state: Dict) -> None:
        self.failures = int(state["failures"])
        self.history = list(state["history"])
