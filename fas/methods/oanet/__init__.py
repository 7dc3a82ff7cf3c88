"""AG-FAS's Off-real Attention Network (ViT with cross-attention to the anomalous cue) trained with SSDG: its record.

``model.py`` OA-Net and its baselines, ``ssdg.py`` the single-side adversarial and asymmetric triplet losses,
``config.py``, ``task.py`` the balanced training step and the cue preparation, ``predictor.py`` inference. Its
cues come from a generator run (``fas.methods.dfg``): ``generator`` in the config makes them first.
"""

from __future__ import annotations

from fas.methods import register
from fas.methods.base import DataNeeds, Method, random_init
from fas.methods.oanet.config import OANetConfig


def data(cfg: OANetConfig) -> DataNeeds:
    # the per-group reservoirs mix the rows: a random block order is enough and re-executes cheaply every pass;
    # frames the cue job could not read have no cue and are dropped; image_only (SSDG) reads no cue at all
    cue = ("cue",) if reads_cues(cfg) else ()
    return DataNeeds(columns=("image", *cue, "label", cfg.domain_column), required=cue, order="blocks",
                     extra_real=cfg.extra_real)


def reads_cues(cfg: OANetConfig) -> bool:
    return cfg.mode != "image_only"


def companions(meta: dict) -> dict[str, str]:
    """The generator that makes the cues travels with the detector (Serve runs it)."""
    return {"generator": meta["cue"]["generator"]} if meta.get("cue") else {}


METHOD = register(Method(
    name="oanet", config=OANetConfig, default_config="oanet.yaml", tiny_config="oanet_tiny.yaml",
    weights="fas.methods.oanet.model:config_weights", weightless=random_init("pretrained", "cue_pretrained"),
    batch_field="per_group",
    task="fas.methods.oanet.task:OANetTask", predictor="fas.methods.oanet.predictor:OANetPredictor", data=data,
    prepare="fas.methods.oanet.task:prepare", pictures="fas.methods.oanet.pictures:cue_pictures", inputs=lambda meta: tuple(meta.get("inputs", ("image", "cue"))),
    model_meta="fas.methods.oanet.task:portable_meta",
    needs={"generator": "dfg"}, companions=companions, aliases=("agfas",),
    summary="AG-FAS: ViT with cross-attention to the generator's anomalous cue, trained with SSDG",
))
