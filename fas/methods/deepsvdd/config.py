"""Deep SVDD's config: autoencoder pre-training, then the one-class phase, in one step run.

Defaults: the official code's optimiser (Adam, ae_lr 1e-4 for the autoencoder and lr 1e-4 for the one-class
phase, weight decay 0.5e-6, batch 200 a step: 50 per worker on 4 GPUs; the LR x0.1 at 250 of the 350 pre-training
epochs and at 50 of the 150 one-class epochs). The official epoch
counts are over 5,000 CIFAR-10 images; on ~130k real faces (650 steps an epoch at 200) the phases here are 65,000
and 30,000 steps (an assumption), with the LR milestones at the same fractions. The step counter spans both phases:
the run switches at ``pretrain_steps``, so a resume lands in the right phase. DeepSpeed ZeRO-2 on 4 GPUs."""

from __future__ import annotations

import dataclasses

from fas.config import flat
from fas.engine.config import EngineConfig, TrainConfig


@dataclasses.dataclass
class DeepSVDDConfig(TrainConfig):
    model: str = "deepsvdd"  # architecture: fas/model_configs/deepsvdd*.json
    pretrain_steps: int = 65_000  # autoencoder steps; the one-class steps follow up to ``steps``
    pretrain_lr_milestone: int = 46_000  # step of the pre-training where the LR drops by lr_gamma
    lr_milestone: int = 10_000  # steps into the one-class phase where the LR drops by lr_gamma
    lr_gamma: float = 0.1
    center_eps: float = 0.1  # centre coordinates closer to 0 are pushed out to +-center_eps
    batch_size: int = 50
    ae_lr: float = 1e-4  # the autoencoder pre-training's LR
    lr: float = 1e-4  # the one-class phase's LR (the encoder's; the decoder's is 0 there)
    weight_decay: float = 0.5e-6
    grad_clip: float | None = None
    flip: bool = False
    real_face_fraction: float = 1.0  # a seeded subset of the real faces (AG-FAS Table VII: 0.25 / 0.5 / 1.0)
    engine: EngineConfig = flat(lambda: EngineConfig(
        name="deepsvdd", steps=95_000, checkpoint_every=1000, log_every=100, validate=False, backend="deepspeed",
        num_workers=4, use_gpu=True, cpus_per_worker=4.0), "backend")
