"""CLIPC8 (CLIP ViT-L/14 fine-tuned on image-text pairs of 8 classes): its method record.

``model.py`` the open_clip model with frozen class texts, ``config.py`` its config and the paper's class texts,
``task.py`` the training step and the zero-shot export, ``predictor.py`` inference.
"""

from __future__ import annotations

from fas.methods import register
from fas.methods.base import DataNeeds, Method, random_init
from fas.methods.clipc8.config import CLIPC8Config

METHOD = register(Method(
    name="clipc8", config=CLIPC8Config, default_config="clipc8.yaml", tiny_config="clipc8_tiny.yaml",
    weights="fas.methods.clipc8.model:config_weights", weightless=random_init("pretrained"),
    task="fas.methods.clipc8.task:CLIPC8Task", prepare="fas.methods.clipc8.task:prepare", predictor="fas.methods.clipc8.predictor:CLIPC8Predictor",
    data=lambda cfg: DataNeeds(columns=("image", "attack")),
    commands=("fas.methods.clipc8.cli:add_commands",), pictures="fas.methods.clipc8.pictures:attention_pictures",
    summary="CLIP image encoder fine-tuned against 8 frozen class texts; P(real) of the top-1 softmax",
))
