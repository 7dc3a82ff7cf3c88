"""Deep SVDD (Ruff et al., "Deep One-Class Classification", ICML 2018) with its autoencoder, as a cue generator.

Followed: the paper, Sec. 3 (one-class objective, Eq. 4) and Sec. 4.1 (LeNet-type networks, autoencoder
pre-training, the centre c fixed to the mean of the initial network outputs, no bias terms and no bounded
activations in the network so that the trivial "all weights zero" solution is out of reach), and the official code,
github.com/lukasruff/Deep-SVDD-PyTorch (``src/networks/cifar10_LeNet.py``: 5x5 convolutions without bias,
BatchNorm with eps 1e-4 and no affine parameters, LeakyReLU, 2x2 max-pooling, a bias-free linear layer to
``rep_dim``; its autoencoder's decoder reshapes the code to ``rep_dim / g^2`` channels at g x g and mirrors the
encoder with 5x5 transposed convolutions and x2 upsampling; ``src/optim/deepSVDD_trainer.py``: ``init_center_c``
with eps 0.1, the mean squared distance to c as the loss).

As AG-FAS uses it for cues, the reconstruction is the pre-trained decoder applied to the encoder's output (after the
one-class training the encoder has moved, the decoder not). Assumptions: the decoder ends in tanh, not the official
sigmoid, because inputs here are in [-1, 1]; the encoder gets one conv/pool stage per halving of the image (the
official 32 px network has three). Architectures: ``fas/model_configs/deepsvdd*.json``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def read_model_config(name: str) -> dict:
    from fas.models import read_model_config as read

    return read(name, "Deep SVDD", ("deepsvdd",))


def norm(width: int) -> nn.BatchNorm2d:
    """BatchNorm without affine parameters: no bias term hides in it (the official code's choice)."""
    return nn.BatchNorm2d(width, eps=1e-4, affine=False)


class Encoder(nn.Module):
    """(B, 3, S, S) -> (B, rep_dim), bias-free throughout: the network phi of the one-class objective."""

    def __init__(self, channels: list[int], kernel_size: int, rep_dim: int, grid: int):
        super().__init__()
        layers, width = [], 3
        for out in channels:
            layers += [nn.Conv2d(width, out, kernel_size, padding=kernel_size // 2, bias=False), norm(out),
                       nn.LeakyReLU(), nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width * grid * grid, rep_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class Decoder(nn.Module):
    """(B, rep_dim) -> (B, 3, S, S) in [-1, 1]: the code as ``rep_dim / grid^2`` channels at grid x grid, then
    one transposed convolution + x2 upsampling per encoder stage, and one to RGB."""

    def __init__(self, channels: list[int], kernel_size: int, rep_dim: int, grid: int):
        super().__init__()
        self.grid = grid
        widths, layers = [rep_dim // grid ** 2, *reversed(channels)], []
        for width, out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(width, out, kernel_size, padding=kernel_size // 2, bias=False), norm(out),
                       nn.LeakyReLU(), nn.Upsample(scale_factor=2)]
        layers += [nn.ConvTranspose2d(channels[0], 3, kernel_size, padding=kernel_size // 2, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(F.leaky_relu(z.view(len(z), -1, self.grid, self.grid)))


class DeepSVDD(nn.Module):
    """The autoencoder (``encoder`` + ``decoder``) and the hypersphere centre ``center`` (a buffer: saved and
    resumed with the weights; zero until the one-class phase sets it)."""

    def __init__(self, image_size: int, channels: list[int], rep_dim: int = 128, kernel_size: int = 5):
        super().__init__()
        grid = image_size // 2 ** len(channels)
        if grid < 1 or image_size % 2 ** len(channels) or rep_dim % grid ** 2:
            raise ValueError(f"Deep SVDD: image_size {image_size} must be divisible by 2^{len(channels)} (one "
                             f"pooling per stage) and rep_dim {rep_dim} by the code grid's {grid}x{grid} cells")
        self.encoder = Encoder(channels, kernel_size, rep_dim, grid)
        self.decoder = Decoder(channels, kernel_size, rep_dim, grid)
        self.register_buffer("center", torch.zeros(rep_dim))

    @classmethod
    def from_config(cls, arch: dict) -> "DeepSVDD":
        return cls(arch["image_size"], list(arch["channels"]), arch.get("rep_dim", 128), arch.get("kernel_size", 5))

    def forward(self, x: torch.Tensor, decode: bool = True) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        return {"encoding": z, **({"reconstruction": self.decoder(z)} if decode else {})}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)).float()


def svdd_center(encodings: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """The mean encoding, with every coordinate closer to 0 than ``eps`` pushed out to +-eps by its sign (a zero
    coordinate can be matched trivially by zero weights; an exact 0 stays 0, as in the official code)."""
    c = encodings.float().mean(dim=0)
    near = c.abs() < eps
    return torch.where(near & (c > 0), eps, torch.where(near & (c < 0), -eps, c))


def svdd_loss(encodings: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """One-class Deep SVDD: the mean squared distance of the encodings to the centre (paper Eq. 4, without its
    weight-decay term, which the optimizer applies)."""
    return (encodings.float() - center.float()).pow(2).sum(dim=1).mean()


def create_deepsvdd(name: str = "deepsvdd") -> DeepSVDD:
    return DeepSVDD.from_config(read_model_config(name))
