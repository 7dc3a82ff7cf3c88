"""Small layers more than one method uses."""

from __future__ import annotations

import math

import torch


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def reverse_gradient(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient is multiplied by ``-coeff`` backward (domain-adversarial training)."""
    return _ReverseGradient.apply(x, coeff)


def grl_ramp(progress: float) -> float:
    """Gradient-reversal coefficient 2 / (1 + exp(-10 p)) - 1 (Ganin & Lempitsky's DANN schedule, used by SSDG
    and SSAN): 0 at the start, ~1 at the end (p in [0, 1])."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0
