"""PDLE: a ResNet-18 encoder whose K+1-way head gives an expected liveness score, plus a domain head behind a
gradient-reversal layer (Jung et al., "Liveness score-based regression neural networks for face anti-spoofing").

The head has one output per liveness level c_i = i/K (i = 0..K); the liveness score is the expectation
rho = sum_i c_i p_i, so it lies in [0, 1] by construction. The paper writes the level spacing as
ceil((y_r - y_s)/K); with y_r = 1 (real) and y_s = 0 (spoof) we read it as 1/K.
A two-level head (K = 1) is the binary-classification baseline: rho is then P(real).

Architectures are small JSON files in ``fas/model_configs`` (``pdle-resnet18``, ``pdle-tiny``); pretrained encoder
weights are resolved apart from them (``fas.models.weights``).
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from fas.models import read_model_config
from fas.models.layers import reverse_gradient
from fas.models.weights import WeightRef, load_backbone_weights, timm_weights


def liveness_levels(num_levels: int) -> torch.Tensor:
    """c_0 = 0, c_i = i/K, c_K = 1 for K = num_levels - 1."""
    return torch.linspace(0.0, 1.0, num_levels)


def expected_liveness(logits: torch.Tensor) -> torch.Tensor:
    """rho = sum_i c_i softmax(logits)_i, in [0, 1]."""
    levels = liveness_levels(logits.shape[-1]).to(logits.device, torch.float32)
    return logits.float().softmax(dim=-1) @ levels


class PDLENet(nn.Module):
    """Encoder -> (liveness-level logits, liveness score, domain logits through gradient reversal)."""

    def __init__(self, encoder: nn.Module, num_levels: int, num_domains: int = 0, domain_hidden: int = 256):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.num_features, num_levels)
        self.domain_head = None
        if num_domains > 1:
            self.domain_head = nn.Sequential(nn.Linear(encoder.num_features, domain_hidden), nn.ReLU(inplace=True),
                                             nn.Linear(domain_hidden, num_domains))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.encoder.set_grad_checkpointing(enable)  # timm's switch

    def forward(self, images: torch.Tensor, grl_coeff: float = 1.0) -> dict[str, torch.Tensor]:
        features = self.encoder(images)
        logits = self.head(features)
        out = {"logits": logits, "score": expected_liveness(logits)}
        if self.domain_head is not None:
            out["domain_logits"] = self.domain_head(reverse_gradient(features, grl_coeff))
        return out

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.head(self.encoder(images))
        return {"score": expected_liveness(logits), "levels": logits.float().softmax(dim=-1)}


def encoder_weights(model: str, pretrained: str | None) -> WeightRef:
    arch = read_model_config(model, "PDLE", ("pdle-",))
    return timm_weights(f"PDLE encoder {arch['encoder']}", pretrained, arch.get("pretrained_hub", {}))


def config_weights(cfg) -> list[WeightRef]:
    """Every pretrained file a PDLE config needs (``fas doctor``)."""
    return [encoder_weights(cfg.model, cfg.pretrained)]


def create_pdle(model: str = "pdle-resnet18", pretrained: str | None = None, num_levels: int = 11,
                num_domains: int = 0) -> PDLENet:
    """Build PDLE from an architecture config; ``pretrained`` names encoder weights (file or the config's hub tag)."""
    arch = read_model_config(model, "PDLE", ("pdle-",))
    weights = encoder_weights(model, pretrained).resolve()
    encoder = timm.create_model(arch["encoder"], pretrained=False, num_classes=0, **arch.get("encoder_kwargs", {}))
    if weights:
        load_backbone_weights(encoder, weights)
    return PDLENet(encoder, num_levels, num_domains, arch.get("domain_hidden", 256))
