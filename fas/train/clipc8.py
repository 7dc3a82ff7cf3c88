"""CLIPC8 training on Ray Train + DeepSpeed: config, the per-worker loop, and the launcher."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fas.models.clipc8 import CLASS8_PROMPTS
from fas.train.engine import WEIGHTS_FILE, deepspeed_config, restore, save_and_report, wrap_deepspeed


@dataclasses.dataclass
class CLIPC8Config:
    """Paper defaults (CLIPC8): Adam lr 4e-6, wd 0.05, cosine period 10 epochs to 0.01 x lr, batch 16, 100 epochs."""

    cache: str = ""  # frame cache to train on (its train split)
    storage_path: str = "runs"  # local folder or shared/cloud URI every node can read
    name: str = "clipc8"
    protocol: str | None = None  # train rows of this protocol (e.g. "O&C&I->M"); None: the train split
    fold: int | None = None
    model: str = "ViT-L-14"
    pretrained: str | None = "openai"
    categories: list[str] = dataclasses.field(default_factory=lambda: [k for k, _ in CLASS8_PROMPTS])
    prompts: list[str] = dataclasses.field(default_factory=lambda: [t for _, t in CLASS8_PROMPTS])
    attack_to_category: dict = dataclasses.field(default_factory=dict)  # e.g. {print: face_mask} for binary data
    epochs: int = 100
    batch_size: int = 16
    lr: float = 4e-6
    weight_decay: float = 0.05
    cosine_period: int = 10
    min_lr_ratio: float = 0.01
    zero_stage: int = 2
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    max_failures: int = 2
    validate: bool = True  # AUC/HTER of P(real) on the source-side validation rows after every epoch
    seed: int = 0
    address: str | None = None


def attack_category(attack, categories: list[str], attack_to_category: dict) -> int | None:
    """The category index of one attack name (``real`` for bona fide) through the mapping; None when it has none."""
    name = attack_to_category.get(str(attack), str(attack))
    return categories.index(name) if name in categories else None


def category_index(attacks, cfg: CLIPC8Config) -> torch.Tensor:
    """Attack names -> category indices for training; an attack without a category is an error."""
    out = []
    for attack in attacks:
        index = attack_category(attack, cfg.categories, cfg.attack_to_category)
        if index is None:
            raise ValueError(f"attack {attack!r} maps to no category of {cfg.categories}; add it to attack_to_category")
        out.append(index)
    return torch.tensor(out)


def train_loop_per_worker(config: dict) -> None:
    """Runs on every Ray Train worker; knows the method, not the cluster (that is fas.train.engine)."""
    import ray.train

    from fas.models.clipc8 import create_clipc8
    from fas.train.images import clipc8_augment, decode_batch
    from fas.train.validation import validate

    cfg = CLIPC8Config(**config)
    torch.manual_seed(cfg.seed)
    model, pre = create_clipc8(cfg.model, cfg.pretrained, cfg.prompts)
    optimizer = torch.optim.Adam(model.visual.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # stepped per epoch by us (DeepSpeed would step it per iteration); it drives the same param groups ZeRO uses
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.cosine_period,
                                                           eta_min=cfg.lr * cfg.min_lr_ratio)
    engine, _ = wrap_deepspeed(model, optimizer, deepspeed_config(cfg.batch_size, cfg.zero_stage, cfg.use_gpu))
    saved = restore(engine)
    start, history = saved.get("epoch", -1) + 1, saved.get("history", [])
    for _ in range(start):
        scheduler.step()
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(start, cfg.epochs):
        engine.train()
        losses, correct, seen, tick = [], 0, 0, time.perf_counter()
        for batch in shard.iter_batches(batch_size=cfg.batch_size, batch_format="numpy"):
            x = clipc8_augment(decode_batch(batch["image"], pre["image_size"], pre["mean"], pre["std"]))
            y = category_index(batch["attack"], cfg)
            x = x.to(engine.device, dtype=torch.half if cfg.use_gpu else torch.float)
            logits = engine(x)
            loss = F.cross_entropy(logits.float(), y.to(engine.device))
            engine.backward(loss)
            engine.step()
            losses.append(loss.item())
            correct += int((logits.argmax(-1).cpu() == y).sum())
            seen += len(y)
        scheduler.step()
        world = ray.train.get_context().get_world_size()
        metrics = {"loss": sum(losses) / max(1, len(losses)), "train_acc": correct / max(1, seen),
                   "lr": scheduler.get_last_lr()[0], "images_per_s": world * seen / (time.perf_counter() - tick)}
        if cfg.validate:
            engine.eval()
            metrics.update(validate(lambda images: score_images(engine.module, pre, images, engine.device)))
        history.append({"epoch": epoch, "loss": metrics["loss"], "resumed_from": start})
        save_and_report(engine, epoch, metrics, lambda folder: save_portable(engine.module, pre, cfg, folder),
                        {"history": history})


@torch.no_grad()
def score_images(model, pre: dict, images, device):
    from fas.train.images import decode_batch

    x = decode_batch(images, pre["image_size"], pre["mean"], pre["std"])
    return model.predict(x.to(device, dtype=next(model.parameters()).dtype))["score"].float().cpu().numpy()


def save_portable(model, preprocess: dict, cfg: CLIPC8Config, folder: Path) -> None:
    """Weights + the config needed to rebuild the model for inference, without training code or DeepSpeed."""
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    torch.save(state, folder / WEIGHTS_FILE)
    meta = {"method": "clipc8", "model": cfg.model, "categories": cfg.categories, "prompts": cfg.prompts,
            "attack_to_category": cfg.attack_to_category, "preprocess": preprocess}
    (folder / "model_config.json").write_text(json.dumps(meta, indent=2))


def train(cfg: CLIPC8Config, callbacks: list | None = None):
    """Launch CLIPC8 training as a Ray Train ``TorchTrainer`` on the train split of ``cfg.cache``."""
    from fas.ray_utils import init_ray
    from fas.train.data import training_rows
    from fas.train.engine import fit

    init_ray(cfg.address)
    dataset = training_rows(cfg.cache, ["image", "attack"], cfg.protocol, cfg.fold).random_shuffle(seed=cfg.seed)
    return fit(train_loop_per_worker, cfg, {"train": dataset}, callbacks)


def export_zero_shot(cfg: CLIPC8Config, folder: str | Path) -> Path:
    """The pretrained model with the configured class texts, untrained, as a portable checkpoint: what the paper's
    zero-shot rows evaluate. The evaluation harness then scores it like any fine-tuned checkpoint."""
    from fas.models.clipc8 import create_clipc8

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, pre = create_clipc8(cfg.model, cfg.pretrained, cfg.prompts)
    save_portable(model, pre, cfg, folder)
    meta = json.loads((folder / "model_config.json").read_text())
    meta.update(zero_shot=True, pretrained=cfg.pretrained)
    (folder / "model_config.json").write_text(json.dumps(meta, indent=2))
    return folder
