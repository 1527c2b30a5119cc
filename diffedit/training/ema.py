"""Exponential moving average of the weights: the model that is saved and sampled.

The averaged copy is a full module (a deep copy of the UNet), so it saves with diffusers'
`save_pretrained` like any UNet. The decay warms up as min(decay, (1 + n) / (10 + n)): with a fixed
0.999 a short run would save weights still close to the random initialisation.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.current_decay()
        for avg, p in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.lerp_(p.detach().to(avg.dtype), 1.0 - d)
        for avg_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            avg_b.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
