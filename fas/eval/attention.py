"""Where a transformer looked: CLIPC8's attention rollout and OA-Net's cross-attention over the anomalous cue.

Attention rollout (Abnar & Zuidema 2020, the maps of the CLIPC8 paper's Fig. 6): each layer's attention averaged over
heads, the residual connection added as an identity, rows renormalised, the layers multiplied from the first to the
last; the class token's row over the patch tokens says how much each patch flowed into the class token. OA-Net's map is
the class token's cross-attention over the cue tokens (the ResNet's feature-map cells), averaged over heads and
layers: which part of the cue the detector read.

Both capture the weights of the models' own ``nn.MultiheadAttention`` modules with hooks (the modules are called with
``need_weights=False`` for speed; a pre-hook asks them for the per-head weights instead), so the maps come from the
forward pass that scores the frame, not from a re-implementation of it.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def captured_attention(modules: Iterable[nn.MultiheadAttention]) -> Iterator[list[torch.Tensor]]:
    """Within the block, every call of ``modules`` appends its per-head weights (B, heads, L_query, L_key), float32,
    to the yielded list, in call order."""
    modules = list(modules)
    bad = [type(m).__name__ for m in modules if not isinstance(m, nn.MultiheadAttention)]
    if bad or not modules:
        raise ValueError(f"attention capture needs torch nn.MultiheadAttention modules, got {bad or 'none'}")
    weights: list[torch.Tensor] = []

    def ask(module, args, kwargs):
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keep(module, args, output):
        weights.append(output[1].detach().float())

    handles = [h for m in modules for h in (m.register_forward_pre_hook(ask, with_kwargs=True),
                                            m.register_forward_hook(keep))]
    try:
        yield weights
    finally:
        for handle in handles:
            handle.remove()


def rollout(layers: Iterable[torch.Tensor]) -> torch.Tensor:
    """Attention rollout of one input: ``layers`` are (heads, N, N) row-stochastic maps, first layer first; returns
    the (N, N) product of the head-averaged maps with the identity added and rows renormalised."""
    result = None
    for attention in layers:
        a = attention.float().mean(dim=0)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    if result is None:
        raise ValueError("attention rollout needs at least one layer's attention")
    return result


def square_grid(tokens: int, what: str) -> tuple[int, int]:
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"{what}: {tokens} tokens do not form a square grid; pass the grid explicitly")
    return side, side


@torch.no_grad()
def clip_rollout(visual: nn.Module, image: torch.Tensor) -> np.ndarray:
    """The rollout of an open_clip ``VisionTransformer`` for one preprocessed frame (1, 3, S, S): the class token's
    row over the patches as the patch grid (gh, gw), float in [0, 1] (the patches' share of the class token)."""
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"clip_rollout takes one preprocessed frame (1, 3, S, S), got shape {tuple(image.shape)}")
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None:
        raise ValueError(f"{type(visual).__name__} is not an open_clip VisionTransformer (no transformer.resblocks)")
    with captured_attention(block.attn for block in blocks) as layers:
        visual(image)
    cls_row = rollout(w[0] for w in layers)[0, 1:]
    return cls_row.reshape(*visual.grid_size).cpu().numpy()


@torch.no_grad()
def oanet_cue_attention(model: nn.Module, image: torch.Tensor, cue: torch.Tensor) -> np.ndarray:
    """OA-Net's cross-attention of the class token over the cue tokens for one frame (1, 3, S, S) and its cue,
    averaged over heads and layers, as the cue encoder's grid (h, w): a distribution over the cue's cells."""
    if getattr(model, "cross_blocks", None) is None:
        raise ValueError("cue cross-attention needs an OA-Net in mode 'oanet' (this model has no cross-attention)")
    if image.shape[0] != 1 or cue.shape[0] != 1:
        raise ValueError(f"one frame and its cue, got batches of {image.shape[0]} and {cue.shape[0]}")
    with captured_attention(block.attn for block in model.cross_blocks) as layers:
        model(image, cue)
    queries = torch.stack([w[0] for w in layers])  # (layers, heads, L_image, L_cue)
    row = queries[:, :, 0] if model.vit.cls_token is not None else queries.mean(dim=2)  # the class token's query
    mean = row.mean(dim=(0, 1))
    return mean.reshape(square_grid(mean.numel(), "OA-Net cue tokens")).cpu().numpy()


def overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """``heat`` (any grid, >= 0) scaled to its maximum, upsampled bilinearly to the frame and blended over it (RGB
    uint8); an all-zero map leaves the frame as it is."""
    import cv2
    from matplotlib import colormaps

    heat = np.asarray(heat, np.float32)
    scaled = heat / heat.max() if heat.max() > 0 else heat
    size = (rgb.shape[1], rgb.shape[0])
    colour = colormaps[cmap](cv2.resize(scaled, size, interpolation=cv2.INTER_LINEAR))[..., :3] * 255
    weight = alpha * (heat.max() > 0)
    return np.clip(weight * colour + (1 - weight) * rgb.astype(np.float32), 0, 255).astype(np.uint8)
