"""Exponential moving averages of network weights.

References:
    Karras et al. (2022) and k-diffusion's ``EMAWarmup``: decay = 1 - (1 + step)^-power, capped.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ema_warmup_decay", "ema_update"]


def ema_warmup_decay(step: int, *, power: float = 2 / 3, max_decay: float = 0.9999) -> float:
    """EMA decay with warm-up: ``min(max_decay, 1 - (1 + step)^-power)``, 0 at step 0."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return float(min(max_decay, max(0.0, 1 - (1 + step) ** -power)))


@torch.no_grad()
def ema_update(average: nn.Module, model: nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model`` for parameters; buffers are copied."""
    for a, p in zip(average.parameters(), model.parameters()):
        a.lerp_(p.detach().to(a.dtype), 1 - decay)
    for a, b in zip(average.buffers(), model.buffers()):
        a.copy_(b)
