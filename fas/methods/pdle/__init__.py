"""PDLE (liveness-score regression with patch exchange and pseudo-discretised labels): its method record.

``model.py`` the ResNet with K+1 liveness levels and a domain head, ``patch_exchange.py`` the label encoding,
``config.py``, ``task.py`` the training step, ``predictor.py`` inference.
"""

from __future__ import annotations

from fas.methods import register
from fas.methods.base import DataNeeds, Method, random_init
from fas.methods.pdle.config import PDLEConfig


def data(cfg: PDLEConfig) -> DataNeeds:
    # partners come from the whole training set: an unsplit stream every worker reads in a random block order
    streams = {"pool": ("image", "label")} if cfg.patch_exchange else {}
    return DataNeeds(columns=("image", "label", cfg.domain_column), streams=streams)


METHOD = register(Method(
    name="pdle", config=PDLEConfig, default_config="pdle.yaml", tiny_config="pdle_tiny.yaml",
    weights="fas.methods.pdle.model:config_weights", weightless=random_init("pretrained"),
    task="fas.methods.pdle.task:PDLETask", predictor="fas.methods.pdle.predictor:PDLEPredictor", data=data,
    prepare="fas.methods.pdle.task:prepare",
    summary="ResNet regressing an expected liveness over K+1 levels, patch exchange, gradient-reversal domain loss",
))
