"""Deep SVDD as an AG-FAS cue generator (Table IV): an autoencoder pre-trained on real faces, then its encoder
trained to map them close to a fixed centre; its reconstruction residual is the anomalous cue OA-Net reads.

``model.py`` the bias-free encoder, decoder, centre and loss; ``config.py``; ``task.py`` both phases in one run;
``generator.py`` the cue maker over its folder (``fas.methods.cue_maker``). No liveness score of its own.
"""

from __future__ import annotations

from fas.methods import register
from fas.methods.base import Method
from fas.methods.deepsvdd.config import DeepSVDDConfig

METHOD = register(Method(
    name="deepsvdd", config=DeepSVDDConfig, default_config="deepsvdd.yaml", tiny_config="deepsvdd_tiny.yaml",
    task="fas.methods.deepsvdd.task:DeepSVDDTask", data="fas.methods.deepsvdd.task:data",
    prepare="fas.methods.deepsvdd.task:prepare", cue_maker="fas.methods.deepsvdd.generator:CueMaker",
    phased_fields=("pretrain_steps", "pretrain_lr_milestone", "lr_milestone"),
    summary="Deep SVDD, a one-class encoder with its pre-trained autoencoder on real faces (Ruff et al. 2018); "
            "its reconstruction residual is a cue for OA-Net (AG-FAS Table IV)",
))
