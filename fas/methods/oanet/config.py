"""OA-Net's config. Defaults: ViT-B/16 (ImageNet-21k) + ResNet-18 cue encoder, SSDG weights of the authors' code
(lambda_adv 0.1, lambda_triplet 2, margin 0.1), Adam lr 1e-4 wd 1e-4 (an assumption: the papers leave the ViT's
unstated), 4000 steps, DDP on 4 GPUs."""

from __future__ import annotations

import dataclasses

from fas.config import flat
from fas.engine.config import EngineConfig, TrainConfig


@dataclasses.dataclass
class OANetConfig(TrainConfig):
    # cache: a cue cache written by jobs/make_cues.py (or, with ``generator``, made first from source_cache)
    generator: str | None = None  # make the cues first: a generator run/checkpoint (`jobs/train.py dfg`)
    source_cache: str | None = None  # with ``generator``: the frame cache to make cues for (default: cache)
    noise_step: int | None = None  # with ``generator``: t of the partial noising (None: the generator's, 801)
    ddim_steps: int = 50  # with ``generator``: the DDIM grid
    cue_mask: str = "none"  # with ``generator``: none | parsing | landmarks (AG-FAS's DFG†: the face region only)
    parsing_weights: str | None = None  # with cue_mask parsing: the face parser (79999_iter.pth or its .onnx)
    model: str = "oanet-vitb16"
    pretrained: str | None = "in21k"  # timm/vit_base_patch16_224.augreg_in21k from the HF cache, a file, or null
    cue_pretrained: str | None = "imagenet"  # timm/resnet18.a1_in1k, a file, or null
    mode: str = "oanet"  # oanet | image_only | cue_only | dual_branch
    per_group: int = 8  # rows per (domain, label) group in every batch
    extra_real: str | None = None  # a frame cache of extra bona fide faces: the "*" rows (fas.methods.balanced)
    pool_size: int = 64  # reservoir rows per group on each worker
    stream_batch: int = 32  # rows pulled from the shard per step
    optimizer: str = "adam"  # adam | sgd (momentum 0.9: SSDG's own trainer, the SSDG-R baseline)
    lr: float = 1e-4
    weight_decay: float = 1e-4
    lambda_adv: float = 0.1
    lambda_triplet: float = 2.0
    margin: float = 0.1
    domain_column: str = "domain"
    domains: list[str] = dataclasses.field(default_factory=list)  # filled before launch from the training rows
    cue: dict = dataclasses.field(default_factory=dict)  # filled before launch: how the cue cache was made
    engine: EngineConfig = flat(lambda: EngineConfig(
        name="oanet", steps=4000, checkpoint_every=500, backend="ddp", num_workers=4, use_gpu=True,
        cpus_per_worker=4.0), "backend")
