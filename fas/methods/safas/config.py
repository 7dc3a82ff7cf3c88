"""SA-FAS's config. Defaults: the official ``train.py`` (sunyiyou/SAFAS): ResNet-18 with ImageNet weights, SGD lr
0.005 momentum 0.9 wd 5e-4, batch 96 of two views each (random rotation, random resized crop of 20-100 % of the
area at 256 px, flip), SupCon weight 0.1 at temperature 0.1, PG-IRM alignment alpha 0.995, StepLR x0.5.

Schedule, an assumption: the official run is 100 epochs of one frame per video, the lr halved every 40 epochs and
the alignment on from epoch 20; at 96 rows over O&C&I's 2400 training videos an epoch is 25 steps, so 2500 steps,
a decay every 1000 and the alignment from step 500 (the official loader in fact lists every split's videos, which
would make ~2.8x more steps; the paper's I&C&M->O runs 3x as many epochs: scale ``steps``, ``lr_step`` and
``align_start`` together). Balanced batches of 16 rows per (domain, label) are the 96 rows. One worker, as the
official single-GPU run (SupCon and batch norm see the whole batch); DDP, as the alignment edits the heads after
each optimiser step, which DeepSpeed's ZeRO partitions would overwrite from their own copy.
"""

from __future__ import annotations

import dataclasses

from fas.config import flat
from fas.engine.config import EngineConfig
from fas.methods.ssan.common import BalancedDGConfig


@dataclasses.dataclass
class SAFASConfig(BalancedDGConfig):
    model: str = "safas-resnet18"
    per_group: int = 16
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_step: int = 1000
    lr_gamma: float = 0.5
    supcon_weight: float = 0.1
    temperature: float = 0.1
    align: bool = True
    align_start: int = 500  # steps before the PG-IRM projection starts
    align_alpha: float = 0.995
    rotation: bool = True  # random rotation in [-180, 180] degrees before the crop
    scale_min: float = 0.2  # smallest area fraction of the random resized crop
    engine: EngineConfig = flat(lambda: EngineConfig(
        name="safas", steps=2500, checkpoint_every=250, backend="ddp", num_workers=1, use_gpu=True,
        cpus_per_worker=4.0), "backend")
