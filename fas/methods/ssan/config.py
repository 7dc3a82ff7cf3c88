"""SSAN-R's config. Defaults: the official code (wangzhuo2019/SSAN ``configs/__init__.py``, ``solver.py``): ResNet-18
with ImageNet weights, 256 px faces in [-1, 1] with random flips, Adam lr 1e-4 wd 5e-5, StepLR x0.5, losses
CE + contrastive + adversarial with weight 1 each.

Schedule, an assumption: the official run is 1200 epochs of one frame per training video at batch 16, the lr
halved every 500 epochs; for O&C&I->M (2400 training videos) that is 2.88M images. Balanced batches of 4 rows per
(domain, label) hold 24 rows over three source domains, so the same images are 120k steps, the lr halved every
50k. One worker, as the official single-process run (batch norm and the style shuffle see the whole batch).
"""

from __future__ import annotations

import dataclasses

from fas.config import flat
from fas.engine.config import EngineConfig
from fas.methods.ssan.common import BalancedDGConfig


@dataclasses.dataclass
class SSANConfig(BalancedDGConfig):
    model: str = "ssan-resnet18"
    lr: float = 1e-4
    weight_decay: float = 5e-5
    lr_step: int = 50_000
    lr_gamma: float = 0.5
    lambda_contrast: float = 1.0
    lambda_adv: float = 1.0
    engine: EngineConfig = flat(lambda: EngineConfig(
        name="ssan", steps=120_000, checkpoint_every=5000, backend="ddp", num_workers=1, use_gpu=True,
        cpus_per_worker=4.0), "backend")
