"""PDLE's training step (Jung et al.): decode + flip + random crop; with probability ``exchange_prob`` an anchor is
replaced by its patch exchange with an opposite-label image drawn from the whole training set (``OppositePool``),
lambda = u/K drawn once per step; loss = alpha * MSE(rho, y~) + (1 - alpha) * CE(domain head behind gradient
reversal). Ablations: ``patch_exchange: false`` (plain 0/1 targets regressed through the K+1 bins),
``label_encoding: false`` (binary cross-entropy on a 2-way head, exchanged images labelled by their majority of
pixels), both false (the plain binary classifier); ``adversarial: false`` drops the domain term.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fas.data.selection import domain_index
from fas.methods.base import StepInfo, Task, WorkerContext, write_model_folder
from fas.methods.pdle.config import PDLEConfig
from fas.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess


def liveness_loss(cfg: PDLEConfig, out: dict, targets: torch.Tensor) -> torch.Tensor:
    """MSE between rho and the encoded label with PDLE; binary cross-entropy (majority of pixels) without."""
    if cfg.label_encoding:
        return F.mse_loss(out["score"], targets.to(out["score"].device))
    return F.cross_entropy(out["logits"].float(), (targets >= 0.5).long().to(out["logits"].device))


def portable_meta(cfg: PDLEConfig) -> dict:
    preprocess = Preprocess(cfg.image_size, IMAGENET_MEAN, IMAGENET_STD, cfg.crop_size)
    return {"method": "pdle", "model": cfg.model, "num_levels": cfg.num_levels, "k": cfg.k,
            "label_encoding": cfg.label_encoding, "patch_exchange": cfg.patch_exchange,
            "preprocess": preprocess.to_meta()}


class PDLETask(Task):
    def __init__(self, cfg: PDLEConfig, ctx: WorkerContext):
        from fas.methods.pdle.model import create_pdle
        from fas.methods.pdle.patch_exchange import OppositePool

        self.cfg, self.ctx = cfg, ctx
        self.module = create_pdle(cfg.model, cfg.pretrained, cfg.num_levels,
                                  len(cfg.domains) if cfg.adversarial else 0)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=cfg.lr_gamma)
        self.batch_size = cfg.batch_size
        self.pool = OppositePool(ctx.stream("pool", cfg.batch_size), cfg.pool_size,
                                 np.random.default_rng([cfg.engine.seed, ctx.rank])) if cfg.patch_exchange else None

    def start_epoch(self, epoch: int) -> None:
        if self.pool is not None:
            self.pool.new_epoch()

    def images(self, encoded) -> torch.Tensor:
        from fas.preprocess import decode_batch, flip_and_random_crop

        x = decode_batch(encoded, self.cfg.image_size, IMAGENET_MEAN, IMAGENET_STD)
        return flip_and_random_crop(x, self.cfg.crop_size)

    def inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, targets, domains), with PDLE's exchange when enabled."""
        from fas.methods.pdle.patch_exchange import draw_lambda, exchange_batch

        cfg, rng = self.cfg, self.ctx.rng
        x, labels = self.images(batch["image"]), torch.as_tensor(batch["label"]).float()
        domains = domain_index(batch[cfg.domain_column], cfg.domains)
        if not cfg.patch_exchange:
            return x, labels, domains
        chosen = rng.random(len(labels)) < cfg.exchange_prob
        if not chosen.any():
            return x, labels, domains
        others = self.images(self.pool.opposite(labels[chosen].tolist()))
        x, targets = exchange_batch(x, labels, chosen, others, draw_lambda(cfg.k, rng), rng)
        return x, targets, domains

    def train_step(self, model, batch: dict, info: StepInfo) -> dict[str, torch.Tensor]:
        cfg, device = self.cfg, self.ctx.device
        x, targets, domains = self.inputs(batch)
        out = model(x.to(device, self.ctx.dtype), grl_coeff=cfg.grl_coeff)
        liveness = liveness_loss(cfg, out, targets)
        if "domain_logits" not in out:
            return {"loss": liveness, "liveness": liveness, "domain": torch.zeros((), device=liveness.device)}
        domain = F.cross_entropy(out["domain_logits"].float(), domains.to(device))
        return {"loss": cfg.alpha * liveness + (1 - cfg.alpha) * domain, "liveness": liveness, "domain": domain}

    def predictor(self):
        from fas.methods.pdle.predictor import PDLEPredictor

        return PDLEPredictor(self.module, portable_meta(self.cfg), self.ctx.device)

    def portable(self, folder: Path) -> None:
        """Weights + what inference needs (no domain head: it only shapes training)."""
        state = {k: v for k, v in self.module.state_dict().items() if not k.startswith("domain_head.")}
        write_model_folder(folder, state, portable_meta(self.cfg))


def prepare(cfg: PDLEConfig) -> PDLEConfig:
    """The domains the domain head classifies, from the training rows."""
    import dataclasses

    from fas.data.selection import distinct_values

    return dataclasses.replace(cfg, domains=distinct_values(cfg.cache, cfg.domain_column, cfg.protocol, cfg.fold))
