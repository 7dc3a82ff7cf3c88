"""SSAN-R (Shuffled Style Assembly Network on a ResNet-18, Wang et al., CVPR 2022), a domain-generalisation
baseline of AG-FAS Tables I-III and VIII: its record.

``model.py`` the network, its style shuffle and contrastive loss, ``config.py``, ``task.py`` the balanced training
step, ``predictor.py`` inference; ``common.py`` what it shares with SA-FAS (``fas.methods.safas``). ``extra_real``
in the config gives the "*" row (SSAN-R*).
"""

from __future__ import annotations

from fas.methods import register
from fas.methods.base import Method, random_init
from fas.methods.ssan.common import data
from fas.methods.ssan.config import SSANConfig

METHOD = register(Method(
    name="ssan", config=SSANConfig, default_config="ssan.yaml", tiny_config="ssan_tiny.yaml",
    weights="fas.methods.ssan.model:config_weights", weightless=random_init("pretrained"), batch_field="per_group",
    task="fas.methods.ssan.task:SSANTask", predictor="fas.methods.ssan.predictor:SSANPredictor", data=data,
    prepare="fas.methods.ssan.common:prepare", model_meta="fas.methods.ssan.task:portable_meta",
    aliases=("ssan-r", "ssan_r"),
    summary="SSAN-R: ResNet-18 content/style split, shuffled style assembly, contrastive + adversarial losses",
))
