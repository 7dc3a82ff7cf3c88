"""OA-Net, the Off-real Attention Network of AG-FAS: a ViT whose image tokens attend to an anomalous-cue image.

After every self-attention block of a timm ViT, a cross-attention block lets all image tokens (class token included)
query tokens of the cue, which a ResNet-18 encodes: its last feature map (B, C, h, w) becomes h*w tokens projected to
the ViT width. Each cross-attention output projection starts at zero, so an untrained OA-Net computes exactly what
the plain ViT computes and pretrained ViT features are not disturbed at the start of training. A linear classifier on
the class token gives two logits (index 1 = real); the liveness score is P(real).

``mode`` switches to the baselines: ``image_only`` (plain ViT on the image), ``cue_only`` (plain ViT on the cue) and
``dual_branch`` (one ViT per input, class-token features concatenated before the classifier).

Architectures are small JSON files in ``fas/model_configs`` (``oanet-vitb16``, ``oanet-tiny``); pretrained weights
are resolved apart from them (``fas.models.weights``).
"""

from __future__ import annotations

import math

import timm
import torch
from timm.layers import resample_abs_pos_embed, trunc_normal_
from timm.models.vision_transformer import checkpoint_filter_fn
from torch import nn

from fas.models import read_model_config
from fas.models.weights import WeightRef, load_backbone_weights, timm_weights
MODES = ("oanet", "image_only", "cue_only", "dual_branch")


class CueCrossAttention(nn.Module):
    """Image tokens (queries) attend to cue tokens (keys/values); residual add, zero-initialised output projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim, eps=1e-6)
        self.norm_kv = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)  # a fresh block adds exactly zero: OA-Net starts as the plain ViT
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, x: torch.Tensor, cue_tokens: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(cue_tokens)
        return x + self.attn(self.norm_q(x), kv, kv, need_weights=False)[0]


class CueEncoder(nn.Module):
    """CNN feature map -> h*w tokens of the ViT width, plus a learned position embedding per feature-map cell."""

    def __init__(self, encoder: nn.Module, dim: int, grid: int):
        super().__init__()
        self.encoder = encoder
        self.proj = nn.Linear(encoder.num_features, dim)
        self.grid = grid
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, dim))
        trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, cues: torch.Tensor) -> torch.Tensor:
        fmap = self.encoder.forward_features(cues)
        pos = self.pos_embed
        if tuple(fmap.shape[-2:]) != (self.grid, self.grid):  # another cue size: resample like a ViT does
            pos = resample_abs_pos_embed(pos, list(fmap.shape[-2:]), [self.grid, self.grid], num_prefix_tokens=0)
        return self.proj(fmap.flatten(2).transpose(1, 2)) + pos


def vit_features(vit: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The plain timm ViT's pooled (class-token) features."""
    return vit.forward_head(vit.forward_features(images), pre_logits=True)


class OANet(nn.Module):
    """ViT (+ cue encoder and cross-attention, or a second ViT) -> class-token features -> 2 logits (1 = real)."""

    def __init__(self, vit: nn.Module, *, mode: str = "oanet", cue_encoder: CueEncoder | None = None,
                 cue_vit: nn.Module | None = None, num_classes: int = 2):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown OA-Net mode {mode!r}; known: {list(MODES)}")
        if (mode == "oanet") != (cue_encoder is not None) or (mode == "dual_branch") != (cue_vit is not None):
            raise ValueError(f"mode {mode!r} needs a cue encoder only for 'oanet' and a cue ViT only for 'dual_branch'")
        self.mode, self.vit, self.cue_encoder, self.cue_vit = mode, vit, cue_encoder, cue_vit
        self.cross_blocks = None
        if mode == "oanet":
            self.cross_blocks = nn.ModuleList(CueCrossAttention(vit.embed_dim, block.attn.num_heads)
                                              for block in vit.blocks)
        width = vit.num_features * (2 if mode == "dual_branch" else 1)
        self.classifier = nn.Linear(width, num_classes)

    def cross_features(self, images: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
        """timm's forward_features with a cue cross-attention after every block, then its class-token pooling."""
        vit, cue_tokens = self.vit, self.cue_encoder(cues)
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))
        for block, cross in zip(vit.blocks, self.cross_blocks):
            x = cross(block(x), cue_tokens)
        return vit.forward_head(vit.norm(x), pre_logits=True)

    def features(self, images: torch.Tensor | None, cues: torch.Tensor | None) -> torch.Tensor:
        """The classifier's input; the input a mode does not use may be None."""
        if self.mode == "image_only":
            return vit_features(self.vit, images)
        if self.mode == "cue_only":
            return vit_features(self.vit, cues)
        if self.mode == "dual_branch":
            return torch.cat([vit_features(self.vit, images), vit_features(self.cue_vit, cues)], dim=-1)
        return self.cross_features(images, cues)

    def forward(self, images: torch.Tensor | None, cues: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        features = self.features(images, cues)
        logits = self.classifier(features)
        return {"logits": logits, "features": features, "score": logits.float().softmax(dim=-1)[:, 1]}

    @torch.no_grad()
    def predict(self, images: torch.Tensor | None, cues: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"score": self(images, cues)["score"]}


def read_oanet_config(name: str) -> dict:
    """An architecture config by name (``oanet-tiny``) or path; ``image_size``, ``image_mean``/``image_std`` in it."""
    return read_model_config(name, "OA-Net", ("oanet-",))


def is_cnn(arch: dict) -> bool:
    """A config whose image backbone is a timm CNN (``"backbone": "cnn"``: SSDG-R's ResNet-18) instead of a ViT."""
    return arch.get("backbone", "vit") == "cnn"


def create_vit(arch: dict, weights: str | None) -> nn.Module:
    """The image backbone: a timm ViT at the config's size or, for the SSDG-R baseline, a timm CNN."""
    cnn = is_cnn(arch)
    kwargs = {**({} if cnn else {"img_size": arch["image_size"]}), **arch.get("vit_kwargs", {})}
    vit = timm.create_model(arch["vit"], pretrained=False, num_classes=0, **kwargs)
    if weights:  # a ViT's filter resizes position embeddings
        load_backbone_weights(vit, weights, None if cnn else checkpoint_filter_fn)
    return vit


def create_cue_encoder(arch: dict, weights: str | None, dim: int) -> CueEncoder:
    encoder = timm.create_model(arch["cue_encoder"], pretrained=False, num_classes=0,
                                **arch.get("cue_encoder_kwargs", {}))
    if weights:
        load_backbone_weights(encoder, weights)
    grid = math.ceil(arch["image_size"] / encoder.feature_info[-1]["reduction"])
    return CueEncoder(encoder, dim, grid)


def oanet_weights(model: str, pretrained: str | None, mode: str = "oanet",
                  cue_pretrained: str | None = None) -> list[WeightRef]:
    """The ViT's weights, then (mode ``oanet``) the cue encoder's."""
    arch = read_oanet_config(model)
    refs = [timm_weights(f"OA-Net ViT {arch['vit']}", pretrained, arch.get("pretrained_hub", {}))]
    if mode == "oanet":
        refs.append(timm_weights(f"OA-Net cue encoder {arch['cue_encoder']}", cue_pretrained,
                                 arch.get("cue_pretrained_hub", {})))
    return refs


def config_weights(cfg) -> list[WeightRef]:
    """Every pretrained file an OA-Net config needs (``fas doctor``)."""
    return oanet_weights(cfg.model, cfg.pretrained, cfg.mode, cfg.cue_pretrained)


def create_oanet(model: str = "oanet-vitb16", pretrained: str | None = None, mode: str = "oanet",
                 cue_pretrained: str | None = None) -> OANet:
    """Build OA-Net or a baseline; ``pretrained``/``cue_pretrained`` name weights: a file or the config's hub tag."""
    if mode not in MODES:
        raise ValueError(f"unknown OA-Net mode {mode!r}; known: {list(MODES)}")
    arch = read_oanet_config(model)
    if is_cnn(arch) and mode != "image_only":
        raise ValueError(f"OA-Net model {model!r} has a CNN backbone (the SSDG-R baseline): only mode image_only "
                         f"runs on it, not {mode!r}")
    vit_weights, *cue = [ref.resolve() for ref in oanet_weights(model, pretrained, mode, cue_pretrained)]
    vit = create_vit(arch, vit_weights)
    return OANet(vit, mode=mode, num_classes=arch.get("num_classes", 2),
                 cue_encoder=create_cue_encoder(arch, cue[0], vit.embed_dim) if mode == "oanet" else None,
                 cue_vit=create_vit(arch, vit_weights) if mode == "dual_branch" else None)
