"""The Serve deployments behind the ingress: face stage -> one model deployment per configured model -> combiner.

Only encoded crops (JPEG bytes, a few KB) travel between replicas, never decoded arrays. Resources, replicas and
autoscaling come from the config through ``.options(...)`` in ``fas.serve.app``; the defaults here are small so
that the whole graph fits a 2-core machine.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from ray import serve

from fas.serve.config import FaceConfig, FusionConfig, ModelCard
from fas.serve.pipeline import FacePipeline, fuse, present

log = logging.getLogger("ray.serve")


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=8)
class FaceStage:
    """Decode, detect and crop (sync: Serve runs it in its thread pool, so the replica keeps accepting calls)."""

    def __init__(self, cfg: FaceConfig, kinds: list[str]):
        self.cfg, self.kinds = cfg, set(kinds)
        self.local = threading.local()
        self._pipeline()  # a bad detector config fails at startup, not on the first request

    def _pipeline(self) -> FacePipeline:
        # One detector per thread: OpenCV's are not thread-safe (one Haar cascade shared by concurrent calls
        # returns boxes that differ by a pixel from call to call; YuNet mutates its input size).
        if not hasattr(self.local, "pipeline"):
            self.local.pipeline = FacePipeline(self.cfg, self.kinds)
        return self.local.pipeline

    def __call__(self, data: bytes) -> dict:
        return self._pipeline()(data)

    def ready(self) -> bool:
        return True


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=16)
class CueServer:
    """AG-FAS's De-fake Face Generator: a face crop -> its anomalous cue (float16 ``.npy`` bytes), batched.

    Each crop's noise is seeded by a hash of its bytes, so the same crop always gets the same cue."""

    def __init__(self, generator: str, cue: dict, max_batch_size: int, batch_wait_timeout_s: float):
        from fas.cues import CueGenerator

        self.generator = CueGenerator(generator, cue)
        self.cue_batch.set_max_batch_size(max_batch_size)
        self.cue_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

    async def __call__(self, image: bytes) -> bytes:
        return await self.cue_batch(image)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def cue_batch(self, images: list[bytes]) -> list[bytes]:
        return await asyncio.to_thread(self.generator, images)

    def ready(self) -> bool:
        return True


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=16)
class ModelServer:
    """One model from its portable checkpoint folder; concurrent calls are batched by ``@serve.batch``.

    A model that reads anomalous cues (OA-Net) gets a ``CueServer`` handle and asks it for each crop's cue first.
    """

    def __init__(self, card: ModelCard, max_batch_size: int, batch_wait_timeout_s: float, cue_source=None):
        from fas.methods import load_predictor

        self.card, self.cue_source = card, cue_source
        self.predictor = load_predictor(card.path)
        self.categories = tuple(getattr(self.predictor, "categories", None) or card.categories or ()) or None
        self.predict_batch.set_max_batch_size(max_batch_size)
        self.predict_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)
        log.info("model %s (%s) loaded from %s", card.name, card.version, card.path)

    async def __call__(self, image: bytes) -> dict:
        if self.cue_source is None:
            return await self.predict_batch((image,))
        return await self.predict_batch((image, await self.cue_source.remote(image)))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def predict_batch(self, inputs: list[tuple]) -> list[dict]:
        # in a worker thread, so that the next batch is collected while this one runs
        images = [item[0] for item in inputs]
        out = await asyncio.to_thread(self.predictor.predict, *([images] + ([[i[1] for i in inputs]]
                                                                           if self.cue_source else [])))
        return [{**present(out, i, self.categories), "batch_size": len(images), "version": self.card.version}
                for i in range(len(images))]

    def ready(self) -> bool:
        return True


@serve.deployment(ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=64)
class Combiner:
    """The fusion rule and the decision threshold, in one place whatever the set of models."""

    def __init__(self, fusion: FusionConfig, cards: list[ModelCard]):
        self.fusion = fusion
        self.cards = {c.name: c for c in cards}

    def __call__(self, results: dict[str, dict]) -> dict:
        return fuse(results, self.cards, self.fusion)

    def ready(self) -> bool:
        return True
