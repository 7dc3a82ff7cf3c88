"""SA-FAS's training step (official ``train.py``): balanced batches, two augmented views of every row; loss = the
domain heads' binary cross-entropy + supcon_weight x SupCon over (domain, label) classes; after each optimiser step
from ``align_start`` on, the PG-IRM projection of the heads.

Extra real faces (SA-FAS*): for separability they are a (domain, label) class of their own (domain index
``len(domains)``, the sampler's), so SupCon keeps them apart from every source domain's faces; for alignment they
are split evenly over the source-domain heads (extra row i goes to head i mod D), so with the sampler's 1:1 ratios
every head sees as many extra faces as its domain's bona fide rows and as many bona fide rows as attacks. They get no
head of their own: a head that never sees an attack has no live-to-spoof direction to align.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fas.methods.base import StepInfo, Task, WorkerContext, write_model_folder
from fas.methods.safas.config import SAFASConfig
from fas.methods.balanced import BalancedDraws
from fas.methods.ssan.common import arch_preprocess, read_arch, step_lr


class SAFASWithLoss(nn.Module):
    """SA-FAS plus its losses as one module: what the engine wraps."""

    def __init__(self, model: nn.Module, supcon_weight: float, temperature: float):
        super().__init__()
        self.model, self.supcon_weight, self.temperature = model, supcon_weight, temperature

    def forward(self, views, labels, heads, classes) -> dict[str, torch.Tensor]:
        """``views``: the two views of the rows, stacked (2B, ...); the other tensors are per row (B,)."""
        from fas.methods.safas.model import domain_bce, head_misalignment, supcon_loss

        out = self.model(views)
        bce = domain_bce(out["logits"], labels.repeat(2), heads.repeat(2))
        features = F.normalize(out["features"].float(), dim=1)
        supcon = supcon_loss(torch.stack(features.split(len(labels)), dim=1), classes, self.temperature)
        return {"loss": bce + self.supcon_weight * supcon, "bce": bce, "supcon": supcon,
                "misalignment": head_misalignment(self.model.heads.weight)}


def row_heads(domains: np.ndarray, num_heads: int) -> np.ndarray:
    """The head each row trains: its source domain's; extra faces (domain ``num_heads``) in turn over all heads."""
    heads = domains.copy()
    extra = domains == num_heads
    heads[extra] = np.arange(extra.sum()) % num_heads
    return heads


def view_transform(crop: int, scale_min: float, rotation: bool, mean, std):
    """One random view (official ``train_transform_list``): rotation (corners filled black), a square random
    resized crop of ``scale_min``-1 of the area, a horizontal flip; on normalised tensors."""
    from torchvision.transforms import v2

    black = [-m / s for m, s in zip(mean, std)]
    rotate = [v2.RandomRotation(180, fill=black)] if rotation else []
    return v2.Compose([*rotate, v2.RandomResizedCrop(crop, scale=(scale_min, 1.0), ratio=(1.0, 1.0)),
                       v2.RandomHorizontalFlip()])


def portable_meta(cfg: SAFASConfig) -> dict:
    return {"method": "safas", "model": cfg.model, "num_heads": len(cfg.domains), "domains": list(cfg.domains),
            "preprocess": arch_preprocess(read_arch(cfg.model, "SA-FAS", "safas-")).to_meta()}


class SAFASTask(Task):
    def __init__(self, cfg: SAFASConfig, ctx: WorkerContext):
        from fas.methods.safas.model import create_safas
        from fas.preprocess import Preprocess

        self.cfg, self.ctx = cfg, ctx
        self.module = SAFASWithLoss(create_safas(cfg.model, cfg.pretrained, len(cfg.domains)), cfg.supcon_weight,
                                    cfg.temperature)
        self.optimizer = torch.optim.SGD(self.module.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.optimizer.register_step_post_hook(self._align)
        self.scheduler = step_lr(self.optimizer, cfg)
        self.batch_size = cfg.stream_batch
        self.meta = portable_meta(cfg)
        inference = Preprocess.from_meta(self.meta["preprocess"])
        self.decode = dataclasses.replace(inference, crop_size=None)
        self.view = view_transform(inference.crop_size or inference.image_size, cfg.scale_min, cfg.rotation,
                                   inference.mean, inference.std)
        self.rows = BalancedDraws(cfg, ctx)
        self.step = 0

    def _align(self, optimizer, args, kwargs) -> None:
        """After the optimiser step, as the official loop: the PG-IRM projection of the domain heads."""
        from fas.methods.safas.model import pg_irm_project_

        if self.cfg.align and self.step >= self.cfg.align_start:
            pg_irm_project_(self.module.model.heads.weight, self.cfg.align_alpha)

    def train_step(self, model, batch: dict, info: StepInfo) -> dict[str, torch.Tensor]:
        self.step = info.step
        rows = self.rows(batch)
        device, num_heads = self.ctx.device, len(self.cfg.domains)
        x = self.decode(rows["image"])
        views = torch.cat([torch.stack([self.view(img) for img in x]) for _ in range(2)])
        domains, labels = np.asarray(rows["domain"]), np.asarray(rows["label"])
        classes = torch.from_numpy(domains * 2 + labels).to(device)  # one SupCon class per (domain, label)
        return model(views.to(device, self.ctx.dtype), torch.from_numpy(labels).to(device),
                     torch.from_numpy(row_heads(domains, num_heads)).to(device), classes)

    def predictor(self):
        from fas.methods.safas.predictor import SAFASPredictor

        return SAFASPredictor(self.module.model, self.meta, self.ctx.device)

    def portable(self, folder: Path) -> None:
        write_model_folder(folder, self.module.model.state_dict(), self.meta)


def prepare(cfg: SAFASConfig) -> SAFASConfig:
    """The source domains (one head each); the alignment needs the DDP engine (it edits weights after a step)."""
    from fas.methods.ssan.common import prepare as source_domains

    if cfg.align and cfg.engine.backend != "ddp":
        raise ValueError("SA-FAS's alignment projects the domain heads after every optimiser step, which DeepSpeed's "
                         "ZeRO optimiser would overwrite from its own copy of the weights: use `engine: ddp` "
                         "(or `align: false`)")
    return source_domains(cfg)
