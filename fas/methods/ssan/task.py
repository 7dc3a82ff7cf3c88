"""SSAN-R's training step (official ``solver.py``): balanced batches, random flips, one style derangement per
step; loss = CE(self-assembly) + lambda_contrast x contrastive(self vs shuffled) + lambda_adv x domain CE of the
content behind gradient reversal (coefficient ramped over the run).

Extra real faces (SSAN-R*): the domain discriminator classifies them as a domain of their own (index
``len(domains)``, the sampler's), so the content is pushed to hide them among the source domains like any other
domain; they take part in the style shuffle and the contrastive loss as bona fide rows.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fas.methods.base import StepInfo, Task, WorkerContext, write_model_folder
from fas.methods.balanced import BalancedDraws
from fas.methods.ssan.common import arch_preprocess, read_arch, step_lr
from fas.methods.ssan.config import SSANConfig


class SSANWithLoss(nn.Module):
    """SSAN plus its three losses as one module, so the engine wraps (and DDP syncs) the discriminator too."""

    def __init__(self, model: nn.Module, lambda_contrast: float, lambda_adv: float):
        super().__init__()
        self.model, self.lambda_contrast, self.lambda_adv = model, lambda_contrast, lambda_adv

    def forward(self, images, labels, domains, style_perm, grl_coeff: float) -> dict[str, torch.Tensor]:
        from fas.methods.ssan.model import contrast_loss

        out = self.model(images, style_perm, grl_coeff)
        cls = F.cross_entropy(out["logits"], labels)
        contrast = contrast_loss(out["features"], out["shuffled"], labels == labels[style_perm])
        adv = F.cross_entropy(out["domain_logits"], domains) if "domain_logits" in out else cls * 0.0
        return {"loss": cls + self.lambda_contrast * contrast + self.lambda_adv * adv, "cls": cls,
                "contrast": contrast, "adv": adv}


def portable_meta(cfg: SSANConfig) -> dict:
    return {"method": "ssan", "model": cfg.model,
            "preprocess": arch_preprocess(read_arch(cfg.model, "SSAN", "ssan-")).to_meta()}


class SSANTask(Task):
    def __init__(self, cfg: SSANConfig, ctx: WorkerContext):
        from fas.methods.ssan.model import create_ssan
        from fas.preprocess import Preprocess

        self.cfg, self.ctx = cfg, ctx
        domains = len(cfg.domains) + (1 if cfg.extra_real else 0)  # extra real faces: a domain of their own
        self.module = SSANWithLoss(create_ssan(cfg.model, cfg.pretrained, domains), cfg.lambda_contrast,
                                   cfg.lambda_adv)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = step_lr(self.optimizer, cfg)
        self.batch_size = cfg.stream_batch
        self.meta = portable_meta(cfg)
        self.transform = Preprocess.from_meta(self.meta["preprocess"])
        self.rows = BalancedDraws(cfg, ctx)

    def train_step(self, model, batch: dict, info: StepInfo) -> dict[str, torch.Tensor]:
        from fas.models.layers import grl_ramp
        from fas.methods.ssan.model import style_permutation
        from fas.preprocess import random_flip

        rows = self.rows(batch)
        device = self.ctx.device
        (x,) = random_flip(self.transform(rows["image"]), self.ctx.rng)
        perm = torch.from_numpy(style_permutation(len(x), self.ctx.rng)).to(device)
        return model(x.to(device, self.ctx.dtype), torch.tensor(rows["label"], device=device),
                     torch.tensor(rows["domain"], device=device), perm, grl_ramp(info.progress))

    def predictor(self):
        from fas.methods.ssan.predictor import SSANPredictor

        return SSANPredictor(self.module.model, self.meta, self.ctx.device)

    def portable(self, folder: Path) -> None:
        """Weights without the discriminator (it only shapes training) + the architecture and preprocessing."""
        state = {k: v for k, v in self.module.model.state_dict().items() if not k.startswith("discriminator.")}
        write_model_folder(folder, state, self.meta)
