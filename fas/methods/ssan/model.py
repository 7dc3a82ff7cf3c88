"""SSAN-R: the Shuffled Style Assembly Network on a ResNet-18 (Wang et al., "Domain Generalization via Shuffled
Style Assembly for Face Anti-Spoofing", CVPR 2022), after the official ``networks/SSAN_R.py`` and ``solver.py``
(github.com/wangzhuo2019/SSAN).

A ResNet-18 cut after layer3 is shared. Content: layer3's map through one more strided conv (the official
``layer4``), whose pooled vector also feeds a domain discriminator behind gradient reversal. Style: the maps of
layers 1-3 merged by strided convs with instance norm, global max pooling and a small MLP give an AdaIN scale and
shift (gamma, beta) per channel. Style assembly layers re-style the content with a sample's own (gamma, beta)
(self-assembly: what the classifier and inference use) or another sample's (shuffled assembly, training only).

Assumptions and differences from the official code, all deliberate:
- the style assembly layer is conv -> AdaIN -> ReLU -> conv -> AdaIN plus a residual, as the paper draws it (the
  official ``ResnetAdaINBlock`` overwrites ``out`` with functions of ``x`` on every line, so it computes
  ``x + AdaIN(x)`` and its convs are unused);
- AdaIN normalises with ``F.instance_norm`` (biased variance, the standard AdaIN) where the official code uses the
  unbiased one;
- the shuffled styles are a derangement (every sample gets another sample's style; ``torch.randperm`` may leave a
  sample its own) and are the same batch's (gamma, beta) permuted, not a second forward pass of the permuted images
  (identical values: batch norm sees the same set of images);
- the gradient really is reversed, with the ramp 2 / (1 + exp(-10 p)) - 1 the official ``GRL`` intends (its legacy
  ``nn.Module.backward`` is never called by autograd, so the official domain loss is in fact minimised).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fas.methods.ssan.common import backbone_weights, create_backbone, read_arch
from fas.models.layers import reverse_gradient


def adain(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Instance-normalise ``x`` (B, C, H, W) and give each channel the style's std ``gamma`` and mean ``beta``."""
    return F.instance_norm(x, eps=eps) * gamma[:, :, None, None] + beta[:, :, None, None]


class StyleAssembly(nn.Module):
    """One style assembly layer (SAL): conv -> AdaIN -> ReLU -> conv -> AdaIN, plus the input."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out = F.relu(adain(self.conv1(x), gamma, beta))
        return x + adain(self.conv2(out), gamma, beta)


def conv_block(c_in: int, c_out: int, norm: type, relu: bool = True) -> nn.Sequential:
    """3x3 stride-2 conv + norm (+ ReLU): the official code's content, style and final convs."""
    layers = [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), norm(c_out)]
    return nn.Sequential(*layers, *([nn.ReLU(inplace=True)] if relu else []))


class SSAN(nn.Module):
    """ResNet stem + layers 1-3 -> (content map, style gamma/beta) -> style assembly -> 2 logits (1 = real)."""

    def __init__(self, backbone: nn.Module, num_domains: int = 0, assembly_blocks: int = 2, hidden: int | None = None):
        super().__init__()
        chs = {info["module"]: info["num_chs"] for info in backbone.feature_info}
        c1, c2, c3 = chs["layer1"], chs["layer2"], chs["layer3"]
        self.stem = nn.Sequential(backbone.conv1, backbone.bn1, backbone.act1, backbone.maxpool)
        self.layer1, self.layer2, self.layer3 = backbone.layer1, backbone.layer2, backbone.layer3
        self.content = conv_block(c3, c3, nn.BatchNorm2d)
        self.style1 = conv_block(c1, c2, nn.InstanceNorm2d)
        self.style2 = conv_block(c2, c3, nn.InstanceNorm2d)
        self.style3 = conv_block(c3, c3, nn.InstanceNorm2d, relu=False)
        self.style_fc = nn.Sequential(nn.Linear(c3, c3, bias=False), nn.ReLU(inplace=True))
        self.gamma, self.beta = nn.Linear(c3, c3, bias=False), nn.Linear(c3, c3, bias=False)
        self.assembly = nn.ModuleList(StyleAssembly(c3) for _ in range(assembly_blocks))
        self.final = conv_block(c3, 2 * c3, nn.BatchNorm2d, relu=False)
        self.classifier = nn.Linear(2 * c3, 2)
        self.discriminator = None
        if num_domains > 1:
            hidden = hidden or c3
            self.discriminator = nn.Sequential(nn.Linear(c3, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
                                               nn.Linear(hidden, num_domains))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(content map, gamma, beta) of each image."""
        f1 = self.layer1(self.stem(images))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        style = self.style3(self.style2(self.style1(f1) + f2) + f3)
        style = self.style_fc(F.adaptive_max_pool2d(style, 1).flatten(1))
        return self.content(f3), self.gamma(style), self.beta(style)

    def assemble(self, content: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Content re-styled by (gamma, beta) -> the pooled feature the classifier reads."""
        x = content
        for block in self.assembly:
            x = block(x, gamma, beta)
        return F.adaptive_avg_pool2d(self.final(x), 1).flatten(1)

    def forward(self, images: torch.Tensor, style_perm: torch.Tensor | None = None,
                grl_coeff: float = 1.0) -> dict[str, torch.Tensor]:
        """Self-assembly logits/features/score; with ``style_perm`` the shuffled assembly (sample i styled by
        sample ``style_perm[i]``) and, with a discriminator, the domain logits of the content."""
        content, gamma, beta = self.encode(images)
        features = self.assemble(content, gamma, beta)
        logits = self.classifier(features)
        out = {"logits": logits, "features": features, "score": logits.float().softmax(dim=-1)[:, 1]}
        if style_perm is not None:
            out["shuffled"] = self.assemble(content, gamma[style_perm], beta[style_perm])
        if self.discriminator is not None:
            pooled = F.adaptive_avg_pool2d(content, 1).flatten(1)
            out["domain_logits"] = self.discriminator(reverse_gradient(pooled, grl_coeff))
        return out

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        content, gamma, beta = self.encode(images)
        return {"score": self.classifier(self.assemble(content, gamma, beta)).float().softmax(dim=-1)[:, 1]}


def style_permutation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random derangement: ``perm[i]`` is the sample whose style sample i gets, never i itself (one random cycle
    through the batch, so the batch's set of styles is kept and every style moves)."""
    if n < 2:
        raise ValueError(f"style shuffling needs at least 2 samples in a batch, got {n}")
    order = rng.permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm


def contrast_loss(self_features: torch.Tensor, shuffled: torch.Tensor, same_label: torch.Tensor) -> torch.Tensor:
    """SSAN's live/spoof-aware contrastive loss: pull a shuffled assembly towards its self-assembly (stop-gradient)
    when the style's sample has the same label, push it away otherwise.

    mean(s * (1 - cos)) with s = +1 / -1: the official ``ContrastLoss`` (mean(-s * cos)) plus the constant mean(s),
    so the gradients are the official ones and the loss is 0 when the two assemblies agree.
    """
    sign = same_label.float() * 2 - 1
    cos = F.cosine_similarity(self_features.detach(), shuffled, dim=-1)
    return (sign * (1 - cos)).mean()


def ssan_weights(model: str, pretrained: str | None):
    return backbone_weights("SSAN", read_arch(model, "SSAN", "ssan-"), pretrained)


def config_weights(cfg) -> list:
    """Every pretrained file an SSAN config needs (``fas doctor``)."""
    return [ssan_weights(cfg.model, cfg.pretrained)]


def create_ssan(model: str = "ssan-resnet18", pretrained: str | None = None, num_domains: int = 0) -> SSAN:
    """SSAN from an architecture config; ``pretrained`` names backbone weights (a file or the config's hub tag);
    ``num_domains`` > 1 adds the domain discriminator (training only)."""
    arch = read_arch(model, "SSAN", "ssan-")
    backbone = create_backbone(arch, ssan_weights(model, pretrained).resolve())
    return SSAN(backbone, num_domains, arch.get("assembly_blocks", 2))
