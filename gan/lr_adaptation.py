"""Learning-rate adaptation by the relative three-sample test (Demystifying MMD GANs, Bińkowski et al. 2018;
the `Scorer` of its code and of the Scaled-MMD-GAN code; docs/gan_recipes.md).

Every `every` generator steps: X = fixed real features, Y = features of new generated samples, Z = the oldest
of the kept generated features. Until `lookback` of them are kept, Y is only kept. Then
p = fastmmd.relative_mmd_test(X, Y, Z).p_value (KID kernel), and
- p ≤ 0.1 (Y is significantly closer to X than Z): a success; Y replaces the oldest kept, the count resets;
- p > 0.1: a failure; Y is dropped (the next test is against the same Z), and on the `patience`-th failure in
  a row every learning rate becomes max(lr · decay, 1e-6), the count resets and only the newest `patience`
  features (Y among them) are kept, so that testing resumes once `lookback` are kept again.
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
        """Keep or test fake (m, F) as above, decaying the learning rates of `optimizers` on the `patience`-th
        consecutive failure. Returns the test's log, or None when fake was only kept."""
        fake = fake.detach().cpu()
        if len(self.history) < self.lookback:
            self.history.append(fake)
            return None
        test = fastmmd.relative_mmd_test(real.double(), fake.double(), self.history[0].double())
        decayed = False
        if test.p_value > self.threshold:
            self.failures += 1
            if self.failures >= self.patience:
                decayed = True
                self.failures = 0
                self.history = (self.history + [fake])[-self.patience:]
                for optimizer in optimizers:
                    for group in optimizer.param_groups:
                        group["lr"] = max(group["lr"] * self.decay, MIN_LR)
        else:
            self.failures = 0
            self.history = self.history[1:] + [fake]
        return {"lr_test_p": float(test.p_value), "lr_decayed": int(decayed)}

    def state_dict(self) -> Dict:
        return {"failures": self.failures, "history": list(self.history)}

    def load_state_dict(self, state: Dict) -> None:
        self.failures = int(state["failures"])
        self.history = list(state["history"])
