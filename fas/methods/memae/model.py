"""MemAE (Gong et al., "Memorizing Normality to Detect Anomaly", ICCV 2019): a convolutional autoencoder whose
decoder sees only a mix of memory items, never the encoding itself, so what it can rebuild is what the memory
learnt of the real faces.

Followed: the paper, Sec. 3.2-3.5 (Eqs. 4-10), and the official code, github.com/donggong1/memae-anomaly-detection
(``models/memory_module.py``, ``models/entropy_loss.py``, ``models/memae_3dconv.py``, ``script_training.py``):

- every C-dim feature vector of the encoder's map is a query that addresses N memory slots: weights = softmax over
  slots of the cosine similarity (paper Eq. 5; the official code uses the plain dot product: ``"addressing":
  "dot"`` in the model config);
- hard shrinkage in its ReLU form, max(w - lambda, 0) * w / (|w - lambda| + eps), then L1 re-normalisation
  (paper Eq. 7); lambda defaults to 1/N (the paper's advice: a value in [1/N, 3/N]);
- the readout (weights x memory) replaces the query; the decoder mirrors the encoder with transposed convolutions;
- loss = reconstruction MSE + alpha x the addressing weights' entropy averaged over the queries (paper Eq. 10,
  alpha = 0.0002; the MSE averaged over pixels as in the official script).

2-D rather than the official 3-D video network: stride-2 3x3 convolutions, BatchNorm and LeakyReLU(0.2) per layer,
the same widths pattern; the memory items are initialised uniform in +-1/sqrt(C) as there. Addressing runs in fp32
(fp16 softmax over thousands of slots and its log underflow). Architectures: ``fas/model_configs/memae*.json``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ADDRESSING = ("cosine", "dot")


def read_model_config(name: str) -> dict:
    from fas.models import read_model_config as read

    return read(name, "MemAE", ("memae",))


def hard_shrink(weights: torch.Tensor, threshold: float, eps: float = 1e-12) -> torch.Tensor:
    """Addressing weights (rows sum to 1) with every weight at or below ``threshold`` set to 0 (continuous: ReLU
    based, so it backpropagates) and each row re-normalised to sum to 1."""
    shifted = weights - threshold
    return F.normalize(F.relu(shifted) * weights / (shifted.abs() + eps), p=1, dim=-1)


def addressing_entropy(weights: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean over the rows (queries) of the entropy -sum_i w_i log w_i: low when each query uses few slots."""
    return -(weights * torch.log(weights + eps)).sum(dim=-1).mean()


class Memory(nn.Module):
    """N slots of C-dim items addressed by every feature vector of a (B, C, H, W) map."""

    def __init__(self, slots: int, dim: int, threshold: float | None = None, addressing: str = "cosine"):
        super().__init__()
        if addressing not in ADDRESSING:
            raise ValueError(f"MemAE addressing must be one of {ADDRESSING}, not {addressing!r}")
        bound = 1.0 / math.sqrt(dim)
        self.items = nn.Parameter(torch.empty(slots, dim).uniform_(-bound, bound))
        self.threshold = 1.0 / slots if threshold is None else float(threshold)
        self.addressing = addressing

    def address(self, queries: torch.Tensor) -> torch.Tensor:
        """(T, C) queries -> (T, N) shrunk addressing weights, in fp32."""
        items = self.items.float()
        if self.addressing == "cosine":
            queries, items = F.normalize(queries, dim=-1), F.normalize(items, dim=-1)
        weights = (queries @ items.T).softmax(dim=-1)
        return hard_shrink(weights, self.threshold) if self.threshold > 0 else weights

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(readout of the same shape as ``z``, addressing weights (B*H*W, N))."""
        b, c, h, w = z.shape
        weights = self.address(z.permute(0, 2, 3, 1).reshape(-1, c).float())
        readout = (weights @ self.items.float()).view(b, h, w, c).permute(0, 3, 1, 2)
        return readout.to(z.dtype), weights


def encoder(channels: list[int]) -> nn.Sequential:
    layers, width = [], 3
    for out in channels:
        layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
        width = out
    return nn.Sequential(*layers)


def decoder(channels: list[int]) -> nn.Sequential:
    """The encoder mirrored: one stride-2 transposed convolution per encoder layer, the last one to RGB."""
    widths, layers = [*reversed(channels), 3], []
    for i, (width, out) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.ConvTranspose2d(width, out, 3, stride=2, padding=1, output_padding=1))
        if i < len(widths) - 2:
            layers += [nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class MemAE(nn.Module):
    def __init__(self, image_size: int, channels: list[int], memory_slots: int,
                 shrink_threshold: float | None = None, addressing: str = "cosine"):
        super().__init__()
        if image_size % 2 ** len(channels):
            raise ValueError(f"MemAE: image_size {image_size} must be divisible by 2^{len(channels)} (one halving "
                             "per encoder layer)")
        self.encoder, self.decoder = encoder(channels), decoder(channels)
        self.memory = Memory(memory_slots, channels[-1], shrink_threshold, addressing)

    @classmethod
    def from_config(cls, arch: dict) -> "MemAE":
        return cls(arch["image_size"], list(arch["channels"]), arch["memory_slots"], arch.get("shrink_threshold"),
                   arch.get("addressing", "cosine"))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        readout, weights = self.memory(self.encoder(x))
        return {"reconstruction": self.decoder(readout), "attention": weights}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction in the input's [-1, 1] range: the anomalous cue's other half."""
        return self.forward(x)["reconstruction"].float().clamp(-1, 1)


def memae_loss(x: torch.Tensor, out: dict[str, torch.Tensor], entropy_weight: float) -> dict[str, torch.Tensor]:
    """Reconstruction MSE + ``entropy_weight`` x addressing entropy (paper Eq. 10)."""
    reconstruction = F.mse_loss(out["reconstruction"].float(), x.float())
    entropy = addressing_entropy(out["attention"])
    return {"loss": reconstruction + entropy_weight * entropy, "reconstruction": reconstruction.detach(),
            "entropy": entropy.detach()}


def create_memae(name: str = "memae") -> MemAE:
    """MemAE from its architecture config (a name under fas/model_configs or a JSON path)."""
    return MemAE.from_config(read_model_config(name))
