"""The De-fake Face Generator's training step: noise-prediction MSE on real faces only.

Only the UNet is the engine's module (DeepSpeed ZeRO or DDP), so ZeRO partitions the UNet's parameters and
optimizer state alone; the frozen VAE and identity network sit beside it on every worker (fp16 on GPU).
Without a pretrained VAE (the tiny CPU configs) ``prepare`` first fits a stand-in VAE on the same real faces
(``vae_fit_steps``) and saves it with the run, so latents mean something even offline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from fas.methods.base import StepInfo, Task, WorkerContext
from fas.methods.dfg.config import DFGConfig
from fas.preprocess import SIGNED, Preprocess, random_flip


def image_size(cfg: DFGConfig) -> int:
    from fas.methods.dfg.model import read_model_config

    return read_model_config(cfg.model)["image_size"]


class DFGTask(Task):
    def __init__(self, cfg: DFGConfig, ctx: WorkerContext):
        from fas.methods.dfg.model import create_generator

        self.cfg, self.ctx = cfg, ctx
        self.generator = create_generator(cfg.model, condition=cfg.condition, vae=cfg.vae, identity=cfg.identity,
                                          unet_init=cfg.unet_init)
        self.module = self.generator.unet
        self.optimizer = torch.optim.AdamW(self.module.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                           weight_decay=cfg.weight_decay)
        self.batch_size, self.grad_clip = cfg.batch_size, cfg.grad_clip
        self.transform = Preprocess(image_size(cfg), *SIGNED)
        for frozen in (self.generator.vae, self.generator.identity):  # beside the engine, never partitioned
            if frozen is not None:
                frozen.to(ctx.device, dtype=ctx.dtype)

    def prepare_batch(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"image": self.transform(batch["image"])}

    def train_step(self, model, batch: dict, info: StepInfo) -> dict[str, torch.Tensor]:
        images = batch["image"]
        if self.cfg.flip:
            (images,) = random_flip(images, self.ctx.rng)
        return {"loss": self.generator.training_loss(images.to(self.ctx.device), unet=model)}

    def portable(self, folder: Path) -> None:
        from fas.methods.dfg.generator import save_generator

        save_generator(self.generator, self.cfg, folder)


def prepare(cfg: DFGConfig) -> DFGConfig:
    """A stand-in VAE fitted on the real faces when the config asks for one and has no pretrained VAE."""
    from fas.methods.dfg.model import read_model_config

    if cfg.vae_fit_steps > 0 and not cfg.vae and not (read_model_config(cfg.model).get("vae") or {}).get(
            "pretrained"):
        return dataclasses.replace(cfg, vae=fit_stand_in_vae(cfg))
    return cfg


def fit_stand_in_vae(cfg: DFGConfig) -> str:
    """Fit the model config's VAE architecture on the real faces (MSE + a small KL term) and save it in the run
    folder; reused when already there. A stand-in where the SD-1.5 VAE cannot be had (tiny CPU runs)."""
    from fas.data.selection import selected_images
    from fas.methods.dfg.model import load_vae, read_model_config

    run = cfg.engine
    folder = Path(run.storage_path) / run.name / "stand_in_vae"
    if (folder / "config.json").is_file():
        return str(folder)
    if "://" in run.storage_path:
        raise ValueError("a stand-in VAE is fitted into a local storage_path; give --vae for remote storage")
    images = selected_images(cfg.cache, "train", cfg.protocol, cfg.fold, limit=cfg.vae_fit_images, real_only=True,
                             fraction=cfg.real_face_fraction, seed=cfg.engine.seed)
    torch.manual_seed(run.seed)
    vae = load_vae(read_model_config(cfg.model)["vae"]).train().requires_grad_(True)
    x_all = Preprocess(image_size(cfg), *SIGNED)(images)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    rng = np.random.default_rng(run.seed)
    for _ in range(cfg.vae_fit_steps):
        x = x_all[torch.from_numpy(rng.integers(0, len(x_all), min(cfg.batch_size, len(x_all))))]
        posterior = vae.encode(x).latent_dist
        loss = torch.nn.functional.mse_loss(vae.decode(posterior.sample()).sample, x) + 1e-6 * posterior.kl().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():  # unit-variance latents, as SD's scaling factor gives
        std = torch.cat([vae.encode(x_all[i:i + 64]).latent_dist.mean for i in range(0, len(x_all), 64)]).std()
    vae.register_to_config(scaling_factor=float(1.0 / std))
    vae.eval().save_pretrained(folder)
    return str(folder)
