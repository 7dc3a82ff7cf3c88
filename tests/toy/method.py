"""A toy method registered from outside the package: a logistic regression on 16 px frames.

Its record is all the system hears of it; quickstart, evaluation, Tune and Serve must run it without any other
file changing (the registry's contract, tested in tests/test_registry.py). It registers on import, as a plugin
would, and its model folders name this module, so Ray workers, evaluation actors and Serve replicas find it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fas.config import flat
from fas.engine.config import EngineConfig, TrainConfig
from fas.methods import register
from fas.methods.base import DataNeeds, Method, Predictor, Task, numpy_out, write_model_folder
from fas.preprocess import Preprocess

CONFIG = str(Path(__file__).with_name("toy_tiny.yaml"))


@dataclasses.dataclass
class ToyConfig(TrainConfig):
    model_size: int = 16
    lr: float = 0.5
    batch_size: int = 16
    engine: EngineConfig = flat(lambda: EngineConfig(name="toy", epochs=2, backend="ddp", num_workers=1), "backend")


class ToyNet(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.linear = nn.Linear(3 * size * size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)).squeeze(-1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict:
        return {"score": torch.sigmoid(self(x))}


def meta(cfg: ToyConfig) -> dict:
    return {"method": "toy", "size": cfg.model_size, "preprocess": Preprocess(cfg.model_size).to_meta()}


class ToyPredictor(Predictor):
    @staticmethod
    def build(meta: dict) -> nn.Module:
        return ToyNet(meta["size"])

    def predict(self, images) -> dict:
        return numpy_out(self.model.predict(self.images(images)))


class ToyTask(Task):
    def __init__(self, cfg: ToyConfig, ctx):
        self.cfg, self.ctx = cfg, ctx
        self.module = ToyNet(cfg.model_size)
        self.optimizer = torch.optim.SGD(self.module.parameters(), lr=cfg.lr)
        self.batch_size = cfg.batch_size
        self.transform = Preprocess(cfg.model_size)

    def train_step(self, model, batch, info):
        logits = model(self.transform(batch["image"]).to(self.ctx.device))
        return {"loss": F.binary_cross_entropy_with_logits(logits, torch.as_tensor(batch["label"]).float())}

    def predictor(self):
        return ToyPredictor(self.module, meta(self.cfg), self.ctx.device)

    def portable(self, folder):
        write_model_folder(folder, self.module.state_dict(), meta(self.cfg))


TOY = register(Method(name="toy", config=ToyConfig, default_config=CONFIG, tiny_config=CONFIG, task=ToyTask,
                      predictor=ToyPredictor, data=lambda cfg: DataNeeds(columns=("image", "label")),
                      summary="a toy logistic regression"))
