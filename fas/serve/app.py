"""Application builder for ``serve run`` / ``serve deploy``: ``import_path: fas.serve.app:build_app``.

The model list is config: one ``ModelServer`` deployment (named ``Model_<name>``) is bound per entry, so a new
method is served by adding an entry, not code. Model folders are resolved and checked here, at build time, so a
missing checkpoint is a startup error that names the folder and says what to run. The face stage and the fusion
run inside the ingress replica unless ``face.deployment`` asks for face replicas of their own.
"""

from __future__ import annotations

import logging

from ray.serve import Application
from ray.serve.config import BackpressureConfig

from fas.serve.auth import ApiKeys
from fas.serve.config import (ModelCard, ModelEntry, OverloadConfig, ServeAppConfig, load_model_card,
                              parse_app_config)
from fas.serve.deployments import CueServer, FaceStage, ModelServer
from fas.serve.ingress import LivenessIngress

log = logging.getLogger(__name__)


def shedding(overload: OverloadConfig) -> dict:
    """Serve's load shedding for a deployment: past ``max_queued_requests`` calls waiting at a caller, the next
    call fails at once (the ingress answers it 503 + Retry-After; Serve's proxy does for the ingress itself)."""
    return {"max_queued_requests": overload.max_queued_requests,
            "backpressure_config": BackpressureConfig(retry_after_s=overload.retry_after_s)}


def bind_model(entry: ModelEntry, card: ModelCard, overload: OverloadConfig | None = None):
    """``Model_<name>`` with the entry's Serve options; by default room for two batches in flight. An AG-FAS
    model (OA-Net with its generator) also gets ``Generator_<name>``, which feeds it the cues."""
    shed = shedding(overload or OverloadConfig())
    options = {"max_ongoing_requests": max(16, 2 * entry.max_batch_size), **shed, **entry.deployment}
    cues = None
    if card.generator:
        generator_options = {"max_ongoing_requests": max(16, 2 * entry.max_batch_size), **shed,
                             **entry.generator_deployment}
        cues = CueServer.options(name=f"Generator_{entry.name}", **generator_options).bind(
            card.generator, card.cue, entry.max_batch_size, entry.batch_wait_timeout_s)
    return ModelServer.options(name=f"Model_{entry.name}", **options).bind(
        card, entry.max_batch_size, entry.batch_wait_timeout_s, cues)


def build(cfg: ServeAppConfig) -> Application:
    """Bind one deployment per model (and the face stage when it has replicas of its own) into the ingress. The
    API keys are read here, so that a missing or malformed keys file stops the startup naming it."""
    cards = [load_model_card(m) for m in cfg.models]
    keys = ApiKeys.load(cfg.auth)
    face = None
    if cfg.face.deployment:
        face = FaceStage.options(**{**shedding(cfg.overload), **cfg.face.deployment}).bind(
            cfg.face, sorted({m.input for m in cfg.models}), cfg.quality)
    if cfg.fusion.deployment:
        log.warning("fusion.deployment is ignored: the fusion runs inside the ingress replica (microseconds of "
                    "work, cheaper than a call to another replica); size ingress_deployment instead")
    models = {m.name: bind_model(m, c, cfg.overload) for m, c in zip(cfg.models, cards)}
    ingress = {"backpressure_config": shedding(cfg.overload)["backpressure_config"], **cfg.ingress_deployment}
    return LivenessIngress.options(**ingress).bind(face, models, cfg, cards, keys=keys)


def build_app(args: dict) -> Application:
    """Serve's application builder: ``args`` is the application's ``args`` block of the Serve config file."""
    return build(parse_app_config(args))
