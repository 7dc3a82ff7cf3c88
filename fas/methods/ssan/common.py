"""What the two ResNet-18 domain-generalisation baselines of AG-FAS (SSAN-R here, SA-FAS in ``fas.methods.safas``)
share: their config fields, the timm backbone with its pretrained weights, the preprocessing their model configs
name, and the per-(domain, label) balanced batches with the optional extra real faces of the "*" rows.
"""

from __future__ import annotations

import dataclasses

import torch

from fas.engine.config import TrainConfig
from fas.methods.base import DataNeeds


@dataclasses.dataclass
class BalancedDGConfig(TrainConfig):
    """Fields of a DG baseline trained on balanced batches (``fas.methods.balanced``)."""

    model: str = ""
    pretrained: str | None = "imagenet"  # timm/resnet18.a1_in1k from the HF cache, a weights file, or null
    per_group: int = 4  # rows per (domain, label) group in every batch (with extra_real: see BalancedBatches)
    pool_size: int = 64  # reservoir rows per group on each worker
    stream_batch: int = 32  # rows pulled from the shard per step
    extra_real: str | None = None  # a frame cache of extra bona fide faces: the "*" rows (fas.methods.balanced)
    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_step: int = 0  # steps between StepLR decays (0: a constant learning rate)
    lr_gamma: float = 0.5
    domain_column: str = "domain"
    domains: list[str] = dataclasses.field(default_factory=list)  # filled before launch from the training rows


def data(cfg: BalancedDGConfig) -> DataNeeds:
    # the reservoirs mix the rows: a random block order is enough and re-executes cheaply on every pass
    return DataNeeds(columns=("image", "label", cfg.domain_column), order="blocks", extra_real=cfg.extra_real)


def read_arch(model: str, family: str, prefix: str) -> dict:
    """An architecture config by name (``ssan-tiny``) or path."""
    from fas.models import read_model_config

    return read_model_config(model, family, (prefix,))


def backbone_weights(what: str, arch: dict, pretrained: str | None):
    from fas.models.weights import timm_weights

    return timm_weights(f"{what} backbone {arch['backbone']}", pretrained, arch.get("pretrained_hub", {}))


def create_backbone(arch: dict, weights: str | None) -> torch.nn.Module:
    """The config's timm ResNet without a classifier, with the resolved weights file loaded (None: random init)."""
    import timm

    from fas.models.weights import load_backbone_weights

    backbone = timm.create_model(arch["backbone"], pretrained=False, num_classes=0, **arch.get("backbone_kwargs", {}))
    if weights:
        load_backbone_weights(backbone, weights)
    return backbone


def arch_preprocess(arch: dict):
    """Inference preprocessing of an architecture config: its size, mean/std and optional centre crop."""
    from fas.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

    return Preprocess(arch["image_size"], tuple(arch.get("image_mean", IMAGENET_MEAN)),
                      tuple(arch.get("image_std", IMAGENET_STD)), arch.get("crop_size"))


def step_lr(optimizer: torch.optim.Optimizer, cfg: BalancedDGConfig):
    """The official codes' StepLR, counted in steps (the engine steps it once per step); None without decay."""
    if cfg.lr_step <= 0:
        return None
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)


def prepare(cfg: BalancedDGConfig) -> BalancedDGConfig:
    """The source domains of the training rows, in sorted order (the domain indices of the losses)."""
    from fas.data.selection import distinct_values

    domains = distinct_values(cfg.cache, cfg.domain_column, cfg.protocol, cfg.fold)
    if not domains:
        raise ValueError(f"{cfg.cache}: no training rows for protocol {cfg.protocol!r}")
    return dataclasses.replace(cfg, domains=domains)
