"""SA-FAS (separability and alignment, Sun et al., CVPR 2023) on a ResNet-18, a domain-generalisation baseline of
AG-FAS Tables I-III and VIII: its record.

``model.py`` the network with one head per source domain, SupCon, the PG-IRM projection; ``config.py``;
``task.py`` the balanced two-view training step; ``predictor.py`` inference. ``extra_real`` in the config gives the
"*" row (SA-FAS*).
"""

from __future__ import annotations

from fas.methods import register
from fas.methods.base import Method, random_init
from fas.methods.safas.config import SAFASConfig
from fas.methods.ssan.common import data

METHOD = register(Method(
    name="safas", config=SAFASConfig, default_config="safas.yaml", tiny_config="safas_tiny.yaml",
    weights="fas.methods.safas.model:config_weights", weightless=random_init("pretrained"), batch_field="per_group",
    task="fas.methods.safas.task:SAFASTask", predictor="fas.methods.safas.predictor:SAFASPredictor", data=data,
    prepare="fas.methods.safas.task:prepare", model_meta="fas.methods.safas.task:portable_meta",
    aliases=("sa-fas", "sa_fas"),
    summary="SA-FAS: ResNet-18, SupCon over (domain, label) for separability, PG-IRM-aligned per-domain heads",
))
