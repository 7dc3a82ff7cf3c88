"""OA-Net's training step with the SSDG strategy, on a cue cache (frames with their anomalous cues).

Each step adds one stream batch to per-(source domain, label) reservoirs of ``pool_size`` rows on the worker and
draws ``per_group`` rows of every group from them, so batches are balanced and memory is bounded by groups x
pool_size rows. Loss: CE + lambda_adv x single-side adversarial (reversal coefficient ramped over the run) +
lambda_triplet x asymmetric triplet (``ssdg.py``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from fas.methods.balanced import BalancedDraws
from fas.methods.base import StepInfo, Task, WorkerContext, write_model_folder
from fas.methods.oanet.config import OANetConfig


class OANetWithLoss(nn.Module):
    """OA-Net plus its SSDG loss as one module, so the engine wraps (and DDP syncs) the discriminator too."""

    def __init__(self, model: nn.Module, loss: nn.Module):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, images, cues, labels, domains, grl_coeff: float) -> dict[str, torch.Tensor]:
        out = self.model(images, cues)
        return self.loss(out["logits"], out["features"], labels, domains, grl_coeff)


def build_task_module(cfg: OANetConfig) -> OANetWithLoss:
    from fas.methods.oanet.model import create_oanet
    from fas.methods.oanet.ssdg import SSDGLoss

    model = create_oanet(cfg.model, cfg.pretrained, cfg.mode, cfg.cue_pretrained)
    domains = len(cfg.domains) + (1 if cfg.extra_real else 0)  # extra real faces: a domain of their own
    loss = SSDGLoss(model.classifier.in_features, max(1, domains), lambda_adv=cfg.lambda_adv,
                    lambda_triplet=cfg.lambda_triplet, margin=cfg.margin)
    return OANetWithLoss(model, loss)


def portable_meta(cfg: OANetConfig) -> dict:
    from fas.methods.oanet.model import read_oanet_config
    from fas.preprocess import Preprocess

    arch = read_oanet_config(cfg.model)
    preprocess = Preprocess(arch["image_size"], tuple(arch.get("image_mean", (0.5,) * 3)),
                            tuple(arch.get("image_std", (0.5,) * 3)))
    return {"method": "oanet", "model": cfg.model, "mode": cfg.mode,
            "inputs": ["image"] if cfg.mode == "image_only" else ["image", "cue"], "cue": cfg.cue,
            "preprocess": preprocess.to_meta()}


class OANetTask(Task):
    def __init__(self, cfg: OANetConfig, ctx: WorkerContext):
        from fas.preprocess import Preprocess

        self.cfg, self.ctx = cfg, ctx
        self.module = build_task_module(cfg)
        if cfg.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be adam or sgd, got {cfg.optimizer!r}")
        self.optimizer = (torch.optim.SGD(self.module.parameters(), lr=cfg.lr, momentum=0.9,
                                          weight_decay=cfg.weight_decay) if cfg.optimizer == "sgd"
                          else torch.optim.Adam(self.module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay))
        self.batch_size = cfg.stream_batch
        self.meta = portable_meta(cfg)
        self.transform = Preprocess.from_meta(self.meta["preprocess"])
        self.balanced = BalancedDraws(cfg, ctx, columns=tuple(self.meta["inputs"]))

    def train_step(self, model, batch: dict, info: StepInfo) -> dict[str, torch.Tensor]:
        from fas.methods.oanet.predictor import cue_tensor
        from fas.models.layers import grl_ramp
        from fas.preprocess import random_flip

        rows = self.balanced(batch)
        device, dtype = self.ctx.device, self.ctx.dtype
        x = self.transform(rows["image"])
        if "cue" in rows:
            x, c = random_flip(x, self.ctx.rng, cue_tensor(rows["cue"], self.transform.image_size))
            c = c.to(device, dtype)  # the same rows of image and cue mirrored
        else:  # image_only (SSDG): no cue is read
            (x,), c = random_flip(x, self.ctx.rng), None
        return model(x.to(device, dtype), c, torch.tensor(rows["label"], device=device),
                     torch.tensor(rows["domain"], device=device), grl_ramp(info.progress))

    def predictor(self):
        from fas.methods.oanet.predictor import OANetPredictor

        return OANetPredictor(self.module.model, self.meta, self.ctx.device)

    def portable(self, folder: Path) -> None:
        """Weights (no discriminator) + what inference needs: the mode, the inputs it reads and its preprocessing."""
        write_model_folder(folder, self.module.model.state_dict(), self.meta)


def make_trial_cues(cfg: OANetConfig) -> str:
    """Cues of ``source_cache`` (default: ``cache``, a frame cache) by ``generator`` at ``noise_step`` into the
    run's folder (resumed if there); what the noising-depth sweep (tune_spaces/dfg_steps.yaml) and the AG-FAS
    quickstart run first."""
    from fas.cues import CueConfig, format_cue_summary, make_cues

    run = cfg.engine
    if "://" in run.storage_path:
        raise ValueError("cues are written as a frame cache on a shared filesystem: give a local or mounted "
                         "storage_path with --generator, or make the cues first with jobs/make_cues.py")
    out = Path(run.storage_path) / run.name / "cues"
    # the run's own workers make its cues: inside a Tune trial (which holds a sliver of a CPU) a 1-CPU actor beside
    # a 1-CPU read task would not fit a 2-CPU machine and wait forever; on GPUs the cues run there
    summary = make_cues(CueConfig(generator=cfg.generator, cache=cfg.source_cache or cfg.cache, out=str(out),
                                  noise_step=cfg.noise_step, ddim_steps=cfg.ddim_steps, address=run.address,
                                  mask=cfg.cue_mask, parsing_weights=cfg.parsing_weights,
                                  actors=run.num_workers, cpus_per_actor=run.cpus_per_worker,
                                  gpus_per_actor=1.0 if run.use_gpu else 0.0))
    print(format_cue_summary(summary), flush=True)
    return str(out)


def cue_settings(cache: str) -> dict:
    """How the cue cache was made (generator checkpoint, t, DDIM steps, seed): serving must make the same cues."""
    from fas.data.cache import load_index

    index = load_index(cache)
    if "generator" not in index:
        raise ValueError(f"{cache} is a frame cache without cues; make its cues first: jobs/make_cues.py "
                         f"--generator RUN --cache {cache} --out CUE_CACHE")
    made = index["config"]
    return {"generator": index["generator"], "noise_step": made["noise_step"], "ddim_steps": made["ddim_steps"],
            "seed": made["seed"], "mask": made.get("mask", "none"), "parsing_weights": made.get("parsing_weights")}


def prepare(cfg: OANetConfig) -> OANetConfig:
    """Cues first when a generator is given; then the domains of the training rows and the cue settings (none for
    image_only, which trains on a plain frame cache)."""
    from fas.data.selection import distinct_values

    from fas.methods.oanet import reads_cues

    if not reads_cues(cfg):  # SSDG on images alone: a plain frame cache, no generator
        if cfg.generator:
            raise ValueError("mode image_only reads no cues: drop `generator` (it would make cues for nothing)")
        return dataclasses.replace(cfg, cue={},
                                   domains=distinct_values(cfg.cache, cfg.domain_column, cfg.protocol, cfg.fold))
    if cfg.generator:
        cfg = dataclasses.replace(cfg, cache=make_trial_cues(cfg))
    return dataclasses.replace(cfg, domains=distinct_values(cfg.cache, cfg.domain_column, cfg.protocol, cfg.fold),
                               cue=cue_settings(cfg.cache))
