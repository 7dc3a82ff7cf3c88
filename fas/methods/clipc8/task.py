"""CLIPC8's training step: cross-entropy over the 8 class texts on flipped and randomly erased images; Adam on
the image encoder only, cosine LR stepped per epoch. The engine runs it (epochs, DeepSpeed, checkpoints)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from fas.eval.categories import attack_category
from fas.methods.base import StepInfo, Task, WorkerContext, write_model_folder
from fas.methods.clipc8.config import CLIPC8Config


def category_index(attacks, cfg: CLIPC8Config) -> torch.Tensor:
    """Attack names -> category indices for training; an attack without a category is an error."""
    out = []
    for attack in attacks:
        index = attack_category(attack, cfg.categories, cfg.attack_to_category)
        if index is None:
            raise ValueError(f"attack {attack!r} maps to no category of {cfg.categories}; add it to attack_to_category")
        out.append(index)
    return torch.tensor(out)


def portable_meta(cfg: CLIPC8Config, preprocess: dict) -> dict:
    return {"method": "clipc8", "model": cfg.model, "categories": cfg.categories, "prompts": cfg.prompts,
            "attack_to_category": cfg.attack_to_category, "preprocess": preprocess}


class CLIPC8Task(Task):
    def __init__(self, cfg: CLIPC8Config, ctx: WorkerContext):
        from fas.methods.clipc8.model import create_clipc8
        from fas.preprocess import Preprocess

        self.cfg, self.ctx = cfg, ctx
        self.module, self.preprocess = create_clipc8(cfg.model, cfg.pretrained, cfg.prompts)
        self.transform = Preprocess.from_meta(self.preprocess)
        self.optimizer = torch.optim.Adam(self.module.visual.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.cosine_period,
                                                                    eta_min=cfg.lr * cfg.min_lr_ratio)
        self.batch_size = cfg.batch_size
        self.class_weights = torch.tensor(cfg.class_weight_values) if cfg.class_weight_values else None

    def prepare_batch(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"image": self.transform(batch["image"]), "category": category_index(batch["attack"], self.cfg)}

    def train_step(self, model, batch: dict, info: StepInfo) -> dict[str, torch.Tensor]:
        from fas.preprocess import clipc8_augment

        x = clipc8_augment(batch["image"].to(self.ctx.device)).to(self.ctx.dtype)
        y = batch["category"].to(self.ctx.device)
        logits = model(x)
        weight = None if self.class_weights is None else self.class_weights.to(self.ctx.device)
        return {"loss": F.cross_entropy(logits.float(), y, weight=weight), "train_acc": (logits.argmax(-1) == y).float().mean()}

    def predictor(self):
        from fas.methods.clipc8.predictor import CLIPC8Predictor

        return CLIPC8Predictor(self.module, portable_meta(self.cfg, self.preprocess), self.ctx.device)

    def portable(self, folder: Path) -> None:
        write_model_folder(folder, self.module.state_dict(), portable_meta(self.cfg, self.preprocess))


def class_weight_values(cfg: CLIPC8Config) -> list[float]:
    """The cross-entropy's weight per category for ``cfg.class_weights`` (empty: unweighted)."""
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    from fas.data.selection import selected_meta

    rule = cfg.class_weights
    if rule is None:
        return []
    if isinstance(rule, (list, tuple)):
        if len(rule) != len(cfg.categories) or min(rule) < 0:
            raise ValueError(f"class_weights: give {len(cfg.categories)} non-negative weights (one per category "
                             f"{cfg.categories}), got {list(rule)}")
        return [float(w) for w in rule]
    if rule != "inverse_frequency":
        raise ValueError(f"class_weights must be null, inverse_frequency or a list of weights, got {rule!r}")
    attacks = selected_meta(cfg.cache, "train", cfg.protocol, cfg.fold, extra=("attack",)).column("attack")
    counts = np.bincount(category_index(attacks.to_pylist(), cfg).numpy(), minlength=len(cfg.categories))
    present = np.flatnonzero(counts)
    weights = np.zeros(len(cfg.categories))  # a category without training rows never meets the loss
    labels = np.repeat(present, counts[present])
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return weights.tolist()


def prepare(cfg: CLIPC8Config) -> CLIPC8Config:
    """Before launch: the class weights over the training rows (every worker then uses the same ones)."""
    import dataclasses

    return dataclasses.replace(cfg, class_weight_values=class_weight_values(cfg))


def export_zero_shot(cfg: CLIPC8Config, folder: str | Path) -> Path:
    """The pretrained model with the configured class texts, untrained, as a model folder: what the paper's
    zero-shot rows evaluate. The evaluation harness then scores it like any fine-tuned checkpoint."""
    from fas.methods.clipc8.model import create_clipc8

    model, preprocess = create_clipc8(cfg.model, cfg.pretrained, cfg.prompts)
    meta = {**portable_meta(cfg, preprocess), "zero_shot": True, "pretrained": cfg.pretrained}
    write_model_folder(Path(folder), model.state_dict(), meta)
    return Path(folder)
