"""PDLE's config: the paper's defaults (ResNet-18, K = 10, alpha = 0.5, Adam lr 1e-4 wd 2e-4, batch 32, 200 epochs,
ExponentialLR 0.99, 256 px faces with random 224 px crops for training and the centre crop for testing; DDP)."""

from __future__ import annotations

import dataclasses

from fas.config import flat
from fas.engine.config import EngineConfig, TrainConfig


@dataclasses.dataclass
class PDLEConfig(TrainConfig):
    model: str = "pdle-resnet18"
    pretrained: str | None = "imagenet"  # timm/resnet18.a1_in1k from the HF cache, or a weights file; null: random
    k: int = 10
    alpha: float = 0.5
    patch_exchange: bool = True
    label_encoding: bool = True
    exchange_prob: float = 0.5
    adversarial: bool = True
    domain_column: str = "domain"  # source dataset for cross-dataset protocols; "session" for OULU-NPU intra
    grl_coeff: float = 1.0
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 2e-4
    lr_gamma: float = 0.99
    image_size: int = 256
    crop_size: int = 224
    pool_size: int = 256  # partner images each worker keeps per label (a reservoir fed by the stream)
    domains: list[str] = dataclasses.field(default_factory=list)  # filled before launch from the training rows
    engine: EngineConfig = flat(lambda: EngineConfig(name="pdle", epochs=200, backend="ddp"), "backend")

    @property
    def num_levels(self) -> int:
        return self.k + 1 if self.label_encoding else 2
