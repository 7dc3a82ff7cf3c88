"""MemAE as an AG-FAS cue generator (Table IV): a memory-augmented autoencoder trained on real faces only; its
reconstruction residual is the anomalous cue OA-Net reads.

``model.py`` the autoencoder, memory, shrinkage and loss; ``config.py``; ``task.py`` the training step;
``generator.py`` the cue maker over its folder (``fas.methods.cue_maker``). No liveness score of its own.
"""

from __future__ import annotations

from fas.methods import register
from fas.methods.base import Method
from fas.methods.memae.config import MemAEConfig

METHOD = register(Method(
    name="memae", config=MemAEConfig, default_config="memae.yaml", tiny_config="memae_tiny.yaml",
    task="fas.methods.memae.task:MemAETask", data="fas.methods.cue_maker:real_faces",
    cue_maker="fas.methods.memae.generator:CueMaker",
    summary="MemAE, a memory-augmented autoencoder on real faces (Gong et al. 2019); its reconstruction residual "
            "is a cue for OA-Net (AG-FAS Table IV)",
))
