"""OA-Net training with the SSDG strategy on Ray Train (DDP by default, DeepSpeed by config), step-based.

Reads a cue cache (``jobs/make_cues.py``: frames with their anomalous cues). Each step draws a batch balanced per
(source domain, label): every worker keeps a reservoir of ``pool_size`` rows per group, fed by its shard of the
stream (one stream batch per step), and samples ``per_group`` rows of every group from them, so memory is bounded
by groups x pool_size rows. Loss: CE + lambda_adv x single-side adversarial (reversal coefficient ramped over the
run) + lambda_triplet x asymmetric triplet (``fas.train.ssdg``). Checkpoints every ``checkpoint_every`` steps (with
source-side validation); the reported model is the last one, or the one at a fixed step.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fas.train.engine import WEIGHTS_FILE, restore, save_and_report, wrap_engine


@dataclasses.dataclass
class OANetConfig:
    """Defaults: ViT-B/16 (ImageNet-21k) + ResNet-18 cue encoder, SSDG weights of the authors' code (lambda_adv 0.1,
    lambda_triplet 2, margin 0.1), Adam lr 1e-4 wd 1e-4 (an assumption: the papers leave the ViT's unstated)."""

    cache: str = ""  # a cue cache written by jobs/make_cues.py (or, with ``generator``, made first from source_cache)
    generator: str | None = None  # make the cues first: a generator run/checkpoint (jobs/train_dfg.py)
    source_cache: str | None = None  # with ``generator``: the frame cache to make cues for
    noise_step: int | None = None  # with ``generator``: t of the partial noising (None: the generator's, 801)
    ddim_steps: int = 50  # with ``generator``: the DDIM grid
    storage_path: str = "runs"
    name: str = "oanet"
    protocol: str | None = None  # e.g. O&C&I->M, M&I->C; None: the train split
    fold: int | None = None
    model: str = "oanet-vitb16"
    pretrained: str | None = "in21k"  # timm/vit_base_patch16_224.augreg_in21k from the HF cache, a file, or null
    cue_pretrained: str | None = "imagenet"  # timm/resnet18.a1_in1k, a file, or null
    mode: str = "oanet"  # oanet | image_only | cue_only | dual_branch
    steps: int = 4000
    checkpoint_every: int = 500
    per_group: int = 8  # rows per (domain, label) group in every batch
    pool_size: int = 64  # reservoir rows per group on each worker
    stream_batch: int = 32  # rows pulled from the shard per step
    lr: float = 1e-4
    weight_decay: float = 1e-4
    lambda_adv: float = 0.1
    lambda_triplet: float = 2.0
    margin: float = 0.1
    domain_column: str = "domain"
    validate: bool = True
    engine: str = "ddp"  # ddp | deepspeed
    zero_stage: int = 2
    num_workers: int = 4
    use_gpu: bool = True
    cpus_per_worker: float = 4.0
    max_failures: int = 2
    seed: int = 0
    address: str | None = None
    domains: list[str] = dataclasses.field(default_factory=list)  # filled by train() from the training rows
    cue: dict = dataclasses.field(default_factory=dict)  # filled by train(): how the cue cache was made


class OANetTask(nn.Module):
    """OA-Net plus its SSDG loss as one module, so the engine wraps (and DDP syncs) the discriminator too."""

    def __init__(self, model: nn.Module, loss: nn.Module):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, images, cues, labels, domains, grl_coeff: float) -> dict[str, torch.Tensor]:
        out = self.model(images, cues)
        return self.loss(out["logits"], out["features"], labels, domains, grl_coeff)


def build_task(cfg: OANetConfig) -> OANetTask:
    from fas.models.oanet import create_oanet
    from fas.train.ssdg import SSDGLoss

    torch.manual_seed(cfg.seed)
    model = create_oanet(cfg.model, cfg.pretrained, cfg.mode, cfg.cue_pretrained)
    loss = SSDGLoss(model.classifier.in_features, max(1, len(cfg.domains)), lambda_adv=cfg.lambda_adv,
                    lambda_triplet=cfg.lambda_triplet, margin=cfg.margin)
    return OANetTask(model, loss)


def to_tensors(images, cues, arch: dict, flip: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded frames and their cues -> (images, cues) at the model's size; ``flip`` mirrors both of a row."""
    import torch.nn.functional as F

    from fas.cues import decode_cues
    from fas.train.images import decode_batch

    size = arch["image_size"]
    x = decode_batch(images, size, arch.get("image_mean", (0.5,) * 3), arch.get("image_std", (0.5,) * 3))
    c = torch.from_numpy(decode_cues(cues))
    if c.shape[-1] != size:
        c = F.interpolate(c, size=size, mode="bilinear", align_corners=False)
    if flip is not None and flip.any():
        mirror = torch.from_numpy(flip)
        x[mirror], c[mirror] = x[mirror].flip(-1), c[mirror].flip(-1)
    return x, c


class BalancedBatches:
    """Per-(domain, label) reservoirs fed by the worker's shard; yields batches with ``per_group`` rows per group."""

    def __init__(self, cfg: OANetConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.pools: dict[tuple[int, int], list] = defaultdict(list)

    def add(self, batch: dict) -> None:
        cfg = self.cfg
        for image, cue, label, domain in zip(batch["image"], batch["cue"], batch["label"], batch[cfg.domain_column]):
            pool = self.pools[(cfg.domains.index(str(domain)) if str(domain) in cfg.domains else 0, int(label))]
            if len(pool) < cfg.pool_size:
                pool.append((image, cue))
            else:
                pool[int(self.rng.integers(cfg.pool_size))] = (image, cue)

    def draw(self) -> dict:
        rows = {"image": [], "cue": [], "label": [], "domain": []}
        for (domain, label), pool in sorted(self.pools.items()):
            for i in self.rng.integers(len(pool), size=self.cfg.per_group):
                rows["image"].append(pool[i][0])
                rows["cue"].append(pool[i][1])
                rows["label"].append(label)
                rows["domain"].append(domain)
        return rows


def train_loop_per_worker(config: dict) -> None:
    """Runs on every Ray Train worker; the engine layer knows the cluster."""
    import ray.train

    from fas.models.oanet import read_oanet_config
    from fas.train.ssdg import grl_ramp
    from fas.train.validation import validate

    cfg = OANetConfig(**config)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    arch, task = read_oanet_config(cfg.model), build_task(cfg)
    optimizer = torch.optim.Adam(task.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    engine = wrap_engine(cfg.engine, task, optimizer, batch_size=cfg.per_group * 2 * max(1, len(cfg.domains)),
                         zero_stage=cfg.zero_stage, fp16=cfg.use_gpu and cfg.engine == "deepspeed")
    half = cfg.use_gpu and cfg.engine == "deepspeed"
    saved = restore(engine)
    step, history = saved.get("step", 0), saved.get("history", [])
    shard, rng = ray.train.get_dataset_shard("train"), np.random.default_rng([cfg.seed, rank, step])
    balanced, window = BalancedBatches(cfg, rng), defaultdict(float)
    tick = time.perf_counter()
    engine.train()
    while step < cfg.steps:
        pulled = 0
        for batch in shard.iter_batches(batch_size=cfg.stream_batch, batch_format="numpy"):
            balanced.add(batch)
            rows, pulled = balanced.draw(), pulled + 1
            x, c = to_tensors(rows["image"], rows["cue"], arch, rng.random(len(rows["label"])) < 0.5)
            dtype = torch.half if half else torch.float
            losses = engine(x.to(engine.device, dtype), c.to(engine.device, dtype),
                            torch.tensor(rows["label"], device=engine.device),
                            torch.tensor(rows["domain"], device=engine.device), grl_ramp(step / cfg.steps))
            engine.backward(losses["loss"])
            engine.step()
            step += 1
            for key, value in losses.items():
                window[key] += value.item()
            window["steps"], window["images"] = window["steps"] + 1, window["images"] + len(rows["label"])
            if step % cfg.checkpoint_every == 0 or step >= cfg.steps:
                metrics = {k: window[k] / window["steps"] for k in losses}
                metrics.update(step=step, images_per_s=world * window["images"] / (time.perf_counter() - tick))
                if cfg.validate:
                    engine.eval()
                    metrics.update(validate(lambda images, cues: score_images(engine.module.model, arch, images, cues,
                                                                              engine.device), inputs=("image", "cue")))
                    engine.train()
                history.append({"step": step, "loss": metrics["loss"], "resumed_from": saved.get("step", 0)})
                save_and_report(engine, len(history) - 1, metrics,
                                lambda folder: save_portable(engine.module.model, cfg, folder),
                                {"step": step, "history": history})
                window, tick = defaultdict(float), time.perf_counter()
            if step >= cfg.steps:
                break
        if pulled == 0:
            raise ValueError(f"worker {rank} got no training rows from {cfg.cache}")


@torch.no_grad()
def score_images(model, arch: dict, images, cues, device) -> np.ndarray:
    x, c = to_tensors(images, cues, arch)
    dtype = next(model.parameters()).dtype
    return model.predict(x.to(device, dtype), c.to(device, dtype))["score"].float().cpu().numpy()


def save_portable(model, cfg: OANetConfig, folder: Path) -> None:
    """Weights (no discriminator) + what inference needs: the mode, the inputs it reads and its preprocessing."""
    from fas.models.oanet import read_oanet_config

    torch.save({k: v.detach().float().cpu() for k, v in model.state_dict().items()}, folder / WEIGHTS_FILE)
    arch = read_oanet_config(cfg.model)
    meta = {"method": "oanet", "model": cfg.model, "mode": cfg.mode,
            "inputs": ["image"] if cfg.mode == "image_only" else ["image", "cue"], "cue": cfg.cue,
            "preprocess": {k: arch.get(k) for k in ("image_size", "image_mean", "image_std")}}
    (folder / "model_config.json").write_text(json.dumps(meta, indent=2))


def make_trial_cues(cfg: OANetConfig) -> str:
    """Cues of ``source_cache`` by ``generator`` at ``noise_step`` into the run's folder (resumed if there); what
    the noising-depth sweep (tune_spaces/dfg_steps.yaml) runs in every trial."""
    from fas.cues import CueConfig, format_cue_summary, make_cues

    if not cfg.source_cache:
        raise ValueError("--generator needs --source-cache: the frame cache to make the cues for")
    if "://" in cfg.storage_path:
        raise ValueError("cues are written as a frame cache on a shared filesystem: give a local or mounted "
                         "storage_path with --generator, or make the cues first with jobs/make_cues.py")
    out = Path(cfg.storage_path) / cfg.name / "cues"
    summary = make_cues(CueConfig(generator=cfg.generator, cache=cfg.source_cache, out=str(out),
                                  noise_step=cfg.noise_step, ddim_steps=cfg.ddim_steps, address=cfg.address))
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
            "seed": made["seed"]}


def train(cfg: OANetConfig, callbacks: list | None = None):
    """Launch OA-Net training as a Ray Train ``TorchTrainer`` on the training rows of a cue cache."""
    from ray.data.expressions import col

    from fas.ray_utils import init_ray
    from fas.train.data import distinct_values, training_rows
    from fas.train.engine import fit

    init_ray(cfg.address)
    if cfg.generator:
        cfg = dataclasses.replace(cfg, cache=make_trial_cues(cfg))
    cfg = dataclasses.replace(cfg, domains=distinct_values(cfg.cache, cfg.domain_column, cfg.protocol, cfg.fold),
                              cue=cue_settings(cfg.cache))
    rows = training_rows(cfg.cache, ["image", "cue", "label", cfg.domain_column], cfg.protocol, cfg.fold)
    rows = rows.filter(expr=col("cue").is_not_null())  # frames the cue job could not read have no cue
    # the per-group reservoirs mix the rows; a random block order is enough and re-executes cheaply every epoch
    return fit(train_loop_per_worker, cfg, {"train": rows.randomize_block_order(seed=cfg.seed)}, callbacks,
               val_columns=["image", "cue", "label"])
