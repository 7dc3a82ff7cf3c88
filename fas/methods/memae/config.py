"""MemAE's config. Defaults: the official training script's optimiser (Adam lr 1e-4, no weight decay, entropy
weight alpha 0.0002) on 256 px real faces, batch 32 per worker as DFG's (the generators of AG-FAS Table IV see the
same batches), 100,000 steps (the script's 100 epochs of ~130k faces at 4 x 32 a step), DeepSpeed ZeRO-2 on 4 GPUs.
No augmentation, as the paper (``flip`` adds DFG's mirroring)."""

from __future__ import annotations

import dataclasses

from fas.config import flat
from fas.engine.config import EngineConfig, TrainConfig


@dataclasses.dataclass
class MemAEConfig(TrainConfig):
    model: str = "memae"  # architecture: fas/model_configs/memae*.json (memory slots and shrinkage there)
    entropy_weight: float = 0.0002  # alpha of the addressing-entropy term (paper Eq. 10)
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float | None = None
    flip: bool = False
    real_face_fraction: float = 1.0  # a seeded subset of the real faces (AG-FAS Table VII: 0.25 / 0.5 / 1.0)
    engine: EngineConfig = flat(lambda: EngineConfig(
        name="memae", steps=100_000, checkpoint_every=1000, log_every=100, validate=False, backend="deepspeed",
        num_workers=4, use_gpu=True, cpus_per_worker=4.0), "backend")
