"""The De-fake Face Generator's config: the paper's defaults (SD-1.5 VAE + UNet, ArcFace identity tokens, AdamW
lr 1e-5 wd 0.01 betas (0.9, 0.999), batch 32, 150,000 steps, DeepSpeed ZeRO-2 with fp16 on 4 GPUs)."""

from __future__ import annotations

import dataclasses

from fas.config import flat
from fas.engine.config import EngineConfig, TrainConfig


@dataclasses.dataclass
class DFGConfig(TrainConfig):
    model: str = "dfg-sd15"
    condition: str = "identity"  # identity | none (the paper's no-identity ablation: a plain LDM)
    vae: str | None = None  # local diffusers folder or hub repo; None: the model config's
    identity: str | None = None  # identity network file (ONNX or weights); None: the model config's
    unet_init: str | None = None  # initialise the UNet from SD-1.5 weights (hub repo or folder); None: random
    batch_size: int = 32
    lr: float = 1e-5
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float | None = 1.0
    flip: bool = True
    real_face_fraction: float = 1.0  # a seeded subset of the real faces (AG-FAS Table VII: 0.25 / 0.5 / 1.0)
    vae_fit_steps: int = 0  # >0 and no pretrained VAE: fit a stand-in VAE on the real faces first
    vae_fit_images: int = 1024
    engine: EngineConfig = flat(lambda: EngineConfig(
        name="dfg", steps=150_000, checkpoint_every=1000, log_every=100, validate=False, backend="deepspeed",
        num_workers=4, use_gpu=True, cpus_per_worker=4.0), "backend")
