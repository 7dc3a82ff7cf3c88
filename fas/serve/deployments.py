"""The Serve deployments behind the ingress: one batched model deployment per configured model (plus AG-FAS's cue
generator), and the face stage when the config gives it replicas of its own.

The face stage and the fusion are cheap next to the models and run inside the ingress replica by default: each
hop between replicas costs a serialisation, a route and a scheduling on both sides, which on a small machine
cost more than the work it moved. Only encoded crops (JPEG bytes, a few KB) travel to the models, never decoded
arrays. Resources, replicas and autoscaling come from the config through ``.options(...)`` in
``fas.serve.app``; the defaults here are small so that the whole graph fits a 2-core machine.
"""

from __future__ import annotations

import asyncio
import base64
import logging

from ray import serve

from fas.quality import QualityConfig
from fas.serve.config import FaceConfig, ModelCard
from fas.serve.pipeline import ThreadLocalFace, present

log = logging.getLogger("ray.serve")


def match_torch_threads() -> int:
    """Torch intra-op threads = the CPUs this replica reserved (at least 1): more threads than reserved CPUs make
    co-located replicas preempt each other mid-kernel; fewer leave reserved cores idle."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    return torch.get_num_threads()


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=8)
class FaceStage:
    """Decode, detect and crop in replicas of its own (``face.deployment`` set): for a detector that needs its own
    scaling or a GPU. Sync: Serve runs it in its thread pool, so the replica keeps accepting calls."""

    def __init__(self, cfg: FaceConfig, kinds: list[str], quality: QualityConfig | None = None):
        self.face = ThreadLocalFace(cfg, set(kinds), quality)

    def __call__(self, data: bytes) -> dict:
        return self.face(data)

    def ready(self) -> bool:
        return True


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=16)
class CueServer:
    """AG-FAS's De-fake Face Generator: a face crop -> its anomalous cue (float16 ``.npy`` bytes), batched.

    Each crop's noise is seeded by a hash of its bytes, so the same crop always gets the same cue."""

    def __init__(self, generator: str, cue: dict, max_batch_size: int, batch_wait_timeout_s: float):
        from fas.cues import CueGenerator

        match_torch_threads()
        self.generator = CueGenerator(generator, cue)
        self.cue_batch.set_max_batch_size(max_batch_size)
        self.cue_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

    async def __call__(self, image: bytes, geometry=None) -> bytes:
        """``geometry``: where the face lies in the crop, for cues masked to the face (DFG†)."""
        return await self.cue_batch((image, geometry))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def cue_batch(self, items: list[tuple]) -> list[bytes]:
        images, faces = (list(column) for column in zip(*items))
        return await asyncio.to_thread(self.generator, images, None if all(f is None for f in faces) else faces)

    def ready(self) -> bool:
        return True


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=16)
class ModelServer:
    """One model from its portable checkpoint folder; concurrent calls are batched by ``@serve.batch``.

    A call that finds the replica idle is scored at once: no batch can form around it, so waiting
    ``batch_wait_timeout_s`` for company would only add that wait to every answer at low load. Calls that arrive
    while others are in flight go through the batcher. A model that reads anomalous cues (OA-Net) gets a
    ``CueServer`` handle and asks it for each crop's cue first.
    """

    def __init__(self, card: ModelCard, max_batch_size: int, batch_wait_timeout_s: float, cue_source=None):
        from fas.methods import load_predictor

        self.card, self.cue_source = card, cue_source
        threads = match_torch_threads()
        self.predictor = load_predictor(card.weights)
        self.categories = tuple(getattr(self.predictor, "categories", None) or card.categories or ()) or None
        self.predict_batch.set_max_batch_size(max_batch_size)
        self.predict_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self.in_flight = 0
        log.info("model %s (%s) loaded from %s; %d torch threads", card.name, card.version, card.path, threads)

    async def __call__(self, image: bytes, geometry=None, explain: bool = False) -> dict:
        cue = None if self.cue_source is None else await self.cue_source.remote(image, geometry)
        item = (image,) if cue is None else (image, cue)
        self.in_flight += 1
        try:
            result = (await self.score([item]))[0] if self.in_flight == 1 else await self.predict_batch(item)
        finally:
            self.in_flight -= 1
        if explain:  # drawn after scoring, outside the batch: no batch waits for another request's pictures
            result["explanation"] = await asyncio.to_thread(self.explanation, result, image, cue)
        return result

    def explanation(self, row: dict, image: bytes, cue: bytes | None) -> dict:
        """``fas.explain``'s numbers and pictures (base64 PNG: class bars, level bars, the cue's heat-map over the
        crop) for this answer; the crop itself is left out (the client sent the image)."""
        from fas.cues import decode_cues
        from fas.explain import explain

        out = explain(row, self.predictor.meta, image, None if cue is None else decode_cues([cue])[0])
        numbers, _ = out.pop("explanation"), out.pop("crop")
        return {**numbers, "images": {name: base64.b64encode(png).decode() for name, png in out.items()}}

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def predict_batch(self, inputs: list[tuple]) -> list[dict]:
        return await self.score(inputs)

    async def score(self, inputs: list[tuple]) -> list[dict]:
        """One predictor call over the items' columns (image, and the cue when the model reads one), in a worker
        thread so that the replica keeps collecting the next batch while this one runs."""
        columns = [list(column) for column in zip(*inputs)]
        out = await asyncio.to_thread(self.predictor.predict, *columns)
        return [{**present(out, i, self.categories), "batch_size": len(inputs), "version": self.card.version}
                for i in range(len(inputs))]

    def ready(self) -> bool:
        return True
