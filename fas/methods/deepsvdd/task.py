"""Deep SVDD's training, both phases in one step run: the autoencoder's reconstruction MSE for ``pretrain_steps``
steps, then the one-class loss on the encoder alone around a centre fixed at the first one-class step.

One Adam over two parameter groups (encoder, decoder) with a per-group, per-step LR (``phase_lr``: ``ae_lr`` then
``lr``, as the official code's two trainers): in the one-class phase the decoder's LR is 0, so it stays the
pre-trained decoder (Adam scales the weight decay by the LR too). The official code starts a fresh Adam for the
second phase and has a weight decay per phase (both 0.5e-6 in its scripts); here one Adam with one weight decay
spans both, its moments carried over, because one optimizer is what the engine checkpoints and resumes.

The centre is the mean encoding of every training row (the unsplit ``center`` stream, read whole by each worker)
in eval mode, as ``init_center_c`` does. BatchNorm's running statistics are buffers, which DeepSpeed (unlike DDP)
never synchronises, so rank 0's buffers and then its centre are broadcast: every worker trains towards one centre.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fas.methods.base import StepInfo, WorkerContext
from fas.methods.cue_maker import ReconstructionTask
from fas.methods.deepsvdd.config import DeepSVDDConfig


def phase_lr(cfg: DeepSVDDConfig, step: int, part: str) -> float:
    """The LR of ``part`` (encoder | decoder) at ``step`` of the run (steps done before it)."""
    if step < cfg.pretrain_steps:
        return cfg.ae_lr * (cfg.lr_gamma if step >= cfg.pretrain_lr_milestone else 1.0)
    if part == "decoder":
        return 0.0
    return cfg.lr * (cfg.lr_gamma if step - cfg.pretrain_steps >= cfg.lr_milestone else 1.0)


def same_on_every_worker(tensors) -> None:
    """Rank 0's values in place on every worker (a no-op without a process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for tensor in tensors:
            torch.distributed.broadcast(tensor, src=0)


class DeepSVDDTask(ReconstructionTask):
    method = "deepsvdd"

    def __init__(self, cfg: DeepSVDDConfig, ctx: WorkerContext):
        from fas.methods.deepsvdd.model import DeepSVDD, read_model_config

        super().__init__(cfg, ctx, read_model_config(cfg.model))
        self.module = DeepSVDD.from_config(self.arch)
        groups = [{"params": self.module.encoder.parameters()}, {"params": self.module.decoder.parameters()}]
        self.optimizer = torch.optim.Adam(groups, lr=1.0, weight_decay=cfg.weight_decay)  # x phase_lr below
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, [
            lambda step: phase_lr(cfg, step, "encoder"), lambda step: phase_lr(cfg, step, "decoder")])

    def train_step(self, model, batch: dict, info: StepInfo) -> dict[str, torch.Tensor]:
        from fas.methods.deepsvdd.model import svdd_loss

        x = self.inputs(batch)
        if info.step < self.cfg.pretrain_steps:
            return {"loss": F.mse_loss(model(x)["reconstruction"].float(), x.float())}
        if info.step == self.cfg.pretrain_steps:  # a resumed run past it has the centre in its checkpoint
            self.fix_center()
        return {"loss": svdd_loss(model(x, decode=False)["encoding"], self.module.center)}

    @torch.no_grad()
    def fix_center(self) -> None:
        from fas.methods.deepsvdd.model import svdd_center

        module = self.module
        same_on_every_worker(list(module.buffers()))
        module.eval()
        codes = [module.encoder(self.transform(b["image"]).to(self.ctx.device, self.ctx.dtype)).float()
                 for b in self.ctx.open_stream("center", self.batch_size)]
        module.center.copy_(svdd_center(torch.cat(codes), self.cfg.center_eps))
        same_on_every_worker([module.center])
        module.train()


def data(cfg: DeepSVDDConfig):
    """The real faces, plus the same rows unsplit (``center``): every worker encodes them all for the centre."""
    from fas.methods.cue_maker import real_faces

    return real_faces(cfg, center=("image",))


def prepare(cfg: DeepSVDDConfig) -> DeepSVDDConfig:
    """Errors a user can fix before launch. ``steps`` <= ``pretrain_steps`` is allowed: a run stopped inside the
    pre-training that a longer rerun resumes."""
    run = cfg.engine
    if run.steps is None:
        raise ValueError(f"run {run.name!r}: Deep SVDD is a step run (its phases switch at pretrain_steps); set "
                         "steps instead of epochs")
    if cfg.pretrain_steps < 0:
        raise ValueError(f"run {run.name!r}: pretrain_steps must be >= 0 (0: no pre-training), got "
                         f"{cfg.pretrain_steps}")
    if run.steps <= cfg.pretrain_steps:
        from fas.ray_utils import say

        say(f"[{run.name}] steps {run.steps} <= pretrain_steps {cfg.pretrain_steps}: this run ends inside the "
            "autoencoder pre-training (no one-class phase yet; a longer rerun resumes it)")
    return cfg
