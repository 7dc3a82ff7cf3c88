"""AG-FAS's De-fake Face Generator (identity-conditioned latent diffusion, trained on real faces only): its record.

``model.py`` the diffusers composition and the DDIM reconstruction, ``config.py``, ``task.py`` the training step
and the stand-in VAE, ``generator.py`` its folder format and the cue maker the cue job and Serve share. It gives
no liveness score of its own: OA-Net (``fas.methods.oanet``) reads the cues it makes.
"""

from __future__ import annotations

from fas.methods import register
from fas.methods.base import DataNeeds, Method
from fas.methods.dfg.config import DFGConfig

METHOD = register(Method(
    name="dfg", config=DFGConfig, default_config="dfg.yaml", tiny_config="dfg_tiny.yaml",
    weights="fas.methods.dfg.model:config_weights", weightless="fas.methods.dfg.model:weightless",
    task="fas.methods.dfg.task:DFGTask", prepare="fas.methods.dfg.task:prepare",
    # a step run passes over a small real-face set many times: a random block order plus a local shuffle buffer
    # re-executes cheaply every pass, where a global shuffle costs seconds each time
    data=lambda cfg: DataNeeds(columns=("image",), real_only=True, fraction=cfg.real_face_fraction, order="blocks",
                               local_shuffle=4),
    cue_maker="fas.methods.dfg.generator:CueMaker", scaled_fields=("vae_fit_steps",),
    summary="the De-fake Face Generator, latent diffusion on real faces conditioned on identity; its DDIM "
            "residual is AG-FAS's cue",
))
