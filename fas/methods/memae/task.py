"""MemAE's training step on real faces only: reconstruction MSE + alpha x addressing entropy (``model.py``)."""

from __future__ import annotations

import torch

from fas.methods.base import StepInfo, WorkerContext
from fas.methods.cue_maker import ReconstructionTask
from fas.methods.memae.config import MemAEConfig


class MemAETask(ReconstructionTask):
    method = "memae"

    def __init__(self, cfg: MemAEConfig, ctx: WorkerContext):
        from fas.methods.memae.model import MemAE, read_model_config

        super().__init__(cfg, ctx, read_model_config(cfg.model))
        self.module = MemAE.from_config(self.arch)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def train_step(self, model, batch: dict, info: StepInfo) -> dict[str, torch.Tensor]:
        from fas.methods.memae.model import memae_loss

        x = self.inputs(batch)
        return memae_loss(x, model(x), self.cfg.entropy_weight)
