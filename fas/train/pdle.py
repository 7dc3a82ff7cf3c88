"""PDLE training on Ray Train (DDP by default, DeepSpeed by config): config, the per-worker loop, the launcher.

Each step: decode + flip + random crop; with probability ``exchange_prob`` an anchor is replaced by its patch
exchange with an opposite-label image drawn from the whole training set (``OppositePool``), lambda = u/K drawn
once per step; loss = alpha * MSE(rho, y~) + (1 - alpha) * CE(domain head behind gradient reversal).
Ablations: ``patch_exchange: false`` (plain 0/1 targets regressed through the K+1 bins), ``label_encoding: false``
(binary cross-entropy on a 2-way head, exchanged images labelled by their majority of pixels), both false (the
plain binary classifier).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fas.train.engine import WEIGHTS_FILE, restore, save_and_report, wrap_engine


@dataclasses.dataclass
class PDLEConfig:
    """Paper defaults: ResNet-18, K = 10, alpha = 0.5, Adam lr 1e-4 wd 2e-4, batch 32, 200 epochs, ExponentialLR 0.99,
    256 px faces (random crop for training, centre crop for testing)."""

    cache: str = ""
    storage_path: str = "runs"
    name: str = "pdle"
    protocol: str | None = None  # train rows of this protocol (e.g. "O&C&I->M"); None: the train split
    fold: int | None = None
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
    epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 2e-4
    lr_gamma: float = 0.99
    image_size: int = 256
    crop_size: int = 224
    validate: bool = True  # AUC/HTER on the source-side validation rows after every epoch (what sweeps select on)
    pool_size: int = 256  # partner images each worker keeps per label (a reservoir fed by the stream)
    engine: str = "ddp"  # ddp | deepspeed
    zero_stage: int = 2
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    max_failures: int = 2
    seed: int = 0
    address: str | None = None
    domains: list[str] = dataclasses.field(default_factory=list)  # filled by train() from the training rows

    @property
    def num_levels(self) -> int:
        return self.k + 1 if self.label_encoding else 2


def liveness_loss(cfg: PDLEConfig, out: dict, targets: torch.Tensor) -> torch.Tensor:
    """MSE between rho and the encoded label with PDLE; binary cross-entropy (majority of pixels) without."""
    if cfg.label_encoding:
        return F.mse_loss(out["score"], targets.to(out["score"].device))
    return F.cross_entropy(out["logits"].float(), (targets >= 0.5).long().to(out["logits"].device))


class Batches:
    """Turns cache batches into (images, labels, domains) tensors, with PDLE's exchange when enabled."""

    def __init__(self, cfg: PDLEConfig, pool, rng: np.random.Generator):
        self.cfg, self.pool, self.rng = cfg, pool, rng

    def images(self, encoded) -> torch.Tensor:
        from fas.train.images import IMAGENET_MEAN, IMAGENET_STD, decode_batch, flip_and_random_crop

        x = decode_batch(encoded, self.cfg.image_size, IMAGENET_MEAN, IMAGENET_STD)
        return flip_and_random_crop(x, self.cfg.crop_size)

    def __call__(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from fas.train.patch_exchange import draw_lambda, exchange_batch

        cfg = self.cfg
        x, labels = self.images(batch["image"]), torch.as_tensor(batch["label"]).float()
        domains = torch.tensor([cfg.domains.index(str(d)) if str(d) in cfg.domains else 0
                                for d in batch[cfg.domain_column]])
        if not cfg.patch_exchange:
            return x, labels, domains
        chosen = self.rng.random(len(labels)) < cfg.exchange_prob
        if not chosen.any():
            return x, labels, domains
        others = self.images(self.pool.opposite(labels[chosen].tolist()))
        x, targets = exchange_batch(x, labels, chosen, others, draw_lambda(cfg.k, self.rng), self.rng)
        return x, targets, domains


def open_pool_stream(cfg: PDLEConfig):
    import ray.train

    shard = ray.train.get_dataset_shard("pool")  # unsplit: every worker sees the whole training set
    return lambda: iter(shard.iter_batches(batch_size=cfg.batch_size, batch_format="numpy"))


def train_loop_per_worker(config: dict) -> None:
    """Runs on every Ray Train worker; the engine layer (fas.train.engine) knows the cluster."""
    import ray.train

    from fas.models.pdle import create_pdle
    from fas.train.patch_exchange import OppositePool
    from fas.train.validation import validate

    cfg = PDLEConfig(**config)
    rank = ray.train.get_context().get_world_rank()
    torch.manual_seed(cfg.seed)
    model = create_pdle(cfg.model, cfg.pretrained, cfg.num_levels, len(cfg.domains) if cfg.adversarial else 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_gamma)  # stepped per epoch
    engine = wrap_engine(cfg.engine, model, optimizer, batch_size=cfg.batch_size, zero_stage=cfg.zero_stage,
                         fp16=cfg.use_gpu and cfg.engine == "deepspeed")
    saved = restore(engine)
    start, history = saved.get("epoch", -1) + 1, saved.get("history", [])
    for _ in range(start):
        scheduler.step()
    shard = ray.train.get_dataset_shard("train")
    pool = OppositePool(open_pool_stream(cfg), cfg.pool_size, np.random.default_rng([cfg.seed, rank])) \
        if cfg.patch_exchange else None
    half = cfg.use_gpu and cfg.engine == "deepspeed"
    for epoch in range(start, cfg.epochs):
        to_batch = Batches(cfg, pool, np.random.default_rng([cfg.seed, rank, epoch]))
        if pool is not None:
            pool.new_epoch()
        engine.train()
        sums, seen, tick = {"loss": 0.0, "liveness": 0.0, "domain": 0.0}, 0, time.perf_counter()
        for batch in shard.iter_batches(batch_size=cfg.batch_size, batch_format="numpy"):
            x, targets, domains = to_batch(batch)
            out = engine(x.to(engine.device, dtype=torch.half if half else torch.float), grl_coeff=cfg.grl_coeff)
            liveness = liveness_loss(cfg, out, targets)
            domain = F.cross_entropy(out["domain_logits"].float(), domains.to(engine.device)) \
                if "domain_logits" in out else torch.zeros((), device=liveness.device)
            loss = cfg.alpha * liveness + (1 - cfg.alpha) * domain if "domain_logits" in out else liveness
            engine.backward(loss)
            engine.step()
            for key, value in (("loss", loss), ("liveness", liveness), ("domain", domain)):
                sums[key] += value.item() * len(targets)
            seen += len(targets)
        scheduler.step()
        world = ray.train.get_context().get_world_size()
        metrics = {k: v / max(1, seen) for k, v in sums.items()}
        metrics.update(lr=scheduler.get_last_lr()[0], images_per_s=world * seen / (time.perf_counter() - tick))
        if cfg.validate:
            engine.eval()
            metrics.update(validate(lambda images: score_images(engine.module, cfg, images, engine.device)))
        history.append({"epoch": epoch, "loss": metrics["loss"], "resumed_from": start})
        save_and_report(engine, epoch, metrics, lambda folder: save_portable(engine.module, cfg, folder),
                        {"history": history})


@torch.no_grad()
def score_images(model, cfg: PDLEConfig, images, device) -> np.ndarray:
    """Liveness scores of encoded images as inference computes them (centre crop)."""
    from fas.train.images import IMAGENET_MEAN, IMAGENET_STD, center_crop, decode_batch

    x = center_crop(decode_batch(images, cfg.image_size, IMAGENET_MEAN, IMAGENET_STD), cfg.crop_size)
    return model.predict(x.to(device, dtype=next(model.parameters()).dtype))["score"].cpu().numpy()


def save_portable(model, cfg: PDLEConfig, folder: Path) -> None:
    """Weights + what inference needs to rebuild the model (no domain head: it only shapes training)."""
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items() if not k.startswith("domain_head.")}
    torch.save(state, folder / WEIGHTS_FILE)
    meta = {"method": "pdle", "model": cfg.model, "num_levels": cfg.num_levels, "k": cfg.k,
            "label_encoding": cfg.label_encoding, "patch_exchange": cfg.patch_exchange,
            "preprocess": {"image_size": cfg.image_size, "crop_size": cfg.crop_size}}
    (folder / "model_config.json").write_text(json.dumps(meta, indent=2))


def train(cfg: PDLEConfig, callbacks: list | None = None):
    """Launch PDLE as a Ray Train ``TorchTrainer`` on the training rows of ``cfg.cache``."""
    from fas.ray_utils import init_ray
    from fas.train.data import distinct_values, training_rows
    from fas.train.engine import fit

    init_ray(cfg.address)
    cfg = dataclasses.replace(cfg, domains=distinct_values(cfg.cache, cfg.domain_column, cfg.protocol, cfg.fold))
    rows = training_rows(cfg.cache, ["image", "label", cfg.domain_column], cfg.protocol, cfg.fold)
    datasets = {"train": rows.random_shuffle(seed=cfg.seed)}
    if cfg.patch_exchange:  # unsplit: every worker draws partners from the whole training set
        datasets["pool"] = rows.select_columns(["image", "label"]).randomize_block_order()
    return fit(train_loop_per_worker, cfg, datasets, callbacks)
